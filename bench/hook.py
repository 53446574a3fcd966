"""What the SQLAlchemy hook adds to each statement an application runs, side by side with a baseline.

Three engines on one PostgreSQL database run the same workload in interleaved rounds: no hook, the
hook and client of a baseline revision (loaded from git), and the current ones. Each round runs
``--statements`` statements (``SELECT 1``, a commit every ``--per-transaction``) on one connection;
the cost added by a hook is its round's time per statement minus the un-instrumented engine's in the
same round, and the figure is the median over rounds. Both clients deliver to a real server
(``bench.server``) while the statements run, so the sender's work competes for the CPU as it does
in an application.

    python -m bench.hook                      # baseline: the commit before issue 14's client changes
    python -m bench.hook --baseline-rev HEAD~3 --rounds 21 --statements 4000

The result goes to ``bench/hook-results.json`` and to its own section of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import orjson
import sqlalchemy as sa

from atlas_compliance.client import AuditClient, instrument_engine
from atlas_compliance.db import migrate
from atlas_compliance.db.pool import to_libpq_url
from bench.common import ensure_database
from bench.server import REPO_ROOT, Server, free_port, new_org_with_ingest_key

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "hook-results.json"
RESULTS_MD = HERE / "RESULTS.md"
SECTION_START, SECTION_END = "<!-- bench.hook:start -->", "<!-- bench.hook:end -->"
DEFAULT_BASELINE = "9f1e63f"  # the client before issue 14 (points 1-8)


def load_baseline_client(rev: str, into: Path) -> ModuleType:
    """The ``atlas_compliance.client`` package of ``rev`` as the top-level package ``hook_baseline``."""
    package = into / "hook_baseline"
    package.mkdir()
    names = subprocess.run(["git", "ls-tree", "--name-only", f"{rev}:src/atlas_compliance/client/"],
                           cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in names:
        if name.endswith(".py"):
            text = subprocess.run(["git", "show", f"{rev}:src/atlas_compliance/client/{name}"], cwd=REPO_ROOT,
                                  capture_output=True, text=True, check=True).stdout
            (package / name).write_text(text.replace("from .. import __version__", "__version__ = 'baseline'"))
    sys.path.insert(0, str(into))
    return importlib.import_module("hook_baseline")


class _Acknowledge(BaseHTTPRequestHandler):
    """Answers every batch as the server would when it stored all of it."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        events = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = orjson.dumps({"inserted": len(events), "duplicates": 0, "rejected": []})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def serve_sink(port: int) -> None:
    ThreadingHTTPServer(("127.0.0.1", port), _Acknowledge).serve_forever()


@contextlib.contextmanager
def sink() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.hook", "--sink", str(port)], cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(url + "/api/v1/audit/events", content=b"[]", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def run_round(engine: sa.Engine, statements: int, per_transaction: int) -> tuple[float, float]:
    """Seconds per statement over one round: wall time, and CPU time of the application's thread."""
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))  # the connection is open and warm before timing
        conn.commit()
        started, cpu_started = time.perf_counter(), time.thread_time()
        for i in range(statements):
            conn.execute(sa.text("SELECT 1"))
            if i % per_transaction == per_transaction - 1:
                conn.commit()
        conn.commit()
        return (time.perf_counter() - started) / statements, (time.thread_time() - cpu_started) / statements


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--db-name", default="atlas_bench_hook")
    parser.add_argument("--baseline-rev", default=DEFAULT_BASELINE)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--statements", type=int, default=2_000)
    parser.add_argument("--per-transaction", type=int, default=10)
    parser.add_argument("--real-server", action="store_true",
                        help="deliver to the real server (its ingest work then competes with the application)")
    parser.add_argument("--sink", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sink:
        serve_sink(args.sink)
        return {}

    load_before = os.getloadavg()[0]
    url = ensure_database(args.server_url, args.db_name)
    migrate.upgrade(url)
    engine_url = "postgresql+psycopg://" + to_libpq_url(url).split("://", 1)[1]
    baseline_rev = subprocess.run(["git", "rev-parse", "--short", args.baseline_rev], cwd=REPO_ROOT,
                                  capture_output=True, text=True, check=True).stdout.strip()
    current_rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                                 capture_output=True, text=True, check=True).stdout.strip()
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        if args.real_server:
            endpoint = stack.enter_context(Server(url)).base_url
            _, key = new_org_with_ingest_key(url, f"bench-hook-{int(time.time())}")
        else:
            endpoint, key = stack.enter_context(sink()), "atli_bench"
        baseline = load_baseline_client(args.baseline_rev, Path(tmp))
        clients = {"baseline": baseline.AuditClient(endpoint, key),
                   "current": AuditClient(endpoint, key)}
        engines = {name: sa.create_engine(engine_url) for name in ("none", "baseline", "current")}
        baseline.instrument_engine(engines["baseline"], clients["baseline"])
        instrument_engine(engines["current"], clients["current"])
        for name in engines:  # warm-up: connections, statement caches, the server's parse cache
            run_round(engines[name], 200, args.per_transaction)
        samples: dict[str, list[float]] = {name: [] for name in engines}
        cpu: dict[str, list[float]] = {name: [] for name in engines}
        for number in range(args.rounds):
            order = list(engines)
            random.Random(number).shuffle(order)
            for name in order:
                wall, thread_cpu = run_round(engines[name], args.statements, args.per_transaction)
                samples[name].append(wall)
                cpu[name].append(thread_cpu)
            for client in clients.values():
                client.flush(timeout=120)  # each round starts with an empty queue
        for client in clients.values():
            client.close(timeout=120)
        sent = {name: client.stats.sent for name, client in clients.items()}
        for engine in engines.values():
            engine.dispose()

    added = {name: [(s - n) * 1e6 for s, n in zip(samples[name], samples["none"], strict=True)]
             for name in ("baseline", "current")}
    added_cpu = {name: [(s - n) * 1e6 for s, n in zip(cpu[name], cpu["none"], strict=True)]
                 for name in ("baseline", "current")}
    result = {
        "written": datetime.now(UTC).isoformat(timespec="seconds"), "baseline_rev": baseline_rev,
        "current_rev": current_rev, "rounds": args.rounds, "statements_per_round": args.statements,
        "statements_per_transaction": args.per_transaction,
        "delivered_to": "the real server" if args.real_server else "a minimal acknowledging endpoint (--sink)",
        "statement_us_median": {name: round(statistics.median(v) * 1e6, 1) for name, v in samples.items()},
        "added_us_median": {name: round(statistics.median(v), 1) for name, v in added.items()},
        "added_us_quartiles": {name: [round(q, 1) for q in statistics.quantiles(v, n=4)] for name, v in added.items()},
        "thread_cpu_us_median": {name: round(statistics.median(v) * 1e6, 1) for name, v in cpu.items()},
        "added_thread_cpu_us_median": {name: round(statistics.median(v), 1) for name, v in added_cpu.items()},
        "events_sent": sent,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    RESULTS_JSON.write_text(json.dumps(result, indent=2) + "\n")
    write_section(result)
    print(render(result))
    return result


def render(r: dict[str, Any]) -> str:
    med, add, quart = r["statement_us_median"], r["added_us_median"], r["added_us_quartiles"]
    cpu, add_cpu = r["thread_cpu_us_median"], r["added_thread_cpu_us_median"]
    return "\n".join([
        "## SQLAlchemy hook: added cost per statement",
        "",
        f"Written {r['written']} by `python -m bench.hook` (raw numbers: `hook-results.json`). "
        f"{r['rounds']} interleaved rounds of {r['statements_per_round']:,} `SELECT 1` statements on one "
        f"psycopg connection, a commit every {r['statements_per_transaction']}; each client delivers to "
        f"{r['delivered_to']} meanwhile. Added cost = the round's time per statement minus the un-instrumented "
        "engine's in the same round; medians over rounds. Wall time includes waiting for PostgreSQL and "
        "for the CPU (other work on the machine makes it noisy); the CPU time of the application's thread "
        "(`time.thread_time`) is closer to the hook's own work, though a loaded machine inflates it too (cache and CPU-frequency effects; the figures of both hooks move together).",
        "",
        "| engine | wall per statement | added (wall) | added (wall), quartiles | app-thread CPU per statement "
        "| added (CPU) |",
        "|---|---|---|---|---|---|",
        f"| no hook | {med['none']} µs | — | — | {cpu['none']} µs | — |",
        f"| baseline `{r['baseline_rev']}` | {med['baseline']} µs | {add['baseline']} µs | "
        f"{quart['baseline'][0]}–{quart['baseline'][2]} µs | {cpu['baseline']} µs | {add_cpu['baseline']} µs |",
        f"| current `{r['current_rev']}` | {med['current']} µs | {add['current']} µs | "
        f"{quart['current'][0]}–{quart['current'][2]} µs | {cpu['current']} µs | {add_cpu['current']} µs |",
        "",
        f"Events delivered: baseline {r['events_sent']['baseline']:,}, current {r['events_sent']['current']:,}. "
        f"Load average (1 min) before / after: {r['load_average_1min'][0]} / {r['load_average_1min'][1]} "
        "on a 2-core machine.",
    ])


def write_section(result: dict[str, Any]) -> None:
    """Replace (or append) this bench's section of RESULTS.md; ``bench.run`` keeps it when it rewrites the file."""
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Benchmark results\n"
    section = f"{SECTION_START}\n{render(result)}\n{SECTION_END}"
    if SECTION_START in text and SECTION_END in text:
        before, rest = text.split(SECTION_START, 1)
        text = before + section + rest.split(SECTION_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS_MD.write_text(text)


if __name__ == "__main__":
    main()
