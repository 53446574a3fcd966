"""Evaluating, listing and acknowledging unusual-access flags (the API, the CLI and `serve` call these)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection

from ..audit import admin_actions
from ..audit.admin_actions import Actor
from ..db.pool import Database
from ..errors import BadRequest, Forbidden, NotFound
from ..reports import repository as reports_repo
from ..reports import service as reports_service
from ..reports import writers
from ..reports.columns import ColumnDictionary
from ..reports.window import canonical_tz, iso_utc
from . import repository as repo
from .rules import RULES, Activity, Bulk, Bulks, Earlier, Reads, Thresholds, evaluate

DISPOSITIONS = ("expected", "investigating", "incident")
MAX_NOTE = 4000
MAX_DAYS = 366  # days one evaluation covers


def parse_day(name: str, value: str | None) -> date:
    try:
        return date.fromisoformat((value or "").strip())
    except ValueError:
        raise BadRequest(f"invalid {name} {value!r}: use YYYY-MM-DD", code="invalid_day") from None


def day_range(first: str | None, last: str | None, today: date | None = None) -> tuple[date, date]:
    """The days to evaluate: ``first``..``last`` (inclusive); by default yesterday and today (UTC)."""
    today = today or datetime.now(UTC).date()
    d1 = parse_day("to", last) if last else today
    d0 = parse_day("from", first) if first else min(d1, today - timedelta(days=1))
    if d0 > d1:
        raise BadRequest(f"from {d0} is after to {d1}", code="invalid_day")
    if (d1 - d0).days >= MAX_DAYS:
        raise BadRequest(f"evaluate at most {MAX_DAYS} days at a time", code="invalid_day")
    return d0, d1


def _read_columns(names: list[str], classified: set[str]) -> set[str]:
    """The columns a rollup row read; ``*`` (a SELECT *) read every classified column of the table."""
    found = set(names)
    if "*" in found:
        found |= classified
    return found


def _pii_of(tables: set[str], pii: dict[str, set[str]]) -> dict[str, set[str]]:
    """Each table of the rollups that has classified PII columns, with them (under its own or short name)."""
    found = {}
    for table in tables:
        classified = reports_service._classified(table, pii)
        if classified:
            found[table] = classified
    return found


@dataclass
class Inputs:
    """What the rules read for a run of days (see :func:`rules.evaluate`)."""

    activity: Activity
    earlier: Earlier
    pii: dict[str, set[str]]
    first_seen: dict[str, date]
    bulks: Bulks


def _bulks(rows: list[dict[str, Any]], pii: dict[str, set[str]]) -> Bulks:
    bulks: Bulks = {}
    for r in rows:
        table = r["table_name"]
        bulk = bulks.setdefault((r["day"], r["user_id"], table), Bulk())
        bulk.queries += 1
        bulk.max_rows = max(bulk.max_rows, r["row_count"])
        bulk.columns |= _read_columns(list(r["columns"] or []), pii[table])
    return bulks


async def _inputs(conn: AsyncConnection, org_id: str, d0: date, d1: date, t: Thresholds) -> Inputs:
    dictionary = ColumnDictionary(await reports_repo.column_dictionary(conn, org_id))  # in this snapshot
    pii_by_name = await reports_repo.pii_columns(conn, org_id)
    # The PII tables: classified under their own name, or (named with their database) under their short one,
    # as the column dictionary knows the tables that had columns read.
    pii = _pii_of(set(dictionary.tables) | set(pii_by_name), pii_by_name)
    tables = sorted(pii)
    rows = await repo.day_reads(conn, org_id, d0 - timedelta(days=t.baseline_days), d1, tables)
    before = await repo.earlier_reads(conn, org_id, d0, tables)
    activity: Activity = {}
    for r in rows:
        table = r["table_name"]
        if table not in pii:
            continue
        reads = activity.setdefault((r["day"], r["user_id"], table), Reads())
        reads.queries += r["query_count"]  # a mapped role's row and its user's row add up
        reads.add_times(r["first_ts"], r["last_ts"])
        reads.columns |= _read_columns(dictionary.decode(table, r["col_mask"], r["extra"]), pii[table])
    earlier: Earlier = {}
    for r in before:
        table = r["table_name"]
        if table in pii:
            names = dictionary.decode(table, r["col_mask"], r["extra"])
            earlier.setdefault((r["user_id"], table), set()).update(_read_columns(names, pii[table]))
    bulk_rows = await repo.bulk_queries(conn, org_id, d0, d1, t.bulk_rows, tables)
    return Inputs(activity, earlier, pii, await repo.first_seen(conn, org_id, d1), _bulks(bulk_rows, pii))


async def evaluate_org(db: Database, org_id: str, first: date, last: date) -> dict[str, Any]:
    """Evaluate every rule for the org's days ``first``..``last`` and store the result: new flags are added,
    changed ones updated, ones that no longer hold withdrawn. Running it again changes nothing."""
    async with db.transaction() as conn:
        await repo.lock_org(conn, org_id)
        t = await repo.thresholds(conn, org_id)
        i = await _inputs(conn, org_id, first, last, t)
        flags = evaluate(i.activity, i.earlier, i.pii, i.first_seen, first, last, t, i.bulks)
        counts = {"inserted": 0, "updated": 0, "unchanged": 0, "withdrawn": 0}
        for f in flags:
            counts[await repo.upsert_flag(conn, {
                "org": org_id, "rule": f.rule, "user": f.user_id, "table": f.table_name, "columns": list(f.columns),
                "day": f.day, "observed": f.observed, "baseline": f.baseline, "threshold": f.threshold,
                "explanation": f.explanation})] += 1
        keys = {f.key for f in flags}
        for row in await repo.stored_keys(conn, org_id, first, last):
            if (row["rule"], row["user_id"], row["table_name"], row["day"]) not in keys and row["retracted_at"] is None:
                await repo.withdraw(conn, row["id"], kept=row["kept"])
                counts["withdrawn"] += 1
    return {"orgId": org_id, "from": first.isoformat(), "to": last.isoformat(), "flags": len(flags), **counts}


def _figure(value: Decimal | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def flag_document(row: dict[str, Any]) -> dict[str, Any]:
    disposition = None
    if row.get("disposition") is not None:
        disposition = {"disposition": row["disposition"], "note": row["note"],
                       "by": {"id": row["by_id"], "email": row["by_email"]}, "at": iso_utc(row["disposed_at"])}
    return {"id": row["id"], "rule": row["rule"], "userId": row["user_id"], "tableName": row["table_name"],
            "columns": list(row["columns"]), "day": row["day"].isoformat(),
            "window": {"start": iso_utc(row["window_start"]), "end": iso_utc(row["window_end"])},
            "observed": _figure(row["observed"]), "baseline": _figure(row["baseline"]),
            "threshold": _figure(row["threshold"]), "explanation": row["explanation"],
            "open": disposition is None and row["retracted_at"] is None,
            "retractedAt": iso_utc(row["retracted_at"]), "latestDisposition": disposition,
            "dispositionCount": int(row.get("dispositions") or 0), "createdAt": iso_utc(row["created_at"])}


async def list_flags(conn: AsyncConnection, org_id: str, *, open_only: bool = False, rule: str | None = None,
                     user_id: str | None = None, first: date | None = None, last: date | None = None,
                     limit: int = 1000, offset: int = 0) -> list[dict[str, Any]]:
    if rule is not None and rule not in RULES:
        raise BadRequest(f"invalid rule {rule!r}: use {', '.join(RULES)}", code="invalid_rule")
    if first is not None and last is not None and first > last:
        raise BadRequest(f"from {first} is after to {last}", code="invalid_day")
    rows = await repo.list_flags(conn, org_id, open_only=open_only, rule=rule, user_id=user_id, first=first,
                                 last=last, limit=limit, offset=offset)
    return [flag_document(dict(r)) for r in rows]


async def dispose(conn: AsyncConnection, org_id: str, flag_id: int, disposition: str, note: str | None,
                  actor: Actor) -> dict[str, Any]:
    """Acknowledge a flag: appended to its dispositions and to the org's chained admin record."""
    if not actor.user_id or actor.user_id.startswith("system:"):
        raise BadRequest("a disposition needs a person: name the admin", code="admin_required")
    if disposition not in DISPOSITIONS:
        raise BadRequest(f"invalid disposition {disposition!r}: use {', '.join(DISPOSITIONS)}",
                         code="invalid_disposition")
    text = (note or "").strip()
    if not text:
        raise BadRequest("a note is required", code="note_required")
    if len(text) > MAX_NOTE:
        raise BadRequest(f"the note is too long: at most {MAX_NOTE:,} characters", code="note_required")
    flag = await repo.get_flag(conn, org_id, flag_id)
    if flag is None:
        raise NotFound(f"no flag {flag_id} in this organization", code="flag_not_found")
    if flag["user_id"] == actor.user_id:
        raise Forbidden(f"flag {flag_id} is about you: another admin must acknowledge it", code="self_disposition")
    stored = await repo.insert_disposition(conn, flag_id=flag_id, org_id=org_id, disposition=disposition, note=text,
                                           by_id=actor.user_id, by_email=actor.email)
    await admin_actions.record(conn, actor, org_id=org_id, action_type="flag.dispose", target_type="access_flag",
                               target_id=str(flag_id),
                               details={"disposition": disposition, "note": text, "rule": flag["rule"],
                                        "userId": flag["user_id"], "tableName": flag["table_name"],
                                        "day": flag["day"].isoformat()})
    return {"flagId": flag_id, "disposition": disposition, "note": text, "id": stored["id"],
            "by": {"id": actor.user_id, "email": actor.email}, "at": iso_utc(stored["at"])}


CSV_HEADER = ("id", "rule", "day", "user_id", "table_name", "columns", "observed", "baseline", "threshold",
              "explanation", "open", "retracted_at", "disposition", "note", "disposed_by", "disposed_at")


def csv_rows(flags: list[dict[str, Any]]) -> list[list[str]]:
    """The flags as CSV rows (header first); text that a spreadsheet would run as a formula is guarded."""
    rows = [list(CSV_HEADER)]
    for f in flags:
        d = f["latestDisposition"] or {}
        rows.append([str(f["id"]), f["rule"], f["day"], *(writers.cell(v) for v in (
            f["userId"], f["tableName"], f["columns"], f["observed"], f["baseline"], f["threshold"],
            f["explanation"])), "true" if f["open"] else "false", f["retractedAt"] or "", d.get("disposition", ""),
            writers.cell(d.get("note")), writers.cell((d.get("by") or {}).get("email")), d.get("at") or ""])
    return rows


async def set_thresholds(conn: AsyncConnection, org_id: str, actor: Actor, *, floor: int | None = None,
                         k: Decimal | None = None, baseline_days: int | None = None,
                         bulk_rows: int | None = None, tz: str | None = None, work_start: int | None = None,
                         work_end: int | None = None) -> Thresholds:
    """Change some of the org's thresholds (the others stay); flags already stored keep their figures until
    their days are evaluated again."""
    now = await repo.thresholds(conn, org_id)
    if floor is not None and floor < 0:
        raise BadRequest("the volume floor is a number of queries, 0 or more", code="invalid_threshold")
    if k is not None and k <= 0:
        raise BadRequest("k must be above 0", code="invalid_threshold")
    if baseline_days is not None and (baseline_days % 7 or not 7 <= baseline_days <= 364):
        raise BadRequest("the baseline is whole weeks: 7 to 364 days, a multiple of 7", code="invalid_threshold")
    if bulk_rows is not None and bulk_rows <= 0:
        raise BadRequest("the bulk-export threshold is a number of rows above 0", code="invalid_threshold")
    start = now.work_start if work_start is None else work_start
    end = now.work_end if work_end is None else work_end
    if not 0 <= start < end <= 24:
        raise BadRequest(f"working hours {start} to {end}: use hours 0 to 24, the start before the end",
                         code="invalid_threshold")
    new = Thresholds(volume_floor=now.volume_floor if floor is None else floor,
                     volume_k=now.volume_k if k is None else k,
                     baseline_days=now.baseline_days if baseline_days is None else baseline_days,
                     bulk_rows=now.bulk_rows if bulk_rows is None else bulk_rows,
                     tz=now.tz if tz is None else canonical_tz(tz), work_start=start, work_end=end)
    await repo.save_thresholds(conn, org_id, new, actor.user_id)
    await admin_actions.record(conn, actor, org_id=org_id, action_type="flag.settings_update",
                               target_type="access_flag_setting", target_id=org_id,
                               details={"volumeFloor": new.volume_floor, "volumeK": str(new.volume_k),
                                        "baselineDays": new.baseline_days, "bulkRows": new.bulk_rows,
                                        "tz": new.tz, "workStart": new.work_start, "workEnd": new.work_end})
    return new


# The org's thresholds as the repository reads them; named here so that the edges reach the repository
# only through this service.
thresholds = repo.thresholds
