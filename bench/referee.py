"""The referee bench: the extraction's per-table columns against PostgreSQL's own name resolution.

    python -m bench.referee [--server postgresql://postgres@127.0.0.1:5432/postgres] [--rounds 21]

Loads the TPC-H schema (``bench/referee_workload.py``) into a throwaway database, and for each query of
the workload runs ``EXPLAIN (VERBOSE, FORMAT JSON)``: every scan of a base table lists the columns it
outputs and the ones its filter and index conditions read, each qualified by the scan's alias, which
PostgreSQL resolved itself. Those (table, column) pairs are the referee. The product's extraction is
scored against them per query and table, in three modes:

* ``catalog``: with the schema catalog a ``catalog import`` of the same DDL gives;
* ``none``: without a catalog (the normal case until a PII scan or a catalog sync has run);
* ``learned``: with a catalog of learned facts only (the (table, column) pairs the workload's own
  statements place beyond doubt, read once without a catalog; ``build_catalog(with_learned=True)``).

Precision and recall are micro-averaged over (query, table, column) triples, overall and per table;
``*`` (every column, which the extraction records when it cannot list a table's columns) counts as
every column of the table.
Also timed: extraction throughput, uncached, per mode (modes interleaved, median round). Prints JSON;
writes ``bench/referee-results.json``. The referee's limits are in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from atlas_compliance.audit import extraction
from atlas_compliance.audit.extraction import Catalog, extract_access
from atlas_compliance.catalog import ddl
from atlas_compliance.catalog.facts import build_catalog

from .common import DEFAULT_SERVER_URL, with_dbname
from .referee_workload import DDL, QUERIES

RESULTS = Path(__file__).parent / "referee-results.json"
STAR = "*"
# Columns of every PostgreSQL table that a plan may show (row locks, UPDATE/DELETE) but SQL never names.
_SYSTEM_COLUMNS = frozenset({"ctid", "xmin", "xmax", "cmin", "cmax", "tableoid", "oid"})
_STRING = re.compile(r"'(?:[^']|'')*'")
_BARE = re.compile(r'(?<![\w.$])[A-Za-z_][\w$]*')
_REFERENCE = re.compile(r'(?<![\w."])("(?:[^"]|"")+"|[A-Za-z_][\w$]*)\.("(?:[^"]|"")+"|[A-Za-z_][\w$]*)')

Pairs = dict[str, set[str]]  # table -> columns


# --- the referee -------------------------------------------------------------------------------------
# Plan nodes whose Output only passes on their child's rows: what they list is the child's target list,
# which for a scan may be the table's *physical* target list (every column, a copy-free shortcut the
# planner takes when the node above does not need a narrow row), so it says nothing about what is read.
_PASS_THROUGH = frozenset({"Hash", "Materialize", "Sort", "Incremental Sort", "Limit", "Unique", "Gather",
                           "Gather Merge", "Memoize", "LockRows", "Result"})
_SET_OPERATIONS = frozenset({"Append", "Merge Append", "SetOp", "Recursive Union"})
_SCANS_KEY = "Relation Name"


def _plan_nodes(node: dict[str, Any], root: bool = True) -> Iterator[tuple[dict[str, Any], bool]]:
    """Every node with whether it is the root of a plan: the query's, an InitPlan's or SubPlan's, a
    subquery's below its Subquery Scan, or a branch of a set operation (rows taken by position)."""
    yield node, root
    branches = node.get("Node Type") in _SET_OPERATIONS
    for child in node.get("Plans", ()):
        yield from _plan_nodes(child, branches or child.get("Parent Relationship") in ("InitPlan", "SubPlan", "Subquery"))


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)]
    return []


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()


def _expressions(node: dict[str, Any], root: bool) -> list[str]:
    """The expressions a node evaluates: every text of it but its name fields and, unless it is a
    root, the Output of a scan or a pass-through node (see _PASS_THROUGH)."""
    skip = {"Node Type", "Relation Name", "Alias", "Schema", "Index Name", "Subplan Name", "CTE Name",
            "Parent Relationship", "Plans", "Join Type", "Strategy", "Partial Mode", "Scan Direction",
            "Command", "Operation"}
    if not root and (_SCANS_KEY in node or node.get("Node Type") in _PASS_THROUGH):
        skip.add("Output")
    return [t for key, value in node.items() if key not in skip for t in _texts(value)]


def referee(conn: psycopg.Connection, sql: str, schema: dict[str, tuple[str, ...]]) -> Pairs:
    """(table -> columns) PostgreSQL's plan for ``sql`` reads of each base table: the columns of each
    scan's alias named by the plan's expressions (conditions, keys, the outputs that compute).

    EXPLAIN VERBOSE qualifies column names only when the query has more than one relation; with one
    scan, the bare names of that table's columns are matched too (``schema``: table -> columns)."""
    plan = conn.execute(f"EXPLAIN (VERBOSE, FORMAT JSON) {sql}").fetchone()[0][0]["Plan"]  # noqa: S608 - the bench's own SQL
    nodes = list(_plan_nodes(plan))
    aliases = {n.get("Alias", n[_SCANS_KEY]): n[_SCANS_KEY] for n, _ in nodes if _SCANS_KEY in n}
    texts = [_STRING.sub("''", t) for n, root in nodes for t in _expressions(n, root)]
    pairs: Pairs = {table: set() for table in aliases.values()}
    for text in texts:
        for qualifier, column in _REFERENCE.findall(text):
            table = aliases.get(_unquote(qualifier))
            if table is not None:
                pairs[table].add(_unquote(column))
    if len(aliases) == 1:  # one relation: outputs unqualified (its filters may still be qualified)
        (table,) = aliases.values()
        pairs[table].update({w.lower() for text in texts for w in _BARE.findall(text)} & set(schema.get(table, ())))
    return {t: cols - _SYSTEM_COLUMNS for t, cols in pairs.items()}


# --- the product -------------------------------------------------------------------------------------
def ddl_catalog() -> Catalog:
    result = ddl.read_ddl(DDL, "postgres")
    catalog = build_catalog((f.table, f.column, "ddl") for f in result.facts)
    assert catalog is not None
    return catalog


def learned_catalog() -> Catalog | None:
    rows = {(table, column, "learned") for _, _, sql in QUERIES
            for table, column in extract_access(sql, "postgres").qualified}
    return build_catalog(sorted(rows), with_learned=True)


def extracted(sql: str, catalog: Catalog | None, schema: dict[str, tuple[str, ...]]) -> tuple[Pairs, int]:
    """The extraction's (table -> columns), ``*`` expanded to the table's columns; and how many stars."""
    info = extract_access(sql, "postgres", catalog)
    assert info.parse_error is None, info.parse_error
    pairs: Pairs = {}
    stars = 0
    for table, columns in info.columns_by_table.items():
        cols = set(columns)
        if STAR in cols:
            stars += 1
            cols = (cols - {STAR}) | set(schema.get(table, ()))
        pairs[table] = cols
    return pairs, stars


# --- scoring -----------------------------------------------------------------------------------------
def _triples(pairs: Pairs) -> set[tuple[str, str]]:
    return {(t, c) for t, cols in pairs.items() for c in cols}


def score(expected: Pairs, found: Pairs) -> dict[str, Any]:
    ref, got = _triples(expected), _triples(found)
    tables = {t: [len({c for u, c in ref & got if u == t}), len(expected.get(t, ())), len(found.get(t, ()))]
              for t in sorted({*expected, *found})}
    return {"tp": len(ref & got), "referee": len(ref), "extracted": len(got), "tables": tables,
            "missed": sorted(f"{t}.{c}" for t, c in ref - got),
            "extra": sorted(f"{t}.{c}" for t, c in got - ref)}


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def summarize(per_query: list[dict[str, Any]]) -> dict[str, Any]:
    tp = sum(q["tp"] for q in per_query)
    ref = sum(q["referee"] for q in per_query)
    got = sum(q["extracted"] for q in per_query)
    counts: dict[str, list[int]] = {}
    for q in per_query:
        for table, (t_tp, t_ref, t_got) in q["tables"].items():
            total = counts.setdefault(table, [0, 0, 0])
            total[0] += t_tp
            total[1] += t_ref
            total[2] += t_got
    by_table = {t: {"precision": _ratio(c[0], c[2]), "recall": _ratio(c[0], c[1]), "refereePairs": c[1],
                    "extractedPairs": c[2]} for t, c in sorted(counts.items())}
    return {"precision": _ratio(tp, got), "recall": _ratio(tp, ref), "truePositives": tp,
            "refereePairs": ref, "extractedPairs": got, "stars": sum(q["stars"] for q in per_query),
            "byTable": by_table,
            "queriesExact": sum(not q["missed"] and not q["extra"] for q in per_query)}


def throughput(modes: dict[str, Catalog | None], rounds: int) -> dict[str, dict[str, float]]:
    """Statements per second on one core per mode, each statement extracted with both extraction caches
    cleared; the modes interleaved round by round, so that the machine's load weighs on each alike."""
    per_round: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(rounds):
        for mode, catalog in modes.items():
            spent = 0.0
            for _, _, sql in QUERIES:
                extraction._extract_text.cache_clear()
                extraction._shapes._data.clear()
                t = time.perf_counter()
                extract_access(sql, "postgres", catalog)
                spent += time.perf_counter() - t
            per_round[mode].append(spent / len(QUERIES))
    out = {}
    for mode, samples in per_round.items():
        median = statistics.median(samples)
        out[mode] = {"medianMicroseconds": round(median * 1e6, 1), "statementsPerSecond": round(1 / median),
                     "fastestRound": round(1 / min(samples)), "slowestRound": round(1 / max(samples))}
    return out


# --- run ---------------------------------------------------------------------------------------------
def run(server: str, rounds: int) -> dict[str, Any]:
    name = f"atlas_referee_{os.getpid()}"
    catalog = ddl_catalog()
    schema = dict(catalog.tables)
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(with_dbname(server, name), autocommit=True) as conn:
            conn.execute(DDL)
            server_version = conn.execute("SHOW server_version").fetchone()[0]
            truth = {qid: referee(conn, sql, schema) for qid, _, sql in QUERIES}
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    modes = {"catalog": catalog, "none": None, "learned": learned_catalog()}
    results: dict[str, Any] = {}
    speed = throughput(modes, rounds)
    for mode, mode_catalog in modes.items():
        per_query = []
        for qid, _, sql in QUERIES:
            found, stars = extracted(sql, mode_catalog, schema)
            per_query.append({"query": qid, "stars": stars, **score(truth[qid], found)})
        errors = [{k: v for k, v in q.items() if k != "tables"} for q in per_query if q["missed"] or q["extra"]]
        results[mode] = {"summary": summarize(per_query), "throughput": speed[mode],
                         "errors": errors}
    learned = modes["learned"]
    return {
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": _commit(),
        "postgres": server_version,
        "workload": {"schema": "TPC-H (8 tables)", "queries": len(QUERIES),
                     "refereePairs": sum(len(_triples(p)) for p in truth.values()),
                     "learnedTables": len(learned.tables) if learned else 0},
        "modes": results,
        "referee": {qid: {t: sorted(c) for t, c in sorted(pairs.items())} for qid, pairs in truth.items()},
    }


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=os.environ.get("DATABASE_URL", DEFAULT_SERVER_URL),
                        help="PostgreSQL server URL (a throwaway database is created on it and dropped)")
    parser.add_argument("--rounds", type=int, default=21, help="rounds of the uncached throughput timing")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args()
    report = run(args.server, args.rounds)
    text = json.dumps(report, indent=2)
    args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
