"""Report timings (ours end to end over HTTP vs the naive baseline, interleaved) and exactness checks
against brute-force SQL over ``audit_log``."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import orjson

from atlas_compliance.db.pool import Database
from atlas_compliance.reports import repository as repo
from atlas_compliance.reports.window import ReportFilters, parse_window

from .baseline import Baseline
from .common import connect, stats

TABLES = "CASE WHEN jsonb_typeof(a.tables_accessed) = 'array' THEN a.tables_accessed ELSE '[]'::jsonb END"
COLUMNS = ("CASE WHEN jsonb_typeof(a.columns_by_table) = 'object' THEN CASE WHEN jsonb_typeof("
           "a.columns_by_table -> t.table_name) = 'array' THEN a.columns_by_table -> t.table_name ELSE '[]' END "
           "WHEN jsonb_typeof(a.columns_accessed) = 'array' THEN a.columns_accessed ELSE '[]'::jsonb END")
IN_WINDOW = ('a.org_id = %(org)s AND a.success AND a.deleted_at IS NULL '
             'AND a."timestamp" >= %(start)s AND a."timestamp" < %(end)s')

# Independent of the app's SQL: raw audit_log rows, no rollups, no helper functions.
BRUTE_PAIRS = f"""
SELECT t.table_name, a.user_id, count(DISTINCT a.id) AS n, min(a."timestamp") AS first,
       max(a."timestamp") AS last, coalesce(array_agg(DISTINCT c) FILTER (WHERE c IS NOT NULL), '{{}}') AS columns
FROM audit_log a
CROSS JOIN LATERAL jsonb_array_elements_text({TABLES}) AS t(table_name)
LEFT JOIN LATERAL jsonb_array_elements_text({COLUMNS}) AS c ON true
WHERE {IN_WINDOW}
GROUP BY t.table_name, a.user_id
"""  # noqa: S608 - fixed text

BRUTE_DA_TOTAL = f"""
SELECT count(DISTINCT a.id) FROM audit_log a WHERE {IN_WINDOW} AND jsonb_array_length({TABLES}) > 0
"""  # noqa: S608 - fixed text

BRUTE_USERS = f"""
SELECT a.user_id, count(DISTINCT a.id) AS n, max(a."timestamp") AS last,
       coalesce(array_agg(DISTINCT t.table_name) FILTER (WHERE t.table_name IS NOT NULL), '{{}}') AS tables
FROM audit_log a
LEFT JOIN LATERAL jsonb_array_elements_text({TABLES}) AS t(table_name) ON true
WHERE {IN_WINDOW}
GROUP BY a.user_id
"""  # noqa: S608 - fixed text

BRUTE_LOGINS = ('SELECT "userId", max("createdAt") FROM session WHERE "activeOrganizationId" = %(org)s '
                'AND "createdAt" < %(end)s GROUP BY "userId"')


@dataclass(frozen=True)
class Case:
    name: str
    report: str  # data-access | user-activity
    days: int
    tz: str = "UTC"
    target_ms: float | None = None

    def dates(self, last_day: date) -> tuple[str, str]:
        return (last_day - timedelta(days=self.days - 1)).isoformat(), last_day.isoformat()


CASES = (
    Case("Data Access, 30 days", "data-access", 30, target_ms=150),
    Case("Data Access, 90 days", "data-access", 90, target_ms=250),
    Case("User Activity, 30 days", "user-activity", 30, target_ms=100),
    Case("Data Access, 30 days, tz=America/New_York (raw edges)", "data-access", 30, tz="America/New_York"),
)


def _ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


class ReportBench:
    def __init__(self, url: str, base_url: str, token: str, org_id: str, last_day: date) -> None:
        self.url = url
        self.org_id = org_id
        self.last_day = last_day
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=300)
        self.baseline = Baseline(url)

    def close(self) -> None:
        self.http.close()
        self.baseline.close()

    def ours(self, case: Case, **extra) -> tuple[float, dict[str, Any]]:
        start, end = case.dates(self.last_day)
        began = time.perf_counter()
        resp = self.http.get(f"/api/v1/admin/compliance/reports/{case.report}",
                             params={"startDate": start, "endDate": end, "tz": case.tz, **extra})
        body = resp.content
        elapsed = time.perf_counter() - began
        if resp.status_code != 200:
            raise SystemExit(f"{case.name}: HTTP {resp.status_code}: {resp.text[:500]}")
        return elapsed, orjson.loads(body)

    def base(self, case: Case) -> tuple[float, dict[str, Any]]:
        window = parse_window(*case.dates(self.last_day), case.tz)
        began = time.perf_counter()
        fn = self.baseline.data_access if case.report == "data-access" else self.baseline.user_activity
        out = fn(self.org_id, window.start, window.end)
        return time.perf_counter() - began, out

    def sql_only(self, case: Case, rounds: int = 5) -> dict[str, Any]:
        """Diagnostic: our report SQL alone (from ``repository``, first page), in process, once on a
        connection of the app's own pool with the report session settings the repository applies, once
        with the PostgreSQL server's defaults (e.g. JIT on): how much of the end-to-end time is SQL."""
        window = parse_window(*case.dates(self.last_day), case.tz)
        filters = ReportFilters()
        cap = 10_000 if case.report == "data-access" else 5_000
        params = {**repo.window_params(self.org_id, window, filters), "limit": cap, "offset": 0}
        sql = (repo.data_access_sql(filters, paged=True) if case.report == "data-access"
               else repo.user_activity_sql(filters, paged=True))

        async def as_the_app() -> list[float]:
            db = Database(self.url, max_size=1)
            await db.open()
            samples = []
            try:
                for i in range(rounds + 1):
                    async with db.transaction() as conn:
                        if hasattr(repo, "set_report_memory"):
                            await repo.set_report_memory(conn)
                        began = time.perf_counter()
                        await repo.fetch_all(conn, sql, params)
                        if i:
                            samples.append(time.perf_counter() - began)
            finally:
                await db.close()
            return samples

        server_defaults = []
        with connect(self.url) as conn:
            conn.execute(sql, params).fetchall()
            for _ in range(rounds):
                began = time.perf_counter()
                conn.execute(sql, params).fetchall()
                server_defaults.append(time.perf_counter() - began)
        return {"app": stats(asyncio.run(as_the_app())), "server_defaults": stats(server_defaults)}

    def measure(self, case: Case, warmups: int, repeat: int, log=print) -> dict[str, Any]:
        """Alternate ours / baseline: ``warmups`` unrecorded rounds, then ``repeat`` recorded ones."""
        ours_t: list[float] = []
        base_t: list[float] = []
        doc: dict[str, Any] = {}
        base_out: dict[str, Any] = {}
        for i in range(warmups + repeat):
            t_ours, doc = self.ours(case)
            t_base, base_out = self.base(case)
            if i >= warmups:
                ours_t.append(t_ours)
                base_t.append(t_base)
        o, b = stats(ours_t), stats(base_t)
        ratio = round(b["median_ms"] / o["median_ms"], 1)
        passed = None if case.target_ms is None else (o["median_ms"] <= case.target_ms and ratio >= 10)
        log(f"  {case.name}: ours median {o['median_ms']} ms (p95 {o['p95_ms']}), baseline median "
            f"{b['median_ms']} ms (p95 {b['p95_ms']}), ×{ratio}" + ("" if passed is None else
                                                                     f" → {'PASS' if passed else 'FAIL'}"))
        return {"case": case.name, "report": case.report, "days": case.days, "tz": case.tz,
                "window": doc.get("window"), "ours": o, "baseline": b, "ratio": ratio, "target_ms": case.target_ms,
                "pass": passed, "ours_rows_returned": len(doc.get("rows", [])), "ours_total_rows": doc.get("totalRows"),
                "baseline_sql_rows": base_out.get("sqlRows"), "baseline_rows": len(base_out.get("rows", [])),
                "ours_samples_ms": [round(t * 1000, 2) for t in ours_t],
                "baseline_samples_ms": [round(t * 1000, 2) for t in base_t]}

    # --- exactness ------------------------------------------------------------------------------
    def _all_pages(self, case: Case, cap: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        offset = 0
        while True:
            _, doc = self.ours(case, limit=cap, offset=offset)
            rows.extend(doc["rows"])
            offset += cap
            if offset >= doc["totalRows"]:
                return rows, doc

    def check(self, case: Case) -> list[str]:
        """Every row and the summary of ours against brute-force SQL; returns the mismatches."""
        window = parse_window(*case.dates(self.last_day), case.tz)
        params = {"org": self.org_id, "start": window.start, "end": window.end}
        with connect(self.url) as conn:
            conn.execute("SET work_mem = '256MB'")
            if case.report == "data-access":
                truth = conn.execute(BRUTE_PAIRS, params).fetchall()
                total = conn.execute(BRUTE_DA_TOTAL, params).fetchone()[0]
                logins = None
            else:
                truth = conn.execute(BRUTE_USERS, params).fetchall()
                members = {r[0] for r in conn.execute('SELECT "userId" FROM member WHERE "organizationId" = %s',
                                                      (self.org_id,))}
                logins = dict(conn.execute(BRUTE_LOGINS, params).fetchall())
                total = None
        if case.report == "data-access":
            rows, doc = self._all_pages(case, 10_000)
            return _check_data_access(case.name, rows, doc, truth, total)
        rows, doc = self._all_pages(case, 5_000)
        return _check_user_activity(case.name, rows, doc, truth, members, logins or {})


def _ordered(name: str, rows: list[dict[str, Any]], key: str) -> list[str]:
    counts = [r[key] for r in rows]
    if any(a < b for a, b in zip(counts, counts[1:], strict=False)):
        return [f"{name}: rows are not ordered by {key} descending"]
    return []


def _check_data_access(name: str, rows, doc, truth, total) -> list[str]:
    errors = _ordered(name, rows, "queryCount")
    expected = {(t, u): (n, first, last, sorted(cols)) for t, u, n, first, last, cols in truth}
    got = {(r["tableName"], r["userId"]): r for r in rows}
    if len(got) != len(rows):
        errors.append(f"{name}: {len(rows) - len(got)} duplicate (table, user) rows")
    if doc["totalRows"] != len(expected) or len(rows) != len(expected):
        errors.append(f"{name}: totalRows {doc['totalRows']} / rows {len(rows)}, brute force {len(expected)} pairs")
    for key, (n, first, last, cols) in expected.items():
        r = got.get(key)
        if r is None:
            errors.append(f"{name}: missing row {key}")
        elif (r["queryCount"], _ts(r["firstAccess"]), _ts(r["lastAccess"])) != (n, first, last):
            errors.append(f"{name}: {key}: ours count/first/last {r['queryCount']}/{r['firstAccess']}/"
                          f"{r['lastAccess']}, brute force {n}/{first}/{last}")
        elif sorted(r["uniqueColumns"]) != cols:
            errors.append(f"{name}: {key}: columns {r['uniqueColumns']} vs brute force {cols}")
    for key in set(got) - set(expected):
        errors.append(f"{name}: unexpected row {key}")
    s = doc["summary"]
    want = {"totalQueries": total, "uniqueUsers": len({u for _, u in expected if u is not None}),
            "uniqueTables": len({t for t, _ in expected})}
    for field, value in want.items():
        if s[field] != value:
            errors.append(f"{name}: summary {field} {s[field]} vs brute force {value}")
    return errors[:50]


def _check_user_activity(name: str, rows, doc, truth, members, logins) -> list[str]:
    errors = _ordered(name, rows, "totalQueries")
    expected = {u: (n, last, sorted(tabs)) for u, n, last, tabs in truth}
    for m in members - set(expected):
        expected[m] = (0, None, [])
    got = {r["userId"]: r for r in rows}
    if doc["totalRows"] != len(expected) or len(rows) != len(expected):
        errors.append(f"{name}: totalRows {doc['totalRows']} / rows {len(rows)}, brute force {len(expected)} users")
    for uid, (n, last, tabs) in expected.items():
        r = got.get(uid)
        if r is None:
            errors.append(f"{name}: missing user {uid}")
            continue
        if (r["totalQueries"], _ts(r["lastActiveAt"])) != (n, last):
            errors.append(f"{name}: {uid}: ours {r['totalQueries']}/{r['lastActiveAt']}, brute force {n}/{last}")
        if sorted(r["tablesAccessed"]) != tabs:
            errors.append(f"{name}: {uid}: tables differ ({len(r['tablesAccessed'])} vs {len(tabs)})")
        if uid is not None and _ts(r["lastLoginAt"]) != logins.get(uid):
            errors.append(f"{name}: {uid}: lastLoginAt {r['lastLoginAt']} vs brute force {logins.get(uid)}")
    s = doc["summary"]
    want = {"totalQueries": sum(v[0] for v in expected.values()),
            "totalUsers": len([u for u in expected if u is not None]),
            "activeUsers": len([u for u, v in expected.items() if u is not None and v[0] > 0])}
    for field, value in want.items():
        if s[field] != value:
            errors.append(f"{name}: summary {field} {s[field]} vs brute force {value}")
    return errors[:50]
