"""Flag evaluation's cost (issue 21): one UTC day of the largest organization of the bench database.

The bench database is left as it is: migration 0021 is applied inside the measuring transaction, which is
rolled back at the end, so the flag tables exist only while it runs.

    .venv/bin/python -m bench.flags [--db-name atlas_bench] [--day YYYY-MM-DD] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import date

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from atlas_compliance.flags import repository as repo
from atlas_compliance.flags import service
from atlas_compliance.flags.rules import evaluate

from .common import DEFAULT_DB_NAME, DEFAULT_SERVER_URL, with_dbname


def _migration_sql() -> str:
    import importlib
    return importlib.import_module("atlas_compliance.db.migrations.versions.0021_access_flags").SQL


async def measure(url: str, day: date | None, repeat: int) -> None:
    async with await AsyncConnection.connect(url, row_factory=dict_row) as conn:
        cur = await conn.execute("SELECT org_id, count(*) AS n, max(day) AS last FROM audit_access_daily "
                                 "GROUP BY org_id ORDER BY n DESC LIMIT 1")
        top = await cur.fetchone()
        assert top is not None
        org_id, day = top["org_id"], day or top["last"]
        await conn.execute(_migration_sql())
        timings, flags, rows = [], 0, 0
        for _ in range(repeat):
            await conn.execute("SAVEPOINT run")
            start = time.perf_counter()
            t = await repo.thresholds(conn, org_id)
            i = await service._inputs(conn, org_id, day, day, t)
            found = evaluate(i.activity, i.earlier, i.pii, i.first_seen, day, day, t, i.bulks)
            for f in found:
                await repo.upsert_flag(conn, {
                    "org": org_id, "rule": f.rule, "user": f.user_id, "table": f.table_name,
                    "columns": list(f.columns), "day": f.day, "observed": f.observed, "baseline": f.baseline,
                    "threshold": f.threshold, "explanation": f.explanation})
            timings.append(time.perf_counter() - start)
            flags, rows = len(found), len(i.activity)
            await conn.execute("ROLLBACK TO SAVEPOINT run")
        await conn.rollback()
    print(f"org {org_id}, day {day}: {rows:,} (day, user, PII table) reads in the day and its baseline, "
          f"{flags} flag(s); evaluation {statistics.median(timings) * 1000:.0f} ms median of {repeat} "
          f"(min {min(timings) * 1000:.0f}, max {max(timings) * 1000:.0f})")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.flags", description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--db-name", default=DEFAULT_DB_NAME)
    parser.add_argument("--day", type=date.fromisoformat, default=None, help="default: the org's last day")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(measure(with_dbname(args.server_url, args.db_name), args.day, args.repeat))


if __name__ == "__main__":
    main()
