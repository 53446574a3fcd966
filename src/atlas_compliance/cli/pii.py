"""`pii scan`, `pii add` and `pii list`: classify the columns of a datasource that hold personal data."""

from __future__ import annotations

import asyncio

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from ..audit import admin_actions
from ..auth import service as auth
from ..pii import scanner, service
from ..pii.categories import PHI_CATEGORIES, PII_CATEGORIES
from ..pii.scan_store import store_scan
from ..pii.schemas import ManualClassificationIn
from .common import console, fail, out, run_db

pii_app = typer.Typer(help="PII classification of datasource columns.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(pii_app, name="pii")


@pii_app.command("scan")
def scan(datasource_url: str = typer.Argument(..., help="SQLAlchemy URL: postgresql://…, mysql+pymysql://…, "
                                               "sqlite:///file.db. Never stored or logged."),
         org: str = typer.Option(..., "--org", help="Organization slug."),
         source_id: str = typer.Option(None, "--source-id", help="Name of this datasource (default: backend:host/db)."),
         schema: list[str] = typer.Option(None, "--schema", help="Schema to scan (repeatable; default: the default "
                                          "schema)."),
         sample: int = typer.Option(200, "--sample", help="Non-null values sampled per column (1–10000)."),
         table_timeout: float = typer.Option(30.0, "--table-timeout", help="Seconds allowed per table.")) -> None:
    """Scan a datasource read-only, detect PII columns, and store the classifications (sticky: reviewed or
    dismissed ones are never overwritten) and the catalog (used to attribute columns in SQL)."""
    async def work(db):
        async with db.transaction() as conn:
            org_row = await auth.get_organization(conn, org)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console,
                      transient=True) as progress:
            task = progress.add_task("scanning", total=None)

            def step(name: str, index: int, total: int) -> None:
                progress.update(task, description=f"scanning {name}", completed=index - 1, total=total)

            result = await asyncio.to_thread(scanner.scan, datasource_url, schemas=schema or None, sample=sample,
                                             source_id=source_id, table_timeout=table_timeout, progress=step)
        async with db.transaction() as conn:
            counts = await store_scan(conn, org_row["id"], result, actor="system:cli")
        return result, counts

    result, counts = run_db(work)
    suggestions = sum(1 for c in result.detections if c.detection is not None and c.detection.suggestion)
    for name, why in result.skipped_tables:
        console.print(f"  skipped {name}: {why}", highlight=False)
    typer.echo(f"{result.source_id}: {result.tables} tables, {len(result.columns)} columns, "
               f"{len(result.detections)} PII detections ({counts.created} new, {counts.updated} updated, "
               f"{counts.unchanged} unchanged, {counts.kept_reviewed} kept as reviewed; {suggestions} of them only "
               "suggestions to review: a column name the sampled values contradict)")


@pii_app.command("add")
def add(table: str = typer.Argument(..., help="Table of the column, e.g. encounters or analytics.visits."),
        column: str = typer.Argument(..., help="The column the scanner missed."),
        org: str = typer.Option(..., "--org", help="Organization slug."),
        category: str = typer.Option(..., "--category", help="One of: " + ", ".join(PII_CATEGORIES) + "."),
        masking: str = typer.Option(None, "--masking", help="full, partial, hash or redact (default: the "
                                    "category's default masking)."),
        note: str = typer.Option(None, "--note", help="Why the column holds personal data (kept in the reason).")
        ) -> None:
    """Classify a column the scanner missed. It is stored reviewed (scans never overwrite it), with method
    manual; a column that is already classified is refused (edit or restore that one). Exits 1 on a refusal."""
    try:
        body = ManualClassificationIn(tableName=table, columnName=column, category=category, maskingStrategy=masking,
                                      note=note)
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"{first['loc'][0]}: {first['msg']}", code=2)

    async def work(db):
        async with db.transaction() as conn:
            org_row = await auth.get_organization(conn, org)
            row = await service.add_manual(conn, org_row["id"], body, actor="system:cli")
            await admin_actions.record(
                conn, admin_actions.CLI_ACTOR, org_id=org_row["id"], action_type="compliance.pii_manual_add",
                target_type="compliance", target_id=row["id"], details=body.model_dump(exclude_none=True))
            return row

    row = run_db(work)
    typer.echo(f"classified {row['table_name']}.{row['column_name']} as {row['category']} "
               f"(masking {row['masking_strategy']}, reviewed)")


@pii_app.command("list")
def list_(org: str = typer.Option(..., "--org", help="Organization slug."),
          include_dismissed: bool = typer.Option(False, "--include-dismissed", help="Also list dismissed ones.")) -> None:
    """List an organization's PII classifications."""
    async def work(db):
        async with db.transaction() as conn:
            org_row = await auth.get_organization(conn, org)
            return await service.list_for_org(conn, org_row["id"], include_dismissed=include_dismissed)

    rows = run_db(work)
    table = Table(header_style="bold")
    for c in ("table", "column", "category", "confidence", "method", "status", "reason"):
        table.add_column(c, overflow="fold")
    for r in rows:
        status = "dismissed" if r["dismissed"] else ("reviewed" if r["reviewed"] else "pending")
        if (r["evidence"] or {}).get("suggestion") and status == "pending":
            status = "suggestion"
        category = f"{r['category']} (PHI)" if r["category"] in PHI_CATEGORIES else r["category"]
        table.add_row(r["table_name"], r["column_name"], category, r["confidence"], r["method"] or "", status,
                      r["reason"] or "")
    out.print(table)
    summary = service.summarize(rows)
    typer.echo(f"{summary['total']} PII columns in {summary['tablesAffected']} tables, "
               f"{summary['unreviewed']} pending review, {summary['dismissed']} dismissed")
