"""`import … --follow DIR` while a real server writes and rotates its audit log: the follower is killed
with SIGKILL at random moments and restarted; in the end every statement the workload ran is stored
exactly once, with its outcome, and the hash chain verifies."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import threading
import time

import psycopg
import pymysql
import pytest

from .conftest import CLI

MARKER = re.compile(r"^/\* m=(\d+) \*/")


def _statement(i: int) -> tuple[str, bool]:
    """The i-th statement of the workload (its marker first) and whether it succeeds."""
    kind = i % 10
    if kind == 3:
        return f"/* m={i} */ SELECT 1/0 FROM patients", False  # refused while planned: no AUDIT line
    if kind == 7:
        return f"/* m={i} */ SELECT 1/(id - id) FROM patients WHERE id = 1", False  # fails after its AUDIT line
    if kind in (2, 5):
        return f"/* m={i} */ UPDATE visits SET note = 'm{i}' WHERE id = -1", True
    return f"/* m={i} */ SELECT p.name, v.note FROM patients p LEFT JOIN visits v ON v.patient_id = p.id", True


def _follow(atlas, *args: str, log) -> subprocess.Popen:
    return subprocess.Popen([CLI, "import", *args], env=atlas.env, stdout=log, stderr=log)


def _stored(sql, org_id: str) -> dict[int, list[bool]]:
    found: dict[int, list[bool]] = {}
    for row in sql.execute("SELECT sql, success FROM audit_log WHERE org_id = %s", (org_id,)).fetchall():
        marker = MARKER.match(row["sql"])
        if marker:
            found.setdefault(int(marker.group(1)), []).append(row["success"])
    return found


def _workload(run, connections, ran: dict[int, list[bool]], stop: threading.Event) -> None:
    """Run statement 1, 2, … (``run(i)`` says whether it succeeds) until ``stop``, noting each in ``ran``."""
    try:
        i = 0
        while not stop.is_set():
            i += 1
            ran[i] = [run(i)]
            time.sleep(0.003)
    finally:
        for conn in connections:
            conn.close()


def _commits(sql, org_id: str):
    row = sql.execute("SELECT max(last_import_at) AS at FROM audit_source WHERE org_id = %s", (org_id,)).fetchone()
    return row["at"]


def _kill_and_restart(start, last_commit, rng: random.Random, kills: int) -> subprocess.Popen:
    """Start the follower; each time it has committed since it started, SIGKILL it a random moment later
    (while it reads, stores, or waits) and start it again."""
    process = start()
    for _ in range(kills):
        before = last_commit()
        deadline = time.monotonic() + 60
        while last_commit() == before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert last_commit() != before, "the follower never committed"
        time.sleep(rng.uniform(0, 0.8))
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        process = start()
    return process


def _wait_for(expected: dict[int, list[bool]], sql, org_id: str, timeout: float = 300) -> dict[int, list[bool]]:
    deadline = time.monotonic() + timeout
    while True:
        found = _stored(sql, org_id)
        if found == expected or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_pgaudit_follower_killed_at_random_moments_loses_and_repeats_nothing(pgaudit_cluster, make_org, atlas, sql,
                                                                             tmp_path):
    rng = random.Random(17)
    logs = pgaudit_cluster.new_log_dir(f"follow-{tmp_path.name}")
    org = make_org()
    ran: dict[int, list[bool]] = {}
    stop = threading.Event()

    conns = [psycopg.connect(pgaudit_cluster.url(role), autocommit=True) for role in ("alice", "bob", "carol")]

    def run(i: int) -> bool:
        text, success = _statement(i)
        try:
            conns[i % 3].execute(text)
        except psycopg.Error:
            pass
        if i % 60 == 0:
            pgaudit_cluster.execute("SELECT pg_rotate_logfile()")
        return success

    thread = threading.Thread(target=_workload, args=(run, conns, ran, stop))
    with open(tmp_path / "follower.log", "w") as log:
        def start() -> subprocess.Popen:
            return _follow(atlas, "pgaudit", "--follow", str(logs), "--org", org.slug, "--source", "follow-pg",
                           "--settle", "1", "--workers", "1", log=log)

        thread.start()
        try:
            process = _kill_and_restart(start, lambda: _commits(sql, org.id), rng, kills=6)
        finally:
            stop.set()
            thread.join()
        pgaudit_cluster.settle_logs()
        found = _wait_for(ran, sql, org.id)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, (tmp_path / "follower.log").read_text()[-3000:]
    assert len(ran) > 500 and len(list(logs.glob("*.json"))) > 5
    assert {m: s for m, s in found.items() if s != ran.get(m)} == {}, "statements stored twice or wrongly"
    assert sorted(set(ran) - set(found)) == [], "statements lost"
    # Counted from the log lines: every marked statement the server logged is one event.
    logged = {int(m) for path in logs.glob("*.json") for m in re.findall(r"/\* m=(\d+) \*/", path.read_text())}
    assert logged == set(found)
    verify = atlas("audit", "verify", "--org", org.slug)
    assert "OK" in verify.stdout, verify.stdout


def test_a_second_follower_of_the_same_source_is_refused(pgaudit_cluster, make_org, atlas, tmp_path):
    logs = pgaudit_cluster.new_log_dir(f"follow2-{tmp_path.name}")
    org = make_org()
    args = ("pgaudit", "--follow", str(logs), "--org", org.slug, "--source", "one-follower", "--workers", "1")
    with open(tmp_path / "first.log", "w") as log:
        first = _follow(atlas, *args, log=log)
        try:
            deadline = time.monotonic() + 30
            while "following" not in (tmp_path / "first.log").read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            second = atlas("import", *args, timeout=60)
            assert second.returncode == 1
            assert "another follower of source 'one-follower' is running" in second.stderr
        finally:
            first.send_signal(signal.SIGTERM)
            assert first.wait(60) == 0


@pytest.mark.parametrize("kills", [3])
def test_mariadb_follower_across_renaming_rotations_and_kills_loses_and_repeats_nothing(
        mariadb_server, make_org, atlas, sql, tmp_path, kills):
    rng = random.Random(29)
    audit = mariadb_server.new_audit_file(f"follow-{tmp_path.name}")
    org = make_org()
    ran: dict[int, list[bool]] = {}
    stop = threading.Event()

    conns = [mariadb_server.connect(role, f"{role}-pw", "clinic") for role in ("alice", "bob")]

    def run(i: int) -> bool:
        ok = i % 9 != 4
        text = (f"/* m={i} */ SELECT p.name, v.note FROM patients p LEFT JOIN visits v ON v.patient_id = p.id"
                if ok else f"/* m={i} */ SELECT nosuch FROM patients")
        try:
            with conns[i % 2].cursor() as cur:
                cur.execute(text)
        except pymysql.Error:
            pass
        if i % 40 == 0:  # server_audit renames the file to server_audit.log.1 and starts a new one
            mariadb_server.execute("SET GLOBAL server_audit_file_rotate_now = ON")
        return ok

    thread = threading.Thread(target=_workload, args=(run, conns, ran, stop))
    with open(tmp_path / "follower.log", "w") as log:
        def start() -> subprocess.Popen:
            return _follow(atlas, "mariadb-audit", "--follow", str(audit.parent), "--org", org.slug,
                           "--source", "follow-maria", "--settle", "1", "--workers", "1", log=log)

        mariadb_server.execute("SET GLOBAL server_audit_file_rotations = 50")
        thread.start()
        try:
            process = _kill_and_restart(start, lambda: _commits(sql, org.id), rng, kills=kills)
        finally:
            stop.set()
            thread.join()
        mariadb_server.execute("SELECT 1")
        found = _wait_for(ran, sql, org.id)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, (tmp_path / "follower.log").read_text()[-3000:]
    assert len(ran) > 100 and len(list(audit.parent.glob("server_audit.log.*"))) >= 2
    assert {m: s for m, s in found.items() if s != ran.get(m)} == {}, "statements stored twice or wrongly"
    assert sorted(set(ran) - set(found)) == [], "statements lost"
