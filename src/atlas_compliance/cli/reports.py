"""`report data-access` and `report user-activity`: the same service and results as the API."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from ..auth import service as auth
from ..reports import service
from ..reports.window import iso_utc
from ..reports.writers import CSV_FORMATS
from .common import console, fail, out, run_db

report_app = typer.Typer(help="Compliance reports (Data Access, User Activity).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")


def _options():
    return dict(
        org=typer.Option(..., "--org", help="Organization slug."),
        start=typer.Option(..., "--start", help="YYYY-MM-DD or ISO 8601 timestamp."),
        end=typer.Option(..., "--end", help="YYYY-MM-DD (whole day included) or ISO 8601 timestamp."),
    )


def _run(report: service.ReportType, org: str, start: str, end: str, user: str | None, role: str | None,
         table: str | None, tz: str, fmt: str, output: Path | None) -> None:
    if fmt not in ("table", "json", "csv"):
        fail(f"invalid --format {fmt!r}: use table, json or csv")
    try:  # the request's rules first, so a bad option is named before the database is opened
        service.ReportRequest.parse(report, "", start=start, end=end, tz=tz, user_id=user, role=role, table=table)
    except auth.BadRequest as exc:
        fail(exc.message.replace("startDate", "--start").replace("endDate", "--end"))

    async def work(db):
        async with db.transaction() as conn:
            org_row = await auth.get_organization(conn, org)
        req = service.ReportRequest.parse(report, org_row["id"], start=start, end=end, tz=tz, user_id=user,
                                          role=role, table=table)
        sink = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout  # noqa: SIM115
        try:
            document = None
            counter = [0]
            if fmt == "csv":
                async for chunk in service.csv_stream(db, req, counter):
                    sink.write(chunk)
            elif fmt == "json":  # every row, streamed like the API's JSON export
                async for part in service.json_stream(db, req, counter):
                    sink.write(part.decode("utf-8"))
                sink.write("\n")
            else:
                document = await service.generate(db, req, limit=service.ROW_CAPS[report], offset=0)
                if document["truncated"]:
                    # The table lists the full result too.
                    document["rows"] = [r async for chunk in service.iter_rows(db, req) for r in chunk]
                    document["truncated"] = False
                    document["limit"] = len(document["rows"])
                counter[0] = len(document["rows"])
            rows = counter[0]
        finally:
            if output:
                sink.close()
        await service.record_report_action(db, None, req, fmt=fmt, row_count=rows, request_id="cli", ip=None,
                                           actor="system:cli")
        return document, rows

    document, rows = run_db(work)
    if fmt == "table":
        _print_table(report, document)
    elif output:
        console.print(f"wrote {rows} rows to {output}")


def _print_table(report: str, document: dict) -> None:
    summary = "   ".join(f"{k}: {v:,}" for k, v in document["summary"].items())
    w = document["window"]
    out.print(f"[bold]{report} report[/bold]  {w['start']} → {w['end']} ({w['tz']})  {summary}")
    header, _ = CSV_FORMATS[report]
    table = Table(show_lines=False, header_style="bold")
    if report == "data-access":
        cols = ["table", "user", "role", "queries", "columns", "PII", "first access", "last access"]
        for c in cols:
            table.add_column(c, overflow="fold", justify="right" if c == "queries" else "left")
        for r in document["rows"]:
            pii = ", ".join(r["piiColumns"]) if r["piiColumns"] else ("yes" if r["hasPII"] else "")
            table.add_row(r["tableName"], r["userEmail"] or r["userLabel"] or r["userId"] or "(no user)", r["userRole"] or "—",
                          f"{r['queryCount']:,}", ", ".join(r["uniqueColumns"]), pii, iso_utc(r["firstAccess"]),
                          iso_utc(r["lastAccess"]))
    else:
        for c in ["user", "role", "queries", "tables", "last active", "last login"]:
            table.add_column(c, overflow="fold", justify="right" if c == "queries" else "left")
        for r in document["rows"]:
            table.add_row(r["userEmail"] or r["userLabel"] or r["userId"] or "(no user)", r["role"] or "—", f"{r['totalQueries']:,}",
                          ", ".join(r["tablesAccessed"]), iso_utc(r["lastActiveAt"]) or "—",
                          iso_utc(r["lastLoginAt"]) or "—")
    out.print(table)
    del header


@report_app.command("data-access")
def data_access(org: str = _options()["org"], start: str = _options()["start"], end: str = _options()["end"],
                user: str = typer.Option(None, "--user", help="Only this user id."),
                role: str = typer.Option(None, "--role", help="owner, admin or member."),
                table: str = typer.Option(None, "--table", help="Only accesses of this table (`patients` also finds `prod.public.patients`)."),
                tz: str = typer.Option("UTC", "--tz", help="IANA time zone for date-only values, any case (europe/paris); not localtime, posixrules or Factory."),
                fmt: str = typer.Option("table", "--format", help="table, json or csv."),
                output: Path = typer.Option(None, "-o", "--output", help="Write to this file.")) -> None:
    """Who queried which tables, when, and how often."""
    _run("data-access", org, start, end, user, role, table, tz, fmt, output)


@report_app.command("user-activity")
def user_activity(org: str = _options()["org"], start: str = _options()["start"], end: str = _options()["end"],
                  user: str = typer.Option(None, "--user", help="Only this user id."),
                  role: str = typer.Option(None, "--role", help="owner, admin or member."),
                  table: str = typer.Option(None, "--table", help="Only queries touching this table (`patients` also finds `prod.public.patients`)."),
                  tz: str = typer.Option("UTC", "--tz", help="IANA time zone for date-only values, any case (europe/paris); not localtime, posixrules or Factory."),
                  fmt: str = typer.Option("table", "--format", help="table, json or csv."),
                  output: Path = typer.Option(None, "-o", "--output", help="Write to this file.")) -> None:
    """What each user has been doing: queries, tables, last activity and login."""
    _run("user-activity", org, start, end, user, role, table, tz, fmt, output)
