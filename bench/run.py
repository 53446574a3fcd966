"""Run the benchmarks of DESIGN §7 and write bench/RESULTS.md and bench/results.json.

    python -m bench.run [--scale 1.0] [--server-url URL] [--only reports|ingest|export] [--repeat 15] [--legacy]

Reports: Data Access 30/90 days and User Activity 30 days for the largest org, ours end to end over
HTTP vs the naive baseline, interleaved, then checked row by row against brute-force SQL. Ingest:
HTTP batches (70% repeated / all distinct SQL) and the CLI bulk import. Export: a ≥ 1,000,000-row CSV
with the server's memory sampled. Exits non-zero when a result is not exact or a run errs.
``--legacy`` runs on the legacy-shape dataset (every row with a flat ``columns_accessed`` and no
``columns_by_table``, in ``atlas_bench_legacy``) and writes its results beside the others', in
``results-legacy.json`` and its own section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date

from atlas_compliance.reports.window import parse_window

from . import results as results_io
from .common import DEFAULT_DB_NAME, DEFAULT_SERVER_URL, EXPORT_ORG_SLUG, DatasetParams, connect, largest_org
from .export import csv_export
from .generate import ensure_dataset, ensure_export_org
from .ingest import breakdown, cli_import, http_ingest
from .reports import CASES, ReportBench
from .server import Server, admin_token


def _last_day(url: str, org_id: str) -> date:
    with connect(url) as conn:
        return conn.execute("SELECT (max(\"timestamp\") AT TIME ZONE 'UTC')::date FROM audit_log WHERE org_id = %s",
                            (org_id,)).fetchone()[0]


def run_reports(url: str, server: Server, args, out: dict, errors: list[str]) -> None:
    with connect(url) as conn:
        org_id, slug, _ = largest_org(conn)
    last_day = _last_day(url, org_id)
    windows = {c.name: (w.start, w.end) for c in CASES for w in [parse_window(*c.dates(last_day), c.tz)]}
    out["dataset"] = results_io.dataset_facts(url, org_id, windows)
    print(f"reports for {slug} ({out['dataset']['largest_org_rows']:,} rows), windows ending {last_day}:")
    bench = ReportBench(url, server.base_url, admin_token(url, slug), org_id, last_day)
    try:
        measured = []
        for case in CASES:
            result = bench.measure(case, args.warmups, args.repeat)
            result["sql_only"] = bench.sql_only(case)
            print(f"    our SQL alone (diagnostic): median {result['sql_only']['app']['median_ms']} ms as the app "
                  f"runs it, {result['sql_only']['server_defaults']['median_ms']} ms with the server's defaults")
            began = time.perf_counter()
            mismatches = bench.check(case)
            result["exact"] = not mismatches
            result["check_seconds"] = round(time.perf_counter() - began, 1)
            print(f"    exactness vs brute-force SQL: {'OK' if not mismatches else 'MISMATCH'} "
                  f"({result['check_seconds']} s)")
            if mismatches:
                errors.extend(mismatches)
                for m in mismatches[:10]:
                    print(f"    !!! {m}", file=sys.stderr)
                if result["pass"]:
                    result["pass"] = False
            measured.append(result)
        out["reports"] = measured
    finally:
        bench.close()


def run_export(url: str, server: Server, args, out: dict, errors: list[str], export: dict) -> None:
    last_day = _last_day(url, export["org_id"])
    print(f"CSV export ({export['pairs']:,} rows expected):")
    result = csv_export(server, admin_token(url, EXPORT_ORG_SLUG), expected_rows=export["pairs"], last_day=last_day)
    errors.extend(result["errors"])
    out["export"] = result


def run_ingest(url: str, server: Server, args, out: dict, errors: list[str]) -> None:
    events = max(2_000, int(50_000 * min(1.0, args.scale)))
    print("ingest:")
    runs = [http_ingest(url, server.base_url, events=events, repeat=0.7, label="70% repeated SQL",
                        concurrency=args.ingest_concurrency),
            http_ingest(url, server.base_url, events=events, repeat=0.0, label="all distinct SQL",
                        concurrency=args.ingest_concurrency),
            http_ingest(url, server.base_url, events=events, repeat=0.0, unique_shapes=True,
                        label="all distinct shapes (worst case, no target)", concurrency=args.ingest_concurrency)]
    for r in runs:
        errors.extend(r["errors"])
    out["ingest"] = runs
    out["ingest_breakdown"] = [breakdown(url, repeat=0.7), breakdown(url, repeat=0.0)]
    cli = cli_import(url, events=max(5_000, int(100_000 * min(1.0, args.scale))))
    errors.extend(cli["errors"])
    out["cli_import"] = cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the DESIGN §7 dataset (default 1)")
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL, help="PostgreSQL server (maintenance db URL)")
    parser.add_argument("--db-name", default=DEFAULT_DB_NAME, help="bench database, created when missing")
    parser.add_argument("--only", choices=("reports", "ingest", "export"), help="run one part only")
    parser.add_argument("--repeat", type=int, default=15, help="measured rounds per report (default 15)")
    parser.add_argument("--warmups", type=int, default=3, help="unrecorded rounds per report (default 3)")
    parser.add_argument("--ingest-concurrency", type=int, default=2, help="HTTP ingest clients (default 2)")
    parser.add_argument("--regenerate", action="store_true", help="drop the bench database and generate again")
    parser.add_argument("--legacy", action="store_true",
                        help="the reports on the legacy-shape dataset beside the bench's own (bench.legacy)")
    args, rest = parser.parse_known_args(argv)
    if args.legacy:
        from . import legacy

        return legacy.main([*rest, "--scale", str(args.scale), "--repeat", str(args.repeat),
                            "--warmups", str(args.warmups), "--server-url", args.server_url])
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    parts = [args.only] if args.only else ["reports", "export", "ingest"]

    url, generation = ensure_dataset(args.server_url, args.db_name, DatasetParams.scaled(args.scale),
                                     regenerate=args.regenerate)
    export = None
    if "export" in parts:
        users = 1_000 if args.scale >= 1 else max(20, int(1_000 * args.scale))
        export = ensure_export_org(url, users=users)
    out = results_io.load()
    if args.only is None or out.get("scale") != args.scale:
        out = {}
    out.update({"argv": " ".join(argv if argv is not None else sys.argv[1:]), "scale": args.scale,
                "machine": results_io.machine_facts(url)})
    if generation.get("generated") or "generation" not in out:
        out["generation"] = generation
    code = results_io.code_facts()
    by_part: dict[str, list[str]] = out.get("errors_by_part", {})
    load = out.setdefault("load", {})
    for part in parts:
        by_part[part] = []
        started = round(os.getloadavg()[0], 2)
        # A fresh server per part: the export's memory growth is measured from a process that has not
        # already grown on other work, and each part starts from the same state.
        with Server(url) as server:
            if part == "reports":
                run_reports(url, server, args, out, by_part[part])
            elif part == "export" and export is not None:
                run_export(url, server, args, out, by_part[part], export)
            elif part == "ingest":
                run_ingest(url, server, args, out, by_part[part])
        load[part] = (started, round(os.getloadavg()[0], 2))
        out.setdefault("code", {})[part] = code
    errors = [e for part in parts for e in by_part[part]]
    out["errors_by_part"] = by_part
    out["errors"] = [e for errs in by_part.values() for e in errs]
    results_io.save(out)
    print(f"wrote {results_io.RESULTS_MD.relative_to(results_io.HERE.parent)} and "
          f"{results_io.RESULTS_JSON.relative_to(results_io.HERE.parent)}")
    if errors:
        print(f"\n!!! {len(errors)} MISMATCHES OR ERRORS — see bench/RESULTS.md", file=sys.stderr)
        for e in errors[:20]:
            print(f"!!! {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
