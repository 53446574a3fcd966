"""`flags`: unusual-access flags from the command line (the same service as the API; see docs/flags.md)."""

from __future__ import annotations

import sys
from decimal import Decimal, InvalidOperation

import typer
from rich.table import Table
from rich.text import Text

from ..audit.admin_actions import CLI_ACTOR, Actor
from ..auth import service as auth
from ..errors import BadRequest
from ..flags import service, webhook
from ..flags.rules import number
from ..reports.writers import csv_chunk, json_bytes
from ..reviews.service import reviewer_actor
from .common import fail, out, run_db

flags_app = typer.Typer(help="Unusual-access flags: evaluate the rules, list flags, acknowledge them.",
                        no_args_is_help=True)

ORG = typer.Option(..., "--org", help="Organization slug.")


def register(app: typer.Typer) -> None:
    app.add_typer(flags_app, name="flags")


async def _org_id(db, slug: str) -> str:
    async with db.transaction() as conn:
        return (await auth.get_organization(conn, slug))["id"]


@flags_app.command("evaluate")
def evaluate(org: str = ORG,
             first: str = typer.Option(None, "--from", help="First UTC day, YYYY-MM-DD (default: yesterday)."),
             last: str = typer.Option(None, "--to", help="Last UTC day, YYYY-MM-DD, included (default: today).")
             ) -> None:
    """Evaluate the rules for the organization's days (from the rollups) and store the flags; running it
    again for the same days changes nothing unless the data changed."""
    async def work(db):
        d0, d1 = service.day_range(first, last)
        return await service.evaluate_org(db, await _org_id(db, org), d0, d1)

    r = run_db(work)
    typer.echo(f"evaluated {r['from']} to {r['to']}: {r['flags']} flag(s) hold; {r['inserted']} new, "
               f"{r['updated']} updated, {r['unchanged']} unchanged, {r['withdrawn']} withdrawn")


@flags_app.command("list")
def list_(org: str = ORG,
          open_only: bool = typer.Option(False, "--open", help="Only flags nobody has acknowledged yet; exit "
                                         "code 1 when there is one (for cron alerts)."),
          rule: str = typer.Option(None, "--rule", help="volume, first_access, new_actor, bulk_export or off_hours."),
          user: str = typer.Option(None, "--user", help="Only this user id."),
          first: str = typer.Option(None, "--from", help="First day, YYYY-MM-DD."),
          last: str = typer.Option(None, "--to", help="Last day, YYYY-MM-DD (included)."),
          fmt: str = typer.Option("table", "--format", help="table, json or csv.")) -> None:
    """List the organization's flags, newest day first, with their latest disposition."""
    if fmt not in ("table", "json", "csv"):
        fail(f"invalid --format {fmt!r}: use table, json or csv")

    async def work(db):
        org_id = await _org_id(db, org)
        d0 = service.parse_day("--from", first) if first else None
        d1 = service.parse_day("--to", last) if last else None
        async with db.transaction() as conn:
            return await service.list_flags(conn, org_id, open_only=open_only, rule=rule, user_id=user, first=d0,
                                            last=d1, limit=100_000)

    flags = run_db(work)
    if fmt == "json":
        sys.stdout.write(json_bytes({"flags": flags}).decode() + "\n")
    elif fmt == "csv":
        sys.stdout.write(csv_chunk(service.csv_rows(flags)))
    else:
        table = Table(header_style="bold")
        table.add_column("id", no_wrap=True)
        for name in ("day", "rule", "user", "table", "status", "explanation"):
            table.add_column(name, overflow="fold")
        for f in flags:
            status = "open" if f["open"] else ("retracted" if f["retractedAt"] else
                                               (f["latestDisposition"] or {}).get("disposition", ""))
            table.add_row(*(Text(str(v)) for v in (f["id"], f["day"], f["rule"], f["userId"], f["tableName"],
                                                   status, f["explanation"])))
        out.print(table)
    if open_only and flags:
        typer.echo(f"{len(flags)} open flag(s)", err=True)
        raise typer.Exit(1)


@flags_app.command("dispose")
def dispose(flag: int = typer.Argument(..., help="Flag id."), org: str = ORG,
            disposition: str = typer.Option(..., "--disposition", help="expected, investigating or incident."),
            note: str = typer.Option(..., "--note", help="Why (required)."),
            admin: str = typer.Option(..., "--admin", help="Email of the admin or owner acknowledging the flag "
                                      "(recorded; refused on a flag about themselves).")) -> None:
    """Acknowledge a flag: expected, investigating or incident, with a note (a chained admin record)."""
    async def work(db):
        org_id = await _org_id(db, org)
        async with db.transaction() as conn:
            actor: Actor = await reviewer_actor(conn, org_id, admin)
            return await service.dispose(conn, org_id, flag, disposition, note, actor)

    r = run_db(work)
    typer.echo(f"flag {r['flagId']}: {r['disposition']} by {r['by']['email']}")


@flags_app.command("settings")
def settings(org: str = ORG,
             floor: int = typer.Option(None, "--floor", help="volume: the absolute floor of queries (default 50)."),
             k: str = typer.Option(None, "--k", help="volume: the multiple of the user's median (default 5)."),
             baseline_days: int = typer.Option(None, "--baseline-days",
                                               help="volume: the days of history, whole weeks (default 28)."),
             bulk_rows: int = typer.Option(None, "--bulk-rows",
                                           help="bulk_export: rows of one query above which it fires (default 10000)."),
             tz: str = typer.Option(None, "--tz", help="off_hours: the organization's IANA time zone (default UTC)."),
             work_start: int = typer.Option(None, "--work-start", help="off_hours: first working hour (default 7)."),
             work_end: int = typer.Option(None, "--work-end", help="off_hours: end of working hours (default 19).")
             ) -> None:
    """Show, or set, the organization's thresholds (recorded in the admin action log when set)."""
    async def work(db):
        org_id = await _org_id(db, org)
        async with db.transaction() as conn:
            if all(v is None for v in (floor, k, baseline_days, bulk_rows, tz, work_start, work_end)):
                return await service.thresholds(conn, org_id)
            try:
                multiple = None if k is None else Decimal(k)
            except InvalidOperation:
                raise BadRequest(f"invalid --k {k!r}: a number such as 5 or 3.5", code="invalid_threshold") from None
            return await service.set_thresholds(conn, org_id, CLI_ACTOR, floor=floor, k=multiple,
                                                baseline_days=baseline_days, bulk_rows=bulk_rows, tz=tz,
                                                work_start=work_start, work_end=work_end)

    t = run_db(work)
    typer.echo(f"volume floor {t.volume_floor}, k {number(t.volume_k)}, baseline {t.baseline_days} days; "
               f"bulk export above {t.bulk_rows} rows; working hours {t.work_start}-{t.work_end} {t.tz}")


@flags_app.command("webhook")
def webhook_(org: str = ORG,
             url: str = typer.Option(..., "--url", help="The receiver: an http:// or https:// URL."),
             secret: str = typer.Option(None, "--secret", help="The HMAC-SHA256 key (at least 32 characters); "
                                        "default: a new random one, printed once.")) -> None:
    """Send each new flag to a webhook, signed with HMAC-SHA256 (see docs/flags.md for the signature)."""
    async def work(db):
        org_id = await _org_id(db, org)
        async with db.transaction() as conn:
            return await webhook.set_webhook(conn, org_id, url, secret, CLI_ACTOR)

    key = run_db(work)
    typer.echo(f"webhook set; new flags are sent to {url.strip()}")
    if not secret:
        typer.echo(f"secret (shown once): {key}")


@flags_app.command("deliver")
def deliver(org: str = typer.Option(None, "--org", help="Only this organization (default: all).")) -> None:
    """Send the due webhook deliveries now (what `serve` does after each hourly pass)."""
    async def work(db):
        org_id = await _org_id(db, org) if org else None
        return await webhook.deliver_due(db, org_id=org_id)

    r = run_db(work)
    typer.echo(f"{r['delivered']} delivered, {r['retrying']} to retry, {r['failed']} failed")
