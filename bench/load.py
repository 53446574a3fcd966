"""Load test: report users, CSV exports and continuous ingest at once, over real HTTP on loopback.

    python -m bench.load [--duration 60] [--users 20] [--ingest-rate 200] [--server-url URL] [--database NAME]
    make load

The full run builds (or reuses) the demo data, the Acme Health organization with about 60,000 audited
queries over 90 days, in its own database (`atlas_load` on the local PostgreSQL server unless told
otherwise), serves the app with uvicorn in a child process, and for `--duration` seconds runs:

- `--users` report users, each in a loop with no think time: Data Access and User Activity reports as
  JSON (windows of 7, 30 or 90 days ending today, sometimes filtered by role or table) and as CSV
  exports streamed to the end;
- one ingest writer sending batches of realistic queries (new event ids, current timestamps) at
  `--ingest-rate` events per second.

Every answer other than 200 and every transport error counts as an error. At the end the run checks that
every event the writer sent is stored exactly once and that the organization's hash chain verifies.
It prints p50/p95/p99 latency and throughput per kind of request and the server's peak RSS (sampled
every 100 ms), writes them to `bench/load-results.json`, and exits non-zero on any error.
`tests/reliability/test_load_short.py` runs the same workload for a few seconds in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from atlas_compliance.auth import service as auth
from atlas_compliance.db import migrate
from atlas_compliance.db.pool import Database
from atlas_compliance.demo import hospital, seed

from .common import DEFAULT_SERVER_URL, connect, ensure_database
from .server import RssSampler, Server

DA = "/api/v1/admin/compliance/reports/data-access"
UA = "/api/v1/admin/compliance/reports/user-activity"
INGEST = "/api/v1/audit/events"
VERIFY = "/api/v1/admin/audit/verify"
# (kind, path, format, share of report requests)
REPORT_MIX = [("data-access json", DA, "json", 0.35), ("user-activity json", UA, "json", 0.35),
              ("data-access csv", DA, "csv", 0.15), ("user-activity csv", UA, "csv", 0.15)]
ROLE_FILTERS = [None, None, None, "member", "admin"]
TABLE_FILTERS = [None, None, None, "patients", "invoices", "prescriptions"]
RESULTS_FILE = Path(__file__).resolve().parent / "load-results.json"


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted samples (q in 0..100)."""
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n q / 100), at least the first sample
    return ordered[int(rank) - 1]


@dataclass
class Tally:
    """Latencies (seconds) and outcomes of one kind of request."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    bytes: int = 0
    events: int = 0

    def summary(self, seconds: float) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        out: dict[str, Any] = {"requests": len(ordered) + self.errors, "errors": self.errors,
                               "per_second": round(len(ordered) / seconds, 2)}
        if ordered:
            out |= {f"p{q}_ms": round(percentile(ordered, q) * 1000, 1) for q in (50, 95, 99)}
            out["max_ms"] = round(ordered[-1] * 1000, 1)
        if self.events:
            out["events"] = self.events
            out["events_per_second"] = round(self.events / seconds, 1)
        if self.bytes:
            out["mb"] = round(self.bytes / 1e6, 2)
        return out


@dataclass
class LoadResult:
    duration_s: float
    users: int
    tallies: dict[str, Tally]
    error_samples: list[str]
    ingest_sent: int
    ingest_inserted: int
    run: str
    peak_rss_mb: float | None = None
    rss_before_mb: float | None = None
    stored_once: bool | None = None
    chain_ok: bool | None = None

    @property
    def errors(self) -> int:
        return sum(t.errors for t in self.tallies.values())

    def to_dict(self) -> dict[str, Any]:
        reports = Tally(latencies=[x for k, t in self.tallies.items() if k != "ingest" for x in t.latencies],
                        errors=sum(t.errors for k, t in self.tallies.items() if k != "ingest"))
        return {
            "duration_s": round(self.duration_s, 1), "report_users": self.users, "errors": self.errors,
            "error_samples": self.error_samples, "all_reports": reports.summary(self.duration_s),
            "by_kind": {k: t.summary(self.duration_s) for k, t in self.tallies.items()},
            "ingest_sent": self.ingest_sent, "ingest_inserted": self.ingest_inserted,
            "stored_exactly_once": self.stored_once, "chain_verified": self.chain_ok,
            "server_rss_before_mb": self.rss_before_mb, "server_peak_rss_mb": self.peak_rss_mb,
        }


def _report_params(rng: random.Random, today: date, fmt: str) -> dict[str, str]:
    days = rng.choice([7, 30, 30, 90])
    params = {"startDate": (today - timedelta(days=days - 1)).isoformat(), "endDate": today.isoformat()}
    if fmt == "csv":
        params["format"] = "csv"
    role, table = rng.choice(ROLE_FILTERS), rng.choice(TABLE_FILTERS)
    if role:
        params["role"] = role
    if table:
        params["table"] = table
    return params


def sql_pool(rng: random.Random, size: int) -> list[tuple[str, str]]:
    """Realistic (dialect, SQL) pairs from the demo's templates; the writer repeats them like real tools."""
    pool = []
    for _ in range(size):
        _team, _weight, dialect, build = rng.choice(hospital.TEMPLATES)
        pool.append((dialect, build(rng)))
    return pool


async def run_load(base_url: str, admin_token: str, ingest_token: str, *, duration: float, users: int,
                   ingest_rate: float, user_ids: list[str | None], seed: int = 1,
                   rss: Callable[[], int] | None = None, log: Callable[[str], None] = print) -> LoadResult:
    """Run the mixed workload against a served app; return latencies, errors and the ingest tally."""
    run = uuid.uuid4().hex[:10]
    today = datetime.now(UTC).date()
    tallies: dict[str, Tally] = {kind: Tally() for kind, *_ in REPORT_MIX} | {"ingest": Tally()}
    error_samples: list[str] = []
    sent = inserted = 0
    admin = {"Authorization": f"Bearer {admin_token}"}
    ingest = {"Authorization": f"Bearer {ingest_token}"}
    limits = httpx.Limits(max_connections=users + 4, max_keepalive_connections=users + 4)
    timeout = httpx.Timeout(120.0)

    def failed(kind: str, what: str) -> None:
        tallies[kind].errors += 1
        if len(error_samples) < 20:
            error_samples.append(f"{kind}: {what}")

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
        warm = await client.get(DA, params={"startDate": today.isoformat(), "endDate": today.isoformat()},
                                headers=admin)
        if warm.status_code != 200:
            raise SystemExit(f"warm-up report: HTTP {warm.status_code}: {warm.text[:300]}")
        deadline = time.monotonic() + duration

        async def report_user(number: int) -> None:
            rng = random.Random(seed * 1000 + number)
            kinds, weights = [m[:3] for m in REPORT_MIX], [m[3] for m in REPORT_MIX]
            while time.monotonic() < deadline:
                kind, path, fmt = rng.choices(kinds, weights)[0]
                params = _report_params(rng, today, fmt)
                began = time.perf_counter()
                try:
                    size = 0
                    async with client.stream("GET", path, params=params, headers=admin) as resp:
                        async for chunk in resp.aiter_bytes():
                            size += len(chunk)
                        if resp.status_code != 200:
                            failed(kind, f"HTTP {resp.status_code} for {params}")
                            continue
                    tallies[kind].latencies.append(time.perf_counter() - began)
                    tallies[kind].bytes += size
                except httpx.HTTPError as exc:
                    failed(kind, f"{type(exc).__name__}: {exc}")

        async def writer() -> None:
            nonlocal sent, inserted
            rng = random.Random(seed)
            pool = sql_pool(rng, 400)
            batch = max(1, min(500, round(ingest_rate / 4)))  # about four batches a second
            interval = batch / ingest_rate
            next_at = time.monotonic()
            while time.monotonic() < deadline:
                now = datetime.now(UTC)
                events = []
                for _ in range(batch):
                    dialect, sql = rng.choice(pool)
                    events.append({"eventId": f"load-{run}-{sent + len(events)}", "timestamp": now.isoformat(),
                                   "userId": rng.choice(user_ids), "sql": sql, "sourceType": dialect,
                                   "durationMs": rng.randint(1, 400), "success": rng.random() > 0.03,
                                   "actorKind": "human"})
                began = time.perf_counter()
                try:
                    resp = await client.post(INGEST, json=events, headers=ingest)
                    if resp.status_code != 200:
                        failed("ingest", f"HTTP {resp.status_code}: {resp.text[:200]}")
                    else:
                        body = resp.json()
                        inserted += body["inserted"]
                        if body["rejected"]:
                            failed("ingest", f"rejected: {body['rejected'][:2]}")
                        tallies["ingest"].latencies.append(time.perf_counter() - began)
                        tallies["ingest"].events += len(events)
                except httpx.HTTPError as exc:
                    failed("ingest", f"{type(exc).__name__}: {exc}")
                sent += len(events)
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        memory = RssSampler(rss, interval=0.1) if rss else None
        began = time.monotonic()
        log(f"load: {users} report users and an ingest writer at {ingest_rate:g} events/s for {duration:g} s")
        with memory or contextlib.nullcontext():
            await asyncio.gather(writer(), *(report_user(i) for i in range(users)))
        elapsed = time.monotonic() - began

        verify = await client.get(VERIFY, headers=admin)
        chain_ok = verify.status_code == 200 and verify.json()["ok"]

    return LoadResult(duration_s=elapsed, users=users, tallies=tallies, error_samples=error_samples,
                      ingest_sent=sent, ingest_inserted=inserted, run=run, chain_ok=chain_ok,
                      peak_rss_mb=round(memory.peak / 2**20, 1) if memory else None,
                      rss_before_mb=round(memory.before / 2**20, 1) if memory else None)


def stored_events(database_url: str, org_slug: str, run: str) -> tuple[int, int]:
    """(rows, distinct event ids) of this run's ingest in the organization's audit log."""
    with connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT a.event_id) FROM audit_log a JOIN organization o ON o.id = a.org_id "
            "WHERE o.slug = %s AND a.event_id LIKE %s", (org_slug, f"load-{run}-%")).fetchone()
    return int(row[0]), int(row[1])


def table(result: dict[str, Any]) -> str:
    """The figures as a Markdown table (the form docs/RELIABILITY.md uses)."""
    lines = ["| requests | count | errors | per s | p50 ms | p95 ms | p99 ms | max ms |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    rows = [("all reports", result["all_reports"])] + list(result["by_kind"].items())
    for name, s in rows:
        lines.append(f"| {name} | {s['requests']:,} | {s['errors']} | {s['per_second']} | {s.get('p50_ms', '-')} | "
                     f"{s.get('p95_ms', '-')} | {s.get('p99_ms', '-')} | {s.get('max_ms', '-')} |")
    return "\n".join(lines)


async def _prepare(url: str, events: int) -> tuple[str, str, str, list[str | None]]:
    """Demo data (created once) plus fresh credentials: (org slug, admin token, ingest key, user ids)."""
    db = Database(url, max_size=4)
    await db.open()
    try:
        _org, _actors, members, _created = await seed.ensure_people(db)
        info = await seed.seed_demo(db, target=events, progress=None)
        await seed.seed_classifications(db, info.org_id)
        async with db.transaction() as conn:
            admin = await auth.create_personal_token(conn, org_slug=info.org_slug, email=info.admin_email,
                                                     name="load test", expires_in_seconds=3600)
            key = await auth.create_ingest_key(conn, org_slug=info.org_slug, name=f"load test {uuid.uuid4().hex[:6]}",
                                               expires_in_seconds=3600)
    finally:
        await db.close()
    user_ids: list[str | None] = [m[0] for m in members] + ["svc:etl-nightly", None]
    return info.org_slug, admin["token"], key["token"], user_ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (default 60)")
    parser.add_argument("--users", type=int, default=20, help="concurrent report users (default 20)")
    parser.add_argument("--ingest-rate", type=float, default=200, help="events per second sent (default 200)")
    parser.add_argument("--events", type=int, default=60_000, help="demo audit events on first run (default 60,000)")
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL,
                        help=f"a PostgreSQL server where the load database is created (default {DEFAULT_SERVER_URL})")
    parser.add_argument("--database", default="atlas_load", help="database name (default atlas_load)")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE, help="where to write the JSON figures")
    args = parser.parse_args(argv)

    url = ensure_database(args.server_url, args.database)
    migrate.upgrade(url)
    print(f"preparing the demo data in {args.database} (first run ingests {args.events:,} events)…", flush=True)
    slug, admin, key, user_ids = asyncio.run(_prepare(url, args.events))
    with Server(url) as server:
        result = asyncio.run(run_load(server.base_url, admin, key, duration=args.duration, users=args.users,
                                           ingest_rate=args.ingest_rate, user_ids=user_ids, rss=server.rss))
    rows, distinct = stored_events(url, slug, result.run)
    result.stored_once = rows == distinct == result.ingest_sent == result.ingest_inserted
    figures = result.to_dict() | {"stored_rows": rows, "date": datetime.now(UTC).isoformat(timespec="seconds")}
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    print(table(figures))
    print(f"ingest: sent {result.ingest_sent:,}, inserted {result.ingest_inserted:,}, stored {rows:,} "
          f"({'exactly once' if result.stored_once else 'MISMATCH'}); chain "
          f"{'verified' if result.chain_ok else 'BROKEN'}")
    print(f"server RSS: {figures['server_rss_before_mb']} MB before, {figures['server_peak_rss_mb']} MB at peak")
    print(f"errors: {result.errors}" + "".join(f"\n  {e}" for e in result.error_samples))
    print(f"figures written to {args.output}")
    return 0 if result.errors == 0 and result.stored_once and result.chain_ok else 1


if __name__ == "__main__":
    sys.exit(main())
