"""Does one client's worst SQL stall everyone else? (issue 13.4) Side by side with a baseline revision.

    python -m bench.stall [--baseline-rev main] [--runs 3] [--quiet-seconds 10] [--load-seconds 30]
    python -m bench.stall --extraction [--baseline-rev main] [--runs 3]

Both revisions are served by uvicorn in a child process on the same database (`atlas_bench_stall`,
created once: two organizations, the "other" one with 20,000 audited queries). The baseline's `src/`
comes from git (`git archive`), the current one from this tree. Runs alternate baseline, current,
baseline, current…; each run measures, sequentially and without think time:

- quiet: `/healthz` and the other organization's Data Access report (30 days, JSON) for
  `--quiet-seconds`;
- loaded: the same for `--load-seconds` while one client of a third organization sends the worst
  events in a loop: one 350 KiB event of 10,000 UNIONs (over the default size budget), one 246 KiB event of 7,000
  UNIONs (under it), a batch of
  1,000 thirty-deep nested queries and one statement joining 2,000 distinct tables, each with new
  table names (no cache hit).

`--extraction` instead times the analysis of one statement (as a worker of the pool runs it, or
``extract_access`` on a revision without the pool; in a fresh process per measurement, so no cache
helps) for the shapes that grew faster than their size, at three sizes
each, baseline and current interleaved, and prints the medians (`bench/stall-extraction.json`).

It prints, per revision, the median over runs of each phase's p50 and p99 (nearest rank), and of the
ratio loaded/quiet of the report's p99; writes `bench/stall-results.json`. A request slower than
120 s counts at 120 s. Latencies include the client's own HTTP time on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx

from atlas_compliance.db import migrate

from .common import DEFAULT_SERVER_URL, ensure_database
from .server import REPO_ROOT, _new_org_with_key, admin_token, free_port

RESULTS_FILE = REPO_ROOT / "bench" / "stall-results.json"
EXTRACTION_FILE = REPO_ROOT / "bench" / "stall-extraction.json"
TIMEOUT = 120.0
OTHER_EVENTS = 20_000


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def union_event(branches: int, tag: str) -> dict[str, Any]:
    """``branches`` SELECTs joined by UNION, about 36 bytes each (10,000: 350 KiB); the first names a
    table of its own, so that every round's text has a new shape."""
    # The SQL built here is sent as audit events, never run.
    first = f"SELECT a FROM {tag} WHERE a=0"  # noqa: S608
    return {"sql": " UNION ".join([first, *(f"SELECT a FROM t{i % 50} WHERE a={i}"  # noqa: S608
                                            for i in range(1, branches))])}


def nested_query(depth: int, tag: str) -> str:
    sql = f"SELECT id, email FROM {tag} WHERE id > 0"  # noqa: S608 - sent as an event, never run
    for level in range(depth):
        sql = f"SELECT * FROM ({sql}) AS q{level} WHERE id > {level}"  # noqa: S608
    return sql


def worst_batches(round_: int) -> list[list[dict[str, Any]]]:
    tag = f"r{round_}"
    return [
        [union_event(10_000, f"u10k_{tag}")],
        [union_event(7_000, f"u7k_{tag}")],
        [{"sql": nested_query(30, f"nest_{tag}_{i}")} for i in range(1_000)],
        [{"sql": f"SELECT t0.v FROM many_{tag}_0 t0 "  # noqa: S608 - sent as an event, never run
          + " ".join(f"JOIN many_{tag}_{i} USING (id)" for i in range(1, 2_000))}],
    ]


class Served:
    """uvicorn serving ``bench.server:create`` from ``root`` (a tree with src/ and bench/)."""

    def __init__(self, root: Path, url: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench.server:create", "--factory", "--host", "127.0.0.1",
             "--port", str(self.port), "--no-access-log", "--log-level", "warning"], cwd=root, env=env)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited with code {self.proc.returncode}")
            try:
                if httpx.get(self.base_url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit("the server did not become ready within 90 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def _timed(client: httpx.AsyncClient, path: str, **kwargs: Any) -> tuple[float, bool]:
    began = time.perf_counter()
    try:
        resp = await client.get(path, timeout=TIMEOUT, **kwargs)
        ok = resp.status_code == 200
        if ok and path != "/healthz":
            resp.json()
    except httpx.HTTPError:
        return TIMEOUT, False
    return min(TIMEOUT, time.perf_counter() - began), ok


async def _sampler(client: httpx.AsyncClient, path: str, until: float, out: list[float], errors: list[int],
                   **kwargs: Any) -> None:
    while time.monotonic() < until:
        seconds, ok = await _timed(client, path, **kwargs)
        out.append(seconds)
        if not ok:
            errors[0] += 1


async def _attacker(client: httpx.AsyncClient, key: str, until: float, first_round: int, sent: list[int]) -> None:
    round_ = first_round
    while time.monotonic() < until:
        for batch in worst_batches(round_):
            if time.monotonic() >= until:
                return
            try:
                await client.post("/api/v1/audit/events", json=batch, timeout=600,
                                  headers={"Authorization": f"Bearer {key}"})
                sent[0] += len(batch)
            except httpx.HTTPError:
                sent[1] += 1
        round_ += 1


async def measure(base_url: str, admin: str, attacker_key: str, *, quiet: float, load: float,
                  first_round: int) -> dict[str, Any]:
    end = date.today()
    params = {"startDate": (end - timedelta(days=29)).isoformat(), "endDate": end.isoformat()}
    auth = {"Authorization": f"Bearer {admin}"}
    phases: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base_url) as health, httpx.AsyncClient(base_url=base_url) as reports, \
            httpx.AsyncClient(base_url=base_url) as attacker:
        await _timed(reports, "/api/v1/admin/compliance/reports/data-access", params=params, headers=auth)  # warm
        for phase, seconds in (("quiet", quiet), ("loaded", load)):
            until = time.monotonic() + seconds
            h: list[float] = []
            r: list[float] = []
            errors = [0]
            sent = [0, 0]
            tasks = [_sampler(health, "/healthz", until, h, errors),
                     _sampler(reports, "/api/v1/admin/compliance/reports/data-access", until, r, errors,
                              params=params, headers=auth)]
            if phase == "loaded":
                attack = asyncio.ensure_future(_attacker(attacker, attacker_key, until, first_round, sent))
            await asyncio.gather(*tasks)
            if phase == "loaded":
                attack.cancel()
                await asyncio.gather(attack, return_exceptions=True)
            phases[phase] = {
                "healthz_n": len(h), "healthz_p50_ms": round(percentile(h, 0.5) * 1000, 1),
                "healthz_p99_ms": round(percentile(h, 0.99) * 1000, 1), "healthz_max_ms": round(max(h) * 1000, 1),
                "report_n": len(r), "report_p50_ms": round(percentile(r, 0.5) * 1000, 1),
                "report_p99_ms": round(percentile(r, 0.99) * 1000, 1), "errors": errors[0],
                "attack_events_answered": sent[0], "attack_errors": sent[1]}
    phases["report_p99_ratio"] = round(phases["loaded"]["report_p99_ms"] / phases["quiet"]["report_p99_ms"], 2)
    return phases


def export_tree(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", rev, "src", "bench"], cwd=REPO_ROOT, capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


async def _prepare(url: str, stamp: str) -> tuple[str, str]:
    """A fresh "other" organization with OTHER_EVENTS stored queries (tables given, not parsed), and
    a fresh attacker organization: (other org's admin token, attacker's ingest key)."""
    _other_id, other_key = await _new_org_with_key(url, f"stall-other-{stamp}")
    _attacker_id, attacker_key = await _new_org_with_key(url, f"stall-attacker-{stamp}")
    return other_key, attacker_key


SHAPES = {
    "UNION chain": ("union", (2_500, 5_000, 10_000)),
    "JOIN ... USING chain": ("using", (1_000, 2_000, 4_000)),
    "tables named in one SELECT": ("tables", (1_000, 2_000, 4_000)),
    "batch of events, one new table each": ("batch", (1_000, 2_000, 4_000)),
}
_TIMER = """
import sys, time
from datetime import UTC, datetime
from atlas_compliance.audit.extraction import extract_access
from atlas_compliance.audit.service import prepare_batch
try:  # as a worker of the analysis pool does it, with a budget no statement here reaches
    from atlas_compliance.audit import analysis
    analysis.configure(analysis.ParseBudget(max_bytes=1 << 30, seconds=600))
    analysis.use_timer()
    extract = analysis.analyse
except ImportError:  # a revision without the pool: the extractor itself
    extract = extract_access
shape, n = sys.argv[1], int(sys.argv[2])
if shape == "union":
    sql = " UNION ".join(f"SELECT id, name FROM tbl_{i % 50} WHERE id = {i}" for i in range(n))
elif shape == "using":
    sql = "SELECT t0.v FROM t0 " + " ".join(f"JOIN t{i} USING (id)" for i in range(1, n))
elif shape == "tables":
    sql = "SELECT " + ", ".join(f"s.t{i}.c" for i in range(n)) + " FROM " + ", ".join(f"s.t{i}" for i in range(n))
else:
    events = [{"sql": f"SELECT id, email FROM app.table_{i} WHERE id = 1"} for i in range(n)]
began = time.perf_counter()
if shape == "batch":
    prepare_batch(events, datetime.now(UTC), None)
else:
    info = extract(sql, None, None)
    assert info.parse_error is None, info.parse_error
print(time.perf_counter() - began)
"""


def extraction(roots: dict[str, Path], runs: int) -> dict[str, Any]:
    timings: dict[str, dict[str, dict[int, list[float]]]] = {}
    for _ in range(runs):
        for label, (shape, sizes) in SHAPES.items():
            for n in sizes:
                for name, root in roots.items():
                    env = {**os.environ, "PYTHONPATH": str(root / "src")}
                    out = subprocess.run([sys.executable, "-c", _TIMER, shape, str(n)], env=env, capture_output=True,
                                         text=True, check=True).stdout
                    timings.setdefault(label, {}).setdefault(name, {}).setdefault(n, []).append(float(out))
    return {label: {name: {n: round(statistics.median(v), 3) for n, v in sizes.items()}
                    for name, sizes in by_rev.items()} for label, by_rev in timings.items()}


def extraction_table(result: dict[str, Any]) -> str:
    lines = ["| shape | size | baseline s | current s |", "|---|---|---|---|"]
    for label, by_rev in result["medians"].items():
        for n in by_rev["baseline"]:
            lines.append(f"| {label} | {int(n):,} | {by_rev['baseline'][n]} | {by_rev['current'][n]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-rev", default="main")
    parser.add_argument("--runs", type=int, default=3, help="runs per revision, interleaved (default 3)")
    parser.add_argument("--quiet-seconds", type=float, default=10)
    parser.add_argument("--load-seconds", type=float, default=30)
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--database", default="atlas_bench_stall")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--extraction", action="store_true", help="time the analysis of large statements only")
    args = parser.parse_args(argv)
    if args.extraction:
        with tempfile.TemporaryDirectory(prefix="atlas-stall-") as tmp:
            medians = extraction({"baseline": export_tree(args.baseline_rev, Path(tmp)), "current": REPO_ROOT},
                                 args.runs)
        result = {"written": datetime.now(UTC).isoformat(timespec="seconds"), "runs": args.runs,
                  "baseline_rev": _rev(args.baseline_rev), "current_rev": _rev("HEAD"),
                  "load_average": round(os.getloadavg()[0], 1), "medians": medians}
        (args.output or EXTRACTION_FILE).write_text(json.dumps(result, indent=2) + "\n")
        print(extraction_table(result))
        if args.output is None:
            write_section()
        return 0

    url = ensure_database(args.server_url, args.database, recreate=True)
    migrate.upgrade(url)
    stamp = datetime.now(UTC).strftime("%H%M%S")
    other_key, attacker_key = asyncio.run(_prepare(url, stamp))
    baseline_rev, current_rev = _rev(args.baseline_rev), _rev("HEAD")
    load_before = os.getloadavg()[0]
    results: dict[str, list[dict[str, Any]]] = {"baseline": [], "current": []}
    with tempfile.TemporaryDirectory(prefix="atlas-stall-") as tmp:
        roots = {"baseline": export_tree(args.baseline_rev, Path(tmp)), "current": REPO_ROOT}
        seeded = False
        rounds = 0
        for run in range(args.runs):
            for name in ("baseline", "current"):
                server = Served(roots[name], url)
                try:
                    if not seeded:
                        _seed_other(server.base_url, other_key)
                        seeded = True
                    admin = admin_token(url, f"stall-other-{stamp}")
                    print(f"run {run + 1}/{args.runs}: {name}…", flush=True)
                    rounds += 1000  # new table names in every run: no cache hit
                    phases = asyncio.run(measure(server.base_url, admin, attacker_key, quiet=args.quiet_seconds,
                                                 load=args.load_seconds, first_round=rounds))
                finally:
                    server.stop()
                print(json.dumps(phases), flush=True)
                results[name].append(phases)
    summary = {name: summarize(runs) for name, runs in results.items()}
    out = {"written": datetime.now(UTC).isoformat(timespec="seconds"), "baseline_rev": baseline_rev,
           "current_rev": current_rev, "runs": args.runs, "quiet_seconds": args.quiet_seconds,
           "load_seconds": args.load_seconds, "load_average_before": round(load_before, 1),
           "load_average_after": round(os.getloadavg()[0], 1), "cpus": os.cpu_count(), "summary": summary,
           "raw": results}
    (args.output or RESULTS_FILE).write_text(json.dumps(out, indent=2) + "\n")
    print(table(out))
    if args.output is None:
        write_section()
    return 0


SECTION_START, SECTION_END = "<!-- bench.stall:start -->", "<!-- bench.stall:end -->"


def write_section() -> None:
    """The "Stalls" section of bench/RESULTS.md, from the two JSON files (kept by ``bench.run``)."""
    parts = [SECTION_START, "## Stalls: one client's worst SQL against everyone else (issue 13.4)", ""]
    if RESULTS_FILE.exists():
        r = json.loads(RESULTS_FILE.read_text())
        parts += [
            f"Written {r['written']} by `python -m bench.stall` (raw numbers: `stall-results.json`). {r['runs']} runs "
            f"per revision, interleaved, each {r['quiet_seconds']:g} s quiet then {r['load_seconds']:g} s while one "
            "client sends the worst events (a 350 KiB event of 10,000 UNIONs, a 246 KiB event of 7,000 UNIONs, "
            "1,000 thirty-deep nested queries, a 2,000-table `JOIN … USING` chain; new table names each time). "
            "Measured sequentially without think time: `/healthz`, and another organization's Data Access report "
            f"(30 days, {OTHER_EVENTS:,} rows). Medians over runs of each phase's figures; a request still "
            f"unanswered after {TIMEOUT:g} s counts as {TIMEOUT:g} s (and as an error). Load average (1 min) "
            f"{r['load_average_before']} at the start, {r['load_average_after']} at the end, on {r['cpus']} cores.",
            "", table(r), ""]
    if EXTRACTION_FILE.exists():
        e = json.loads(EXTRACTION_FILE.read_text())
        parts += [
            f"Analysis time of one statement (`python -m bench.stall --extraction`, written {e['written']}, raw "
            f"numbers: `stall-extraction.json`): a fresh process per measurement (no cache), baseline "
            f"`{e['baseline_rev']}` and current `{e['current_rev']}` interleaved, median of {e['runs']}; load "
            f"average {e['load_average']} at the end.", "", extraction_table(e), ""]
    parts.append(SECTION_END)
    section = "\n".join(parts) + "\n"
    results_md = REPO_ROOT / "bench" / "RESULTS.md"
    text = results_md.read_text()
    if SECTION_START in text and SECTION_END in text:
        before, rest = text.split(SECTION_START, 1)
        text = before + section.rstrip("\n") + rest.split(SECTION_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    results_md.write_text(text)


def _rev(rev: str) -> str:
    return subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO_ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def _seed_other(base_url: str, key: str) -> None:
    """OTHER_EVENTS queries over the last 30 days for the other organization, tables given."""
    now = datetime.now(UTC)
    tables = [f"app.table_{i}" for i in range(40)]
    with httpx.Client(base_url=base_url, timeout=300) as client:
        for start in range(0, OTHER_EVENTS, 5_000):
            batch = []
            for i in range(start, start + 5_000):
                table = tables[i % len(tables)]
                batch.append({"sql": f"SELECT id, email FROM {table}",  # noqa: S608 - an event, never run
                              "userId": f"user{i % 25}",
                              "timestamp": (now - timedelta(minutes=i * 2)).isoformat(),
                              "tablesAccessed": [table], "columnsByTable": {table: ["id", "email"]}})
            resp = client.post("/api/v1/audit/events", json=batch, headers={"Authorization": f"Bearer {key}"})
            resp.raise_for_status()


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(phase: str, key: str) -> float:
        return round(statistics.median(r[phase][key] for r in runs), 1)
    out: dict[str, Any] = {}
    for phase in ("quiet", "loaded"):
        for key in ("healthz_p50_ms", "healthz_p99_ms", "healthz_max_ms", "report_p50_ms", "report_p99_ms",
                    "errors", "attack_events_answered"):
            out[f"{phase}_{key}"] = med(phase, key)
    out["report_p99_ratio"] = round(statistics.median(r["report_p99_ratio"] for r in runs), 2)
    return out


def table(result: dict[str, Any]) -> str:
    lines = ["| revision | phase | `/healthz` p50 | `/healthz` p99 | `/healthz` max | report p50 | report p99 | "
             "report p99 loaded/quiet | errors | attack events answered |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name in ("baseline", "current"):
        s = result["summary"][name]
        rev = result["baseline_rev"] if name == "baseline" else result["current_rev"]
        for phase in ("quiet", "loaded"):
            ratio = f"{s['report_p99_ratio']}x" if phase == "loaded" else ""
            lines.append(f"| {name} `{rev}` | {phase} | {s[phase + '_healthz_p50_ms']} ms | "
                         f"{s[phase + '_healthz_p99_ms']} ms | {s[phase + '_healthz_max_ms']} ms | "
                         f"{s[phase + '_report_p50_ms']} ms | {s[phase + '_report_p99_ms']} ms | {ratio} | "
                         f"{s[phase + '_errors']:g} | {s[phase + '_attack_events_answered']:g} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
