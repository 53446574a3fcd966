"""`ingest`, `audit verify`, `retention`: the audit trail from the command line."""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, date, datetime
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..audit import analysis, bulk, chain, checkpoints, files, retention, rollups, signing, verification
from ..audit import service as audit_service
from ..audit.admin_actions import CLI_ACTOR
from ..auth import service as auth
from ..config import get_settings
from ..errors import AtlasError
from .common import console, fail, run_db

audit_app = typer.Typer(help="Audit trail integrity.", no_args_is_help=True)
retention_app = typer.Typer(help="Audit retention policy and purge.", no_args_is_help=True)

BATCH = 5_000  # events per chunk handed to a worker process
COMMIT_EVERY = 50_000  # events per transaction (one COPY)
AHEAD = 8  # prepared chunks kept ready while PostgreSQL finishes a COPY


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
    app.add_typer(audit_app, name="audit")
    app.add_typer(retention_app, name="retention")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, transient=True)


def ingest(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                       help="NDJSON (.ndjson/.jsonl), JSON array (.json) or CSV (.csv) file."),
           org: str = typer.Option(..., "--org", help="Organization slug."),
           label: str = typer.Option("", "--label",
                                     help="New events that may repeat content imported before (another day's "
                                          "log with the same lines): records without eventId get ids of "
                                          "their own under this label. Re-runs of this import use it again."),
           rerun: bool = typer.Option(False, "--rerun",
                                      help="This content was imported before and these are the same events: "
                                           "store only what is missing, nothing twice."),
           workers: int = typer.Option(0, "--workers", min=0, max=64,
                                       help="Processes that validate events and parse their SQL "
                                            "(default: one per CPU; 1 does it in this process)."),
           commit_every: int = typer.Option(COMMIT_EVERY, "--commit-every", min=1, max=200_000,
                                            help="Events written per transaction."),
           show_rejected: int = typer.Option(10, help="How many rejected records to list.")) -> None:
    """Import audit events from a file.

    A record without eventId gets an id derived from the file's content up to that record and its
    line number: the same content gets the same ids whatever the file is called, and a log that grew
    keeps the ids of its earlier lines, so re-running an import stores nothing twice.
    Content already imported that had records without eventId is refused (exit 1, nothing stored):
    add --rerun if it is the same events again, or --label NAME if they are new events with the same
    lines. The beginning of a file imported before from the same path (a log that grew, an
    interrupted import) needs neither: only the rest is stored.

    An eventId already stored for another event (different sql, user, timestamp, source, dialect,
    database host or success) is refused as an event id conflict, listed, and the command exits 1.

    Worker processes decode, validate and parse the events in chunks of up to 5,000, each statement
    within the analysis budget (ATLAS_PARSE_MAX_BYTES, ATLAS_PARSE_SECONDS): one over it is stored
    with parse_error "too complex to analyse" and no tables.
    Each chunk is streamed into PostgreSQL as soon as it is ready, one COPY per transaction of --commit-every events.
    A record that is not JSON stops the import after the events before it are stored.
    An interrupted import keeps what it committed; running it again stores only the rest.
    """
    path = str(file.resolve())
    processes = workers or os.cpu_count() or 1
    budget = analysis.budget_of(get_settings())
    analysis.configure(budget)  # with --workers 1 the size budget applies here (no timer in a thread)
    # Workers from a fork server: none inherits the database pool's threads or sockets.
    pool = analysis.AnalysisPool(processes, budget) if processes > 1 else None

    async def work(db):
        async with db.transaction() as conn:
            org_row = await auth.get_organization(conn, org)
            catalog = await audit_service.org_catalog(conn, org_row["id"])
            imports = await audit_service.file_imports(conn, org_row["id"])
        found = files.scan(file, label, {e["digest"] for e in imports})
        reason = None if rerun else files.refusal(found, imports, path)
        if reason is not None:
            return reason
        async with db.transaction() as conn:
            ledger_id = await audit_service.start_file_import(conn, org_row["id"], label, path,
                                                           files.chain_seed(label).hex())
        job = bulk.ChunkJob(file_name=file.name, org_id=org_row["id"], now=datetime.now(UTC), catalog=catalog)
        records = ((number, (record, digest)) for number, record, digest in
                   files.chained(files.iter_records(file), label))
        batches = bulk.batched_records(records, BATCH)
        with _progress() as progress:
            task = progress.add_task(f"ingesting {file.name}", total=found.records)
            chunks = bulk.prepared_in_order(pool, job, batches, inflight=processes + 1, ahead=AHEAD)
            async with contextlib.aclosing(chunks):
                totals = await bulk.write_chunks(db, org_row["id"], chunks, commit_every=commit_every,
                                                 on_written=lambda n: progress.advance(task, n), ledger_id=ledger_id)
        async with db.transaction() as conn:
            await audit_service.finish_file_import(conn, ledger_id)
        return totals

    try:
        totals = run_db(work)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if isinstance(totals, str):
        fail(f"{file.name}: {totals}. Records without an eventId would get the same ids, so nothing was stored. "
             "If these are new events (say, another day's log with the same lines), import them with "
             "--label NAME; if this is the same import again, add --rerun (nothing is stored twice).")
    for number, error in totals.rejected[:show_rejected]:
        console.print(f"  record {number}: {error}", highlight=False)
    for number, event_id in totals.conflicts[:show_rejected]:
        console.print(f"  record {number}: eventId {event_id!r} is already stored for another event; not stored",
                      highlight=False)
    conflicts = f", {len(totals.conflicts)} event id conflicts" if totals.conflicts else ""
    typer.echo(f"{file.name}: {totals.inserted} inserted, {totals.duplicates} already stored, "
               f"{len(totals.rejected)} rejected{conflicts}")
    if totals.conflicts or (totals.rejected and not totals.inserted and not totals.duplicates):
        raise typer.Exit(1)


@audit_app.command("verify")
def verify(org: str = typer.Option(None, "--org", help="Organization slug (default: every organization)."),
           since: datetime = typer.Option(None, "--since", formats=["%Y-%m-%d"],
                                          help="Check the rollups from this UTC day on (YYYY-MM-DD; weekly rows "
                                               "from the Monday of its week). Default: the whole history."),
           no_rollups: bool = typer.Option(False, "--no-rollups",
                                           help="Check the hash chains only, not the rollups reports read."),
           workers: int = typer.Option(None, "--workers", min=1, max=4,
                                       help="Verification jobs run at once (default: one per core, at most 4)."),
           checkpoint: Path = typer.Option(None, "--checkpoint", exists=True,
                                           help="A signed checkpoint file, or a directory of them: also prove "
                                                "that the database extends every one."),
           public_key: Path = typer.Option(None, "--public-key", exists=True, dir_okay=False,
                                           help="Check checkpoint signatures with this Ed25519 public key (PEM) "
                                                "instead of the installation's key.")) -> None:
    """Verify the tamper-evident hash chains of one or every organization, and the rollups reports read.

    The chains: the audit log's (every row's hash and link), and those of purge tombstones and admin
    actions. The rollups: the user-daily, access-daily and access-weekly rows are recomputed from the raw
    rows and every (rollup, day or week, table, user) that differs is named, field by field (the first
    100 listed, all counted). Exit code 2 when anything is broken or differs.

    With --checkpoint, each checkpoint's signature is checked, then the database must extend it: the chain
    reaches the recorded position, the row there hashes to the recorded head, the chain up to it verifies,
    and no row the checkpoint counted live is shown as purged unless it was old enough. Exit code 2 names
    every checkpoint the database does not extend (wiped, wound_back, rewritten, broken, forged_tombstone,
    bad_signature, unknown_key, malformed, org_missing).
    """
    if checkpoint is not None:
        _verify_checkpoints(checkpoint, org, public_key)
        return
    first_day: date | None = since.date() if since else None

    async def work(db):
        async with db.transaction() as conn:
            if org:
                orgs = [await auth.get_organization(conn, org)]
            else:
                orgs = [{"id": r["org_id"], "slug": r["slug"]} for r in await audit_service.orgs_with_policy(conn)]
        return await verification.verify_orgs(db, orgs, since=first_day, with_rollups=not no_rollups,
                                              workers=workers)

    broken = False
    for found in run_db(work):
        broken = _echo_chain(found.slug, found.chain) or broken
        if found.rollups is not None:
            broken = _echo_rollups(found.slug, found.rollups) or broken
    if broken:
        raise typer.Exit(2)


def _echo_chain(slug: str, result: chain.VerifyResult) -> bool:
    """Print one org's chain result; True when something is broken."""
    records = ", ".join(f"{c.records} {c.chain.replace('_', ' ')} records" for c in result.chains)
    if result.ok:
        typer.echo(f"{slug}: OK, {result.rows_checked} rows checked ({result.purged_rows} purged by retention)"
                   + (f"; {records} chained" if records else ""))
        return False
    if result.first_break is not None:
        b = result.first_break
        typer.echo(f"{slug}: BROKEN at row {b.seq} ({b.kind}): {b.detail}"
                   + (f" [audit id {b.audit_id}]" if b.audit_id else ""))
    for c in result.chains:
        if c.first_break is not None:
            b = c.first_break
            typer.echo(f"{slug}: BROKEN {c.chain.replace('_', ' ')} chain at record {b.seq} ({b.kind}): {b.detail}"
                       + (f" [id {b.audit_id}]" if b.audit_id else ""))
    return True


def _echo_rollups(slug: str, checked: rollups.RollupResult) -> bool:
    """Print one org's rollup result; True when a rollup differs from the raw rows."""
    scope = f"from {checked.since.isoformat()}" if checked.since else "whole history"
    if checked.ok:
        typer.echo(f"{slug}: rollups OK ({scope}): they match the raw rows")
        return False
    typer.echo(f"{slug}: ROLLUPS DIFFER ({scope}): {checked.difference_count} difference(s) from the raw rows")
    for d in checked.differences:
        typer.echo(f"{slug}:   {d.describe()}")
    if checked.difference_count > len(checked.differences):
        typer.echo(f"{slug}:   … and {checked.difference_count - len(checked.differences)} more")
    return True


def _verify_checkpoints(target: Path, org: str | None, public_key: Path | None) -> None:
    try:
        key = (signing.load_public_key(public_key) if public_key
               else signing.load_signing_key(get_settings(), create=False).verifying())
    except AtlasError as exc:
        fail(exc.message)
    files_found = checkpoints.checkpoint_files(target)
    if not files_found:
        fail(f"no checkpoint files (*.json) in {target}")
    read = [checkpoints.read_checkpoint(path, key) for path in files_found]

    async def work(db):
        wanted = None
        if org:
            async with db.transaction() as conn:
                wanted = (await auth.get_organization(conn, org))["id"]
        by_org: dict[str, list[checkpoints.Checkpoint]] = {}
        for cp in read:
            if cp.statement is not None and (wanted is None or cp.org_id == wanted):
                by_org.setdefault(str(cp.org_id), []).append(cp)
        for org_id, group in by_org.items():
            async with db.transaction() as conn:
                await checkpoints.check_org(conn, org_id, group)
        return wanted

    wanted = run_db(work)
    failed = checked = 0
    for cp in read:
        if cp.statement is not None and wanted is not None and cp.org_id != wanted:
            continue
        checked += 1
        what = (f"{cp.statement['org']['slug']} at {cp.statement['createdAt']}" if cp.statement else "")
        if cp.ok:
            reach = ", ".join(f"{name} to {c.get('lastSeq')}" for name, c in cp.statement["chains"].items())
            typer.echo(f"{cp.path}: OK ({what}): the database extends {reach}")
            continue
        failed += 1
        for f in cp.findings:
            where = f" at row {f.seq}" if f.seq is not None else ""
            chain_name = "" if f.chain == "-" else f" {f.chain}"
            typer.echo(f"{cp.path}: FAILED{chain_name} ({f.kind}){where}{' (' + what + ')' if what else ''}: {f.detail}")
    typer.echo(f"{checked} checkpoint(s) checked, {failed} failed (signing key {key.key_id})")
    if failed:
        raise typer.Exit(2)


@audit_app.command("checkpoint")
def checkpoint_cmd(org: str = typer.Option(None, "--org", help="Organization slug (default: every organization)."),
                   out: Path = typer.Option(None, "--out", file_okay=False,
                                            help="Directory to write to (default ATLAS_CHECKPOINT_DIR, else "
                                                 "ATLAS_DATA_DIR/checkpoints).")) -> None:
    """Write a signed checkpoint of every chain, one file per organization (never overwriting a file).

    Copy the files off this host (object storage with a retention lock, a git repository, a ticket):
    `audit verify --checkpoint` then proves the database still extends them.
    """
    settings = get_settings()
    try:
        key = signing.load_signing_key(settings)
    except AtlasError as exc:
        fail(exc.message)
    directory = out or settings.checkpoints_path

    async def work(db):
        orgs = None
        if org:
            async with db.transaction() as conn:
                o = await auth.get_organization(conn, org)
            orgs = [{"id": o["id"], "slug": o["slug"]}]
        return await checkpoints.write_checkpoints(db, settings, key, directory, orgs)

    for path in run_db(work):
        typer.echo(str(path))


@retention_app.command("purge")
def purge(org: str = typer.Option(None, "--org", help="Organization slug (default: every organization).")) -> None:
    """Apply retention now: soft-delete expired rows, hard-delete rows past the delay."""
    async def work(db):
        async with db.transaction() as conn:
            targets = [await auth.get_organization(conn, org)] if org else [
                {"id": r["org_id"], "slug": r["slug"]} for r in await audit_service.orgs_with_policy(conn)]
        out = []
        for o in targets:
            async with db.transaction() as conn:
                result = await retention.purge_org(conn, o["id"], CLI_ACTOR)
            out.append((o["slug"], result))
        return out

    for slug, result in run_db(work):
        typer.echo(f"{slug}: {result.soft_deleted} soft-deleted, {result.hard_deleted} hard-deleted")


@retention_app.command("show")
def show(org: str = typer.Option(..., "--org", help="Organization slug.")) -> None:
    """Show an organization's retention policy."""
    async def work(db):
        async with db.transaction() as conn:
            o = await auth.get_organization(conn, org)
            return await retention.get_policy(conn, o["id"])
    p = run_db(work)
    days = "unlimited" if p["retentionDays"] is None else f"{p['retentionDays']} days"
    typer.echo(f"{org}: keep {days}, hard delete {p['hardDeleteDelayDays']} days after soft delete; "
               f"last purge {p['lastPurgeAt'] or 'never'} ({p['lastPurgeCount'] or 0} rows)")


@retention_app.command("set")
def set_policy(org: str = typer.Option(..., "--org", help="Organization slug."),
               days: str = typer.Option(..., "--days", help="Days to keep (at least ATLAS_MIN_RETENTION_DAYS, default 365; at most 36,500), or 'unlimited'."),
               hard_delete_delay: int = typer.Option(None, "--hard-delete-delay", help="Days before hard delete (at least ATLAS_MIN_HARD_DELETE_DELAY_DAYS, default 30).")
               ) -> None:
    """Set an organization's retention policy."""
    retention_days = None
    if days.lower() != "unlimited":
        if not days.isdigit():
            fail(f"--days must be a number of days (up to 36,500) or 'unlimited', got {days!r}")
        retention_days = int(days)

    async def work(db):
        async with db.transaction() as conn:
            o = await auth.get_organization(conn, org)
            _, new = await retention.set_policy(conn, o["id"], retention_days, hard_delete_delay, CLI_ACTOR)
            return new
    p = run_db(work)
    typer.echo(f"{org}: retention {p['retentionDays'] or 'unlimited'} days, hard delete after "
               f"{p['hardDeleteDelayDays']} days")
