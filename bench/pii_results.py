"""RESULTS.md sections of the PII benches: the upload (`pii_upsert.py`) and the detection evaluation
(`pii_eval.py`). Kept apart from ``results.render`` so that each bench owns its own section."""

from __future__ import annotations

from typing import Any


def _verdict(value: bool | None) -> str:
    return "—" if value is None else ("**PASS**" if value else "**FAIL**")


def render_pii(r: dict[str, Any]) -> list[str]:
    out: list[str] = []
    u = r.get("pii_upsert")
    if u:
        code = u.get("code") or {}
        out += ["## PII classification upload", "",
                f"`python -m bench.pii_upsert`: `POST /api/v1/admin/compliance/classifications` with "
                f"{u['detections']:,} detections per request over HTTP to the real server, a fresh organization per "
                f"round, medians of {u['rounds']} rounds after a warm-up (commit `{code.get('commit', '?')}`, load "
                f"average {u['load'][0]} → {u['load'][1]}).", "",
                "| request | median | p95 | target | result |", "|---|---|---|---|---|"]
        labels = {"create": "10,000 new columns", "refresh": "same columns, half changed (updated / unchanged)",
                  "sticky": "after review: all kept as reviewed or dismissed"}
        for step, f in u["steps"].items():
            ok = f["median_ms"] < u["target_seconds"] * 1000
            out.append(f"| {labels.get(step, step)} | {f['median_ms']:,.0f} ms | {f['p95_ms']:,.0f} ms | "
                       f"< {u['target_seconds'] * 1000:,.0f} ms | {_verdict(ok)} |")
        store = u.get("store")
        if store:
            out += ["", "The store step alone, in process, interleaved with the per-detection loop it replaced "
                    "(a SELECT … FOR UPDATE, then an INSERT or UPDATE, per detection), on twin organizations:", "",
                    "| request | set-based (median) | per-detection loop (median) | ratio |", "|---|---|---|---|"]
            for step, f in store["set"].items():
                loop = store["loop"][step]["median_ms"]
                out.append(f"| {labels.get(step, step)} | {f['median_ms']:,.0f} ms | {loop:,.0f} ms | "
                           f"{loop / f['median_ms']:.1f}× |")
        out.append("")
    return out
