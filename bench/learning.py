"""Added cost of noting learned catalog facts (`audit/learning.py`) during extraction.

Uncached extraction (`_extract_text` with its caches cleared: tokenize, parse, scope, attribute) of
distinct statements from the synthetic warehouse (`bench/catalog.py`), in interleaved rounds: with
the learned-facts walk, and with the walk replaced by a no-op (the baseline, side by side). Reports
the medians over rounds and their ratio.

    .venv/bin/python -m bench.learning [--statements 2000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

from atlas_compliance.audit import extraction

from .catalog import build_tables, pick_query, select_sql, zipf_cum_weights


def statements(n: int, seed: int = 16) -> list[str]:
    rng = random.Random(seed)
    pool = build_tables(300, rng)
    weights = zipf_cum_weights(len(pool), 1.1)
    texts: list[str] = []
    while len(texts) < n:
        q = pick_query(pool, weights, rng)
        texts.append(select_sql(q.tables, q.columns, rng))
    return texts


def _round(texts: list[str]) -> float:
    extraction._extract_text.cache_clear()
    extraction._shapes._data.clear()
    start = time.perf_counter()
    for text in texts:
        extraction._extract_text.__wrapped__(text, "postgres", None)
    return (time.perf_counter() - start) / len(texts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--statements", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    texts = statements(args.statements)
    walk = extraction.qualified_columns
    with_walk: list[float] = []
    without: list[float] = []
    load = os.getloadavg()[0]
    for _ in range(args.rounds):
        extraction.qualified_columns = walk  # type: ignore[attr-defined]
        with_walk.append(_round(texts))
        extraction.qualified_columns = lambda *a, **k: ()  # type: ignore[attr-defined]
        without.append(_round(texts))
    extraction.qualified_columns = walk  # type: ignore[attr-defined]
    a, b = statistics.median(with_walk), statistics.median(without)
    multi = sum(1 for t in texts if " JOIN " in t)
    print(f"{len(texts):,} distinct statements ({multi:,} joins, the rest single-table), {args.rounds} interleaved "
          f"rounds, load average {load:.2f} / {os.getloadavg()[0]:.2f}")
    print(f"uncached extraction without the walk: median {b * 1e6:.1f} µs per statement ({1 / b:,.0f}/s on one core)")
    print(f"uncached extraction with the walk:    median {a * 1e6:.1f} µs per statement ({1 / a:,.0f}/s on one core)")
    print(f"ratio with/without: {a / b:.3f}")


if __name__ == "__main__":
    main()
