"""Signed checkpoints on the bench dataset: the cost of writing one per org, and of checking one.

Checking a checkpoint runs the chain verification of its org plus the checkpoint's own queries; the
baseline is the plain chain verification of the same org, run alternately with it (medians and ratio).
Prints a JSON summary and, with ``--results``, appends a section to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

from atlas_compliance.audit import chain, checkpoints, signing
from atlas_compliance.config import Settings
from atlas_compliance.db.pool import Database

from .common import DEFAULT_SERVER_URL, connect, largest_org, stats, with_dbname


async def measure(url: str, repeat: int) -> dict:
    with connect(url) as conn:
        org_id, slug, rows = largest_org(conn)
        orgs = conn.execute("SELECT count(*) FROM organization").fetchone()[0]
    tmp = Path(tempfile.mkdtemp(prefix="atlas-bench-cp-"))
    settings = Settings(database_url=url, data_dir=tmp, checkpoint_dir=tmp / "cp")
    key = signing.load_signing_key(settings)
    db = Database(url, max_size=2, statement_timeout_ms=0)
    await db.open()
    try:
        write_all, write_one, check, baseline = [], [], [], []
        org = {"id": org_id, "slug": slug}
        for _ in range(repeat):
            t = time.perf_counter()
            await checkpoints.write_checkpoints(db, settings, key, tmp / "all")
            write_all.append(time.perf_counter() - t)
            t = time.perf_counter()
            [path] = await checkpoints.write_checkpoints(db, settings, key, tmp / "one", [org])
            write_one.append(time.perf_counter() - t)
            cp = checkpoints.read_checkpoint(path, key.verifying())
            # Alternate: the checkpoint check (which includes the chain verification), then the plain one.
            t = time.perf_counter()
            async with db.transaction() as conn:
                await checkpoints.check_org(conn, org_id, [cp])
            check.append(time.perf_counter() - t)
            assert cp.ok, cp.findings
            t = time.perf_counter()
            async with db.transaction() as conn:
                result = await chain.verify_chain(conn, org_id)
            baseline.append(time.perf_counter() - t)
            assert result.ok
        statement = json.loads(path.read_text())["statement"]["chains"]["audit_log"]
        return {
            "orgs": orgs, "largest_org_rows": rows, "repeat": repeat,
            "write_all_orgs": stats(write_all), "write_largest_org": stats(write_one),
            "check_largest_org": stats(check), "verify_chain_largest_org": stats(baseline),
            "check_over_verify_ratio": round(stats(check)["median_ms"] / stats(baseline)["median_ms"], 3),
            "file_bytes_largest_org": path.stat().st_size, "kept_until_entries": len(statement["keptUntil"]),
            "purged_ranges": len(statement["purged"]), "load_average_1min": os.getloadavg()[0],
        }
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.checkpoints", description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--db-name", default="atlas_bench")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    out = asyncio.run(measure(with_dbname(args.server_url, args.db_name), args.repeat))
    out["load_average_1min_before"] = load_before
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
