"""`ingest`, `audit verify`, `retention`: the audit trail from the command line."""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..audit import analysis, bulk, chain, files, retention
from ..audit import repository as audit_repo
from ..audit import service as audit_service
from ..auth import service as auth
from ..config import get_settings
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
           workers: int = typer.Option(0, "--workers", min=0, max=64,
                                       help="Processes that validate events and parse their SQL "
                                            "(default: one per CPU; 1 does it in this process)."),
           commit_every: int = typer.Option(COMMIT_EVERY, "--commit-every", min=1, max=200_000,
                                            help="Events written per transaction."),
           show_rejected: int = typer.Option(10, help="How many rejected records to list.")) -> None:
    """Import audit events from a file. Re-running the same file stores nothing twice.

    Worker processes decode, validate and parse the events in chunks of up to 5,000, each statement
    within the analysis budget (ATLAS_PARSE_MAX_BYTES, ATLAS_PARSE_SECONDS): one over it is stored
    with parse_error "too complex to analyse" and no tables.
    Each chunk is streamed into PostgreSQL as soon as it is ready, one COPY per transaction of --commit-every events.
    A record that is not JSON stops the import after the events before it are stored.
    An interrupted import keeps what it committed; running it again stores only the rest.
    """
    total = files.count_records(file)
    processes = workers or os.cpu_count() or 1
    budget = analysis.budget_of(get_settings())
    analysis.configure(budget)  # with --workers 1 the size budget applies here (no timer in a thread)
    # Workers from a fork server: none inherits the database pool's threads or sockets.
    pool = analysis.AnalysisPool(processes, budget) if processes > 1 else None

    async def work(db):
        async with db.transaction() as conn:
            org_row = await auth.get_organization(conn, org)
            catalog = await audit_service.org_catalog(conn, org_row["id"])
        job = bulk.ChunkJob(file_name=file.name, path_key=files.path_key(file), org_id=org_row["id"],
                            now=datetime.now(UTC), catalog=catalog)
        batches = bulk.batched_records(files.iter_records(file), BATCH)
        with _progress() as progress:
            task = progress.add_task(f"ingesting {file.name}", total=total)
            chunks = bulk.prepared_in_order(pool, job, batches, inflight=processes + 1, ahead=AHEAD)
            async with contextlib.aclosing(chunks):
                return await bulk.write_chunks(db, org_row["id"], chunks, commit_every=commit_every,
                                               on_written=lambda n: progress.advance(task, n))

    try:
        totals = run_db(work)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    for number, error in totals.rejected[:show_rejected]:
        console.print(f"  record {number}: {error}", highlight=False)
    typer.echo(f"{file.name}: {totals.inserted} inserted, {totals.duplicates} already stored, "
               f"{len(totals.rejected)} rejected")
    if totals.rejected and not totals.inserted and not totals.duplicates:
        raise typer.Exit(1)


@audit_app.command("verify")
def verify(org: str = typer.Option(None, "--org", help="Organization slug (default: every organization).")) -> None:
    """Verify the tamper-evident hash chain of one or every organization."""
    async def work(db):
        async with db.transaction() as conn:
            if org:
                orgs = [await auth.get_organization(conn, org)]
            else:
                orgs = [{"id": r["org_id"], "slug": r["slug"]} for r in await audit_repo.orgs_with_policy(conn)]
        results = []
        for o in orgs:
            async with db.transaction() as conn:
                results.append((o["slug"], await chain.verify_chain(conn, o["id"])))
        return results

    broken = False
    for slug, result in run_db(work):
        if result.ok:
            typer.echo(f"{slug}: OK, {result.rows_checked} rows checked ({result.purged_rows} purged by retention)")
        else:
            broken = True
            b = result.first_break
            typer.echo(f"{slug}: BROKEN at row {b.seq} ({b.kind}): {b.detail}"
                       + (f" [audit id {b.audit_id}]" if b.audit_id else ""))
    if broken:
        raise typer.Exit(2)


@retention_app.command("purge")
def purge(org: str = typer.Option(None, "--org", help="Organization slug (default: every organization).")) -> None:
    """Apply retention now: soft-delete expired rows, hard-delete rows past the delay."""
    async def work(db):
        async with db.transaction() as conn:
            targets = [await auth.get_organization(conn, org)] if org else [
                {"id": r["org_id"], "slug": r["slug"]} for r in await audit_repo.orgs_with_policy(conn)]
        out = []
        for o in targets:
            async with db.transaction() as conn:
                result = await retention.purge_org(conn, o["id"])
                await audit_repo.record_admin_action(
                    conn, org_id=o["id"], actor_id="system:cli", actor_email="system:cli", scope="platform",
                    action_type="audit_retention.manual_purge", target_type="audit_retention", target_id=o["id"],
                    request_id="cli", metadata={"softDeleted": result.soft_deleted,
                                                "hardDeleted": result.hard_deleted})
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
               days: str = typer.Option(..., "--days", help="Days to keep (7 to 36,500), or 'unlimited'."),
               hard_delete_delay: int = typer.Option(None, "--hard-delete-delay", help="Days before hard delete.")
               ) -> None:
    """Set an organization's retention policy."""
    retention_days = None
    if days.lower() != "unlimited":
        if not days.isdigit():
            fail(f"--days must be a number of days (7 to 36,500) or 'unlimited', got {days!r}")
        retention_days = int(days)

    async def work(db):
        async with db.transaction() as conn:
            o = await auth.get_organization(conn, org)
            _, new = await retention.set_policy(conn, o["id"], retention_days, hard_delete_delay, "system:cli")
            await audit_repo.record_admin_action(
                conn, org_id=o["id"], actor_id="system:cli", actor_email="system:cli", scope="platform",
                action_type="audit_retention.policy_update", target_type="audit_retention", target_id=o["id"],
                request_id="cli", metadata={"retentionDays": retention_days, "hardDeleteDelayDays": hard_delete_delay})
            return new
    p = run_db(work)
    typer.echo(f"{org}: retention {p['retentionDays'] or 'unlimited'} days, hard delete after "
               f"{p['hardDeleteDelayDays']} days")
