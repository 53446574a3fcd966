"""SQL of the flags: the rollup reads the rules need, and the flag and disposition tables.

Reads go through the reports' :func:`reports.repository.fetch_all`, so a database role mapped to a user
counts as that user here exactly as in the reports."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import Row

from ..reports import repository as reports_repo
from .rules import Thresholds

DAY_READS = """
SELECT d.day, d.user_id, d.table_name, d.query_count, d.first_ts, d.last_ts, d.col_mask,
       array_to_string(d.extra_columns, chr(31)) AS extra
FROM audit_access_daily d
WHERE d.org_id = %(org)s AND d.day >= %(d0)s AND d.day <= %(d1)s AND d.user_id IS NOT NULL
  AND d.table_name = ANY(%(tables)s)
"""

EARLIER_READS = """
SELECT d.user_id, d.table_name, bit_or(d.col_mask) AS col_mask,
       string_agg(array_to_string(d.extra_columns, chr(31)), chr(31)) AS extra
FROM audit_access_daily d
WHERE d.org_id = %(org)s AND d.day < %(d0)s AND d.user_id IS NOT NULL AND d.table_name = ANY(%(tables)s)
GROUP BY d.user_id, d.table_name
"""

BULK_QUERIES = """
SELECT (l."timestamp" AT TIME ZONE 'UTC')::date AS day, l.user_id, t.table_name, l.row_count,
       atlas_columns_for(l.columns_by_table, l.columns_accessed, t.table_name) AS columns
FROM audit_log l
CROSS JOIN LATERAL jsonb_array_elements_text(atlas_tables_of(l.tables_accessed)) AS t(table_name)
WHERE l.org_id = %(org)s AND l."timestamp" >= %(t0)s AND l."timestamp" < %(t1)s AND l.success
  AND l.deleted_at IS NULL AND l.row_count > %(rows)s AND l.user_id IS NOT NULL
  AND t.table_name = ANY(%(tables)s)
"""

FIRST_SEEN = """
SELECT u.user_id, min(u.day) AS first_day
FROM audit_user_daily u
WHERE u.org_id = %(org)s AND u.day <= %(d1)s AND u.user_id IS NOT NULL
GROUP BY u.user_id
"""


async def day_reads(conn: AsyncConnection, org_id: str, first: date, last: date, tables: list[str]) -> list[Row]:
    """Each day's (user, table) reads of ``tables`` from ``first`` to ``last``."""
    return await reports_repo.fetch_all(conn, DAY_READS, {"org": org_id, "d0": first, "d1": last, "tables": tables})


async def earlier_reads(conn: AsyncConnection, org_id: str, before: date, tables: list[str]) -> list[Row]:
    """Each (user, table)'s columns of ``tables`` read before ``before``, as one mask (and extra names)."""
    return await reports_repo.fetch_all(conn, EARLIER_READS, {"org": org_id, "d0": before, "tables": tables})


async def bulk_queries(conn: AsyncConnection, org_id: str, first: date, last: date, rows: int,
                       tables: list[str]) -> list[Row]:
    """The recorded queries of the days that returned more than ``rows`` rows from one of ``tables``."""
    return await reports_repo.fetch_all(conn, BULK_QUERIES, {
        "org": org_id, "t0": _midnight(first), "t1": _midnight(last + timedelta(days=1)), "rows": rows,
        "tables": tables})


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


async def first_seen(conn: AsyncConnection, org_id: str, last: date) -> dict[str, date]:
    rows = await reports_repo.fetch_all(conn, FIRST_SEEN, {"org": org_id, "d1": last})
    return {r["user_id"]: r["first_day"] for r in rows}


async def thresholds(conn: AsyncConnection, org_id: str) -> Thresholds:
    cur = await conn.execute(
        "SELECT volume_floor, volume_k, baseline_days, bulk_rows, tz, work_start, work_end FROM access_flag_setting "
        "WHERE org_id = %s", (org_id,))
    row = await cur.fetchone()
    if row is None:
        return Thresholds()
    return Thresholds(volume_floor=row["volume_floor"], volume_k=Decimal(row["volume_k"]),
                      baseline_days=row["baseline_days"], bulk_rows=row["bulk_rows"], tz=row["tz"],
                      work_start=row["work_start"], work_end=row["work_end"])


async def save_thresholds(conn: AsyncConnection, org_id: str, t: Thresholds, by: str | None) -> None:
    await conn.execute(
        "INSERT INTO access_flag_setting (org_id, volume_floor, volume_k, baseline_days, bulk_rows, tz, work_start, "
        "work_end, updated_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (org_id) DO UPDATE SET "
        "volume_floor = EXCLUDED.volume_floor, volume_k = EXCLUDED.volume_k, baseline_days = EXCLUDED.baseline_days, "
        "bulk_rows = EXCLUDED.bulk_rows, tz = EXCLUDED.tz, work_start = EXCLUDED.work_start, "
        "work_end = EXCLUDED.work_end, updated_by = EXCLUDED.updated_by, updated_at = now()",
        (org_id, t.volume_floor, t.volume_k, t.baseline_days, t.bulk_rows, t.tz, t.work_start, t.work_end, by))


async def lock_org(conn: AsyncConnection, org_id: str) -> None:
    """One evaluation of an org's flags at a time (the scheduled pass and the CLI may meet)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('access_flag:' || %s, 0))", (org_id,))


async def stored_keys(conn: AsyncConnection, org_id: str, first: date, last: date) -> list[Row]:
    cur = await conn.execute(
        "SELECT f.id, f.rule, f.user_id, f.table_name, f.day, f.retracted_at, "
        "(EXISTS (SELECT 1 FROM access_flag_disposition x WHERE x.flag_id = f.id) "
        " OR EXISTS (SELECT 1 FROM access_flag_delivery y WHERE y.flag_id = f.id)) AS kept "
        "FROM access_flag f WHERE f.org_id = %s AND f.day >= %s AND f.day <= %s", (org_id, first, last))
    return await cur.fetchall()


UPSERT = """
INSERT INTO access_flag AS f (org_id, rule, user_id, table_name, columns, day, window_start, window_end,
                              observed, baseline, threshold, explanation)
VALUES (%(org)s, %(rule)s, %(user)s, %(table)s, %(columns)s, %(day)s,
        %(day)s::timestamp AT TIME ZONE 'UTC', (%(day)s::date + 1)::timestamp AT TIME ZONE 'UTC',
        %(observed)s, %(baseline)s, %(threshold)s, %(explanation)s)
ON CONFLICT ON CONSTRAINT uq_access_flag DO UPDATE SET
    columns = EXCLUDED.columns, observed = EXCLUDED.observed, baseline = EXCLUDED.baseline,
    threshold = EXCLUDED.threshold, explanation = EXCLUDED.explanation, retracted_at = NULL, updated_at = now()
WHERE (f.columns, f.observed, f.baseline, f.threshold, f.explanation, f.retracted_at)
      IS DISTINCT FROM (EXCLUDED.columns, EXCLUDED.observed, EXCLUDED.baseline, EXCLUDED.threshold,
                        EXCLUDED.explanation, NULL::timestamptz)
RETURNING id, (xmax = 0) AS inserted
"""


async def upsert_flag(conn: AsyncConnection, params: dict[str, Any]) -> str:
    """'inserted', 'updated' or 'unchanged'. A new flag of an org with a webhook is queued for delivery in the
    same transaction."""
    cur = await conn.execute(UPSERT, params)
    row = await cur.fetchone()
    if row is None:
        return "unchanged"
    if row["inserted"]:
        await conn.execute("INSERT INTO access_flag_delivery (org_id, flag_id) SELECT w.org_id, %s "
                           "FROM access_flag_webhook w WHERE w.org_id = %s", (row["id"], params["org"]))
        return "inserted"
    return "updated"


async def withdraw(conn: AsyncConnection, flag_id: int, *, kept: bool) -> None:
    """A flag that no longer holds: gone when nobody acknowledged it and no webhook delivery was queued for it,
    else (``kept``) marked retracted."""
    if kept:
        await conn.execute("UPDATE access_flag SET retracted_at = now(), updated_at = now() "
                           "WHERE id = %s AND retracted_at IS NULL", (flag_id,))
    else:
        await conn.execute("DELETE FROM access_flag WHERE id = %s", (flag_id,))


LIST = """
SELECT f.id, f.rule, f.user_id, f.table_name, f.columns, f.day, f.window_start, f.window_end, f.observed,
       f.baseline, f.threshold, f.explanation, f.created_at, f.updated_at, f.retracted_at,
       x.disposition, x.note, x.by_id, x.by_email, x.at AS disposed_at,
       (SELECT count(*) FROM access_flag_disposition y WHERE y.flag_id = f.id) AS dispositions
FROM access_flag f
LEFT JOIN LATERAL (SELECT * FROM access_flag_disposition x WHERE x.flag_id = f.id ORDER BY x.id DESC LIMIT 1) x
    ON true
WHERE f.org_id = %(org)s{where}
ORDER BY f.day DESC, f.id DESC
LIMIT %(limit)s OFFSET %(offset)s
"""


async def list_flags(conn: AsyncConnection, org_id: str, *, open_only: bool, rule: str | None, user_id: str | None,
                     first: date | None, last: date | None, limit: int, offset: int) -> list[Row]:
    where = []
    if open_only:
        where.append("x.id IS NULL AND f.retracted_at IS NULL")
    if rule is not None:
        where.append("f.rule = %(rule)s")
    if user_id is not None:
        where.append("f.user_id = %(user)s")
    if first is not None:
        where.append("f.day >= %(d0)s")
    if last is not None:
        where.append("f.day <= %(d1)s")
    sql = LIST.format(where="".join(f" AND {w}" for w in where))
    cur = await conn.execute(sql, {"org": org_id, "rule": rule, "user": user_id, "d0": first, "d1": last,
                                   "limit": limit, "offset": offset})
    return await cur.fetchall()


async def list_flag(conn: AsyncConnection, org_id: str, flag_id: int) -> dict[str, Any]:
    """One flag as :func:`list_flags` reads it."""
    sql = LIST.format(where=" AND f.id = %(id)s")
    cur = await conn.execute(sql, {"org": org_id, "id": flag_id, "limit": 1, "offset": 0})
    row = await cur.fetchone()
    assert row is not None
    return dict(row)


async def get_flag(conn: AsyncConnection, org_id: str, flag_id: int) -> Row | None:
    cur = await conn.execute("SELECT * FROM access_flag WHERE org_id = %s AND id = %s FOR SHARE", (org_id, flag_id))
    return await cur.fetchone()


async def insert_disposition(conn: AsyncConnection, *, flag_id: int, org_id: str, disposition: str, note: str,
                             by_id: str, by_email: str | None) -> Row:
    cur = await conn.execute(
        "INSERT INTO access_flag_disposition (flag_id, org_id, disposition, note, by_id, by_email) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id, at",
        (flag_id, org_id, disposition, note, by_id, by_email))
    row = await cur.fetchone()
    assert row is not None
    return row


async def dispositions(conn: AsyncConnection, flag_id: int) -> list[Row]:
    cur = await conn.execute("SELECT id, disposition, note, by_id, by_email, at FROM access_flag_disposition "
                             "WHERE flag_id = %s ORDER BY id", (flag_id,))
    return await cur.fetchall()


async def active_org_ids(conn: AsyncConnection) -> list[str]:
    cur = await conn.execute("SELECT id FROM organization WHERE deleted_at IS NULL AND workspace_status = 'active' "
                             "ORDER BY id")
    return [r["id"] for r in await cur.fetchall()]
