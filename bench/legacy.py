"""Reports on rows in Atlas's legacy shape, side by side with the bench's own data (DESIGN §7).

    python -m bench.legacy [--scale 1.0] [--repeat 15] [--warmups 3] [--no-check]
    python -m bench.run --legacy …   (the same)

Two datasets of DESIGN §7's size, generated alike but for the shape of the columns: ``atlas_bench``
(columns_by_table on 99 % of rows) and ``atlas_bench_legacy`` (every row with a flat
``columns_accessed`` and no ``columns_by_table``, as plain COPY from an older Atlas writes them). One
server per database; each round requests the same report from both, alternating which goes first, so
both see the same machine load. Then every row of the legacy dataset's reports is checked against
brute-force SQL. Writes ``bench/legacy-results.json`` and prints the Markdown table for RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from . import results as results_io
from .common import (
    DEFAULT_DB_NAME,
    DEFAULT_SERVER_URL,
    LEGACY_DB_NAME,
    DatasetParams,
    connect,
    largest_org,
    stats,
)
from .generate import ensure_dataset
from .reports import CASES, ReportBench
from .run import _last_day
from .server import Server, admin_token

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "legacy-results.json"


def _bench(url: str, server: Server) -> ReportBench:
    with connect(url) as conn:
        org_id, slug, _ = largest_org(conn)
    return ReportBench(url, server.base_url, admin_token(url, slug), org_id, _last_day(url, org_id))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.legacy", description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--db-name", default=DEFAULT_DB_NAME, help="the bench's own dataset")
    parser.add_argument("--legacy-db-name", default=LEGACY_DB_NAME, help="the legacy-shape dataset")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--warmups", type=int, default=3)
    parser.add_argument("--no-check", action="store_true", help="skip the exactness check")
    args = parser.parse_args(argv)
    normal_url, _ = ensure_dataset(args.server_url, args.db_name, DatasetParams.scaled(args.scale))
    legacy_url, _ = ensure_dataset(args.server_url, args.legacy_db_name,
                                   DatasetParams.scaled(args.scale, legacy=True))
    cases = [c for c in CASES if c.target_ms is not None]
    out: dict = {"scale": args.scale, "code": results_io.code_facts(), "machine": results_io.machine_facts(legacy_url),
                 "load_before": os.getloadavg(), "cases": []}
    errors: list[str] = []
    with Server(normal_url) as normal_server, Server(legacy_url) as legacy_server:
        normal, legacy = _bench(normal_url, normal_server), _bench(legacy_url, legacy_server)
        try:
            for case in cases:
                samples: dict[str, list[float]] = {"normal": [], "legacy": []}
                rows: dict[str, int] = {}
                for i in range(args.warmups + args.repeat):
                    order = [("normal", normal), ("legacy", legacy)]
                    for name, bench in order if i % 2 == 0 else order[::-1]:
                        elapsed, doc = bench.ours(case)
                        rows[name] = doc["totalRows"]
                        if i >= args.warmups:
                            samples[name].append(elapsed)
                n, lg = stats(samples["normal"]), stats(samples["legacy"])
                result = {"case": case.name, "target_ms": case.target_ms, "normal": n, "legacy": lg,
                          "ratio": round(lg["median_ms"] / n["median_ms"], 2), "rows": rows,
                          "pass": lg["median_ms"] <= (case.target_ms or 0)}
                print(f"{case.name}: normal median {n['median_ms']} ms, legacy median {lg['median_ms']} ms "
                      f"(×{result['ratio']}), rows {rows}, target {case.target_ms} ms → "
                      f"{'PASS' if result['pass'] else 'FAIL'}", flush=True)
                if not args.no_check:
                    mismatches = legacy.check(case)
                    result["exact"] = not mismatches
                    errors.extend(mismatches)
                    print(f"    legacy exactness vs brute-force SQL: {'OK' if not mismatches else 'MISMATCH'}",
                          flush=True)
                out["cases"].append(result)
        finally:
            normal.close()
            legacy.close()
    out["load_after"] = os.getloadavg()
    out["errors"] = errors
    out["written_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    RESULTS.write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(render(out))
    for e in errors[:20]:
        print(f"!!! {e}", file=sys.stderr)
    return 1 if errors else 0


def render(out: dict) -> str:
    lines = ["| Report | target | bench data: median (p95) | legacy shape: median (p95) | legacy / bench | "
             "rows | exact |", "|---|---|---|---|---|---|---|"]
    for c in out["cases"]:
        exact = {True: "yes", False: "**NO**", None: "not checked"}[c.get("exact")]
        lines.append(f"| {c['case']} | {c['target_ms']} ms | {c['normal']['median_ms']} ms ({c['normal']['p95_ms']}) | "
                     f"{c['legacy']['median_ms']} ms ({c['legacy']['p95_ms']}) | ×{c['ratio']} | "
                     f"{c['rows']['legacy']:,} | {exact} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
