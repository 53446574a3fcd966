"""Reports on rows in Atlas's legacy shape, side by side with the bench's own data (DESIGN §7).

    python -m bench.legacy [--scale 1.0] [--repeat 15] [--warmups 3] [--no-check] [--before-src DIR]
    python -m bench.run --legacy …   (the same)

Two datasets of DESIGN §7's size, generated alike but for the shape of the columns: ``atlas_bench``
(columns_by_table on 99 % of rows) and ``atlas_bench_legacy`` (every row with a flat
``columns_accessed`` and no ``columns_by_table``, as plain COPY from an older Atlas writes them). One
server per database; each round requests the same report from both, alternating which goes first, so
both see the same machine load. Then every row of the legacy dataset's reports is checked against
brute-force SQL. Writes ``bench/legacy-results.json`` and prints the Markdown table for RESULTS.md.

``--before-src DIR`` serves another version of the code as well (a directory holding its
``atlas_compliance`` package, e.g. ``git archive main src | tar -x -C /tmp/before`` then
``/tmp/before/src``), on both datasets, in the same rounds: before and after, side by side.
"""

from __future__ import annotations

import argparse
import contextlib
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
    parser.add_argument("--before-src", help="a directory holding another version's atlas_compliance package")
    args = parser.parse_args(argv)
    normal_url, _ = ensure_dataset(args.server_url, args.db_name, DatasetParams.scaled(args.scale))
    legacy_url, _ = ensure_dataset(args.server_url, args.legacy_db_name,
                                   DatasetParams.scaled(args.scale, legacy=True))
    cases = [c for c in CASES if c.target_ms is not None]
    out: dict = {"scale": args.scale, "code": results_io.code_facts(), "machine": results_io.machine_facts(legacy_url),
                 "before_src": args.before_src, "load_before": os.getloadavg(), "cases": []}
    errors: list[str] = []
    variants = [("normal", normal_url, None), ("legacy", legacy_url, None)]
    if args.before_src:
        variants += [("normal before", normal_url, Path(args.before_src)), ("legacy before", legacy_url,
                                                                            Path(args.before_src))]
    with contextlib.ExitStack() as stack:
        benches = {}
        for name, url, src in variants:
            server = stack.enter_context(Server(url, src))
            benches[name] = _bench(url, server)
            stack.callback(benches[name].close)
        for case in cases:
            samples: dict[str, list[float]] = {name: [] for name in benches}
            rows: dict[str, int] = {}
            names = list(benches)
            for i in range(args.warmups + args.repeat):
                for name in names[i % len(names):] + names[:i % len(names)]:  # each goes first in turn
                    elapsed, doc = benches[name].ours(case)
                    rows[name] = doc["totalRows"]
                    if i >= args.warmups:
                        samples[name].append(elapsed)
            medians = {name: stats(s) for name, s in samples.items()}
            result = {"case": case.name, "target_ms": case.target_ms, "timings": medians, "rows": rows,
                      "ratio": round(medians["legacy"]["median_ms"] / medians["normal"]["median_ms"], 2),
                      "pass": medians["legacy"]["median_ms"] <= (case.target_ms or 0)}
            print(f"{case.name}: " + ", ".join(f"{name} median {m['median_ms']} ms" for name, m in medians.items())
                  + f"; rows {rows}; target {case.target_ms} ms → {'PASS' if result['pass'] else 'FAIL'}", flush=True)
            if not args.no_check:
                mismatches = benches["legacy"].check(case)
                result["exact"] = not mismatches
                errors.extend(mismatches)
                print(f"    legacy exactness vs brute-force SQL: {'OK' if not mismatches else 'MISMATCH'}",
                      flush=True)
            out["cases"].append(result)
    out["load_after"] = os.getloadavg()
    out["errors"] = errors
    out["written_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    RESULTS.write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(render(out))
    for e in errors[:20]:
        print(f"!!! {e}", file=sys.stderr)
    return 1 if errors else 0


def render(out: dict) -> str:
    names = list(out["cases"][0]["timings"]) if out["cases"] else []
    lines = ["| Report | target | " + " | ".join(f"{n}: median (p95)" for n in names) + " | legacy / normal | rows | "
             "exact |", "|---|---|" + "---|" * len(names) + "---|---|---|"]
    for c in out["cases"]:
        exact = {True: "yes", False: "**NO**", None: "not checked"}[c.get("exact")]
        cells = " | ".join(f"{c['timings'][n]['median_ms']} ms ({c['timings'][n]['p95_ms']})" for n in names)
        lines.append(f"| {c['case']} | {c['target_ms']} ms | {cells} | ×{c['ratio']} | {c['rows']['legacy']:,} | "
                     f"{exact} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
