"""`demo`: a realistic Acme Health audit trail on the embedded database, then the API and console."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from ..auth import service as auth
from ..config import get_settings
from ..demo import hospital, hospital_db, seed
from ..errors import AtlasError
from ..flags import service as flag_service
from ..logging import configure_logging
from ..pii import scanner
from ..pii.scan_store import store_scan
from .common import console, fail
from .server import serve_forever


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


async def _evaluate_flags(db, org_id: str) -> dict:
    """The unusual-access flags of the demo's last days (its anomalies are on the last whole day)."""
    first, last = flag_service.day_range(None, None)
    return await flag_service.evaluate_org(db, org_id, first - timedelta(days=1), last)


async def _scan_hospital(db, org_id: str) -> str:
    """Scan the demo's own `acme_hospital` database (created once) like a user would scan theirs."""
    try:
        url = await asyncio.to_thread(hospital_db.ensure_hospital_database, db.url)
        result = await asyncio.to_thread(scanner.scan, url, schemas=["public", "analytics"], sample=200,
                                         source_id="acme-hospital")
    except Exception as exc:  # e.g. DATABASE_URL without CREATEDB: fall back to known classifications
        await seed.seed_classifications(db, org_id)
        return f"could not create the demo datasource ({str(exc).splitlines()[0]}); classifications seeded instead"
    async with db.transaction() as conn:
        counts = await store_scan(conn, org_id, result, actor="system:demo")
    return (f"scanned acme_hospital: {result.tables} tables, {len(result.columns)} columns, "
            f"{len(result.detections)} PII columns ({counts.created} new)")


def demo(host: str = typer.Option(None, help="Interface to bind (default ATLAS_HOST or 127.0.0.1)."),
         port: int = typer.Option(None, help="Port (default ATLAS_PORT or 8000)."),
         queries: int = typer.Option(60_000, help="Approximate audit events to generate on first run."),
         seed_only: bool = typer.Option(False, "--seed-only", help="Build the demo data, print logins, exit.")) -> None:
    """Create the Acme Health demo (members, PII classifications, ~60,000 audited queries over 90 days)
    on the embedded PostgreSQL (or DATABASE_URL), then serve the API and console. Re-runs reuse the data."""
    settings = get_settings()
    configure_logging("WARNING")
    host = host or settings.host
    port = port or settings.port

    async def banner(db, bound_host: str, bound_port: int) -> None:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console,
                      transient=True) as progress:
            task = progress.add_task("ingesting the demo audit trail", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            org, _actors, _members, _created = await seed.ensure_people(db)
            progress.update(task, description="scanning the demo hospital database for PII")
            scanned = await _scan_hospital(db, org["id"])
            progress.update(task, description="ingesting the demo audit trail")
            info = await seed.seed_demo(db, target=queries, progress=advance)
            progress.update(task, description="evaluating unusual-access flags")
            flagged = await _evaluate_flags(db, info.org_id)
        async with db.transaction() as conn:
            token = await auth.create_personal_token(conn, org_slug=info.org_slug, email=info.admin_email,
                                                     name="demo token", expires_in_seconds=7 * 86400)
        base = f"http://{bound_host}:{bound_port}"
        typer.echo(f"\nAtlas Compliance demo — {hospital.ORG_NAME}: {info.audit_rows:,} audited "
                      f"queries over 90 days ({'created' if info.created else 'reused'})")
        typer.echo(f"  PII     : {scanned}")
        typer.echo(f"  Flags   : {flagged['flags']} unusual accesses in the last days "
                   f"(atlas-compliance flags list --org {info.org_slug}; docs/flags.md)")
        typer.echo(f"  Console : {base}/admin/compliance")
        typer.echo(f"  Log in  : {info.admin_email} / {hospital.DEMO_PASSWORD}  (admin)")
        typer.echo(f"            {info.member_email} / {hospital.DEMO_PASSWORD}  (member: sees 403)")
        typer.echo(f"  API docs: {base}/docs")
        typer.echo(f"  Token   : {token['token']}  (personal access token, 7 days)")
        today = date.today()
        start = (today - timedelta(days=30)).isoformat()
        typer.echo(f'  Try     : curl -H "Authorization: Bearer {token["token"]}" '
                   f'"{base}/api/v1/admin/compliance/reports/data-access?startDate={start}&endDate={today}"')
        typer.echo("  Stop with Ctrl-C.\n")
        if seed_only:
            raise SystemExit(0)

    try:
        serve_forever(settings, host, port, banner=banner)
    except AtlasError as exc:
        fail(exc.message)
