"""AuditClient against a real HTTP server and the test PostgreSQL: delivery, bounds, retries, failures."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time

import httpx
import pytest

from atlas_compliance.client import AuditClient, AuditClientError, AuditQueueFull, FailedEvent
from tests.client.conftest import free_port


def stored(sql, org) -> dict:
    return sql.execute("SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM audit_log WHERE org_id = %s",
                       (org.id,)).fetchone()


def stored_ids(sql, org) -> set[str]:
    return {r["event_id"] for r in sql.execute("SELECT event_id FROM audit_log WHERE org_id = %s", (org.id,))}


def test_events_arrive_exactly_once_with_the_clients_event_ids(live_server, org, sql):
    with AuditClient(live_server.url, org.ingest_key(), batch_size=7, flush_interval=0.05) as audit:
        ids = [audit.record(f"SELECT name FROM patients WHERE id = {i}", userId=f"u{i % 3}", durationMs=i,
                            rowCount=1, sourceType="postgres", actorKind="agent") for i in range(50)]
    assert all(i.startswith("ac-") and len(i) == 35 for i in ids) and len(set(ids)) == 50
    assert stored(sql, org) == {"n": 50, "ids": 50}
    assert stored_ids(sql, org) == set(ids)
    assert audit.stats.sent == 50 and audit.stats.inserted == 50 and audit.stats.queued == 0
    row = sql.execute("SELECT * FROM audit_log WHERE org_id = %s AND event_id = %s", (org.id, ids[4])).fetchone()
    assert (row["sql"], row["user_id"], row["duration_ms"], row["row_count"], row["actor_kind"]) == (
        "SELECT name FROM patients WHERE id = 4", "u1", 4, 1, "agent")
    assert row["tables_accessed"] == ["patients"]  # the server extracted it
    assert abs(time.time() - row["timestamp"].timestamp()) < 60  # stamped at record time


def test_resent_event_ids_count_as_duplicates(live_server, org, sql):
    events = [{"sql": f"SELECT {i}", "eventId": f"fixed-{i}", "timestamp": "2026-03-01T09:15:00+01:00"}
              for i in range(10)]
    for _ in range(2):
        with AuditClient(live_server.url, org.ingest_key(), flush_interval=0.05) as audit:
            for event in events:
                audit.record_event(event)
    assert (audit.stats.inserted, audit.stats.duplicates) == (0, 10)
    assert stored(sql, org) == {"n": 10, "ids": 10}
    first = sql.execute("SELECT timestamp FROM audit_log WHERE org_id = %s AND event_id = 'fixed-0'",
                        (org.id,)).fetchone()
    assert first["timestamp"].isoformat() == "2026-03-01T08:15:00+00:00"


def test_flush_sends_a_partial_batch_at_once_and_close_is_final(live_server, org, sql):
    audit = AuditClient(live_server.url, org.ingest_key(), batch_size=100, flush_interval=3600)
    audit.record("SELECT 1")  # the first event of an idle client leaves at once; the next ones would wait
    audit.record("SELECT 2")
    audit.record("SELECT 3")
    started = time.monotonic()
    audit.flush(timeout=10)
    assert time.monotonic() - started < 5 and stored(sql, org)["n"] == 3
    audit.record("SELECT 4")
    audit.close(timeout=10)
    assert stored(sql, org)["n"] == 4
    with pytest.raises(AuditClientError, match="closed"):
        audit.record("SELECT 5")
    audit.close()  # idempotent
    with AuditClient(live_server.url, "atli_x") as other, pytest.raises(TypeError, match="user_id"):
        other.record("SELECT 1", user_id="u1")  # fields use the API's camelCase names


def test_full_queue_raises_and_nothing_is_dropped_silently(org):
    reported: list[FailedEvent] = []
    audit = AuditClient(f"http://127.0.0.1:{free_port()}", org.ingest_key(), max_queue=3, on_full="raise",
                        max_retries=None, backoff_base=0.02, backoff_max=0.05, on_error=reported.extend)
    ids = [audit.record(f"SELECT {i}") for i in range(3)]
    with pytest.raises(AuditQueueFull, match="max_queue=3"):
        audit.record("SELECT 3")
    assert audit.stats.queued == 3
    time.sleep(0.3)
    assert audit.stats.retries >= 2 and audit.stats.sent == 0
    with pytest.raises(AuditClientError, match="timed out"):
        audit.flush(timeout=0.2)
    with pytest.raises(AuditClientError, match=r"^3 event\(s\) were not delivered: the client closed") as closing:
        audit.close(timeout=0.2)
    assert closing.value.undelivered == 3 and "Connection refused" in str(closing.value)
    # What could not be delivered went to on_error with the reason, and is counted.
    assert [f.event["eventId"] for f in reported] == ids
    assert {f.reason.split(" (last error")[0] for f in reported} == {"the client closed before they were delivered"}
    assert audit.stats.failed == 3 and audit.stats.queued == 0


def test_blocked_producer_resumes_when_the_server_appears_and_retries_store_once(org, sql, start_server):
    port = free_port()  # nothing listens yet: every request fails to connect and is retried
    audit = AuditClient(f"http://127.0.0.1:{port}", org.ingest_key(), batch_size=3, max_queue=4,
                        flush_interval=0.01, max_retries=None, backoff_base=0.05, backoff_max=0.2)
    ids: list[str] = []
    producer = threading.Thread(target=lambda: ids.extend(audit.record(f"SELECT {i}") for i in range(20)))
    producer.start()
    time.sleep(0.5)
    assert producer.is_alive() and audit.stats.queued == 4 and audit.stats.retries >= 1
    with pytest.raises(AuditQueueFull, match="stayed full"):
        audit.record("SELECT 'extra'", timeout=0.1)
    start_server(port)
    producer.join(timeout=30)
    assert not producer.is_alive()
    audit.close(timeout=30)
    assert stored(sql, org) == {"n": 20, "ids": 20} and stored_ids(sql, org) == set(ids)
    assert audit.stats.inserted + audit.stats.duplicates == 20 and audit.stats.failed == 0


def test_events_the_server_rejects_are_reported(live_server, org, sql):
    reported: list[FailedEvent] = []
    with AuditClient(live_server.url, org.ingest_key(), flush_interval=0.05, on_error=reported.extend) as audit:
        audit.record("SELECT 1")
        bad = audit.record("SELECT 2", actorKind="robot")
        nul = audit.record("SELECT '\x00'")
        audit.flush(timeout=10)  # individual rejections are reported, not raised
    assert sorted(f.event["eventId"] for f in reported) == sorted([bad, nul])
    reasons = {f.event["eventId"]: f.reason for f in reported}
    assert "actorKind" in reasons[bad] and "NUL" in reasons[nul]
    assert (audit.stats.inserted, audit.stats.rejected, audit.stats.failed) == (1, 2, 0)
    assert stored(sql, org)["n"] == 1


def test_a_refused_batch_is_reported_and_not_retried(live_server, org, sql):
    reported: list[FailedEvent] = []
    audit = AuditClient(live_server.url, "atli_not-a-real-key", flush_interval=0.05, on_error=reported.extend)
    audit.record("SELECT 1")
    audit.record("SELECT 2")
    with pytest.raises(AuditClientError, match="HTTP 401"):
        audit.flush(timeout=10)
    audit.close(timeout=10)
    assert [f.status for f in reported] == [401, 401] and "refused" in reported[0].reason
    assert (audit.stats.failed, audit.stats.retries, audit.stats.sent) == (2, 0, 0)


def test_requests_stay_under_8_mb(live_server, org, sql):
    # 20 events of ~900 kB: one batch of 500 would be 18 MB, over the server's 10 MB limit.
    big = "SELECT '" + "x" * 900_000 + "'"
    with AuditClient(live_server.url, org.ingest_key(), batch_size=500, flush_interval=0.05) as audit:
        for _ in range(20):
            audit.record(big, tablesAccessed=[])
    assert audit.stats.inserted == 20 and audit.stats.failed == 0
    assert stored(sql, org)["n"] == 20


def test_interpreter_exit_flushes(live_server, org, sql):
    script = textwrap.dedent(f"""
        from atlas_compliance.client import AuditClient
        audit = AuditClient({live_server.url!r}, {org.ingest_key()!r}, flush_interval=3600)
        for i in range(25):
            audit.record(f"SELECT {{i}}")
        # no close(): the atexit hook flushes
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert stored(sql, org) == {"n": 25, "ids": 25}


@pytest.mark.slow
def test_server_killed_mid_stream_stores_every_event_exactly_once(org, sql, serve_process):
    total = 30_000
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = serve_process(port)
    audit = AuditClient(base, org.ingest_key(), batch_size=2_000, flush_interval=0.05, max_retries=None,
                        backoff_base=0.1, backoff_max=1.0, timeout=30)
    started = time.monotonic()
    ids = [audit.record(f"SELECT id, name FROM t{i % 50} WHERE id = {i}", userId=f"u{i % 7}",
                        sourceType="postgres") for i in range(total)]
    while audit.stats.sent < 4_000:  # two batches acknowledged: the stream is under way
        assert time.monotonic() - started < 120, audit.stats
        time.sleep(0.01)
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=10)
    killed_at = audit.stats
    assert killed_at.sent < total
    time.sleep(1.0)  # the client meets refused connections meanwhile
    serve_process(port)
    restarted = time.monotonic()
    audit.close(timeout=240)
    finished = time.monotonic()
    print(f"\nkill test: killed after {killed_at.sent:,} acknowledged events; restart + drain "
          f"{finished - restarted:.1f} s; total {finished - started:.1f} s; {audit.stats}")

    assert stored(sql, org) == {"n": total, "ids": total}
    assert stored_ids(sql, org) == set(ids)
    stats = audit.stats
    assert stats.retries >= 1 and stats.failed == 0 and stats.rejected == 0
    # A batch committed just before the kill but not answered is re-sent and counts as duplicates.
    assert stats.inserted + stats.duplicates == total
    admin = org.add_user("admin")
    verify = httpx.get(base + "/api/v1/admin/audit/verify", headers=admin.headers, timeout=60).json()
    assert verify["ok"] is True and verify["rowsChecked"] == total, verify


def test_docs_list_every_option_of_the_client_and_the_hook():
    import inspect
    import re
    from pathlib import Path

    from atlas_compliance.client import instrument_engine

    doc = (Path(__file__).parents[2] / "docs" / "client.md").read_text()
    table = doc.split("| option | default | meaning |", 1)[1].split("\n\n", 1)[0]
    documented = {name for cell in re.findall(r"^\| ([^|]+) \|", table, re.M) for name in re.findall(r"`(\w+)`", cell)}
    options = set(inspect.signature(AuditClient).parameters) - {"url", "ingest_key"}
    assert documented == options
    hook_signature = doc.split("`instrument_engine(", 1)[1].split(")`", 1)[0]
    hook_options = set(inspect.signature(instrument_engine).parameters) - {"engine", "client"}
    assert {name for name in hook_options if f"{name}=" not in hook_signature} == set()
