"""What the evidence guard of migration 0013 costs: inserts through a SECURITY DEFINER chain trigger,
and the purge's soft delete through the per-row guard.

Interleaved rounds on a throwaway database (created from the server URL, migrated, dropped after):

- insert: one INSERT of N rows into audit_log (chain, rollups) with `atlas_audit_before_insert` as
  migration 0013 leaves it (SECURITY DEFINER, search_path and atlas.owner_write set per call), against
  the same function as before 0013 (SECURITY INVOKER, no SET clauses), alternating;
- soft delete: `atlas_retention_purge` soft-deleting N rows old enough (the guard checks each row and
  atlas_evidence_trusted), against the same UPDATE as the owner with the row guard disabled (what the
  old `atlas.retention_purge` path cost at best), alternating.

Medians over rounds, per row, and the ratio current / baseline. Writes its own section of
bench/RESULTS.md (kept by `bench.run`) and bench/evidence-guard-results.json.

    .venv/bin/python -m bench.evidence_guard --server postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from atlas_compliance.db import migrate
from atlas_compliance.db.security import secure_functions

from .common import with_dbname

HERE = Path(__file__).parent
RESULTS_MD = HERE / "RESULTS.md"
RESULTS_JSON = HERE / "evidence-guard-results.json"
SECTION_START, SECTION_END = "<!-- bench.evidence_guard:start -->", "<!-- bench.evidence_guard:end -->"

INSERT = """
INSERT INTO audit_log (org_id, user_id, auth_mode, sql, duration_ms, success, tables_accessed, columns_by_table,
                       "timestamp")
SELECT %(org)s, 'u' || (g %% 50), 'none', 'select ' || g, 1, true, '["orders", "users"]',
       '{"orders": ["id", "total"], "users": ["email"]}', now() - interval '800 days' - (g || ' seconds')::interval
FROM generate_series(1, %(n)s) g
"""


def _as_before_0013(conn: psycopg.Connection) -> None:
    conn.execute("ALTER FUNCTION atlas_audit_before_insert() SECURITY INVOKER RESET search_path "
                 "RESET atlas.owner_write")


def _timed(conn: psycopg.Connection, statement: str, params: Any = None) -> float:
    start = time.perf_counter()
    conn.execute(statement, params)
    return time.perf_counter() - start


def run(server: str, rows: int, rounds: int) -> dict[str, Any]:
    name = f"atlas_bench_guard_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_dbname(server, name)
    samples: dict[str, list[float]] = {"insert_current": [], "insert_baseline": [], "soft_current": [],
                                       "soft_baseline": []}
    load_before = os.getloadavg()[0]
    try:
        migrate.upgrade(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE atlas_retention_floor SET min_retention_days = 30, min_hard_delete_delay_days = 30")
            conn.execute("SELECT * FROM atlas_set_retention_policy('bench-guard', 30, 30, 'bench', 'bench', "
                         "'platform', 'bench', NULL)")
            for r in range(rounds):
                for variant in (("current", "baseline") if r % 2 == 0 else ("baseline", "current")):
                    if variant == "current":
                        secure_functions(conn)
                    else:
                        _as_before_0013(conn)
                    samples[f"insert_{variant}"].append(_timed(conn, INSERT, {"org": "bench-guard", "n": rows}))
                    secure_functions(conn)
                    if variant == "current":
                        samples["soft_current"].append(_timed(
                            conn, "SELECT * FROM atlas_retention_purge('bench-guard', 'bench', 'bench', 'platform', "
                                  "'bench', NULL)"))
                    else:
                        with conn.transaction():
                            conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_guard_update")
                            conn.execute("SET LOCAL atlas.owner_write = 'on'")
                            samples["soft_baseline"].append(_timed(
                                conn, "UPDATE audit_log SET deleted_at = now() WHERE org_id = 'bench-guard' "
                                      "AND deleted_at IS NULL AND \"timestamp\" < now() - interval '30 days'"))
                            conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_guard_update")
            secure_functions(conn)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    per_row = {k: round(statistics.median(v) / rows * 1e6, 2) for k, v in samples.items()}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], capture_output=True, text=True,
                           cwd=HERE.parent).stdout.split("\n")
    return {"written": datetime.now(UTC).isoformat(timespec="seconds"), "commit": commit,
            "uncommitted_src_files": [line[3:] for line in dirty if line.strip()], "rows": rows,
            "rounds": rounds, "us_per_row_median": per_row,
            "ratio_insert": round(per_row["insert_current"] / per_row["insert_baseline"], 3),
            "ratio_soft_delete": round(per_row["soft_current"] / per_row["soft_baseline"], 3),
            "samples_s": {k: [round(x, 4) for x in v] for k, v in samples.items()},
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def render(r: dict[str, Any]) -> str:
    m = r["us_per_row_median"]
    return "\n".join([
        "## Evidence guard (migration 0013): cost per row",
        "",
        f"Written {r['written']} by `python -m bench.evidence_guard` at commit `{r['commit']}` (uncommitted "
        f"changes under src/: {', '.join(r['uncommitted_src_files']) or 'none'}; raw numbers: "
        f"`evidence-guard-results.json`). {r['rounds']} interleaved rounds of {r['rows']:,} rows, each round "
        "inserting with one variant then soft-deleting those rows; medians per row.",
        "",
        "| step | before 0013 (baseline) | 0013 | ratio |",
        "|---|---|---|---|",
        f"| INSERT through the chain and rollup triggers (definer trigger vs invoker) | {m['insert_baseline']} µs "
        f"| {m['insert_current']} µs | {r['ratio_insert']} |",
        f"| soft delete (atlas_retention_purge with the per-row guard vs the bare UPDATE) | {m['soft_baseline']} µs "
        f"| {m['soft_current']} µs | {r['ratio_soft_delete']} |",
        "",
        f"Load average (1 min) before / after: {r['load_average_1min'][0]} / {r['load_average_1min'][1]} on a "
        "2-core machine shared with other work.",
    ])


def write_section(result: dict[str, Any]) -> None:
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Benchmark results\n"
    section = f"{SECTION_START}\n{render(result)}\n{SECTION_END}"
    if SECTION_START in text and SECTION_END in text:
        before, rest = text.split(SECTION_START, 1)
        text = before + section + rest.split(SECTION_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS_MD.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    result = run(args.server, args.rows, args.rounds)
    RESULTS_JSON.write_text(json.dumps(result, indent=1) + "\n")
    write_section(result)
    print(render(result))


if __name__ == "__main__":
    main()
