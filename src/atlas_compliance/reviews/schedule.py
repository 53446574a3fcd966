"""Review cadence: an organization's schedules, and opening the campaigns they make due.

A schedule (`review_schedule`) cuts time into periods of 1, 3, 6 or 12 months from its anchor day. A
period is due once it has ended (its last day is past, in the schedule's time zone). The check is
table-driven: it reads the schedules and the campaigns already opened, opens each missing one, and a
unique key on (org, schedule, period start) makes a second opening of the same period impossible, whoever
runs the check and however often (`serve` at start and every hour, or `reviews open-due` from cron).
Nothing is held in memory between checks, so a restart loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from psycopg import AsyncConnection
from psycopg.errors import UniqueViolation

from ..audit import admin_actions
from ..audit.admin_actions import Actor
from ..db.pool import Database
from ..errors import AtlasError, BadRequest, Conflict
from ..reports.window import canonical_tz, parse_filters
from . import service

log = logging.getLogger(__name__)
EVERY = (1, 3, 6, 12)
MAX_OPEN_PER_CHECK = 24  # periods one check opens for one schedule (an anchor far in the past catches up)
CHECK_INTERVAL = 3600.0
SCHEDULER = Actor.system("review-scheduler", request_id="review-scheduler")


def _add_months(day: date, months: int) -> date:
    """``day`` moved by whole months (the 31st becomes the month's last day when it has fewer)."""
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    next_year, next_month0 = divmod(year * 12 + month0 + 1, 12)
    last = (date(next_year, next_month0 + 1, 1) - timedelta(days=1)).day
    return date(year, month0 + 1, min(day.day, last))


def periods_ended(anchor: date, every_months: int, today: date) -> list[tuple[date, date]]:
    """The periods [start, end] (end inclusive) from ``anchor`` that ended before ``today``.

    >>> periods_ended(date(2026, 1, 1), 3, date(2026, 7, 1))
    [(datetime.date(2026, 1, 1), datetime.date(2026, 3, 31)), (datetime.date(2026, 4, 1), datetime.date(2026, 6, 30))]
    """
    found: list[tuple[date, date]] = []
    k = 0
    while True:
        start = _add_months(anchor, k * every_months)
        end = _add_months(anchor, (k + 1) * every_months) - timedelta(days=1)
        if end >= today:
            return found
        found.append((start, end))
        k += 1


async def add_schedule(conn: AsyncConnection, org_id: str, *, name: str, every_months: int, anchor: str,
                       tz: str = "UTC", role: str | None = None, table: str | None = None, due_days: int = 30,
                       actor: Actor) -> dict[str, Any]:
    if every_months not in EVERY:
        raise BadRequest(f"invalid --every {every_months}: use 1, 3, 6 or 12 (months)", code="invalid_schedule")
    if not 1 <= due_days <= 366:
        raise BadRequest(f"invalid --due-days {due_days}: use 1 to 366", code="invalid_schedule")
    text = (name or "").strip()
    if not text or len(text) > 100:
        raise BadRequest("a schedule needs a name of 1 to 100 characters", code="invalid_schedule")
    start = service._day("--anchor", anchor)
    zone = canonical_tz(tz)
    scope = parse_filters(None, role, table).to_dict()
    try:
        cur = await conn.execute(
            """INSERT INTO review_schedule (org_id, name, every_months, anchor, tz, scope, due_days, created_by)
               VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s) RETURNING *""",
            (org_id, text, every_months, start, zone, orjson.dumps(scope).decode(), due_days, actor.email))
    except UniqueViolation:
        raise Conflict(f"the organization already has a schedule named {text!r}", code="schedule_exists") from None
    row = await cur.fetchone()
    await admin_actions.record(conn, actor, org_id=org_id, action_type="review.schedule_add",
                               target_type="review_schedule", target_id=row["id"],
                               details={"name": text, "everyMonths": every_months, "anchor": str(start), "tz": zone,
                                        "scope": scope, "dueDays": due_days})
    return schedule_out(row)


def schedule_out(r: dict[str, Any]) -> dict[str, Any]:
    return {"id": r["id"], "name": r["name"], "everyMonths": r["every_months"], "anchor": str(r["anchor"]),
            "tz": r["tz"], "scope": r["scope"], "dueDays": r["due_days"]}


async def schedules(conn: AsyncConnection, org_id: str | None = None) -> list[dict[str, Any]]:
    cur = await conn.execute("SELECT * FROM review_schedule WHERE %s::text IS NULL OR org_id = %s "
                             "ORDER BY org_id, name", (org_id, org_id))
    return await cur.fetchall()


async def _opened(conn: AsyncConnection, schedule_id: str) -> set[date]:
    cur = await conn.execute("SELECT period_start FROM review_campaign WHERE schedule_id = %s", (schedule_id,))
    return {r["period_start"] for r in await cur.fetchall()}


async def open_due(db: Database, *, org_id: str | None = None, now: datetime | None = None,
                   failures: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Open every campaign a schedule made due and nobody opened yet; the campaigns opened. A schedule
    whose campaign cannot be opened (e.g. its scope is too large) is logged, added to ``failures`` and
    skipped: the other schedules are still served."""
    async with db.transaction() as conn:
        rows = await schedules(conn, org_id)
    opened = []
    for s in rows:
        try:
            opened += await _open_for(db, s, now)
        except AtlasError as exc:
            log.error("opening the due access review of schedule %s (%s) failed: %s", s["id"], s["name"],
                      exc.message, extra={"event": "review_schedule_failed"})
            if failures is not None:
                failures.append({"scheduleId": s["id"], "name": s["name"], "orgId": s["org_id"],
                                 "error": exc.message})
    return opened


async def _open_for(db: Database, s: dict[str, Any], now: datetime | None) -> list[dict[str, Any]]:
    today = (now.astimezone(ZoneInfo(s["tz"])) if now else datetime.now(ZoneInfo(s["tz"]))).date()
    async with db.transaction() as conn:
        done = await _opened(conn, s["id"])
    missing = [p for p in periods_ended(s["anchor"], s["every_months"], today) if p[0] not in done]
    opened = []
    for start, end in missing[-MAX_OPEN_PER_CHECK:]:
        scope = s["scope"] or {}
        ask = service.OpenRequest(
            org_id=s["org_id"], start=str(start), end=str(end), tz=s["tz"], user_id=scope.get("userId"),
            role=scope.get("role"), table=scope.get("table"), title=f"{s['name']}: {start} to {end}",
            due_date=str(end + timedelta(days=s["due_days"])), schedule_id=s["id"])
        document = await service.open_campaign(db, ask, SCHEDULER)
        if document is not None:  # None: another check opened it meanwhile
            opened.append(document["campaign"])
    return opened


async def run_periodically(db: Database, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                           interval: float = CHECK_INTERVAL) -> None:
    """`serve`'s background task: open due campaigns now and every ``interval`` seconds. A failure is
    logged and retried at the next check; it never ends the task nor reaches a request."""
    while True:
        try:
            opened = await open_due(db)
            if opened:
                log.info("opened %d due access review(s)", len(opened))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("opening due access reviews failed: %s: %s", type(exc).__name__, exc,
                      extra={"event": "review_schedule_failed"})
        await sleep(interval)
