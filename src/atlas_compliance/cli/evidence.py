"""`evidence export` and `evidence verify`: signed evidence bundles (docs/evidence.md)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import typer

from ..audit import signing
from ..audit.admin_actions import CLI_ACTOR
from ..auth import service as auth
from ..config import get_settings
from ..errors import AtlasError, BadRequest
from ..evidence import bundle as evidence
from ..evidence.verify import MalformedBundle, verify_bundle
from ..reports.window import parse_filters, parse_window
from .common import fail, run_db

evidence_app = typer.Typer(help="Signed evidence bundles: every report row, classifications, chain proofs.",
                           no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(evidence_app, name="evidence")


@evidence_app.command("export")
def export(org: str = typer.Option(..., "--org", help="Organization slug."),
           start: str = typer.Option(..., "--from", help="YYYY-MM-DD or ISO 8601 timestamp."),
           end: str = typer.Option(..., "--to", help="YYYY-MM-DD (whole day included) or ISO 8601 timestamp."),
           tz: str = typer.Option("UTC", "--tz", help="IANA time zone for date-only values, any case."),
           user: str = typer.Option(None, "--user", help="Reports only for this user id."),
           role: str = typer.Option(None, "--role", help="Reports only for owner, admin or member."),
           table: str = typer.Option(None, "--table", help="Reports only for this table."),
           out: Path = typer.Option(None, "--out", dir_okay=False,
                                    help="The zip to write (default: its documented name, in the current "
                                         "directory).")) -> None:
    """Write a signed evidence bundle (zip) for an organization and window.

    It holds both reports, every row, in CSV and JSON; the PII classifications; the result of `audit verify`;
    the organization's latest signed checkpoint (else its chain heads); and manifest.json (version, org,
    window, time zone, filters, when and by whom, each file's row count, population and SHA-256) with
    manifest.sig, its Ed25519 signature by the installation key. Recorded in the admin action log.
    The default name is evidence-<org>-<from>_<to>-<tz>[-user-<h>][-role-<r>][-table-<t>]-<UTC time>-<manifest
    SHA-256, 8 hex>.zip.
    """
    try:
        window = parse_window(start, end, tz)
        filters = parse_filters(user, role, table)
    except BadRequest as exc:
        fail(exc.message.replace("startDate", "--from").replace("endDate", "--to"))
    settings = get_settings()
    try:
        key = signing.load_signing_key(settings)
    except AtlasError as exc:
        fail(exc.message)
    directory = out.resolve().parent if out else Path.cwd()
    partial = directory / f".evidence-export-{os.getpid()}.partial"

    async def work(db):
        async with db.transaction() as conn:
            org_row = await auth.get_organization(conn, org)
        request = evidence.BundleRequest(org_id=org_row["id"], org_slug=org_row["slug"], window=window,
                                         filters=filters, start_input=start, end_input=end, actor=CLI_ACTOR)
        handle = await asyncio.to_thread(open, partial, "wb")
        try:
            return await evidence.export(db, settings, request, key, handle)
        finally:
            handle.close()

    try:
        made = run_db(work)
        final = out.resolve() if out else directory / made.name
        os.replace(partial, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    files = made.manifest["files"]
    typer.echo(str(final))
    for f in files:
        rows = "" if f["rows"] is None else f", {f['rows']} rows"
        typer.echo(f"  {f['name']}: {f['bytes']} bytes{rows}, sha256 {f['sha256']}")
    typer.echo(f"signed by key {key.key_id}; check it with `atlas-compliance evidence verify {final.name}`")


@evidence_app.command("verify")
def verify(file: Path = typer.Argument(..., dir_okay=False, help="The bundle (.zip)."),
           public_key: Path = typer.Option(None, "--public-key", exists=True, dir_okay=False,
                                           help="Check the signature with this Ed25519 public key (PEM) instead "
                                                "of the installation's key.")) -> None:
    """Check a bundle offline (no database): the manifest's signature, every file's SHA-256 and row count,
    and that no file is missing or added. Names the first file that differs and exits 1; exits 0 when all
    is well."""
    try:
        key = (signing.load_public_key(public_key) if public_key
               else signing.load_signing_key(get_settings(), create=False).verifying())
    except AtlasError as exc:
        fail(exc.message)
    try:
        outcome = verify_bundle(file, key)
    except MalformedBundle as exc:
        fail(str(exc))
    if outcome.problem is not None:
        typer.echo(f"{file}: FAILED: {outcome.problem.file}: {outcome.problem.detail}")
        raise typer.Exit(1)
    m = outcome.manifest
    assert m is not None
    w = m["window"]
    typer.echo(f"{file}: OK: {len(m['files'])} files and the manifest, signed by key {key.key_id}; "
               f"{m['org']['slug']}, {w['start']} to {w['end']} ({m['tz']}), generated {m['generatedAt']} by "
               f"{m['generatedBy']['email'] or m['generatedBy']['userId']}")
