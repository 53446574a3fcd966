"""PII detection evaluation on labeled public column data (``bench/pii_eval/columns.jsonl``).

The real scanner (``atlas_compliance.pii.scanner.scan``, as ``atlas-compliance pii scan`` runs it) reads
every table of the data set from a SQLite file built here (columns typed INTEGER, REAL or TEXT by their
values), or from PostgreSQL with ``--postgres URL`` (a database of its own, dropped afterwards). A column
counts as detected with category C when the scan classifies it as C and not as a mere suggestion to
review; scores are per category and overall, for the part the rules were written against (``dev``)
and the part kept apart (``heldout``). Also counted: suggestions to review, false positives decided by
a column name, and masked examples that reveal more than their category's strategy.

    python -m bench.pii_eval [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--errors]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from atlas_compliance.pii import scanner
from atlas_compliance.pii.categories import DEFAULT_MASKING, PII_CATEGORIES
from atlas_compliance.pii.masking import HIDDEN_EXAMPLE

from . import results as results_io

DATA = Path(__file__).resolve().parent / "pii_eval" / "columns.jsonl"
TARGETS = {"precision": 0.95, "recall": 0.90, "category_precision": 0.9}


def load() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]


def table_name(row: dict[str, Any]) -> str:
    return re.sub(r"[^a-z0-9]+", "_", f"{row['source']}__{row['table']}".lower()).strip("_")


def column_type(values: list[str]) -> str:
    if values and all(re.fullmatch(r"-?\d{1,18}", v) for v in values):
        return "INTEGER"
    if values and all(re.fullmatch(r"-?\d+\.\d+", v) for v in values):
        return "REAL"
    return "TEXT"


def tables_of(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    tables: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        tables.setdefault(table_name(row), []).append(row)
    return tables


def write_sqlite(rows: list[dict[str, Any]], path: Path) -> str:
    with sqlite3.connect(path) as db:
        for table, columns in tables_of(rows).items():
            defs = ", ".join(f'"{c["column"]}" {column_type(c["values"])}' for c in columns)
            db.execute(f'CREATE TABLE "{table}" ({defs})')
            depth = max(len(c["values"]) for c in columns)
            marks = ", ".join("?" for _ in columns)
            db.executemany(f'INSERT INTO "{table}" VALUES ({marks})',  # noqa: S608 - names from the data set
                           [[c["values"][i] if i < len(c["values"]) else None for c in columns] for i in range(depth)])
    return f"sqlite:///{path}"


def write_postgres(rows: list[dict[str, Any]], server_url: str) -> tuple[str, str]:
    import psycopg

    from .common import ensure_database

    url = ensure_database(server_url, "atlas_bench_pii_eval", recreate=True)
    with psycopg.connect(url, autocommit=True) as conn:
        for table, columns in tables_of(rows).items():
            types = {"INTEGER": "bigint", "REAL": "double precision", "TEXT": "text"}
            defs = ", ".join(f'"{c["column"]}" {types[column_type(c["values"])]}' for c in columns)
            conn.execute(f'CREATE TABLE "{table}" ({defs})')
            depth = max(len(c["values"]) for c in columns)
            with conn.cursor().copy(f'COPY "{table}" FROM STDIN') as copy:
                for i in range(depth):
                    copy.write_row([c["values"][i] if i < len(c["values"]) else None for c in columns])
    return url.replace("postgresql://", "postgresql+psycopg://", 1), url


def example_leaks(category: str, examples: list[str], values: list[str]) -> bool:
    """Whether masked examples show more than the category's strategy allows (see masking.example_mask)."""
    strategy = DEFAULT_MASKING[category]
    if strategy in HIDDEN_EXAMPLE:
        return any(e != HIDDEN_EXAMPLE[strategy] for e in examples)
    return any(e in values for e in examples)


def score(rows: list[dict[str, Any]], found: dict[tuple[str, str], Any]) -> dict[str, Any]:
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    errors, suggestions, name_fp, leaks = [], [], 0, 0
    for row in rows:
        detection = found.get((table_name(row), row["column"].lower()))
        predicted = "none"
        if detection is not None:
            if detection.suggestion:
                suggestions.append(row["label"] != "none")
            else:
                predicted = detection.category
            leaks += example_leaks(detection.category, list(detection.evidence.examples), row["values"])
        label = row["label"]
        if predicted == label:
            if label != "none":
                tp[label] += 1
            continue
        if predicted != "none":
            fp[predicted] += 1
            name_fp += detection.method == "column_name"
        if label != "none":
            fn[label] += 1
        errors.append({"table": f"{row['source']}/{row['table']}", "column": row["column"], "label": label,
                       "predicted": predicted, "reason": detection.reason if detection else None})
    categories = {}
    for category in PII_CATEGORIES:
        t, p, n = tp[category], fp[category], fn[category]
        if t + p + n:
            categories[category] = {"tp": t, "fp": p, "fn": n, "precision": round(t / (t + p), 3) if t + p else None,
                                    "recall": round(t / (t + n), 3) if t + n else None}
    t, p, n = sum(tp.values()), sum(fp.values()), sum(fn.values())
    return {"columns": len(rows), "positives": sum(1 for r in rows if r["label"] != "none"), "tp": t, "fp": p, "fn": n,
            "precision": round(t / (t + p), 3) if t + p else None, "recall": round(t / (t + n), 3) if t + n else None,
            "categories": categories, "suggestions": len(suggestions), "suggestions_on_pii": sum(suggestions),
            "name_decided_fp": name_fp, "example_leaks": leaks, "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", metavar="SERVER_URL", help="scan a PostgreSQL copy instead of SQLite")
    parser.add_argument("--errors", action="store_true", help="print every misclassified column")
    args = parser.parse_args()
    rows = load()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if args.postgres:
            scan_url, _ = write_postgres(rows, args.postgres)
            backend = "PostgreSQL"
        else:
            scan_url = write_sqlite(rows, Path(tmp) / "eval.db")
            backend = "SQLite"
        result = scanner.scan(scan_url, sample=40)
    seconds = time.perf_counter() - began
    found = {(c.table, c.column): c.detection for c in result.columns if c.detection is not None}
    figures = {split: score([r for r in rows if r["split"] == split], found) for split in ("dev", "heldout")}
    figures["all"] = score(rows, found)
    out = results_io.load()
    out.setdefault("pii_eval", {})
    out["pii_eval"][backend] = {
        "backend": backend, "seconds": round(seconds, 1), "targets": TARGETS,
        "sources": sorted({r["source"] for r in rows}), "tables": len({(r["source"], r["table"]) for r in rows}),
        "code": results_io.code_facts(),
        "splits": {k: {key: v for key, v in f.items() if key != "errors"} for k, f in figures.items()},
        "errors": figures["all"]["errors"]}
    if os.environ.get("PII_EVAL_NO_SAVE") != "1":
        results_io.save(out)
    for split, f in figures.items():
        print(f"{split:8} columns {f['columns']:4}  positives {f['positives']:3}  precision {f['precision']}  "
              f"recall {f['recall']}  (tp {f['tp']}, fp {f['fp']}, fn {f['fn']}; suggestions {f['suggestions']}, "
              f"name-decided fp {f['name_decided_fp']}, example leaks {f['example_leaks']})")
    for category, c in figures["all"]["categories"].items():
        print(f"  {category:22} precision {c['precision']}  recall {c['recall']}  (tp {c['tp']}, fp {c['fp']}, fn {c['fn']})")
    if args.errors:
        for e in figures["dev"]["errors"]:
            print(f"  dev error: {e['table']}.{e['column']}: label {e['label']}, predicted {e['predicted']} "
                  f"({e['reason']})")


if __name__ == "__main__":
    main()
