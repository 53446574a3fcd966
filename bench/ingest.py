"""Ingest throughput: through the HTTP API (batches of 1,000, the server parses every SQL text with
sqlglot) and through the CLI bulk import (`atlas-compliance ingest FILE --org SLUG`)."""

from __future__ import annotations

import asyncio
import os
import random
import re
import resource
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from psycopg.rows import dict_row

from atlas_compliance.audit import repository as audit_repo
from atlas_compliance.audit.service import prepare_event

from .catalog import Table, build_tables, pick_query, select_sql, zipf_cum_weights
from .common import connect
from .server import new_org_with_ingest_key

DATA_DIR = Path(__file__).resolve().parent / "data"


def _other_sql(q, rng: random.Random, literal: int) -> str:
    """Statements other than plain SELECT joins, so the parser sees CTEs, aggregates and writes."""
    t = q.tables[0]
    cols = [c for c in q.columns[t.name] if c != "*"] or ["id"]
    shape = rng.random()
    if shape < 0.4:
        cte = f"WITH recent AS (SELECT {', '.join(cols)} FROM {t.name} WHERE id > {literal})"  # noqa: S608
        return f"{cte} SELECT {cols[0]}, count(*) AS n FROM recent GROUP BY {cols[0]} ORDER BY n DESC"  # noqa: S608
    if shape < 0.7:
        return f"UPDATE {t.name} SET updated_at = now() WHERE id = {literal} AND {cols[0]} IS NOT NULL"  # noqa: S608
    inner = f"SELECT {cols[0]} FROM {t.name} WHERE id = {literal}"  # noqa: S608
    return f"SELECT * FROM {q.tables[-1].name} WHERE id IN ({inner})"  # noqa: S608


_LITERALS = re.compile(r"'[^']*'|\b\d+\b")


def sql_shape(sql: str) -> str:
    """The text with its literals blanked: texts that differ only in values share a shape."""
    return _LITERALS.sub("?", sql)


class EventFactory:
    """Realistic query events; ``repeat`` is the share of events whose SQL text repeats an earlier one.
    With ``unique_shapes`` every fresh text also differs in structure (a unique column alias), not only
    in its literals: the worst case for a parse cache keyed by shape."""

    def __init__(self, repeat: float, seed: int, pool_size: int = 400, unique_shapes: bool = False) -> None:
        self.unique_shapes = unique_shapes
        self.rng = random.Random(seed)
        self.tables: list[Table] = build_tables(300, random.Random(seed + 1))
        self.cw = zipf_cum_weights(len(self.tables), 1.1)
        self.repeat = repeat
        self.literal = seed * 10_000_000
        self.pool = [self._fresh() for _ in range(pool_size)] if repeat > 0 else []
        self.pool_cw = zipf_cum_weights(len(self.pool), 1.0) if self.pool else []
        self.users = [f"ingest-user-{i:03d}" for i in range(200)]
        self.now = datetime.now(UTC)

    def _fresh(self) -> str:
        self.literal += 1  # a new literal: a SQL text never seen before
        q = pick_query(self.tables, self.cw, self.rng)
        if self.rng.random() < 0.2:
            sql = _other_sql(q, self.rng, self.literal)
        else:
            sql = select_sql(q.tables, q.columns, self.rng, literal=self.literal)
        if self.unique_shapes and sql.startswith("SELECT "):
            sql = f"SELECT {self.literal} AS q{self.literal}, " + sql[len("SELECT "):]
        return sql

    def event(self, i: int, run: str) -> dict[str, Any]:
        rng = self.rng
        if self.pool and rng.random() < self.repeat:
            sql = rng.choices(self.pool, cum_weights=self.pool_cw)[0]
        else:
            sql = self._fresh()
        success = rng.random() > 0.03
        return {"eventId": f"{run}-{i}", "timestamp": (self.now - timedelta(seconds=i)).isoformat(),
                "userId": rng.choice(self.users), "sql": sql, "durationMs": rng.randint(1, 3000),
                "rowCount": rng.randint(0, 1000) if success else None, "success": success,
                "error": None if success else "canceling statement due to statement timeout",
                "sourceId": "warehouse-prod", "sourceType": "postgres", "actorKind": "agent"}


def _counts(url: str, org_id: str) -> tuple[int, int]:
    with connect(url) as conn:
        row = conn.execute("SELECT count(*), count(*) FILTER (WHERE parse_error IS NOT NULL) FROM audit_log "
                           "WHERE org_id = %s", (org_id,)).fetchone()
    return int(row[0]), int(row[1])


def http_ingest(url: str, base_url: str, *, events: int, repeat: float, batch: int = 1_000,
                concurrency: int = 2, label: str, unique_shapes: bool = False, log=print) -> dict[str, Any]:
    """POST ``events`` events in batches to a fresh org; bodies are serialized before the clock starts."""
    run = f"{'repeat' if repeat else 'shapes' if unique_shapes else 'distinct'}-{int(time.time())}"
    org_id, key = new_org_with_ingest_key(url, f"bench-ingest-{run}")
    factory = EventFactory(repeat, seed=int(time.time()) % 100_000, unique_shapes=unique_shapes)
    bodies = [orjson.dumps([factory.event(i, run) for i in range(k, min(events, k + batch))])
              for k in range(0, events, batch)]
    texts = [e["sql"] for b in bodies for e in orjson.loads(b)]
    distinct = len(set(texts))
    shapes = len({sql_shape(t) for t in texts})
    results: list[dict] = []
    errors: list[str] = []
    lock = threading.Lock()
    queue = list(reversed(bodies))
    latencies: list[float] = []

    def worker() -> None:
        with httpx.Client(base_url=base_url, timeout=300,
                          headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                t0 = time.perf_counter()
                resp = client.post("/api/v1/audit/events", content=body)
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    if resp.status_code != 200:
                        errors.append(f"HTTP {resp.status_code}: {resp.text[:200]}")
                    else:
                        results.append(resp.json())

    began = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - began
    inserted = sum(r["inserted"] for r in results)
    rejected = sum(len(r["rejected"]) for r in results)
    stored, parse_errors = _counts(url, org_id)
    rate = inserted / seconds
    if errors or stored != events or inserted != events:
        errors.append(f"expected {events} stored, API said inserted {inserted}, table has {stored}")
    log(f"  HTTP ingest ({label}, {distinct:,} distinct SQL texts, {shapes:,} shapes, of {events:,}): "
        f"{rate:,.0f} events/s "
        f"({seconds:.1f}s, {concurrency} concurrent clients, batch p50 "
        f"{sorted(latencies)[len(latencies) // 2] * 1000:.0f} ms)")
    return {"label": label, "events": events, "distinct_sql": distinct, "distinct_shapes": shapes,
            "unique_shapes": unique_shapes, "repeat_share_target": repeat,
            "batch": batch, "concurrency": concurrency, "seconds": round(seconds, 2), "events_per_s": round(rate),
            "inserted": inserted, "rejected": rejected, "stored": stored, "parse_errors": parse_errors,
            "batch_latency_ms": {"median": round(sorted(latencies)[len(latencies) // 2] * 1000, 1),
                                 "max": round(max(latencies) * 1000, 1)},
            "errors": errors[:10]}


def cli_import(url: str, *, events: int, repeat: float = 0.7, runs: int = 3, log=print) -> dict[str, Any]:
    """Write an NDJSON file and time `atlas-compliance ingest FILE --org SLUG` on it ``runs`` times,
    each into a fresh organization (wall clock including process start; CPU of the command and its
    worker processes from the kernel's accounting)."""
    run = f"cli-{int(time.time())}"
    DATA_DIR.mkdir(exist_ok=True)
    path = DATA_DIR / f"{run}.ndjson"
    factory = EventFactory(repeat, seed=int(time.time()) % 100_000 + 7)
    with open(path, "wb") as handle:
        for i in range(events):
            handle.write(orjson.dumps(factory.event(i, run)) + b"\n")
    cli = Path(sys.executable).with_name("atlas-compliance")
    env = {**os.environ, "DATABASE_URL": url}
    samples: list[dict[str, Any]] = []
    errors: list[str] = []
    output = ""
    try:
        for k in range(runs):
            slug = f"bench-ingest-{run}-{k}"
            org_id, _ = new_org_with_ingest_key(url, slug)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            began = time.perf_counter()
            proc = subprocess.run([str(cli), "ingest", str(path), "--org", slug], env=env, capture_output=True,
                                  text=True, check=False)
            seconds = time.perf_counter() - began
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            stored, _ = _counts(url, org_id)
            output = proc.stdout.strip()
            if proc.returncode != 0 or stored != events:
                errors.append(f"exit {proc.returncode}, stored {stored} of {events}: {proc.stderr.strip()[-300:]}")
            samples.append({"seconds": round(seconds, 2), "events_per_s": round(stored / seconds),
                            "client_cpu_s": round(cpu, 2)})
            log(f"  CLI import {k + 1}/{runs}: {stored:,} events in {seconds:.2f}s = {stored / seconds:,.0f} events/s "
                f"(command and workers {cpu:.2f} CPU-s)")
    finally:
        path.unlink(missing_ok=True)
    median = sorted(samples, key=lambda x: x["seconds"])[len(samples) // 2]
    return {"events": events, "runs": samples, "seconds": median["seconds"], "events_per_s": median["events_per_s"],
            "client_cpu_s": median["client_cpu_s"], "output": output, "errors": errors}


def breakdown(url: str, *, events: int = 5_000, repeat: float, log=print) -> dict[str, Any]:
    """Diagnostic: the two halves of ingest in process, per event: validation + SQL extraction
    (``prepare_event``, in a fresh interpreter's cache state for these texts) and the COPY with triggers."""
    run = f"{'repeat' if repeat else 'distinct'}-diag-{int(time.time())}"
    org_id, _ = new_org_with_ingest_key(url, f"bench-ingest-{run}")
    factory = EventFactory(repeat, seed=int(time.time()) % 100_000 + 13)
    raw = [factory.event(i, run) for i in range(events)]
    now = datetime.now(UTC)
    began = time.perf_counter()
    rows = [(*prepare_event(e, now, None), org_id) for e in raw]
    prepare_s = time.perf_counter() - began

    async def copy() -> float:
        async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
            t0 = time.perf_counter()
            for k in range(0, len(rows), 1_000):
                async with conn.transaction():
                    await audit_repo.lock_org_chain(conn, org_id)
                    await audit_repo.existing_event_ids(conn, org_id, [r[0] for r in rows[k:k + 1_000]])
                    await audit_repo.copy_events(conn, rows[k:k + 1_000])
            return time.perf_counter() - t0

    copy_s = asyncio.run(copy())
    out = {"repeat_share_target": repeat, "events": events,
           "prepare_us_per_event": round(prepare_s / events * 1e6), "prepare_events_per_s": round(events / prepare_s),
           "copy_us_per_event": round(copy_s / events * 1e6), "copy_events_per_s": round(events / copy_s)}
    log(f"    in process ({'70% repeated' if repeat else 'distinct'}): prepare_event {out['prepare_us_per_event']} "
        f"µs/event ({out['prepare_events_per_s']:,}/s), COPY + triggers {out['copy_us_per_event']} µs/event "
        f"({out['copy_events_per_s']:,}/s)")
    return out
