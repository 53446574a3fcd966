"""`import pgaudit`, `import mariadb-audit`, `sources …`: audit events from the databases' own logs."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from ..audit import analysis, bulk
from ..audit import service as audit_service
from ..auth import service as auth
from ..config import get_settings
from ..errors import BadRequest
from ..sources import roles, service
from ..sources.events import StatementJob
from ..sources.follow import FollowProgress, LogFollower
from ..sources.logfiles import FilePosition
from ..sources.pglog import LogClock
from ..sources.prefix import LinePrefix
from .common import console, fail, run_db

import_app = typer.Typer(help="Import audit events from a database's own audit log (pgAudit, MariaDB).",
                         no_args_is_help=True)
sources_app = typer.Typer(help="Audit-log sources of an organization and database roles mapped to users.",
                          no_args_is_help=True)

COMMIT_EVERY = 50_000


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
    app.add_typer(sources_app, name="sources")


def _opt_org():
    return typer.Option(..., "--org", help="Organization slug.")


def _opt_follow():
    return typer.Option(None, "--follow", file_okay=False, exists=True,
                        help="Keep importing this log directory as the server writes and rotates its files, "
                             "until stopped (SIGTERM or Ctrl-C). Its position is kept in the database.")


def _opt_settle():
    return typer.Option(30.0, "--settle", min=0.1, max=86_400,
                        help="Seconds after which a statement whose session logged nothing more is complete "
                             "(the log's clock; with --follow also a quiet log).")


def _opt_workers():
    return typer.Option(0, "--workers", min=0, max=64,
                        help="Processes that read the statements' SQL (default: one per CPU; 1: this process).")


def _opt_show():
    return typer.Option(10, "--show-skipped", min=0, help="How many skipped lines to list.")


@import_app.command("pgaudit")
def import_pgaudit(
    files: list[Path] = typer.Argument(None, exists=True, dir_okay=False, readable=True,
                                       help="PostgreSQL log files (stderr, csvlog or jsonlog), oldest first."),
    org: str = _opt_org(),
    log_format: str = typer.Option("auto", "--format",
                                   help="auto (by the file: .csv csvlog, .json jsonlog, else stderr), stderr, "
                                        "csvlog or jsonlog."),
    log_line_prefix: str = typer.Option(None, "--log-line-prefix",
                                        help="The server's log_line_prefix, for stderr logs; it must hold a "
                                             "timestamp, %c (or %p and %s), %l and %u: see docs/sources.md."),
    log_timezone: str = typer.Option(None, "--log-timezone",
                                     help="The server's log_timezone (IANA name), when its logs show zone "
                                          "abbreviations such as CET rather than UTC or an offset."),
    source: str = typer.Option("pgaudit", "--source",
                               help="The source's name (part of every event id: use the same one for a "
                                    "server's logs every time)."),
    keep_parameters: bool = typer.Option(False, "--keep-parameters",
                                         help="Store pgaudit.log_parameter values with the SQL (they may hold "
                                              "personal data; dropped by default)."),
    follow: Path = _opt_follow(),
    settle: float = _opt_settle(),
    workers: int = _opt_workers(),
    show_skipped: int = _opt_show(),
) -> None:
    """Import pgAudit (and plain log_statement) lines of PostgreSQL server logs.

    One audit event per executed statement: pgAudit's lines of one statement (one per relation, one per
    sub-statement) are grouped; tables are the relations pgAudit names; a statement that failed is stored
    with success=false and the error.
    Importing the same lines again stores nothing twice.
    Lines that cannot be read are listed with their file and line; the exit code is then 1.
    """
    prefix = None
    try:
        if log_line_prefix is not None:
            prefix = LinePrefix.compile(log_line_prefix)
        LogClock(log_timezone)
        source = service.validate_source_name(source)
    except BadRequest as exc:
        fail(exc.message)
    options = service.ReadOptions(kind="pgaudit", source=source, log_format=log_format, prefix=prefix,
                                  timezone=log_timezone, settle=timedelta(seconds=settle),
                                  keep_parameters=keep_parameters)
    _run(options, files, org, follow, None, workers, show_skipped)


@import_app.command("mariadb-audit")
def import_mariadb(
    files: list[Path] = typer.Argument(None, exists=True, dir_okay=False, readable=True,
                                       help="server_audit log files, oldest first (server_audit.log.2, .1, then "
                                            "server_audit.log)."),
    org: str = _opt_org(),
    log_timezone: str = typer.Option(None, "--log-timezone",
                                     help="The time zone of the server's clock (IANA name; default UTC): "
                                          "server_audit writes local times without a zone."),
    source: str = typer.Option("mariadb-audit", "--source",
                               help="The source's name (part of every event id: use the same one for a "
                                    "server's logs every time)."),
    follow: Path = _opt_follow(),
    pattern: str = typer.Option("server_audit.log*", "--pattern", help="With --follow: the files to read."),
    settle: float = _opt_settle(),
    workers: int = _opt_workers(),
    show_skipped: int = _opt_show(),
) -> None:
    """Import the MariaDB / MySQL server_audit plugin's log (QUERY and TABLE events).

    One audit event per statement: tables from its TABLE events, otherwise read from the SQL (MySQL
    dialect); a non-zero return code is stored as success=false.
    Importing the same lines again stores nothing twice.
    Lines that cannot be read are listed with their file and line; the exit code is then 1.
    """
    try:
        LogClock(log_timezone)
        source = service.validate_source_name(source)
    except BadRequest as exc:
        fail(exc.message)
    options = service.ReadOptions(kind="mariadb-audit", source=source, timezone=log_timezone,
                                  settle=timedelta(seconds=settle))
    _run(options, files, org, follow, pattern, workers, show_skipped)


def _follow_pattern(options: service.ReadOptions, directory: Path) -> tuple[str, str | None]:
    """The files of ``directory`` to follow, and their PostgreSQL log format."""
    by_format = {"jsonlog": "*.json", "csvlog": "*.csv", "stderr": "*.log"}
    if options.log_format != "auto":
        if options.log_format not in by_format:
            fail(f"unknown --format {options.log_format!r}: use auto, stderr, csvlog or jsonlog")
        return by_format[options.log_format], options.log_format
    for fmt in ("jsonlog", "csvlog", "stderr"):
        if any(directory.glob(by_format[fmt])):
            return by_format[fmt], fmt
    fail(f"no PostgreSQL log files (*.json, *.csv or *.log) in {directory} yet: pass --format")
    raise AssertionError("unreachable")


def _run(options: service.ReadOptions, files: list[Path] | None, org: str, follow: Path | None,
         pattern: str | None, workers: int, show_skipped: int) -> None:
    if bool(files) == bool(follow):
        fail("give either log FILES to import once, or --follow DIR to keep importing a directory")
    log_format = None
    if follow is not None and options.kind == "pgaudit":
        pattern, log_format = _follow_pattern(options, follow)
        if log_format == "stderr" and options.prefix is None:
            fail("stderr logs need the server's log_line_prefix: pass --log-line-prefix (or follow its csvlog or "
                 "jsonlog)")
    processes = workers or os.cpu_count() or 1
    # Forked before the database pool, its threads and sockets exist; SQL analysed within the budget.
    budget = analysis.budget_of(get_settings())
    analysis.configure(budget)
    pool = bulk.worker_pool(processes, budget)

    async def work(db):
        async with db.transaction() as conn:
            org_row = await auth.get_organization(conn, org)
            catalog = await audit_service.org_catalog(conn, org_row["id"])
        await service.check_source(db, org_row["id"], options.source, options.kind)
        job = StatementJob(kind=options.kind, source=options.source, org_id=org_row["id"], catalog=catalog,
                           keep_parameters=options.keep_parameters, file_names=())
        if follow is not None:
            return await _follow(db, options, job, follow, pattern or "*", log_format, pool, processes)
        return await _import_files(db, options, job, files or [], pool, processes)

    try:
        reader, totals = run_db(work)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    skipped = [*reader.counts.skipped, *totals.rejected]
    total_skipped = reader.counts.skipped_total + len(totals.rejected)
    if follow is None:  # a follower listed them as it went
        for item in skipped[:show_skipped]:
            _say_skipped(item)
        if total_skipped > show_skipped:
            console.print(f"  … and {total_skipped - show_skipped:,} more", highlight=False)
    if reader.counts.not_utf8:
        console.print(f"  {reader.counts.not_utf8:,} lines held bytes that are not UTF-8 (stored with U+FFFD)",
                      highlight=False)
    typer.echo(f"{options.source}: {reader.counts.lines:,} lines, {reader.counts.statements:,} statements: "
               f"{totals.inserted:,} stored, {totals.duplicates:,} already stored, {total_skipped:,} lines skipped")
    if total_skipped:
        raise typer.Exit(1)


def _say_skipped(item) -> None:
    console.print(f"  {item.file}, line {item.line}: {item.reason}", highlight=False)


async def _import_files(db, options, job, files, pool, processes):
    reader = service.StatementReader(options)
    ranks = [reader.add_file(path) for path in files]  # checks every file's format before reading any
    job = StatementJob(**{**job.__dict__, "file_names": tuple(reader.file_names)})
    total = sum(path.stat().st_size for path in files)
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task(f"importing {len(files)} file{'s' if len(files) > 1 else ''}", total=total)

        def statements():
            done = 0
            for path, rank in zip(files, ranks, strict=True):
                position = FilePosition()
                for number, statement in enumerate(reader.read(path, rank, position, to_end=True)):
                    yield statement
                    if number % 1000 == 0:
                        progress.update(task, completed=done + position.offset)
                yield from reader.end_of_file(rank)
                done += path.stat().st_size
                progress.update(task, completed=done)
            yield from reader.finish()

        totals = await service.store_statements(db, pool, job, service.statement_batches(statements()),
                                                workers=processes, commit_every=COMMIT_EVERY)
    return reader, totals


async def _follow(db, options, job, directory, pattern, log_format, pool, processes):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    last_note = [0.0]
    listed = [0, 0]  # skipped lines and refused statements listed so far

    def note(progress: FollowProgress) -> None:
        # A follower runs as a service: it lists what it skips as it goes (the first thousand lines).
        counts = follower.reader.counts
        for item in [*counts.skipped[listed[0]:], *progress.totals.rejected[listed[1]:]]:
            _say_skipped(item)
        listed[:] = [len(counts.skipped), len(progress.totals.rejected)]
        now = time.monotonic()
        if now - last_note[0] >= 10:
            last_note[0] = now
            console.print(f"{options.source}: {progress.totals.inserted:,} stored, "
                          f"{progress.totals.duplicates:,} already stored, {counts.skipped_total:,} lines skipped "
                          "so far", highlight=False)

    follower = LogFollower(db, options, job, directory, pattern, executor=pool, workers=processes,
                           log_format=log_format, on_round=note)
    console.print(f"following {directory} ({pattern}) for {options.source}; stop with Ctrl-C or SIGTERM",
                  highlight=False)
    progress = await follower.run(stop)
    return follower.reader, progress.totals


@sources_app.command("list")
def list_sources(org: str = _opt_org()) -> None:
    """The sources that fed the organization (last import, events stored) and its mapped database roles."""
    async def work(db):
        async with db.transaction() as conn:
            org_row = await auth.get_organization(conn, org)
            return await roles.sources(conn, org_row["id"]), await roles.role_mappings(conn, org_row["id"])

    found, mappings = run_db(work)
    if not found:
        typer.echo("no audit-log source has fed this organization yet")
    for s in found:
        latest = s["lastEventAt"].isoformat() if s["lastEventAt"] else "—"
        following = f", following {s['followedFiles']} files" if s["followedFiles"] else ""
        typer.echo(f"{s['name']} ({s['kind']}): last import {s['lastImportAt'].isoformat()}, "
                   f"{s['eventsStored']:,} events stored, latest event {latest}{following}")
    for m in mappings:
        typer.echo(f"role {m['role']} → {m['email'] or m['userId'] + ' (no longer a member)'}")


@sources_app.command("map-role")
def map_role(role: str = typer.Argument(..., help="The database role as the server logs it, e.g. alice."),
             org: str = _opt_org(),
             user: str = typer.Option(..., "--user", help="Email of the member the role belongs to.")) -> None:
    """Count a database role's events (reported as db:ROLE) under a member of the organization.

    Reports made afterwards count the role's past and future events under that member.
    The recorded events (and their hash chain) do not change.
    """
    async def work(db):
        async with db.transaction() as conn:
            org_row = await auth.get_organization(conn, org)
            return await roles.map_role(conn, org_row["id"], role, user, roles.CLI_ACTOR)

    result = run_db(work)
    before = f" (was {result['previousUserId']})" if result["previousUserId"] else ""
    typer.echo(f"{result['identity']} → {result['email']}{before}")


@sources_app.command("unmap-role")
def unmap_role(role: str = typer.Argument(..., help="The database role, e.g. alice."),
               org: str = _opt_org()) -> None:
    """Stop counting a database role under a member: reports show its events as db:ROLE again."""
    async def work(db):
        async with db.transaction() as conn:
            org_row = await auth.get_organization(conn, org)
            return await roles.unmap_role(conn, org_row["id"], role, roles.CLI_ACTOR)

    result = run_db(work)
    typer.echo(f"{result['identity']} is no longer mapped")



