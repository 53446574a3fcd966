"""`audit events`: the audit-log explorer from the command line (the same query as the API's)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from ..audit import admin_actions
from ..audit.admin_actions import CLI_ACTOR
from ..auth import service as auth
from ..errors import AtlasError
from ..reports import explorer
from ..reports.window import iso_utc, parse_window
from ..reports.writers import EVENTS_CSV_HEADER, csv_chunk, event_csv_row, json_bytes
from .audit import audit_app
from .common import console, fail, out, run_db

SQL_PREVIEW = 120  # characters of SQL shown per row of the table output


def register(app: typer.Typer) -> None:
    audit_app.command("events")(events)


def events(org: str = typer.Option(..., "--org", help="Organization slug."),
           start: str = typer.Option(..., "--start", help="YYYY-MM-DD or ISO 8601 timestamp."),
           end: str = typer.Option(..., "--end", help="YYYY-MM-DD (whole day included) or ISO 8601 timestamp."),
           tz: str = typer.Option("UTC", "--tz", help="IANA time zone for date-only values."),
           user: str = typer.Option(None, "--user", help="Only this user id."),
           table: str = typer.Option(None, "--table", help="Only events touching this table."),
           column: str = typer.Option(None, "--column", help="Only events reading or writing this column."),
           success: bool = typer.Option(None, "--success/--failed", help="Only successful, or only failed, events."),
           source: str = typer.Option(None, "--source", help="Only events from this source id or source type."),
           q: str = typer.Option(None, "--q", help="Only events whose SQL contains this text (case-insensitive)."),
           limit: int = typer.Option(None, "--limit", help="At most this many events (newest first); default: all."),
           fmt: str = typer.Option("table", "--format", help="table, json (one event per line) or csv."),
           output: Path = typer.Option(None, "-o", "--output", help="Write to this file.")) -> None:
    """List the recorded events behind a report: who ran which SQL on which tables, newest first.

    Purged rows are not listed. Each use is recorded in the admin action log.
    """
    if fmt not in ("table", "json", "csv"):
        fail(f"invalid --format {fmt!r}: use table, json or csv")
    if limit is not None and limit < 1:
        fail(f"invalid --limit {limit}: use 1 or more")
    try:
        window = parse_window(start, end, tz)
        filters = explorer.parse_event_filters(user, table, column, success, source, q)
    except AtlasError as exc:
        fail(exc.message.replace("startDate", "--start").replace("endDate", "--end"))

    async def work(db):
        async with db.transaction() as conn:
            org_id = (await auth.get_organization(conn, org))["id"]
        rows: list[dict] = []
        count = 0
        sink = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout  # noqa: SIM115
        try:
            if fmt == "csv":
                sink.write(csv_chunk([EVENTS_CSV_HEADER]))
            async with db.transaction() as conn:
                async for batch in explorer.stream(conn, org_id, window, filters):
                    if limit is not None:
                        batch = batch[:limit - count]
                    count += len(batch)
                    if fmt == "csv":
                        sink.write(csv_chunk(event_csv_row(e) for e in batch))
                    elif fmt == "json":
                        sink.write("".join(json_bytes(e).decode() + "\n" for e in batch))
                    else:
                        rows.extend(batch)
                    if limit is not None and count >= limit:
                        break
        finally:
            if output:
                sink.close()
        async with db.transaction() as conn:
            await admin_actions.record(
                conn, CLI_ACTOR, org_id=org_id,
                action_type="audit_events.export" if fmt != "table" else "audit_events.view",
                target_type="audit_events", target_id=org_id,
                details={"window": window.to_dict(), "filters": filters.to_dict(), "rowCount": count})
        return rows, count

    rows, count = run_db(work)
    if fmt == "table":
        _print_table(rows, window)
    elif output:
        console.print(f"wrote {count} events to {output}")


def _print_table(rows: list[dict], window) -> None:
    w = window.to_dict()
    out.print(f"[bold]audit events[/bold]  {w['start']} → {w['end']} ({w['tz']})  {len(rows):,} events")
    table = Table(header_style="bold")
    for name in ("time", "user", "ok", "tables", "PII", "sql"):
        table.add_column(name, overflow="fold")
    for e in rows:
        sql = " ".join(e["sql"].split())
        if len(sql) > SQL_PREVIEW:
            sql = sql[:SQL_PREVIEW - 1] + "…"
        pii = ", ".join(f"{t}.{c}" for t, cols in e["piiColumns"].items() for c in cols)
        cells = (iso_utc(e["timestamp"]) or "", e["userEmail"] or e["userLabel"] or e["userId"] or "(no user)",
                 "yes" if e["success"] else "no", ", ".join(e["tables"]), pii, sql)
        table.add_row(*(Text(c) for c in cells))  # recorded text is never read as Rich markup
    out.print(table)
