"""EXPLAIN (ANALYZE, BUFFERS) of our report SQL for a bench case, for finding where the time goes.

    python -m bench.explain [--case 0] [--summary] [--db-name atlas_bench]

The SQL and parameters come from ``atlas_compliance.reports.repository`` (``data_access_sql`` /
``user_activity_sql`` with ``window_params``), exactly as ``service.generate`` runs them (first page).
"""

from __future__ import annotations

import argparse
import asyncio

from atlas_compliance.db.pool import Database
from atlas_compliance.reports import repository as repo
from atlas_compliance.reports.window import ReportFilters, parse_window

from .common import DEFAULT_DB_NAME, DEFAULT_SERVER_URL, connect, largest_org, with_dbname
from .reports import CASES
from .run import _last_day


def explain(url: str, case_index: int, *, analyze: bool = True) -> str:
    case = CASES[case_index]
    with connect(url) as conn:
        org_id, _, _ = largest_org(conn)
    window = parse_window(*case.dates(_last_day(url, org_id)), case.tz)
    filters = ReportFilters()
    cap = 10_000 if case.report == "data-access" else 5_000
    params = {**repo.window_params(org_id, window, filters), "limit": cap, "offset": 0}
    sql = (repo.data_access_sql(filters, paged=True) if case.report == "data-access"
           else repo.user_activity_sql(filters, paged=True))
    opts = "ANALYZE, BUFFERS, VERBOSE false" if analyze else "VERBOSE false"

    async def run() -> list[str]:
        # On the app's own pool (its connection options, e.g. jit=off) with the report session settings.
        db = Database(url, max_size=1)
        await db.open()
        try:
            async with db.transaction() as conn:
                if hasattr(repo, "set_report_memory"):
                    await repo.set_report_memory(conn)
                await repo.fetch_all(conn, sql, params)  # warm the cache like the measured runs
                rows = await repo.fetch_all(conn, f"EXPLAIN ({opts}) {sql}", params)  # noqa: S608 - our SQL
                settings = await repo.fetch_all(conn, "SELECT current_setting('jit') AS jit, "
                                                "current_setting('work_mem') AS work_mem", {})
        finally:
            await db.close()
        return [f"-- session: jit={settings[0]['jit']}, work_mem={settings[0]['work_mem']}",
                *(r["QUERY PLAN"] for r in rows)]

    return f"-- {case.name}\n-- params: {params}\n" + "\n".join(asyncio.run(run()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.explain", description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--db-name", default=DEFAULT_DB_NAME)
    parser.add_argument("--case", type=int, default=0, help=", ".join(f"{i}: {c.name}" for i, c in enumerate(CASES)))
    parser.add_argument("--sql", action="store_true", help="print the SQL text as well")
    args = parser.parse_args(argv)
    url = with_dbname(args.server_url, args.db_name)
    if args.sql:
        case = CASES[args.case]
        print(repo.data_access_sql(ReportFilters(), paged=True) if case.report == "data-access"
              else repo.user_activity_sql(ReportFilters(), paged=True))
    print(explain(url, args.case))


if __name__ == "__main__":
    main()
