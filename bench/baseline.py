"""The naive report algorithm the spec describes (reference notes §3.3–§3.4), as a speed baseline.

Faithful to the reference's SQL shape and in-memory merge, with two corrections so that it computes
over the same rows as ours: the window is half-open ``[start, end)`` and ``deleted_at IS NULL`` is
applied. Its known counting bugs are kept (they are what it costs, not what it should answer).
Run with psycopg directly; the enrichment queries run concurrently, like ``Promise.allSettled``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import psycopg

from .common import connect

TABLES = "CASE WHEN jsonb_typeof(a.tables_accessed) = 'array' THEN a.tables_accessed ELSE '[]'::jsonb END"
WHERE = ('a.org_id = %(org)s AND a.success = true AND a.deleted_at IS NULL '
         'AND a."timestamp" >= %(start)s AND a."timestamp" < %(end)s')

DATA_ACCESS_SQL = f"""
SELECT t.table_name, a.user_id, u.email AS user_email, COUNT(*)::text AS query_count,
       a.columns_accessed AS all_columns, MIN(a."timestamp")::text AS first_access,
       MAX(a."timestamp")::text AS last_access
FROM audit_log a
CROSS JOIN LATERAL jsonb_array_elements_text({TABLES}) AS t(table_name)
LEFT JOIN "user" u ON a.user_id = u.id
WHERE {WHERE}
GROUP BY t.table_name, a.user_id, u.email, a.columns_accessed
ORDER BY COUNT(*) DESC
LIMIT 10000
"""  # noqa: S608 - fixed text

USER_ACTIVITY_SQL = f"""
SELECT a.user_id, u.email AS user_email, COUNT(*)::text AS total_queries,
       jsonb_agg(DISTINCT t.table_name) FILTER (WHERE t.table_name IS NOT NULL) AS tables_list,
       MAX(a."timestamp")::text AS last_active_at
FROM audit_log a
LEFT JOIN "user" u ON a.user_id = u.id
LEFT JOIN LATERAL jsonb_array_elements_text({TABLES}) AS t(table_name) ON true
WHERE {WHERE}
GROUP BY a.user_id, u.email
ORDER BY COUNT(*) DESC
LIMIT 5000
"""  # noqa: S608 - fixed text

ROLES_SQL = 'SELECT "userId" AS user_id, role FROM member WHERE "organizationId" = %s AND "userId" = ANY(%s)'
PII_SQL = "SELECT DISTINCT table_name FROM pii_column_classifications WHERE org_id = %s AND dismissed = false"
LOGINS_SQL = ('SELECT "userId", MAX("createdAt")::text AS last_login FROM session '
              'WHERE "userId" = ANY(%s) GROUP BY "userId"')


def parse_jsonb_array(value: Any) -> list[str]:
    """``parseJsonbArray``: an array (or a JSON string of one), string members only, else []."""
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError:
            return []
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, str)]


class Baseline:
    """Three connections: the main query's, and one per concurrent enrichment query."""

    def __init__(self, url: str) -> None:
        self.conns = [connect(url, autocommit=True) for _ in range(3)]
        self.pool = ThreadPoolExecutor(max_workers=2)

    def close(self) -> None:
        self.pool.shutdown()
        for conn in self.conns:
            conn.close()

    def _all(self, i: int, sql: str, params: Any) -> list[tuple]:
        return self.conns[i].execute(sql, params).fetchall()

    def _settled(self, *calls) -> list[Any]:
        """Run enrichment queries concurrently; a failure is ignored (allSettled), giving None."""
        futures = [self.pool.submit(self._all, i + 1, sql, params) for i, (sql, params) in enumerate(calls)]
        out = []
        for f in futures:
            try:
                out.append(f.result())
            except psycopg.Error:
                out.append(None)
        return out

    def data_access(self, org_id: str, start: datetime, end: datetime) -> dict[str, Any]:
        raw = self._all(0, DATA_ACCESS_SQL, {"org": org_id, "start": start, "end": end})
        merged: dict[str, dict[str, Any]] = {}
        for table, user_id, email, count, columns, first, last in raw:
            key = f"{table}::{user_id}"
            row = merged.get(key)
            cols = parse_jsonb_array(columns)
            if row is None:
                merged[key] = {"tableName": table, "userId": user_id, "userEmail": email, "userRole": None,
                               "queryCount": int(count), "uniqueColumns": list(dict.fromkeys(cols)),
                               "hasPII": False, "firstAccess": first, "lastAccess": last}
                continue
            row["queryCount"] += int(count)
            seen = set(row["uniqueColumns"])
            row["uniqueColumns"].extend(c for c in dict.fromkeys(cols) if c not in seen)
            row["firstAccess"] = min(row["firstAccess"], first)  # string comparison, as the reference does
            row["lastAccess"] = max(row["lastAccess"], last)
        rows = list(merged.values())
        if rows:
            users = list({r["userId"] for r in rows if r["userId"]})
            roles, pii = self._settled((ROLES_SQL, (org_id, users)), (PII_SQL, (org_id,)))
            role_of = dict(roles or [])
            pii_tables = {t for (t,) in pii or []}
            for r in rows:
                r["userRole"] = role_of.get(r["userId"]) if r["userId"] else None
                r["hasPII"] = r["tableName"].lower() in pii_tables
        summary = {"totalQueries": sum(r["queryCount"] for r in rows),
                   "uniqueUsers": len({r["userId"] for r in rows}),
                   "uniqueTables": len({r["tableName"] for r in rows}),
                   "piiTablesAccessed": len({r["tableName"] for r in rows if r["hasPII"]})}
        return {"rows": rows, "summary": summary, "sqlRows": len(raw)}

    def user_activity(self, org_id: str, start: datetime, end: datetime) -> dict[str, Any]:
        raw = self._all(0, USER_ACTIVITY_SQL, {"org": org_id, "start": start, "end": end})
        users = [r[0] for r in raw if r[0]]
        logins, roles = self._settled((LOGINS_SQL, (users,)), (ROLES_SQL, (org_id, users)))
        login_of = dict(logins or [])
        role_of = dict(roles or [])
        rows = [{"userId": uid, "userEmail": email, "role": role_of.get(uid), "totalQueries": int(total),
                 "tablesAccessed": parse_jsonb_array(tables), "lastActiveAt": last,
                 "lastLoginAt": login_of.get(uid)} for uid, email, total, tables, last in raw]
        summary = {"totalUsers": len(rows), "activeUsers": sum(1 for r in rows if r["totalQueries"] > 0),
                   "totalQueries": sum(r["totalQueries"] for r in rows)}
        return {"rows": rows, "summary": summary, "sqlRows": len(raw)}
