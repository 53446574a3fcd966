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
    for backend, e in (r.get("pii_eval") or {}).items():
        if "splits" not in e:
            continue
        out += _render_eval(backend, e)
    return out


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _render_eval(backend: str, e: dict[str, Any]) -> list[str]:
    t = e["targets"]
    code = e.get("code") or {}
    splits = e["splits"]
    out = [f"## PII detection ({backend})", "",
           f"`python -m bench.pii_eval{' --postgres URL' if backend == 'PostgreSQL' else ''}`: the real scanner "
           f"(`atlas_compliance.pii.scanner.scan`) on {splits['all']['columns']} labeled columns of {e['tables']} tables "
           f"from the public test data of {', '.join(e['sources'])} (rebuilt by `python -m bench.pii_eval_build`; "
           f"real people's values replaced by same-shape pseudonyms), loaded into {backend}; commit "
           f"`{code.get('commit', '?')}`, {e['seconds']} s. A column counts as detected when the scan classifies it "
           "in its labeled category and not as a mere suggestion to review. `dev` is the part the rules were written "
           "against; `heldout` (a third of the tables, by a hash of their names) was not used to write them: its "
           "errors were looked at once, after the rules were settled, for faults of the harness only (one was "
           "fixed: IPv6 pseudonyms that were not hexadecimal); no rule was changed for them.", "",
           "| part | columns | with personal data | precision | recall | suggestions (on PII) | "
           "false positives decided by a name | masked examples revealing too much |",
           "|---|---|---|---|---|---|---|---|"]
    for split in ("dev", "heldout", "all"):
        f = splits[split]
        out.append(f"| {split} | {f['columns']} | {f['positives']} | {_fmt(f['precision'])} | {_fmt(f['recall'])} | "
                   f"{f['suggestions']} ({f['suggestions_on_pii']}) | {f['name_decided_fp']} | {f['example_leaks']} |")
    a = splits["all"]
    ok = (a["precision"] or 0) >= t["precision"] and (a["recall"] or 0) >= t["recall"] and all(
        (c["precision"] is None or c["precision"] >= t["category_precision"]) for c in a["categories"].values())
    out += ["", f"Targets (all columns): precision ≥ {t['precision']}, recall ≥ {t['recall']}, every category's "
            f"precision ≥ {t['category_precision']}: {_verdict(ok)}.", "",
            "| category | labeled columns | precision | recall | true pos. | false pos. | false neg. |",
            "|---|---|---|---|---|---|---|"]
    for category, c in a["categories"].items():
        out.append(f"| `{category}` | {c['tp'] + c['fn']} | {_fmt(c['precision'])} | {_fmt(c['recall'])} | {c['tp']} | "
                   f"{c['fp']} | {c['fn']} |")
    misses = e.get("errors") or []
    if misses:
        out += ["", "Columns still wrong (label → what the scan said):", ""]
        out += [f"- `{m['table']}.{m['column']}`: {m['label']} → {m['predicted']}" for m in misses]
    out.append("")
    return out
