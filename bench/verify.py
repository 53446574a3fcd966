"""Full verification of the bench database: every org's hash chains and its rollups recomputed.

`audit verify` (no --org, no --since) does, per org, the chain verification (audit log, tombstones,
admin actions) and the rollup comparison (user-daily, access-daily, access-weekly against the raw rows).
This times both for every org of the DESIGN §7 dataset (2,000,000 rows in 20 orgs; generated when
missing), `--repeat` times; the figures are medians of the whole-database totals, with the largest org
apart. Issue 15's target: the full verification within 60 s. Prints JSON; `--out FILE` writes it too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

from atlas_compliance.audit import chain, rollups
from atlas_compliance.db.pool import Database

from .common import DEFAULT_DB_NAME, DEFAULT_SERVER_URL, DatasetParams, connect, stats
from .generate import ensure_dataset


async def measure(url: str, repeat: int) -> dict:
    with connect(url) as conn:
        orgs = conn.execute("SELECT o.id, o.slug, count(a.id) AS n FROM organization o "
                            "LEFT JOIN audit_log a ON a.org_id = o.id GROUP BY 1, 2 ORDER BY 3 DESC").fetchall()
    db = Database(url, max_size=2, statement_timeout_ms=0)
    await db.open()
    totals_chain, totals_rollups, totals, largest_chain, largest_rollups = [], [], [], [], []
    differences = 0
    try:
        for _ in range(repeat):
            spent_chain = spent_rollups = 0.0
            for i, (org_id, _slug, _rows) in enumerate(orgs):
                t = time.perf_counter()
                async with db.transaction() as conn:
                    found = await chain.verify_chain(conn, org_id)
                middle = time.perf_counter()
                async with db.transaction() as conn:
                    checked = await rollups.verify_rollups(conn, org_id)
                end = time.perf_counter()
                assert found.ok, (org_id, found.first_break)
                differences += checked.difference_count
                spent_chain += middle - t
                spent_rollups += end - middle
                if i == 0:
                    largest_chain.append(middle - t)
                    largest_rollups.append(end - middle)
            totals_chain.append(spent_chain)
            totals_rollups.append(spent_rollups)
            totals.append(spent_chain + spent_rollups)
    finally:
        await db.close()
    return {"orgs": len(orgs), "rows": sum(r[2] for r in orgs), "largest_org_rows": orgs[0][2], "repeat": repeat,
            "rollup_differences_found": differences,
            "full_verify": stats(totals), "chains_all_orgs": stats(totals_chain),
            "rollups_all_orgs": stats(totals_rollups), "chains_largest_org": stats(largest_chain),
            "rollups_largest_org": stats(largest_rollups), "target_s": 60,
            "load_average_1min": os.getloadavg()[0], "cpus": os.cpu_count()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.verify", description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--db-name", default=DEFAULT_DB_NAME)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the DESIGN §7 dataset (default 1)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    url, generation = ensure_dataset(args.server_url, args.db_name, DatasetParams.scaled(args.scale))
    out = asyncio.run(measure(url, args.repeat)) | {"generation": generation}
    text = json.dumps(out, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
