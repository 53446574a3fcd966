"""PII classification upload: `POST /api/v1/admin/compliance/classifications` with 10,000 detections.

The real server (uvicorn in a child process, like the other HTTP benches) on its own database. Each
round uses a fresh organization and sends, end to end over HTTP:

1. ``create``: 10,000 new detections (every one inserted);
2. ``refresh``: the same columns again, half of them changed (5,000 updated, 5,000 unchanged);
3. ``sticky``: again, after an admin reviewed or dismissed every row (10,000 kept as reviewed).

Side by side, in process and interleaved (alternating which goes first), the store step alone: the
set-based ``service.upsert_detections`` against the per-detection loop it replaced (a SELECT … FOR
UPDATE then an INSERT or UPDATE for each detection), on twin organizations, for the same three steps.

Medians over ``--repeat`` rounds go into ``results.json`` (key ``pii_upsert``) and ``RESULTS.md``.
Target (issue 13 item 14): at least 10,000 detections in under 1 s.

    python -m bench.pii_upsert [--server-url URL] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

import httpx
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from atlas_compliance.db import migrate
from atlas_compliance.pii import service
from atlas_compliance.pii.schemas import DetectionIn

from . import results as results_io
from .common import DEFAULT_SERVER_URL, connect, ensure_database, stats
from .server import Server, admin_token, new_org_with_ingest_key

DB_NAME = "atlas_bench_pii"
DETECTIONS = 10_000
TARGET_SECONDS = 1.0
URL = "/api/v1/admin/compliance/classifications"


def detections(org_round: int, *, changed: bool = False) -> list[dict]:
    out = []
    for i in range(DETECTIONS):
        category = "phone" if changed and i % 2 else "email"
        out.append({"tableName": f"bench_table_{i // 50}", "columnName": f"column_{i % 50}", "category": category,
                    "confidence": "high", "method": "regex",
                    "reason": f"{40 + org_round}/40 sampled values are valid email addresses",
                    "evidence": {"sampled": 40, "matched": 40, "examples": ["a***@example.com"]},
                    "sourceId": "bench"})
    return out


def one_round(client: httpx.Client, url: str, round_no: int) -> dict[str, float]:
    slug = f"bench-pii-{uuid.uuid4().hex[:8]}"
    org_id, _ = new_org_with_ingest_key(url, slug)
    headers = {"Authorization": f"Bearer {admin_token(url, slug)}"}
    timings: dict[str, float] = {}
    expected = {"create": {"created": DETECTIONS}, "refresh": {"updated": DETECTIONS // 2,
                                                               "unchanged": DETECTIONS // 2},
                "sticky": {"keptReviewed": DETECTIONS}}
    for step, body in (("create", detections(round_no)), ("refresh", detections(round_no, changed=True)),
                       ("sticky", detections(round_no))):
        if step == "sticky":
            with connect(url, autocommit=True) as conn:
                conn.execute("UPDATE pii_column_classifications SET reviewed = true, dismissed = (random() < 0.1) "
                             "WHERE org_id = %s", (org_id,))
        began = time.perf_counter()
        resp = client.post(URL, json={"detections": body}, headers=headers)
        timings[step] = time.perf_counter() - began
        resp.raise_for_status()
        answer = resp.json()
        for key, value in expected[step].items():
            if answer[key] != value:
                raise SystemExit(f"{step}: expected {key}={value}, the server answered {answer}")
    return timings


async def per_detection_loop(conn: psycopg.AsyncConnection, org_id: str, records: list[dict]) -> None:
    """The baseline: what ``service.upsert_detections`` did before, two round trips per detection."""
    for d in records:
        cur = await conn.execute(
            "SELECT id, reviewed, dismissed, category, confidence, method, reason, evidence "
            "FROM pii_column_classifications WHERE org_id = %s AND table_name = %s AND column_name = %s "
            "AND COALESCE(connection_group_id, '__default__') = COALESCE(%s, '__default__') FOR UPDATE",
            (org_id, d["table"], d["column"], d["group"]))
        existing = await cur.fetchone()
        evidence = Jsonb(d["evidence"]) if d["evidence"] is not None else None
        if existing is None:
            await conn.execute(
                "INSERT INTO pii_column_classifications (org_id, table_name, column_name, connection_group_id, "
                "category, confidence, masking_strategy, method, reason, evidence, source_id, detected_at, "
                "last_seen_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now(), now())",
                (org_id, d["table"], d["column"], d["group"], d["category"], d["confidence"], d["strategy"],
                 d["method"], d["reason"], evidence, d["source_id"]))
        elif existing["reviewed"] or existing["dismissed"] or (
                existing["category"], existing["confidence"], existing["method"], existing["reason"],
                existing["evidence"]) == (d["category"], d["confidence"], d["method"], d["reason"], d["evidence"]):
            await conn.execute("UPDATE pii_column_classifications SET last_seen_at = now() WHERE id = %s",
                               (existing["id"],))
        else:
            await conn.execute(
                "UPDATE pii_column_classifications SET category = %s, confidence = %s, method = %s, reason = %s, "
                "evidence = %s, source_id = coalesce(%s, source_id), last_seen_at = now(), updated_at = now() "
                "WHERE id = %s", (d["category"], d["confidence"], d["method"], d["reason"], evidence,
                                  d["source_id"], existing["id"]))


async def store_side_by_side(url: str, rounds: int) -> dict[str, dict[str, list[float]]]:
    """Seconds per step for the set-based upsert ("set") and the per-detection loop ("loop")."""
    times: dict[str, dict[str, list[float]]] = {"set": {}, "loop": {}}
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        for round_no in range(rounds + 1):  # round 0 warms up
            orgs = {}
            for kind in ("set", "loop"):
                orgs[kind], _ = await asyncio.to_thread(new_org_with_ingest_key, url,
                                                        f"bench-pii-{kind}-{uuid.uuid4().hex[:8]}")
            order = ("set", "loop") if round_no % 2 else ("loop", "set")
            for step, body in (("create", detections(round_no)), ("refresh", detections(round_no, changed=True)),
                               ("sticky", detections(round_no))):
                records = service.detection_records(DetectionIn.model_validate(d) for d in body)
                for kind in order:
                    if step == "sticky":
                        await conn.execute("UPDATE pii_column_classifications SET reviewed = true WHERE org_id = %s",
                                           (orgs[kind],))
                        await conn.commit()
                    began = time.perf_counter()
                    async with conn.transaction():
                        if kind == "set":
                            await service.upsert_detections(conn, orgs[kind], records)
                        else:
                            await per_detection_loop(conn, orgs[kind], records)
                    if round_no:
                        times[kind].setdefault(step, []).append(time.perf_counter() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-url", default=os.environ.get("BENCH_SERVER_URL", DEFAULT_SERVER_URL))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    url = ensure_database(args.server_url, DB_NAME, recreate=True)
    migrate.upgrade(url)
    samples: dict[str, list[float]] = {"create": [], "refresh": [], "sticky": []}
    load_before = os.getloadavg()[0]
    with Server(url) as server, httpx.Client(base_url=server.base_url, timeout=120) as client:
        one_round(client, url, 0)  # warm-up: connections, prepared plans
        for round_no in range(1, args.repeat + 1):
            for step, seconds in one_round(client, url, round_no).items():
                samples[step].append(seconds)
    side = asyncio.run(store_side_by_side(url, args.repeat))
    figures = {step: stats(values) for step, values in samples.items()}
    store = {kind: {step: stats(values) for step, values in steps.items()} for kind, steps in side.items()}
    worst = max(f["median_ms"] for f in figures.values()) / 1000
    out = results_io.load()
    out["pii_upsert"] = {"detections": DETECTIONS, "rounds": args.repeat, "steps": figures,
                         "target_seconds": TARGET_SECONDS, "store": store, "passed": worst < TARGET_SECONDS,
                         "load": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                         "code": results_io.code_facts()}
    results_io.save(out)
    for step, f in figures.items():
        print(f"{step:8} median {f['median_ms']:8.1f} ms  p95 {f['p95_ms']:8.1f} ms  (n={f['n']})")
    for step in store["set"]:
        a, b = store["set"][step]["median_ms"], store["loop"][step]["median_ms"]
        print(f"store {step:8} set-based {a:8.1f} ms  per-detection loop {b:8.1f} ms  ({b / a:.1f}x)")
    print(f"{DETECTIONS:,} detections per request, slowest median {worst:.3f} s: "
          f"{'PASS' if worst < TARGET_SECONDS else 'FAIL'} (target < {TARGET_SECONDS} s)")


if __name__ == "__main__":
    main()
