"""Audit-log import throughput: `atlas-compliance import pgaudit FILE… --org SLUG`, end to end, on a
realistic pgAudit log (DESIGN §7: ≥ 20,000 log lines per second).

    python -m bench.sources [--server-url URL] [--db-name NAME] [--runs 3] [--regenerate]   # as root

The log is written by a real PostgreSQL 15 with pgAudit (a throwaway cluster, as in the tests): four
roles run pgbench workloads at once — two applications with bind parameters (a TPC-B-like writer, a
reader of joins and CTEs) and two with literals in the SQL (an analyst's aggregates over joins, an
ETL role's INSERT … SELECT) — while a fifth session runs statements that fail (refused permissions, errors after pgAudit logged them), with `pgaudit.log = 'read, write, ddl'`,
`pgaudit.log_relation = on`, connections and disconnections logged, and the files rotated every 10 MB.
The server writes jsonlog, csvlog and stderr at once; the logs are kept in bench/data/pgaudit-logs and
reused. Each run imports them into a fresh organization of the bench's own database (wall clock of
the command, process start included); the median of ``--runs`` jsonlog runs is the figure, with one
csvlog and one stderr run beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import psycopg

from atlas_compliance.db import migrate
from atlas_compliance.sources.events import StatementJob, event_of
from atlas_compliance.sources.logfiles import FilePosition
from atlas_compliance.sources.service import ReadOptions, StatementReader

from . import results as results_io
from .common import DEFAULT_SERVER_URL, connect, ensure_database
from .server import new_org_with_ingest_key

LOGS = Path(__file__).parent / "data" / "pgaudit-logs"
BASELINE = Path(__file__).parent / "data" / "pgaudit-statements.ndjson"
PREFIX = "%m [%p] %c %l %e %q%u@%d %h %a "
DB_NAME = "atlas_bench_sources"

SCRIPTS = {
    "app_writer": """\\set aid random(1, 200000)
\\set tid random(1, 20)
\\set bid random(1, 2)
\\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
""",
    "app_reader": """\\set aid random(1, 200000)
SELECT a.aid, a.abalance, b.bbalance FROM pgbench_accounts a JOIN pgbench_branches b ON b.bid = a.bid
  WHERE a.aid = :aid;
WITH recent AS (SELECT aid, delta FROM pgbench_history WHERE aid = :aid ORDER BY mtime DESC LIMIT 5)
  SELECT a.aid, a.abalance, sum(r.delta) FROM pgbench_accounts a JOIN recent r ON r.aid = a.aid GROUP BY a.aid;
""",
    "analyst": """\\set bid random(1, 2)
SELECT t.bid, count(*), sum(h.delta) FROM pgbench_history h JOIN pgbench_tellers t ON t.tid = h.tid
  WHERE t.bid = :bid AND h.mtime > now() - interval '1 minute' GROUP BY t.bid;
""",
    "etl": """\\set aid random(1, 200000)
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime)
  SELECT t.tid, t.bid, :aid, 0, now() FROM pgbench_tellers t WHERE t.tid = 1;
""",
}


def _as_postgres(*command: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True, text=True,
                          **kw)


def generate(seconds: float = 25.0) -> None:
    """Write a realistic pgAudit log with a real server (needs root: the cluster runs as `postgres`)."""
    sys.path.insert(0, str(Path(__file__).parent.parent))
    from tests.sources.servers import PG_BIN, PgAuditCluster

    cluster = PgAuditCluster().start()
    try:
        cluster.execute("ALTER SYSTEM SET log_rotation_size = '10MB'", "SELECT pg_reload_conf()")
        _as_postgres(str(PG_BIN / "pgbench"), "-i", "-q", "-s", "2", "-h", "127.0.0.1", "-p", str(cluster.port),
                     "-U", "postgres", "postgres", cwd=cluster.root)
        roles = list(SCRIPTS)
        cluster.execute(*(f"CREATE ROLE {r} LOGIN" for r in roles),
                        f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {', '.join(roles)}",
                        "CREATE TABLE payroll (id int, salary int)")
        logs = cluster.new_log_dir("bench")
        for role, script in SCRIPTS.items():
            (cluster.root / f"{role}.sql").write_text(script)
        stop = threading.Event()
        failing = threading.Thread(target=_failures, args=(cluster, stop))
        failing.start()
        runs = [subprocess.Popen(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / "pgbench"), "-n", "-c", "2", "-T", str(int(seconds)),
             "-M", "extended" if role.startswith("app_") else "simple", "-f", str(cluster.root / f"{role}.sql"),
             "-h", "127.0.0.1", "-p", str(cluster.port), "-U", role, "postgres"], cwd=cluster.root,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for role in roles]
        for run in runs:
            run.wait()
        stop.set()
        failing.join()
        cluster.settle_logs()
        if LOGS.exists():
            shutil.rmtree(LOGS)
        shutil.copytree(logs, LOGS)
        for path in LOGS.iterdir():
            path.chmod(0o644)
    finally:
        cluster.stop()


def _failures(cluster, stop: threading.Event) -> None:
    rng = random.Random(5)
    with psycopg.connect(cluster.url("app_reader", "reporting"), autocommit=True) as conn:
        while not stop.is_set():
            statement = rng.choice(["SELECT salary FROM payroll WHERE id = 1",  # permission denied
                                    "SELECT 1 / (abalance - abalance) FROM pgbench_accounts WHERE aid = 1"])
            try:
                conn.execute(statement)
            except psycopg.Error:
                pass
            time.sleep(0.01)


def write_baseline(path: Path) -> int:
    """The same statements as ingest events (NDJSON, tables left to be read from the SQL, as the import
    reads the columns): the bulk `ingest` of this file is the import's baseline, run side by side."""
    reader = StatementReader(ReadOptions(kind="pgaudit", source="baseline"))
    job = StatementJob(kind="pgaudit", source="baseline", org_id="", catalog=None, keep_parameters=False,
                       file_names=())

    def statements():
        for file in _files(".json"):
            rank = reader.add_file(file)
            yield from reader.read(file, rank, FilePosition(), to_end=True)
        yield from reader.finish()

    count = 0
    with open(path, "wb") as out:
        for statement in statements():
            event = {k: v for k, v in event_of(statement, job).items()
                     if k not in ("tablesAccessed", "columnsByTable", "columnsAccessed")}
            out.write(orjson.dumps(event) + b"\n")
            count += 1
    return count


def _files(suffix: str) -> list[Path]:
    return sorted(LOGS.glob(f"*{suffix}"), key=lambda p: (p.stat().st_mtime, p.name))


def _lines(paths: list[Path]) -> int:
    return sum(p.read_bytes().count(b"\n") for p in paths)


def measure(url: str, suffix: str, run: str, extra: list[str]) -> dict[str, Any]:
    """One import (``suffix`` .json, .csv, .log) or, for .ndjson, one bulk ingest of the baseline file."""
    paths = [BASELINE] if suffix == ".ndjson" else _files(suffix)
    slug = f"bench-sources-{run}"
    org_id, _ = new_org_with_ingest_key(url, slug)
    cli = str(Path(sys.executable).with_name("atlas-compliance"))
    command = ([cli, "ingest", str(BASELINE), "--org", slug] if suffix == ".ndjson" else
               [cli, "import", "pgaudit", *map(str, paths), "--org", slug, "--source", f"bench-{run}", *extra])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    proc = subprocess.run(command, env={**os.environ, "DATABASE_URL": url}, capture_output=True, text=True,
                          check=False)
    seconds = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    with connect(url) as conn:
        stored = conn.execute("SELECT count(*) FROM audit_log WHERE org_id = %s", (org_id,)).fetchone()[0]
    lines = _lines(_files(".json")) if suffix == ".ndjson" else _lines(paths)  # the baseline: the log's lines
    return {"format": {".json": "jsonlog", ".csv": "csvlog", ".log": "stderr", ".ndjson": "baseline"}[suffix],
            "files": len(paths),
            "bytes": sum(p.stat().st_size for p in paths), "lines": lines, "events": stored,
            "seconds": round(seconds, 2), "lines_per_s": round(lines / seconds), "events_per_s": round(stored / seconds),
            "client_cpu_s": round((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 2),
            "exit": proc.returncode, "output": proc.stdout.strip(), "errors": proc.stderr.strip()[-500:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--db-name", default=DB_NAME)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--regenerate", action="store_true")
    args = parser.parse_args(argv)
    if args.regenerate or not _files(".json"):
        print("writing a pgAudit log with a real PostgreSQL 15 (pgbench, four roles, failures)…")
        generate()
    url = ensure_database(args.server_url, args.db_name)
    migrate.upgrade(url)
    write_baseline(BASELINE)
    stamp = int(time.time())
    results: list[dict[str, Any]] = []
    load = [os.getloadavg()[0]]
    plan = [(".json", []), (".ndjson", [])] * args.runs + [(".csv", []), (".log", ["--log-line-prefix", PREFIX])]
    for k, (suffix, extra) in enumerate(plan):  # the import and its baseline interleaved
        result = measure(url, suffix, f"{stamp}-{suffix[1:]}-{k}", extra)
        results.append(result)
        print(f"  {result['format']}: {result['lines']:,} lines ({result['events']:,} events) in "
              f"{result['seconds']} s = {result['lines_per_s']:,} lines/s, {result['events_per_s']:,} events/s "
              f"(command {result['client_cpu_s']} CPU-s), exit {result['exit']}")
    load.append(os.getloadavg()[0])

    def median(kind: str) -> dict[str, Any]:
        runs = sorted((r for r in results if r["format"] == kind), key=lambda r: r["seconds"])
        return runs[len(runs) // 2]

    ours, baseline = median("jsonlog"), median("baseline")
    out = results_io.load()
    out["audit_log_import"] = {"runs": results, "median_jsonlog": ours, "median_baseline": baseline,
                               "ratio_to_baseline": round(ours["seconds"] / baseline["seconds"], 2),
                               "target_lines_per_s": 20_000, "load_average": load,
                               "passed": ours["lines_per_s"] >= 20_000 and all(r["exit"] == 0 for r in results),
                               "database": args.db_name, "code": results_io.code_facts(),
                               "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    # Not results_io.save: the other parts' "written at" stays theirs (this part carries its own).
    results_io.RESULTS_JSON.write_text(json.dumps(out, indent=1, default=str) + "\n")
    results_io.RESULTS_MD.write_text(results_io.render(out))
    print(f"median (jsonlog): {ours['lines_per_s']:,} lines/s, {out['audit_log_import']['ratio_to_baseline']}× the "
          f"time of the bulk ingest of the same statements — target 20,000 lines/s: "
          f"{'PASS' if out['audit_log_import']['passed'] else 'FAIL'}")
    return 0 if all(r["exit"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
