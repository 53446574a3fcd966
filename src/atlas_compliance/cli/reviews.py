"""`reviews`: access reviews from the command line (the same service as the API; see docs/reviews.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from ..audit import signing
from ..audit.admin_actions import CLI_ACTOR
from ..auth import service as auth
from ..config import get_settings
from ..reports.writers import json_bytes
from ..reviews import schedule as review_schedule
from ..reviews import service
from .common import console, fail, out, run_db

reviews_app = typer.Typer(help="Access reviews: open a campaign, decide each item, sign off, export.",
                          no_args_is_help=True)

ORG = typer.Option(..., "--org", help="Organization slug.")
REVIEWER = typer.Option(None, "--reviewer", help="Email of the admin or owner deciding (required): recorded "
                        "as the decider, and refused on items about themselves.")


def register(app: typer.Typer) -> None:
    app.add_typer(reviews_app, name="reviews")


async def _org_id(db, slug: str) -> str:
    async with db.transaction() as conn:
        return (await auth.get_organization(conn, slug))["id"]


@reviews_app.command("open")
def open_(org: str = ORG,
          start: str = typer.Option(..., "--start", help="First day of the period, YYYY-MM-DD."),
          end: str = typer.Option(..., "--end", help="Last day of the period, YYYY-MM-DD (included)."),
          tz: str = typer.Option("UTC", "--tz", help="IANA time zone of the period's days."),
          user: str = typer.Option(None, "--user", help="Scope: only this user id."),
          role: str = typer.Option(None, "--role", help="Scope: only users with this role at the period's end."),
          table: str = typer.Option(None, "--table", help="Scope: only accesses of this table."),
          title: str = typer.Option(None, "--title", help="A title (default: 'Access review START to END')."),
          due: str = typer.Option(None, "--due", help="Due date, YYYY-MM-DD (default: 30 days after --end).")
          ) -> None:
    """Open an access review: the period's users and (table, user) accesses are frozen into it."""
    async def work(db):
        ask = service.OpenRequest(org_id=await _org_id(db, org), start=start, end=end, tz=tz, user_id=user,
                                  role=role, table=table, title=title, due_date=due)
        return await service.open_campaign(db, ask, CLI_ACTOR)

    document = run_db(work)
    c = document["campaign"]
    typer.echo(f"opened access review {c['id']}: {c['progress']['userItems']} users, "
               f"{c['progress']['accessItems']} accesses, due {c['dueDate']}")


@reviews_app.command("list")
def list_(org: str = ORG,
          overdue: bool = typer.Option(False, "--overdue", help="Only open campaigns past their due date; exit "
                                       "code 1 when there is one (for cron alerts)."),
          fmt: str = typer.Option("table", "--format", help="table or json.")) -> None:
    """List the organization's access reviews, newest first, with progress."""
    if fmt not in ("table", "json"):
        fail(f"invalid --format {fmt!r}: use table or json")

    async def work(db):
        org_id = await _org_id(db, org)
        async with db.transaction() as conn:
            return await service.list_campaigns(conn, org_id, overdue_only=overdue)

    campaigns = run_db(work)
    if fmt == "json":
        sys.stdout.write(json_bytes({"campaigns": campaigns}).decode() + "\n")
    else:
        table = Table(header_style="bold")
        table.add_column("id", no_wrap=True)  # copied into the other commands: never folded
        for name in ("title", "period", "status", "due", "users decided", "accesses decided"):
            table.add_column(name, overflow="fold")
        for c in campaigns:
            p = c["progress"]
            status = c["status"] + (" (OVERDUE)" if c["overdue"] else "")
            table.add_row(*(Text(str(v)) for v in (
                c["id"], c["title"], f"{c['periodStart']} → {c['periodEnd']}", status, c["dueDate"],
                f"{p['userDecided']}/{p['userItems']}", f"{p['accessDecided']}/{p['accessItems']}")))
        out.print(table)
    if overdue and campaigns:
        typer.echo(f"{len(campaigns)} access review(s) overdue", err=True)
        raise typer.Exit(1)


@reviews_app.command("show")
def show(campaign: str = typer.Argument(..., help="Campaign id."), org: str = ORG,
         fmt: str = typer.Option("table", "--format", help="table or json.")) -> None:
    """Show a campaign and its items with their current decisions."""
    if fmt not in ("table", "json"):
        fail(f"invalid --format {fmt!r}: use table or json")

    async def work(db):
        org_id = await _org_id(db, org)
        async with db.transaction() as conn:
            return await service.get(conn, org_id, campaign)

    document = run_db(work)
    if fmt == "json":
        sys.stdout.write(json_bytes(document).decode() + "\n")
        return
    c = document["campaign"]
    out.print(f"[bold]{Text(c['title']).markup}[/bold]  {c['periodStart']} → {c['periodEnd']} ({c['tz']})  "
              f"{c['status']}{' OVERDUE' if c['overdue'] else ''}, due {c['dueDate']}", highlight=False)
    table = Table(header_style="bold")
    for name in ("item", "kind", "user", "role", "table", "queries", "PII", "decision", "note", "by"):
        table.add_column(name, overflow="fold")
    for i in document["items"]:
        f, d = i["figures"], i["decision"] or {}
        queries = f.get("queryCount", f.get("totalQueries"))
        table.add_row(*(Text("" if v is None else str(v)) for v in (
            i["item"], i["kind"], i["userEmail"] or i["userId"] or "(no user)", i["userRole"], i["tableName"],
            queries, ", ".join(f.get("piiColumns") or []), d.get("decision"), d.get("note"),
            (d.get("decidedBy") or {}).get("email"))))
    out.print(table)
    if c["signOff"]:
        s = c["signOff"]
        out.print(Text(f"signed off by {s['by']['email']} at {s['at']}: {s['statement']}"))


@reviews_app.command("decide")
def decide(campaign: str = typer.Argument(..., help="Campaign id."), org: str = ORG,
           items: list[int] = typer.Option(..., "--item", help="Item number (repeat for several)."),
           decision: str = typer.Option(..., "--decision", help="keep, revoke or flag."),
           note: str = typer.Option(None, "--note", help="Why (required for revoke and flag)."),
           reviewer: str = REVIEWER) -> None:
    """Decide items of an open campaign: keep, revoke or flag (a note is required for revoke and flag)."""
    async def work(db):
        org_id = await _org_id(db, org)
        async with db.transaction() as conn:
            actor = await service.reviewer_actor(conn, org_id, reviewer)
            return await service.decide(conn, org_id, campaign, items, decision, note, actor)

    done = run_db(work)
    typer.echo(f"{done['decision']}: item {', '.join(map(str, done['items']))}")


@reviews_app.command("signoff")
def signoff(campaign: str = typer.Argument(..., help="Campaign id."), org: str = ORG,
            statement: str = typer.Option(..., "--statement", help="The reviewer's statement."),
            reviewer: str = REVIEWER) -> None:
    """Sign a campaign off once every user item is decided; it is read-only afterwards."""
    async def work(db):
        org_id = await _org_id(db, org)
        key = service.installation_key(get_settings())
        async with db.transaction() as conn:
            actor = await service.reviewer_actor(conn, org_id, reviewer)
            return await service.sign_off(conn, org_id, campaign, statement, actor, key)

    s = run_db(work)["campaign"]["signOff"]
    signed = f", signed with key {s['signatureKeyId']}" if s["signature"] else ", not signed (no installation key)"
    typer.echo(f"signed off {campaign} at {s['at']} (sha256 {s['contentSha256']}{signed})")


@reviews_app.command("followup")
def followup(campaign: str = typer.Argument(..., help="Campaign id."), org: str = ORG,
             item: int = typer.Option(..., "--item", help="A revoked item's number."),
             note: str = typer.Option(..., "--note", help="What was done (e.g. the ticket)."),
             reviewer: str = REVIEWER) -> None:
    """Mark a revocation of a signed-off campaign done (the access was removed)."""
    async def work(db):
        org_id = await _org_id(db, org)
        async with db.transaction() as conn:
            actor = await service.reviewer_actor(conn, org_id, reviewer)
            return await service.followup_done(conn, org_id, campaign, item, note, actor)

    run_db(work)
    typer.echo(f"follow-up of item {item} marked done")


@reviews_app.command("verify")
def verify(campaign: str = typer.Argument(..., help="Campaign id."), org: str = ORG,
           public_key: Path = typer.Option(None, "--public-key", help="A public key kept apart from this "
                                           "installation (PEM); default: the installation's key.")) -> None:
    """Check a signed-off campaign: its digest recomputed from the stored population and decisions, and the
    sign-off's signature. Exit code 1 when either does not match."""
    async def work(db):
        org_id = await _org_id(db, org)
        key = signing.load_public_key(public_key) if public_key else (
            k.verifying() if (k := service.installation_key(get_settings())) else None)
        async with db.transaction() as conn:
            return await service.verify(conn, org_id, campaign, key)

    result = run_db(work)
    typer.echo(f"digest: {'matches' if result['digestMatches'] else 'DIFFERS'} "
               f"(signed {result['contentSha256']}, now {result['recomputedSha256']})")
    if not result["signed"]:
        typer.echo("signature: none (no installation key at sign-off)")
    elif result["signatureValid"] is None:
        typer.echo("signature: not checked (no key)")
    else:
        typer.echo(f"signature: {'valid' if result['signatureValid'] else 'INVALID'} (key {result['signatureKeyId']})")
    if not result["ok"]:
        raise typer.Exit(1)


@reviews_app.command("export")
def export(campaign: str = typer.Argument(..., help="Campaign id."), org: str = ORG,
           fmt: str = typer.Option("json", "--format", help="json or csv."),
           followups: bool = typer.Option(False, "--followups", help="Only revoked items (the follow-up list)."),
           output: Path = typer.Option(None, "-o", "--output", help="Write to this file.")) -> None:
    """Export a campaign as evidence: population, decisions, reviewers and sign-off."""
    if fmt not in ("json", "csv"):
        fail(f"invalid --format {fmt!r}: use json or csv")

    async def work(db):
        org_id = await _org_id(db, org)
        async with db.transaction() as conn:
            document = await service.export(conn, org_id, campaign, followups_only=followups)
            await service.record_export(conn, org_id, campaign, CLI_ACTOR, fmt, len(document["items"]))
        return document

    document = run_db(work)
    text = service.csv_text(document) if fmt == "csv" else json_bytes(document).decode() + "\n"
    if output:
        with open(output, "w", encoding="utf-8", newline="") as sink:
            sink.write(text)
        console.print(f"wrote {len(document['items'])} items to {output}", highlight=False)
    else:
        sys.stdout.write(text)


schedule_app = typer.Typer(help="Review cadence: schedules that open campaigns when a period ends.",
                           no_args_is_help=True)
reviews_app.add_typer(schedule_app, name="schedule")


@schedule_app.command("add")
def schedule_add(org: str = ORG, name: str = typer.Option(..., "--name", help="e.g. 'privileged users'."),
                 every: int = typer.Option(..., "--every", help="Period length in months: 1, 3, 6 or 12."),
                 anchor: str = typer.Option(..., "--anchor", help="First day of the first period, YYYY-MM-DD."),
                 tz: str = typer.Option("UTC", "--tz", help="IANA time zone of the periods' days."),
                 role: str = typer.Option(None, "--role", help="Scope: only users with this role (e.g. admin)."),
                 table: str = typer.Option(None, "--table", help="Scope: only accesses of this table."),
                 due_days: int = typer.Option(30, "--due-days", help="Days after a period's end it is due by.")
                 ) -> None:
    """Add a schedule: each period that ends gets a campaign, opened by `serve` (hourly) or `reviews open-due`."""
    async def work(db):
        org_id = await _org_id(db, org)
        async with db.transaction() as conn:
            return await review_schedule.add_schedule(conn, org_id, name=name, every_months=every, anchor=anchor,
                                                      tz=tz, role=role, table=table, due_days=due_days,
                                                      actor=CLI_ACTOR)

    s = run_db(work)
    typer.echo(f"added schedule {s['name']!r} ({s['id']}): every {s['everyMonths']} month(s) from {s['anchor']}")


@schedule_app.command("list")
def schedule_list(org: str = ORG) -> None:
    """The organization's review schedules."""
    async def work(db):
        org_id = await _org_id(db, org)
        async with db.transaction() as conn:
            return [review_schedule.schedule_out(r) for r in await review_schedule.schedules(conn, org_id)]

    for s in run_db(work):
        scope = ", ".join(f"{k}={v}" for k, v in s["scope"].items() if v) or "everyone"
        typer.echo(f"{s['id']}\t{s['name']}\tevery {s['everyMonths']} month(s) from {s['anchor']} ({s['tz']})"
                   f"\t{scope}\tdue {s['dueDays']} days after")


@reviews_app.command("settings")
def settings(org: str = ORG,
             pii_second_reviewer: bool = typer.Option(None, "--pii-second-reviewer/--no-pii-second-reviewer",
                                                      help="Require two agreeing reviewers on PII accesses in "
                                                      "campaigns opened from now on.")) -> None:
    """Show (or, with an option, set) the organization's review rules."""
    async def work(db):
        org_id = await _org_id(db, org)
        async with db.transaction() as conn:
            if pii_second_reviewer is None:
                return await service.get_setting(conn, org_id)
            return await service.set_setting(conn, org_id, pii_second_reviewer=pii_second_reviewer,
                                             actor=CLI_ACTOR)

    s = run_db(work)
    typer.echo(f"second reviewer on PII accesses: {'required' if s['piiSecondReviewer'] else 'not required'}")


@reviews_app.command("open-due")
def open_due(org: str = typer.Option(None, "--org", help="Only this organization (default: all).")) -> None:
    """Open the campaigns that schedules made due (what `serve` does hourly); never opens one twice."""
    failures: list[dict] = []

    async def work(db):
        org_id = await _org_id(db, org) if org else None
        return await review_schedule.open_due(db, org_id=org_id, failures=failures)

    opened = run_db(work)
    for c in opened:
        typer.echo(f"opened access review {c['id']}: {c['title']}")
    typer.echo(f"{len(opened)} due access review(s) opened")
    for f in failures:
        typer.echo(f"error: schedule {f['name']!r} ({f['scheduleId']}): {f['error']}", err=True)
    if failures:
        raise typer.Exit(1)
