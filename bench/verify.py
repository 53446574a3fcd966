"""Full verification of the bench database: every org's hash chains and its rollups recomputed.

`audit verify` (no --org, no --since) does, per org, the chain verification (audit log, tombstones,
admin actions) and the rollup comparison (user-daily, access-daily, access-weekly against the raw rows),
largest org first, one job per core at a time (audit/verification.py). This times that whole run on the
DESIGN §7 dataset (2,000,000 rows in 20 orgs; generated when missing), and each part of the largest org
alone, `--repeat` times (medians). Issue 15's target: the full verification within 60 s. Prints JSON; `--out FILE` writes it too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

from atlas_compliance.audit import chain, rollups, verification
from atlas_compliance.db.pool import Database

from .common import DEFAULT_DB_NAME, DEFAULT_SERVER_URL, DatasetParams, connect, stats
from .generate import ensure_dataset


async def measure(url: str, repeat: int, workers: int) -> dict:
    """``audit verify``'s own path (every org, chains and rollups, ``workers`` jobs at a time), then each part
    of the largest org alone, ``repeat`` times."""
    with connect(url) as conn:
        orgs = conn.execute("SELECT o.id, o.slug, count(a.id) AS n FROM organization o "
                            "LEFT JOIN audit_log a ON a.org_id = o.id GROUP BY 1, 2 ORDER BY 3 DESC").fetchall()
    db = Database(url, max_size=max(2, workers), statement_timeout_ms=0)
    await db.open()
    whole, largest_chain, largest_rollups = [], [], []
    differences = 0
    try:
        for _ in range(repeat):
            t = time.perf_counter()
            found = await verification.verify_orgs(db, [{"id": o[0], "slug": o[1]} for o in orgs], workers=workers)
            whole.append(time.perf_counter() - t)
            assert all(f.chain.ok for f in found), [f.chain.first_break for f in found if not f.chain.ok]
            differences += sum(f.rollups.difference_count for f in found if f.rollups is not None)
            t = time.perf_counter()
            async with db.transaction() as conn:
                await chain.verify_chain(conn, orgs[0][0])
            largest_chain.append(time.perf_counter() - t)
            t = time.perf_counter()
            async with db.transaction() as conn:
                await rollups.verify_rollups(conn, orgs[0][0])
            largest_rollups.append(time.perf_counter() - t)
    finally:
        await db.close()
    return {"orgs": len(orgs), "rows": sum(r[2] for r in orgs), "largest_org_rows": orgs[0][2], "repeat": repeat,
            "workers": workers, "rollup_differences_found": differences, "full_verify": stats(whole),
            "chains_largest_org": stats(largest_chain), "rollups_largest_org": stats(largest_rollups),
            "target_s": 60, "load_average_1min": os.getloadavg()[0], "cpus": os.cpu_count()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.verify", description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--db-name", default=DEFAULT_DB_NAME)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the DESIGN §7 dataset (default 1)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=verification.default_workers(),
                        help="jobs at once, as `audit verify --workers` (default: one per core, at most 4)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    url, generation = ensure_dataset(args.server_url, args.db_name, DatasetParams.scaled(args.scale))
    out = asyncio.run(measure(url, args.repeat, args.workers)) | {"generation": generation}
    text = json.dumps(out, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
