"""Issue 13 items 4 (password hashing) and 5 (body limits), measured side by side with a baseline revision.

Two parts, each run against a server of the baseline revision (its ``src/`` exported from git into a
temporary folder and put first on the server's ``PYTHONPATH``) and of the working tree, interleaved:

* ``bodies``: 200 MB login bodies sent chunked (no Content-Length) over a raw socket, one alone and
  then five at once; the server's resident memory before, at its peak (sampled every 50 ms) and 2 s
  after, the status each sender got and how many bytes it had sent when the answer came.
* ``logins``: ``/healthz`` latency (sequential GETs from a thread) while idle and while waves of 16
  concurrent logins (right password, production Argon2id parameters) run; medians over rounds.

    python -m bench.bodies                       # both parts, baseline: the commit before this work
    python -m bench.bodies --only logins --rounds 5 --baseline-rev e7343c5

Results: ``bench/hardening-results.json`` and their own section of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from bench.common import DEFAULT_SERVER_URL, ensure_database
from bench.server import REPO_ROOT, RssSampler, free_port

RESULTS_JSON = Path(__file__).with_name("hardening-results.json")
RESULTS_MD = Path(__file__).with_name("RESULTS.md")
START, END = "<!-- bench.bodies:start -->", "<!-- bench.bodies:end -->"
DEFAULT_BASELINE = "e7343c5"  # main before issue 13 items 4 (hashing), 5, 6 and 11
HUGE = 200 * 1024 * 1024
CHUNK = 64 * 1024
PASSWORD = "bench correct horse battery"


def export_src(rev: str, into: Path) -> Path:
    """``src/`` of ``rev`` written under ``into`` (git archive, no worktree)."""
    data = subprocess.run(["git", "archive", "--format=tar", rev, "src"], cwd=REPO_ROOT, check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


class Server:
    """uvicorn serving ``bench.server:create`` with ``src`` first on the path (as `serve` runs it)."""

    def __init__(self, url: str, src: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k != "ATLAS_ARGON2_MEMORY_KIB"}
        env.update(DATABASE_URL=url, PYTHONPATH=f"{src}{os.pathsep}{REPO_ROOT}")
        self.module_file = subprocess.run(
            [sys.executable, "-c", "import atlas_compliance.app as a; print(a.__file__)"], env=env, cwd=REPO_ROOT,
            check=True, capture_output=True, text=True).stdout.strip()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench.server:create", "--factory", "--host", "127.0.0.1",
             "--port", str(self.port), "--no-access-log", "--log-level", "warning", "--no-proxy-headers"],
            cwd=REPO_ROOT, env=env)
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit("the server did not become ready within 60 s")

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def prepare_database(server_url: str) -> str:
    from atlas_compliance.auth import service as auth
    from atlas_compliance.db import migrate

    url = ensure_database(server_url, "atlas_bench_hardening", recreate=True)
    migrate.upgrade(url)

    async def users() -> None:
        async with await psycopg.AsyncConnection.connect(url, row_factory=psycopg.rows.dict_row) as conn:
            async with conn.transaction():
                await auth.create_organization(conn, "bench-logins", "Bench logins")
                for i in range(16):
                    await auth.create_user(conn, email=f"user{i}@bench-logins.example", password=PASSWORD,
                                           org_slug="bench-logins", role="member")

    asyncio.run(users())
    return url


# ---------------------------------------------------------------- bodies


def send_huge(port: int, result: dict[str, Any]) -> None:
    """A 200 MB chunked login body; stops sending when the server answers or closes."""
    began = time.perf_counter()
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n"
                     b'5\r\n{"ema\r\n')
        chunk = f"{CHUNK:x}\r\n".encode() + b"a" * CHUNK + b"\r\n"
        sock.setblocking(False)
        pending = b""
        while sent < HUGE or pending:
            readable, writable, _ = select.select([sock], [sock], [], 120)
            if readable or not writable:
                break
            if not pending:
                pending = chunk if sent < HUGE else b""
                if not pending:
                    break
            try:
                n = sock.send(pending)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                break
            pending = pending[n:]
            if not pending:
                sent += CHUNK
        if sent >= HUGE:
            with_end = b"0\r\n\r\n"
            try:
                sock.setblocking(True)
                sock.sendall(with_end)
            except OSError:
                pass
        sock.setblocking(True)
        sock.settimeout(120)
        try:
            while b"\r\n" not in answer:
                part = sock.recv(65536)
                if not part:
                    break
                answer += part
        except OSError:
            pass
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "closed"
    result.update(status=status, body_bytes_sent=sent, seconds=round(time.perf_counter() - began, 2))


def bodies_case(server: Server, senders: int) -> dict[str, Any]:
    time.sleep(1)
    results: list[dict[str, Any]] = [{} for _ in range(senders)]
    with RssSampler(server.rss) as sampler:
        threads = [threading.Thread(target=send_huge, args=(server.port, r)) for r in results]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(2)
    after = server.rss()
    mib = 1024 * 1024
    return {"senders": senders, "rss_before_mib": round(sampler.before / mib, 1),
            "rss_peak_mib": round(sampler.peak / mib, 1), "rss_after_2s_mib": round(after / mib, 1),
            "growth_peak_mib": round((sampler.peak - sampler.before) / mib, 1),
            "statuses": sorted(r.get("status", "?") for r in results),
            "body_mib_sent_max": round(max(r.get("body_bytes_sent", 0) for r in results) / mib, 1),
            "seconds_max": max(r.get("seconds", 0) for r in results)}


def run_bodies(url: str, sources: dict[str, Path]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, src in sources.items():
        with Server(url, src) as server:
            httpx.get(server.base + "/healthz")
            out[name] = {"code": server.module_file, "one": bodies_case(server, 1), "five": bodies_case(server, 5)}
            print(name, json.dumps(out[name]), flush=True)
    return out


# ---------------------------------------------------------------- logins


def poll_healthz(base: str, stop: threading.Event, samples: list[float], interval: float = 0.02) -> None:
    """GET /healthz on a fixed schedule (every ``interval`` s), latency counted from the scheduled time.
    The slots that passed while a request was held up count too, each answered when that request was
    (what a client sending on schedule would have seen): a stall weighs in for every slot it covers."""
    with httpx.Client(base_url=base, timeout=60) as http:
        scheduled = time.perf_counter()
        while not stop.is_set():
            now = time.perf_counter()
            if now < scheduled:
                stop.wait(scheduled - now)
            http.get("/healthz")
            answered = time.perf_counter()
            while scheduled <= answered:
                samples.append(answered - scheduled)
                scheduled += interval


async def login_waves(base: str, seconds: float, statuses: dict[int, int] | None = None) -> list[float]:
    durations: list[float] = []
    statuses = {} if statuses is None else statuses

    async def one(http: httpx.AsyncClient, i: int) -> None:
        began = time.perf_counter()
        resp = await http.post("/api/v1/auth/login", json={"email": f"user{i}@bench-logins.example",
                                                           "password": PASSWORD})
        statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
        durations.append(time.perf_counter() - began)

    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        while time.perf_counter() < deadline:
            await asyncio.gather(*(one(http, i) for i in range(16)))
    return durations


def logins_round(url: str, src: Path, seconds: float) -> dict[str, Any]:
    with Server(url, src) as server:
        for _ in range(20):
            httpx.get(server.base + "/healthz")
        asyncio.run(login_waves(server.base, 0.1))  # warm up (one wave)
        idle: list[float] = []
        stop = threading.Event()
        poller = threading.Thread(target=poll_healthz, args=(server.base, stop, idle))
        poller.start()
        time.sleep(seconds / 2)
        stop.set()
        poller.join()
        loaded: list[float] = []
        stop = threading.Event()
        poller = threading.Thread(target=poll_healthz, args=(server.base, stop, loaded))
        poller.start()
        statuses: dict[int, int] = {}
        logins = asyncio.run(login_waves(server.base, seconds, statuses))
        stop.set()
        poller.join()
    return {"healthz_idle_p50_ms": _ms(statistics.median(idle)), "healthz_loaded_p50_ms": _ms(statistics.median(loaded)),
            "healthz_loaded_p99_ms": _ms(_p99(loaded)), "healthz_loaded_n": len(loaded),
            "login_p50_ms": _ms(statistics.median(logins)), "logins": len(logins),
            "login_statuses": {str(k): v for k, v in sorted(statuses.items())}, "code": server.module_file}


def _ms(value: float) -> float:
    return round(value * 1000, 2)


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]


def run_logins(url: str, sources: dict[str, Path], rounds: int, seconds: float) -> dict[str, Any]:
    per: dict[str, list[dict[str, Any]]] = {name: [] for name in sources}
    for r in range(rounds):
        for name, src in sources.items():
            per[name].append(logins_round(url, src, seconds))
            print(f"round {r + 1} {name}", json.dumps(per[name][-1]), flush=True)
    summary: dict[str, Any] = {}
    for name, runs in per.items():
        summary[name] = {key: statistics.median(run[key] for run in runs)
                         for key in ("healthz_idle_p50_ms", "healthz_loaded_p50_ms", "healthz_loaded_p99_ms",
                                     "login_p50_ms")}
        summary[name]["login_statuses"] = {
            status: sum(run["login_statuses"].get(status, 0) for run in runs)
            for status in sorted({s for run in runs for s in run["login_statuses"]})}
        summary[name]["rounds"] = runs
    return summary


# ---------------------------------------------------------------- report


def _meta_line(m: dict[str, Any]) -> str:
    return (f"Written {m['written_at']} by `python -m bench.bodies {m['argv']}`; baseline `{m['baseline']}` (its "
            f"`src/` from git), ours: commit `{m['commit']}`{m['dirty']}. Load average (1 min) at start / end: "
            f"{m['load'][0]} / {m['load'][1]} on {m['cpus']} CPUs (other work on the machine makes timings noisy).")


def render(r: dict[str, Any]) -> str:
    lines = [START, "## Body limits and password hashing (issue 13 items 4 and 5)", ""]
    if "bodies" in r:
        lines += [_meta_line(r["bodies"]["meta"]), "",
                  "200 MB login bodies sent chunked (no Content-Length) over raw sockets; server resident memory "
                  "in MiB.", "",
                  "| code | senders | RSS before | RSS peak | growth at peak | RSS 2 s after | answers | most MiB "
                  "sent before the answer | slowest sender, s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, parts in r["bodies"].items():
            if name == "meta":
                continue
            for case in ("one", "five"):
                c = parts[case]
                lines.append(f"| {name} | {c['senders']} | {c['rss_before_mib']} | {c['rss_peak_mib']} | "
                             f"{c['growth_peak_mib']} | {c['rss_after_2s_mib']} | {', '.join(c['statuses'])} | "
                             f"{c['body_mib_sent_max']} | {c['seconds_max']} |")
        lines.append("")
    if "logins" in r:
        meta = r["logins"]["meta"]
        rounds = len(r["logins"]["ours"]["rounds"])
        lines += [_meta_line(meta), "",
                  "`/healthz` latency (GETs scheduled every 20 ms, latency counted from the scheduled time) while "
                  f"idle and during waves of 16 concurrent logins (production Argon2id: t=3, 64 MiB, p=4); medians "
                  f"over {rounds} interleaved rounds of {meta['seconds']} s each, in ms.", "",
                  "| code | healthz p50 idle | healthz p50 during logins | healthz p99 during logins | login p50 | "
                  "login answers (all rounds) |",
                  "|---|---|---|---|---|---|"]
        for name, s in r["logins"].items():
            if name == "meta":
                continue
            lines.append(f"| {name} | {s['healthz_idle_p50_ms']} | {s['healthz_loaded_p50_ms']} | "
                         f"{s['healthz_loaded_p99_ms']} | {s['login_p50_ms']} | "
                         + ", ".join(f"{n:,} × {status}" for status, n in s["login_statuses"].items()) + " |")
        lines += ["", "Login p50 counts every answer, 503s included (a login that waited `ATLAS_DB_TIMEOUT` for a "
                  "database connection held by logins hashing on the event loop answers 503 without hashing).", ""]
    lines.append(END)
    return "\n".join(lines) + "\n"


def save(r: dict[str, Any]) -> None:
    RESULTS_JSON.write_text(json.dumps(r, indent=1) + "\n")
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
    section = render(r)
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS_MD.write_text(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL, help="PostgreSQL server (a database "
                        "atlas_bench_hardening is created on it).")
    parser.add_argument("--baseline-rev", default=DEFAULT_BASELINE)
    parser.add_argument("--only", choices=("bodies", "logins"))
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds of the logins part.")
    parser.add_argument("--seconds", type=float, default=6.0, help="Seconds of login waves per round.")
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=REPO_ROOT, capture_output=True,
                           text=True).stdout.strip()
    result: dict[str, Any] = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    url = prepare_database(args.server_url)
    with tempfile.TemporaryDirectory(prefix="atlas-bench-baseline-") as tmp:
        sources = {"baseline": export_src(args.baseline_rev, Path(tmp)), "ours": REPO_ROOT / "src"}
        for part in ("logins", "bodies"):
            if args.only not in (None, part):
                continue  # the other part's last figures are kept
            meta: dict[str, Any] = {
                "argv": " ".join(argv if argv is not None else sys.argv[1:]), "baseline": args.baseline_rev,
                "commit": commit, "dirty": " (uncommitted changes under src/)" if dirty else "",
                "seconds": args.seconds, "cpus": os.cpu_count(), "load": [round(os.getloadavg()[0], 2)]}
            figures = (run_logins(url, sources, args.rounds, args.seconds) if part == "logins"
                       else run_bodies(url, sources))
            meta["load"].append(round(os.getloadavg()[0], 2))
            meta["written_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            result[part] = {"meta": meta, **figures}
    save(result)
    print(render(result))


if __name__ == "__main__":
    main()
