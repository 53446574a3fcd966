"""All report SQL. Identifiers and clause shapes are fixed here; every value is a bind parameter.

The window ``[start, end)`` is read as whole UTC days from the daily rollups (`audit_access_daily`,
`audit_user_daily`, maintained by triggers) plus the two partial edges from `audit_log` itself, so
results are exact for any time zone and any bound.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import tuple_row

from .window import ReportFilters, ReportWindow, week_split

Row = dict[str, Any]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


def window_params(org_id: str, window: ReportWindow, filters: ReportFilters) -> dict[str, Any]:
    """Query parameters: whole weeks [w0, w1), whole days [d0, w0) and [w1, d1), raw edges h and t.

    ``wh``/``wt`` are the whole weeks that hold the partial weeks at either end (equal to w0/w1 when
    there is none). When the audit log has no row at all in the part of such a week outside the
    window, that week's rollup equals the window's days of it and is read instead of up to six daily
    rollups: see :data:`_HEAD_WEEK_WHOLE`."""
    first_day, end_day, head, tail = window.utc_day_split()
    w0, w1 = week_split(first_day, end_day)
    wh = w0 - timedelta(days=7) if w0 < w1 and first_day < w0 else w0
    wt = w1 + timedelta(days=7) if w0 < w1 and w1 < end_day else w1
    return {
        "org": org_id, "d0": first_day, "d1": end_day, "w0": w0, "w1": w1, "wh": wh, "wt": wt,
        "h0": head[0], "h1": head[1], "t0": tail[0], "t1": tail[1],
        # The parts of the end weeks outside the window's whole days (empty ranges when not needed).
        "xh0": _midnight(wh), "xh1": _midnight(first_day) if wh < w0 else _midnight(wh),
        "xt0": _midnight(end_day) if wt > w1 else _midnight(wt), "xt1": _midnight(wt),
        "user": filters.user_id, "table": filters.table, "role": filters.role, "wend": window.end,
        **_table_patterns(filters.table),
    }


# The short form of a three-part name (audit/names.py short_table_name): prod.public.t -> t,
# prod.s.t -> s.t; NULL for other names.
_SHORT_NAME = ("(CASE WHEN {n} ~ '^[^.]*\\.[^.]*\\.[^.]*$' THEN CASE WHEN split_part({n}, '.', 2) = 'public' "
               "THEN split_part({n}, '.', 3) ELSE split_part({n}, '.', 2) || '.' || split_part({n}, '.', 3) END END)")


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _table_patterns(table: str | None) -> dict[str, str | None]:
    """LIKE patterns for the names of ``table`` in other databases: a filter of one or two parts
    (``patients``, ``crm.customers``) also matches the three-part names whose short form it is
    (``prod.public.patients``, ``prod.crm.customers``); a filter of three or more parts matches only
    itself (``tlike`` is then NULL, which LIKE never matches)."""
    if table is None or table.count(".") >= 2:
        return {"tlike": None, "tlike4": None}
    tail = _like_escape(table if "." in table else f"public.{table}")
    return {"tlike": f"%.{tail}", "tlike4": f"%.%.{tail}"}


# True when the org has no audit row (of any kind: failed, deleted or not) in the part of the head
# (tail) week outside the window's whole days. Then that week's weekly rollup holds exactly the
# window's days of it, and the raw edge there is empty. Evaluated once per statement, in the
# statement's snapshot, so it agrees with the rollups it chooses.
_HEAD_WEEK_WHOLE = """(%(wh)s < %(w0)s AND NOT EXISTS (SELECT 1 FROM audit_log z WHERE z.org_id = %(org)s
        AND z."timestamp" >= %(xh0)s AND z."timestamp" < %(xh1)s))"""
_TAIL_WEEK_WHOLE = """(%(wt)s > %(w1)s AND NOT EXISTS (SELECT 1 FROM audit_log z WHERE z.org_id = %(org)s
        AND z."timestamp" >= %(xt0)s AND z."timestamp" < %(xt1)s))"""
# Weeks to read from the weekly rollups, and the whole days left to the daily ones.
_WEEKS = (f"week >= CASE WHEN {_HEAD_WEEK_WHOLE} THEN %(wh)s ELSE %(w0)s END "
          f"AND {{a}}.week < CASE WHEN {_TAIL_WEEK_WHOLE} THEN %(wt)s ELSE %(w1)s END")
_HEAD_DAYS = f"day >= %(d0)s AND {{a}}.day < CASE WHEN {_HEAD_WEEK_WHOLE} THEN %(d0)s ELSE %(w0)s END"
_TAIL_DAYS = f"day >= CASE WHEN {_TAIL_WEEK_WHOLE} THEN %(d1)s ELSE %(w1)s END AND {{a}}.day < %(d1)s"


def _weeks(alias: str) -> str:
    return f"{alias}." + _WEEKS.format(a=alias)


def _head_days(alias: str) -> str:
    return f"{alias}." + _HEAD_DAYS.format(a=alias)


def _tail_days(alias: str) -> str:
    return f"{alias}." + _TAIL_DAYS.format(a=alias)


# Who each user id was in the organization at the window's end (`wend`), from its membership history
# (migration 0016): the membership that held at that moment; else the last one that began before it (a
# member who had left: their name stays on their rows); else the first one that began after it (a member
# who joined later). Offboarding, a role change or a new email after a window therefore never changes
# that window's report. Ids that never were members of the organization get nothing: an audit row naming
# some other user id must not reveal that user's email to this organization.
_IDENTITY = """(
    SELECT DISTINCT ON (h.user_id) h.user_id, h.email, h.role, h.valid_from, h.valid_to
    FROM member_history h
    WHERE h.org_id = %(org)s
    ORDER BY h.user_id, (h.valid_from < %(wend)s) DESC,
             CASE WHEN h.valid_from < %(wend)s THEN h.valid_from END DESC,
             CASE WHEN h.valid_from < %(wend)s THEN h.id END DESC, h.valid_from, h.id)"""

IDENTITY_AT_WINDOW_END = _IDENTITY  # for other views that name users as of the window's end (reports/activity.py)

_EMAIL_JOIN = f"""
    LEFT JOIN {_IDENTITY} u ON u.user_id = {{alias}}.user_id"""


def _role_join(alias: str, filters: ReportFilters) -> str:
    """The role filter: the user's role at the window's end (see :data:`_IDENTITY`)."""
    if filters.role is None:
        return ""
    return f" JOIN {_IDENTITY} rm ON rm.user_id = {alias}.user_id AND rm.role = %(role)s"


def _opt(filters: ReportFilters, alias: str, *, table: bool = True) -> str:
    clauses = []
    if filters.user_id is not None:
        clauses.append(f" AND {alias}.user_id = %(user)s")
    if table and filters.table is not None:
        # The table itself, or the same name in another database (three parts whose short form it is).
        clauses.append(f" AND ({alias}.table_name = %(table)s OR ({alias}.table_name LIKE %(tlike)s"
                       f" AND {alias}.table_name NOT LIKE %(tlike4)s))")
    return "".join(clauses)


def _access_cte(filters: ReportFilters) -> str:
    """(table, user) access aggregates for the window: rollup days + raw edges, filters applied.

    Columns travel as a bitmask over the org's column dictionary (`audit_column_dict`); a rollup row
    with columns past its table's 64th says so in `has_extra` (their names, in `extra_columns`, are read
    only for the pairs that have some: the covering indexes cannot hold unbounded lists)."""
    return f"""
acc AS (
    SELECT w.table_name, w.user_id, w.query_count AS n, w.first_ts, w.last_ts, w.col_mask, w.has_extra,
           NULL::text[] AS edge_extra
    FROM audit_access_weekly w{_role_join("w", filters)}
    WHERE w.org_id = %(org)s AND {_weeks("w")}{_opt(filters, "w")}
    UNION ALL
    SELECT d.table_name, d.user_id, d.query_count AS n, d.first_ts, d.last_ts, d.col_mask, d.has_extra,
           NULL::text[] AS edge_extra
    FROM audit_access_daily d{_role_join("d", filters)}
    WHERE d.org_id = %(org)s AND {_head_days("d")}{_opt(filters, "d")}
    UNION ALL
    SELECT d.table_name, d.user_id, d.query_count AS n, d.first_ts, d.last_ts, d.col_mask, d.has_extra,
           NULL::text[] AS edge_extra
    FROM audit_access_daily d{_role_join("d", filters)}
    WHERE d.org_id = %(org)s AND {_tail_days("d")}{_opt(filters, "d")}
    UNION ALL
    SELECT x.table_name, x.user_id, count(DISTINCT x.audit_id), min(x."timestamp"), max(x."timestamp"),
           coalesce(bit_or(1::bigint << dc.bit), 0), false,
           array_agg(DISTINCT c.col) FILTER (WHERE c.col IS NOT NULL AND dc.bit IS NULL)
    FROM audit_access x{_role_join("x", filters)}
    LEFT JOIN LATERAL jsonb_array_elements_text(x.columns) AS c(col) ON true
    LEFT JOIN audit_column_dict dc
        ON dc.org_id = x.org_id AND dc.table_name = x.table_name AND dc.column_name = c.col
    WHERE x.org_id = %(org)s
      AND ((x."timestamp" >= %(h0)s AND x."timestamp" < %(h1)s)
        OR (x."timestamp" >= %(t0)s AND x."timestamp" < %(t1)s)){_opt(filters, "x")}
    GROUP BY x.table_name, x.user_id
)"""


def data_access_sql(filters: ReportFilters, *, paged: bool) -> str:
    """Rows of the Data Access Report; paged queries also carry the summary (computed once, from the
    same CTEs, so summary and rows always agree)."""
    page = " LIMIT %(limit)s OFFSET %(offset)s" if paged else ""
    summary = f",\n       {_data_access_summary_exprs(filters)}" if paged else ""
    return f"""
WITH {_access_cte(filters)},
pairs AS (
    SELECT table_name, user_id, sum(n)::bigint AS query_count, min(first_ts) AS first_access,
           max(last_ts) AS last_access, bit_or(col_mask) AS col_mask, bool_or(has_extra) AS has_extra,
           string_agg(array_to_string(edge_extra, chr(31)), chr(31)) AS edge_extra
    FROM acc GROUP BY table_name, user_id
)
SELECT p.table_name, p.user_id, u.email AS user_email, u.role AS user_role, p.query_count, p.first_access,
       p.last_access,
       p.col_mask,
       CASE WHEN p.has_extra THEN (
           SELECT string_agg(array_to_string(e.extra_columns, chr(31)), chr(31)) FROM audit_access_daily e
           WHERE e.org_id = %(org)s AND e.day >= %(d0)s AND e.day < %(d1)s AND e.table_name = p.table_name
             AND e.user_id IS NOT DISTINCT FROM p.user_id) END AS extra_columns,
       p.edge_extra{summary}
FROM pairs p{_EMAIL_JOIN.format(alias="p")}
ORDER BY p.query_count DESC, p.table_name COLLATE "C", u.email COLLATE "C" NULLS LAST,
         p.user_id COLLATE "C" NULLS LAST{page}
"""


def _query_total(filters: ReportFilters, *, tables_only: bool) -> str:
    """Queries of the window matching the user and role filters, each counted once: those that touched at
    least one table (``tables_only``), or all of them. Whole days from the per-user daily rollup, the partial
    days at the window's edges from the raw rows."""
    column = "table_query_count" if tables_only else "query_count"
    touched = "\n              AND jsonb_array_length(atlas_tables_of(x.tables_accessed)) > 0" if tables_only else ""
    return f"""(
        SELECT coalesce(sum(q), 0) FROM (
            SELECT d.{column} AS q FROM audit_user_daily d{_role_join("d", filters)}
            WHERE d.org_id = %(org)s AND d.day >= %(d0)s AND d.day < %(d1)s{_opt(filters, "d", table=False)}
            UNION ALL
            SELECT count(*) FROM audit_log x{_role_join("x", filters)}
            WHERE x.org_id = %(org)s AND x.success AND x.deleted_at IS NULL{touched}
              AND ((x."timestamp" >= %(h0)s AND x."timestamp" < %(h1)s)
                OR (x."timestamp" >= %(t0)s AND x."timestamp" < %(t1)s)){_opt(filters, "x", table=False)}
        ) s)"""


def _data_access_summary_exprs(filters: ReportFilters) -> str:
    # Distinct queries: with a table filter each query touches that table once, so the pair counts add
    # up exactly (and every query counted touched a table); without one, the per-user daily counts.
    if filters.table is not None:
        total = every = "(SELECT coalesce(sum(query_count), 0) FROM pairs)"
    else:
        total, every = _query_total(filters, tables_only=True), _query_total(filters, tables_only=False)
    # Distinct counts by GROUP BY, which PostgreSQL can hash, rather than count(DISTINCT), which sorts.
    return f"""(SELECT count(*) FROM pairs) AS total_rows,
       {total}::bigint AS total_queries,
       {every}::bigint AS all_queries,
       (SELECT count(user_id) FROM (SELECT user_id FROM pairs GROUP BY user_id) s) AS unique_users,
       (SELECT count(*) FROM (SELECT table_name FROM pairs GROUP BY table_name) s) AS unique_tables,
       (SELECT count(*) FROM (SELECT p.table_name FROM pairs p GROUP BY p.table_name) s WHERE EXISTS (
            SELECT 1 FROM pii_column_classifications c
            WHERE c.org_id = %(org)s AND c.table_name IN (s.table_name, {_SHORT_NAME.format(n="s.table_name")})
              AND NOT c.dismissed)) AS pii_tables"""


def data_access_summary_sql(filters: ReportFilters) -> str:
    return f"""
WITH {_access_cte(filters)},
pairs AS (SELECT table_name, user_id, sum(n) AS query_count FROM acc GROUP BY table_name, user_id)
SELECT {_data_access_summary_exprs(filters)}
"""


def _user_tables_cte(filters: ReportFilters) -> str:
    """Distinct (user, table) pairs of the window: narrow, so hashing them is cheap."""
    return f"""
ut AS (
    SELECT w.user_id, w.table_name FROM audit_access_weekly w{_role_join("w", filters)}
    WHERE w.org_id = %(org)s AND {_weeks("w")}{_opt(filters, "w")}
    UNION
    SELECT d.user_id, d.table_name FROM audit_access_daily d{_role_join("d", filters)}
    WHERE d.org_id = %(org)s AND {_head_days("d")}{_opt(filters, "d")}
    UNION
    SELECT d.user_id, d.table_name FROM audit_access_daily d{_role_join("d", filters)}
    WHERE d.org_id = %(org)s AND {_tail_days("d")}{_opt(filters, "d")}
    UNION
    SELECT x.user_id, x.table_name FROM audit_access x{_role_join("x", filters)}
    WHERE x.org_id = %(org)s
      AND ((x."timestamp" >= %(h0)s AND x."timestamp" < %(h1)s)
        OR (x."timestamp" >= %(t0)s AND x."timestamp" < %(t1)s)){_opt(filters, "x")}
)"""


def _user_totals_cte(filters: ReportFilters) -> str:
    """Per-user query totals in the window (each query once, whatever its number of tables)."""
    if filters.table is not None:
        return f"""{_access_cte(filters)},
totals AS (
    SELECT user_id, sum(n)::bigint AS total_queries, sum(n)::bigint AS table_queries, max(last_ts) AS last_active_at
    FROM acc GROUP BY user_id
)"""
    return f"""
totals AS (
    SELECT user_id, sum(q)::bigint AS total_queries, sum(tq)::bigint AS table_queries,
           max(last_ts) AS last_active_at FROM (
        SELECT d.user_id, d.query_count AS q, d.table_query_count AS tq, d.last_ts
        FROM audit_user_daily d{_role_join("d", filters)}
        WHERE d.org_id = %(org)s AND d.day >= %(d0)s AND d.day < %(d1)s{_opt(filters, "d", table=False)}
        UNION ALL
        SELECT x.user_id, count(*), count(*) FILTER (WHERE jsonb_array_length(atlas_tables_of(x.tables_accessed)) > 0),
               max(x."timestamp") FROM audit_log x{_role_join("x", filters)}
        WHERE x.org_id = %(org)s AND x.success AND x.deleted_at IS NULL
          AND ((x."timestamp" >= %(h0)s AND x."timestamp" < %(h1)s)
            OR (x."timestamp" >= %(t0)s AND x."timestamp" < %(t1)s)){_opt(filters, "x", table=False)}
        GROUP BY x.user_id
    ) s GROUP BY user_id
)"""


def _user_rows_cte(filters: ReportFilters) -> str:
    # Members with no query are listed too (not when a table filter asks "who touched this table"): those
    # whose membership (as of the window's end, see _IDENTITY) had not ended before the window's end.
    members = ""
    if filters.table is None:
        conds = []
        if filters.user_id is not None:
            conds.append(" AND m.user_id = %(user)s")
        if filters.role is not None:
            conds.append(" AND m.role = %(role)s")
        members = f"""
    UNION
    SELECT m.user_id FROM {_IDENTITY} m
    WHERE (m.valid_to IS NULL OR m.valid_to >= %(wend)s OR m.valid_from >= %(wend)s){"".join(conds)}"""
    return f"""
people AS (
    SELECT user_id FROM totals{members}
),
rows AS (
    SELECT p.user_id, u.email AS user_email, u.role AS user_role, coalesce(t.total_queries, 0) AS total_queries,
           coalesce(t.table_queries, 0) AS table_queries, t.last_active_at, p.user_id IS NULL AS unull, coalesce(p.user_id, '') AS ukey
    FROM people p
    LEFT JOIN totals t ON (t.user_id IS NULL) = (p.user_id IS NULL)
        AND coalesce(t.user_id, '') = coalesce(p.user_id, '')
{_EMAIL_JOIN.format(alias="p")}
)"""


def user_activity_sql(filters: ReportFilters, *, paged: bool) -> str:
    """Rows of the User Activity Report; paged queries also carry the summary."""
    page = " LIMIT %(limit)s OFFSET %(offset)s" if paged else ""
    summary = f",\n       {_USER_SUMMARY_EXPRS}" if paged else ""
    return f"""
WITH {_user_tables_cte(filters)}, {_user_totals_cte(filters)}, {_user_rows_cte(filters)},
page AS (
    SELECT * FROM rows
    ORDER BY total_queries DESC, user_email COLLATE "C" NULLS LAST, user_id COLLATE "C" NULLS LAST{page}
),
tabs AS (
    SELECT a.user_id IS NULL AS unull, coalesce(a.user_id, '') AS ukey,
           array_agg(DISTINCT a.table_name COLLATE "C" ORDER BY a.table_name COLLATE "C") AS tables
    FROM ut a
    JOIN page pg ON pg.unull = (a.user_id IS NULL) AND pg.ukey = coalesce(a.user_id, '')
    GROUP BY 1, 2
)
SELECT pg.user_id, pg.user_email, pg.user_role, pg.total_queries, pg.last_active_at,
       coalesce(t.tables, '{{}}') AS tables{summary}
FROM page pg
LEFT JOIN tabs t ON t.unull = pg.unull AND t.ukey = pg.ukey
ORDER BY pg.total_queries DESC, pg.user_email COLLATE "C" NULLS LAST, pg.user_id COLLATE "C" NULLS LAST
"""


_USER_SUMMARY_EXPRS = """(SELECT count(*) FROM rows) AS total_rows,
       (SELECT count(user_id) FROM rows) AS total_users,
       (SELECT count(user_id) FROM rows WHERE total_queries > 0) AS active_users,
       (SELECT coalesce(sum(total_queries), 0) FROM rows)::bigint AS summary_total_queries,
       (SELECT coalesce(sum(table_queries), 0) FROM rows)::bigint AS summary_table_queries"""


def user_activity_summary_sql(filters: ReportFilters) -> str:
    return f"""
WITH {_user_totals_cte(filters)}, {_user_rows_cte(filters)}
SELECT {_USER_SUMMARY_EXPRS}
"""


# --- Database roles mapped to users (`db_role_mapping`, see sources/roles.py) ---------------------------
# Events read from a database's own audit log carry the role that ran them (`db:alice`). In an org that
# maps roles to its users, every relation a report reads per user is read through a subquery whose
# `user_id` is already the mapped user's: rollup rows and raw edges alike, before any filter, grouping
# or count, so a mapped role's rows merge into its user's rows with exact totals, and removing the
# mapping splits them again. Recorded rows never change. Orgs without a mapping run the SQL as written.

_PER_USER_RELATIONS = ("audit_access_weekly", "audit_access_daily", "audit_access", "audit_user_daily", "audit_log")
_READ_OF_RELATION = re.compile(r"\b(FROM|JOIN)\s+(" + "|".join(_PER_USER_RELATIONS) + r")\s+(?!AS\b|ON\b|WHERE\b)(\w+)")
_relation_columns: dict[str, list[str]] = {}


async def maps_db_roles(conn: AsyncConnection, org_id: str) -> bool:
    cur = await conn.execute("SELECT EXISTS (SELECT 1 FROM db_role_mapping WHERE org_id = %s) AS mapped", (org_id,))
    row = await cur.fetchone()
    return bool(row["mapped"])


async def _columns_of(conn: AsyncConnection, relation: str) -> list[str]:
    if relation not in _relation_columns:
        cur = await conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
            "ORDER BY attnum", (relation,))
        _relation_columns[relation] = [r["attname"] for r in await cur.fetchall()]
    return _relation_columns[relation]


async def _resolving_db_roles(conn: AsyncConnection, sql: str, params: dict[str, Any]) -> str:
    """The report SQL as it must run for the org of ``params``: every statement that reports run goes
    through here (:func:`fetch_all`, :func:`fetch_tuples`, :func:`fetch_one`, :func:`stream`)."""
    org = params.get("org")
    if org is not None and await maps_db_roles(conn, org):
        return await with_db_roles_resolved(conn, sql)
    return sql


async def with_db_roles_resolved(conn: AsyncConnection, sql: str) -> str:
    """``sql`` reading each per-user relation through a subquery that resolves mapped database roles."""
    subqueries = {}
    for relation in _PER_USER_RELATIONS:
        columns = ", ".join("r." + _quoted(c) for c in await _columns_of(conn, relation) if c != "user_id")
        subqueries[relation] = (
            f"(SELECT {columns}, coalesce(rmap.user_id, r.user_id) AS user_id FROM {relation} r "
            "LEFT JOIN db_role_mapping rmap ON rmap.org_id = r.org_id AND rmap.db_identity = r.user_id)")
    return _READ_OF_RELATION.sub(lambda m: f"{m.group(1)} {subqueries[m.group(2)]} {m.group(3)}", sql)


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


async def fetch_all(conn: AsyncConnection, sql: str, params: dict[str, Any]) -> list[Row]:
    cur = await conn.execute(await _resolving_db_roles(conn, sql, params), params)  # type: ignore[arg-type]
    return await cur.fetchall()


async def fetch_tuples(conn: AsyncConnection, sql: str, params: dict[str, Any]) -> tuple[list[str], list[tuple]]:
    """Column names and plain tuple rows: a report page is 10,000 rows, and dicts cost more than the SQL."""
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(await _resolving_db_roles(conn, sql, params), params)  # type: ignore[arg-type]
    rows = await cur.fetchall()
    return [d.name for d in cur.description or ()], rows


async def fetch_one(conn: AsyncConnection, sql: str, params: dict[str, Any]) -> Row:
    cur = await conn.execute(await _resolving_db_roles(conn, sql, params), params)  # type: ignore[arg-type]
    return await cur.fetchone()


async def stream(conn: AsyncConnection, sql: str, params: dict[str, Any], chunk: int = 2000
                 ) -> AsyncIterator[tuple[list[str], list[tuple]]]:
    """Column names and tuple rows in chunks through a server-side cursor: constant memory for any size."""
    sql = await _resolving_db_roles(conn, sql, params)
    async with conn.cursor(name="atlas_report_stream", row_factory=tuple_row) as cur:
        cur.itersize = chunk
        await cur.execute(sql, params)  # type: ignore[arg-type]
        columns: list[str] = []
        while True:
            rows = await cur.fetchmany(chunk)
            if not rows:
                break
            columns = columns or [d.name for d in cur.description or ()]
            yield columns, rows


async def column_dictionary_size(conn: AsyncConnection, org_id: str) -> int:
    """How many (table, column) entries with a bit the org's column dictionary holds (index only)."""
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute("SELECT count(*) FROM audit_column_dict WHERE org_id = %s AND bit IS NOT NULL", (org_id,))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def column_dictionary(conn: AsyncConnection, org_id: str) -> list[tuple[str, str, int]]:
    """(table, column, bit) of the org's column masks."""
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(
        "SELECT table_name, column_name, bit FROM audit_column_dict WHERE org_id = %s AND bit IS NOT NULL",
        (org_id,))
    return await cur.fetchall()


async def begin_snapshot(conn: AsyncConnection) -> None:
    """The transaction's statements all see one snapshot (the first statement of the transaction)."""
    await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


async def set_report_memory(conn: AsyncConnection) -> None:
    """Sorting and hashing a large window in memory beats spilling to disk."""
    await conn.execute("SET LOCAL work_mem = '64MB'")


async def pii_columns(conn: AsyncConnection, org_id: str) -> dict[str, set[str]]:
    cur = await conn.execute(
        "SELECT table_name, column_name FROM pii_column_classifications WHERE org_id = %s AND NOT dismissed",
        (org_id,))
    found: dict[str, set[str]] = {}
    for r in await cur.fetchall():
        found.setdefault(r["table_name"], set()).add(r["column_name"])
    return found


async def last_logins(conn: AsyncConnection, org_id: str, before: datetime) -> dict[str, datetime]:
    """Each user's latest login into this organization before ``before`` (sessions are never deleted): a
    session whose active organization is this one, or one with none (Better Auth leaves it empty at sign-in
    for someone in several organizations) begun while the user was a member here (membership history)."""
    cur = await conn.execute(
        'SELECT s."userId" AS user_id, max(s."createdAt") AS last_login FROM session s '
        'WHERE s."createdAt" < %(before)s AND (s."activeOrganizationId" = %(org)s '
        '  OR (s."activeOrganizationId" IS NULL AND EXISTS ('
        '      SELECT 1 FROM member_history h WHERE h.org_id = %(org)s AND h.user_id = s."userId" '
        '      AND h.valid_from <= s."createdAt" AND (h.valid_to IS NULL OR h.valid_to > s."createdAt")))) '
        'GROUP BY s."userId"', {"org": org_id, "before": before})
    return {r["user_id"]: r["last_login"] for r in await cur.fetchall()}


# The label each id that never was a member of the organization carried as of the window's end: the
# label of its latest labelled query before then (the latest time, then the greatest label). Whole UTC
# days before the end's day come from the user-daily rollup (last_label), the end's own day up to the end
# from the raw rows. Only ids with a query in the window are looked up.
_LABELS_SQL = """
WITH ids AS (
    SELECT d.user_id FROM audit_user_daily d
    WHERE d.org_id = %(org)s AND d.day >= %(d0)s AND d.day < %(d1)s AND d.user_id IS NOT NULL
    UNION
    SELECT x.user_id FROM audit_log x
    WHERE x.org_id = %(org)s AND x.success AND x.deleted_at IS NULL AND x.user_id IS NOT NULL
      AND ((x."timestamp" >= %(h0)s AND x."timestamp" < %(h1)s) OR (x."timestamp" >= %(t0)s AND x."timestamp" < %(t1)s))
)
SELECT i.user_id, l.label
FROM ids i
CROSS JOIN LATERAL (
    SELECT c.label FROM (
        (SELECT d.last_label AS label, d.last_label_ts AS ts FROM audit_user_daily d
         WHERE d.org_id = %(org)s AND d.user_id = i.user_id AND d.day < %(lday)s AND d.last_label IS NOT NULL
         ORDER BY d.day DESC LIMIT 1)
        UNION ALL
        (SELECT x.user_label, x."timestamp" FROM audit_log x
         WHERE x.org_id = %(org)s AND x.user_id = i.user_id AND x.success AND x.deleted_at IS NULL
           AND x.user_label IS NOT NULL AND x."timestamp" >= %(lday_start)s AND x."timestamp" < %(wend)s
         ORDER BY x."timestamp" DESC, x.user_label DESC LIMIT 1)
    ) c ORDER BY c.ts DESC, c.label DESC LIMIT 1
) l
WHERE NOT EXISTS (SELECT 1 FROM member_history h WHERE h.org_id = %(org)s AND h.user_id = i.user_id)
"""


async def stranger_labels(conn: AsyncConnection, params: dict[str, Any]) -> dict[str, str]:
    """``{user_id: label}`` for the ids of the window that never were members (see :data:`_LABELS_SQL`);
    ``params`` are the report's :func:`window_params`."""
    end_day = params["wend"].astimezone(UTC).date()
    cur = await conn.execute(_LABELS_SQL, {**params, "lday": end_day, "lday_start": _midnight(end_day)})
    return {r["user_id"]: r["label"] for r in await cur.fetchall()}


async def org_slug(conn: AsyncConnection, org_id: str) -> str:
    cur = await conn.execute("SELECT slug FROM organization WHERE id = %s", (org_id,))
    row = await cur.fetchone()
    return row["slug"] if row else org_id

