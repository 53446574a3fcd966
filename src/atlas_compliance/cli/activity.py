"""`audit failed-access` and `audit privileged-actions`: the Failed access and Privileged actions views
from the command line (the same functions as the API's, reports/activity.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from ..audit import admin_actions
from ..audit.admin_actions import CLI_ACTOR
from ..auth import service as auth
from ..errors import AtlasError
from ..reports import activity
from ..reports.service import begin_snapshot
from ..reports.window import ReportWindow, iso_utc, parse_window
from ..reports.writers import (
    FAILED_ACCESS_CSV_HEADER,
    NO_TABLE,
    PRIVILEGED_ACTIONS_CSV_HEADER,
    csv_chunk,
    failed_access_csv_rows,
    json_bytes,
    privileged_action_csv_row,
)
from .audit import audit_app
from .common import console, fail, out, run_db

DETAILS_PREVIEW = 100  # characters of an action's details shown per row of the table output
FORMATS = ("table", "json", "csv")


def register(app: typer.Typer) -> None:
    audit_app.command("failed-access")(failed_access)
    audit_app.command("privileged-actions")(privileged_actions)


def _window(start: str, end: str, tz: str) -> ReportWindow:
    try:
        return parse_window(start, end, tz)
    except AtlasError as exc:
        fail(exc.message.replace("startDate", "--from").replace("endDate", "--to"))
        raise  # unreachable: fail() exits


def _open(output: Path | None):
    return open(output, "w", encoding="utf-8", newline="") if output else sys.stdout  # noqa: SIM115


async def _record(db, org_id: str, *, action: str, target_type: str, details: dict[str, Any]) -> None:
    async with db.transaction() as conn:
        await admin_actions.record(conn, CLI_ACTOR, org_id=org_id, action_type=action, target_type=target_type,
                                   target_id=org_id, details=details)


def failed_access(org: str = typer.Option(..., "--org", help="Organization slug."),
                  start: str = typer.Option(..., "--from", "--start", help="YYYY-MM-DD or ISO 8601 timestamp."),
                  end: str = typer.Option(..., "--to", "--end",
                                          help="YYYY-MM-DD (whole day included) or ISO 8601 timestamp."),
                  tz: str = typer.Option("UTC", "--tz", help="IANA time zone for date-only values."),
                  fmt: str = typer.Option("table", "--format", help="table, json or csv."),
                  output: Path = typer.Option(None, "-o", "--output", help="Write to this file.")) -> None:
    """Failed and refused queries per table and user, by error class, and failed logins per user and address.

    Error classes: permission_denied, syntax (syntax / parse, unknown names), timeout (timeout / cancelled),
    other. Failed logins are those of emails that were members of the organization at the time. Purged rows
    are not counted. Each use is recorded in the admin action log.
    """
    if fmt not in FORMATS:
        fail(f"invalid --format {fmt!r}: use table, json or csv")
    window = _window(start, end, tz)

    async def work(db):
        async with db.transaction() as conn:
            org_id = (await auth.get_organization(conn, org))["id"]
        async with db.transaction() as conn:
            await begin_snapshot(conn)
            view = await activity.failed_access(conn, org_id, window)
        await _record(db, org_id, action="failed_access.view" if fmt == "table" else "failed_access.export",
                      target_type="failed_access",
                      details={"window": window.to_dict(), "failedQueries": view["summary"]["failedQueries"],
                               "failedLogins": view["summary"]["failedLogins"],
                               "rowCount": len(view["queries"]) + len(view["logins"])})
        return view

    view = run_db(work)
    if fmt == "table":
        _print_failed(view)
        return
    sink = _open(output)
    try:
        if fmt == "csv":
            sink.write(csv_chunk([FAILED_ACCESS_CSV_HEADER]))
            sink.write(csv_chunk(failed_access_csv_rows(view)))
        else:
            sink.write(json_bytes(view).decode() + "\n")
    finally:
        if output:
            sink.close()
    if output:
        console.print(f"wrote {len(view['queries'])} query rows and {len(view['logins'])} login rows to {output}")


def _print_failed(view: dict[str, Any]) -> None:
    w, s = view["window"], view["summary"]
    by_class = ", ".join(f"{c['label'].lower()} {s['byClass'][c['key']]:,}" for c in view["errorClasses"])
    out.print(Text(f"failed access  {w['start']} → {w['end']} ({w['tz']})  {s['failedQueries']:,} failed queries "
                   f"({by_class}); {s['failedLogins']:,} failed logins"))
    table = Table(title="Failed queries per table and user", header_style="bold")
    for name in ("table", "user", "failures", *(c["key"] for c in view["errorClasses"]), "last failure"):
        table.add_column(name, overflow="fold")
    for q in view["queries"]:
        user = q["userEmail"] or q["userLabel"] or q["userId"] or "(no user)"
        cells = (q["tableName"] or NO_TABLE, user, str(q["failures"]),
                 *(str(q["byClass"][c["key"]]) for c in view["errorClasses"]), iso_utc(q["lastFailure"]) or "")
        table.add_row(*(Text(c) for c in cells))  # recorded text is never read as Rich markup
    out.print(table)
    logins = Table(title="Failed logins per user and address", header_style="bold")
    for name in ("email", "address", "failures", "first", "last"):
        logins.add_column(name, overflow="fold")
    for r in view["logins"]:
        cells = (r["email"], r["ipAddress"] or "(unknown)", str(r["failures"]), iso_utc(r["firstFailure"]) or "",
                 iso_utc(r["lastFailure"]) or "")
        logins.add_row(*(Text(c) for c in cells))
    out.print(logins)


def privileged_actions(org: str = typer.Option(..., "--org", help="Organization slug."),
                       start: str = typer.Option(..., "--from", "--start", help="YYYY-MM-DD or ISO 8601 timestamp."),
                       end: str = typer.Option(..., "--to", "--end",
                                               help="YYYY-MM-DD (whole day included) or ISO 8601 timestamp."),
                       tz: str = typer.Option("UTC", "--tz", help="IANA time zone for date-only values."),
                       action_type: str = typer.Option(None, "--action-type",
                                                       help="Only this action type, or a prefix ending in * "
                                                            "(e.g. 'member.*')."),
                       actor: str = typer.Option(None, "--actor", help="Only actions by this actor id or email."),
                       limit: int = typer.Option(None, "--limit", help="At most this many (newest first); "
                                                 "default: all."),
                       fmt: str = typer.Option("table", "--format", help="table, json (one action per line) or csv."),
                       output: Path = typer.Option(None, "-o", "--output", help="Write to this file.")) -> None:
    """The organization's admin action log: who generated or exported reports, changed classifications,
    retention, members, tokens or role mappings, with the recorded details (old and new values), newest first.

    Each use is itself recorded in the admin action log.
    """
    if fmt not in FORMATS:
        fail(f"invalid --format {fmt!r}: use table, json or csv")
    if limit is not None and limit < 1:
        fail(f"invalid --limit {limit}: use 1 or more")
    window = _window(start, end, tz)
    try:
        filters = activity.parse_action_filters(action_type, actor)
    except AtlasError as exc:
        fail(exc.message.replace("actionType", "--action-type"))

    async def work(db):
        async with db.transaction() as conn:
            org_id = (await auth.get_organization(conn, org))["id"]
        rows: list[dict] = []
        count = 0
        sink = _open(output) if fmt != "table" else None
        try:
            if sink is not None and fmt == "csv":
                sink.write(csv_chunk([PRIVILEGED_ACTIONS_CSV_HEADER]))
            async with db.transaction() as conn:
                async for batch in activity.stream_privileged_actions(conn, org_id, window, filters):
                    if limit is not None:
                        batch = batch[:limit - count]
                    count += len(batch)
                    if sink is not None and fmt == "csv":
                        sink.write(csv_chunk(privileged_action_csv_row(a) for a in batch))
                    elif sink is not None:
                        sink.write("".join(json_bytes(a).decode() + "\n" for a in batch))
                    else:
                        rows.extend(batch)
                    if limit is not None and count >= limit:
                        break
        finally:
            if output and sink is not None:
                sink.close()
        await _record(db, org_id, action="privileged_actions.view" if fmt == "table" else "privileged_actions.export",
                      target_type="admin_actions",
                      details={"window": window.to_dict(), "filters": filters.to_dict(), "rowCount": count})
        return rows, count

    rows, count = run_db(work)
    if fmt == "table":
        _print_actions(rows, window)
    elif output:
        console.print(f"wrote {count} actions to {output}")


def _print_actions(rows: list[dict], window: ReportWindow) -> None:
    w = window.to_dict()
    out.print(Text(f"privileged actions  {w['start']} → {w['end']} ({w['tz']})  {len(rows):,} actions"))
    table = Table(header_style="bold")
    for name in ("time", "actor", "action", "target", "status", "address", "details"):
        table.add_column(name, overflow="fold")
    for a in rows:
        details = json_bytes(a["details"]).decode() if a["details"] is not None else ""
        if len(details) > DETAILS_PREVIEW:
            details = details[:DETAILS_PREVIEW - 1] + "…"
        cells = (iso_utc(a["timestamp"]) or "", a["actorEmail"] or a["actorId"] or "", a["actionType"],
                 f"{a['targetType']}:{a['targetId']}", a["status"], a["ipAddress"] or "", details)
        table.add_row(*(Text(c) for c in cells))
    out.print(table)
