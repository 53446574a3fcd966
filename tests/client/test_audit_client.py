"""AuditClient and the SQLAlchemy hook against a real server and a real PostgreSQL."""

from __future__ import annotations

import signal
import threading
import time
import uuid

import pytest
import sqlalchemy as sa

from atlas_compliance.client import AuditClient, AuditQueueFull, instrument_engine
from tests.helpers_server import ThreadServer, free_port, start_process, wait_ready


@pytest.fixture(scope="module")
def server(database_url, settings):
    with ThreadServer(database_url, settings) as srv:
        yield srv


def stored(sql, org):
    return sql.execute("SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM audit_log WHERE org_id = %s",
                       (org.id,)).fetchone()


def test_events_arrive_exactly_once(server, org, sql):
    with AuditClient(server.base, org.ingest_key(), batch_size=50, flush_interval=0.05) as audit:
        ids = [audit.record(f"SELECT {i} FROM t", userId="u1", durationMs=i) for i in range(120)]
        audit.flush(timeout=30)
        assert audit.stats.inserted == 120 and audit.stats.queued == 0
    assert stored(sql, org) == {"n": 120, "ids": 120}
    got = {r["event_id"] for r in sql.execute("SELECT event_id FROM audit_log WHERE org_id = %s", (org.id,))}
    assert got == set(ids)


def test_rejected_events_are_reported_not_dropped_silently(server, org, sql):
    errors = []
    with AuditClient(server.base, org.ingest_key(), flush_interval=0.05,
                     on_error=lambda message, events: errors.append((message, len(events)))) as audit:
        audit.record("SELECT 1")
        audit.record_event({"sql": "SELECT 2", "actorKind": "robot"})
        audit.flush(timeout=30)
        assert audit.stats.rejected == 1
    assert errors and errors[0][1] == 1 and "actorKind" in errors[0][0]
    bad_key = []
    with AuditClient(server.base, "atli_not-a-key", flush_interval=0.05,
                     on_error=lambda message, events: bad_key.append(message)) as audit:
        audit.record("SELECT 1")
        audit.flush(timeout=30)
        assert audit.stats.failed == 1
    assert "401" in bad_key[0]
    assert stored(sql, org)["n"] == 1


def test_full_queue_raises_or_blocks(org):
    port = free_port()  # nothing listens: events cannot leave the queue
    audit = AuditClient(f"http://127.0.0.1:{port}", org.ingest_key(), max_queue=3, on_full="raise",
                        backoff_base=0.05, backoff_max=0.1, max_retries=-1, flush_interval=0.01)
    for i in range(3):
        audit.record(f"SELECT {i}")
    with pytest.raises(AuditQueueFull):
        audit.record("SELECT 3")
    audit.on_full = "block"
    with pytest.raises(AuditQueueFull):
        audit.record("SELECT 4", timeout=0.3)
    assert audit.stats.queued == 3
    audit.max_retries = 0  # let the sender give up so close() returns
    audit.close(timeout=5)


def test_retries_until_the_server_appears(database_url, settings, org, sql):
    """The client starts while nothing listens, retries, and stores every event once."""
    port = free_port()
    audit = AuditClient(f"http://127.0.0.1:{port}", org.ingest_key(), batch_size=25, flush_interval=0.05,
                        backoff_base=0.1, backoff_max=0.5, max_retries=-1)
    for i in range(100):
        audit.record(f"SELECT {i}")
    time.sleep(0.5)
    assert audit.stats.retries >= 1 and audit.stats.inserted == 0
    proc = start_process(database_url, port)
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        audit.close(timeout=60)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert stored(sql, org) == {"n": 100, "ids": 100}


def test_server_killed_mid_stream_loses_and_duplicates_nothing(client, database_url, org, sql):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_process(database_url, port)
    wait_ready(base)
    audit = AuditClient(base, org.ingest_key(), batch_size=2000, flush_interval=0.05, backoff_base=0.2,
                        backoff_max=1.0, max_retries=-1, max_queue=50_000)
    total = 30_000
    producer = threading.Thread(target=lambda: [audit.record(f"SELECT id FROM t{i % 40} WHERE id = {i}",
                                                             userId=f"u{i % 9}") for i in range(total)])
    producer.start()
    while audit.stats.inserted < 4000:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    time.sleep(0.5)
    proc = start_process(database_url, port)
    try:
        wait_ready(base)
        producer.join(timeout=120)
        audit.close(timeout=180)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert stored(sql, org) == {"n": total, "ids": total}
    admin = org.add_user("admin")
    verify = client.get("/api/v1/admin/audit/verify", headers=admin.headers).json()
    assert verify["ok"] is True and verify["rowsChecked"] == total


def test_sqlalchemy_engine_is_instrumented(server, database_url, org, sql):
    schema = f"hook_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine("postgresql+psycopg://" + database_url.split("://", 1)[1])
    audit = AuditClient(server.base, org.ingest_key(), flush_interval=0.05)
    handle = instrument_engine(engine, audit, user=lambda: "analyst-7", source_id="crm-prod")
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        conn.execute(sa.text(f"CREATE TABLE {schema}.customers (id int, email text)"))
        conn.execute(sa.text(f"INSERT INTO {schema}.customers VALUES (1, 'a@b.example'), (2, 'c@d.example')"))
        emails = conn.execute(sa.text(f"SELECT email FROM {schema}.customers WHERE id = :id"), {"id": 2}).all()
        conn.execute(sa.text(f"UPDATE {schema}.customers SET email = 'x@y.example' WHERE id = 1"))
    assert emails == [("c@d.example",)]
    with pytest.raises(sa.exc.ProgrammingError), engine.connect() as conn:
        conn.execute(sa.text(f"SELECT nope FROM {schema}.customers"))
    handle.remove()
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    audit.close(timeout=30)
    rows = sql.execute("SELECT sql, success, error, row_count, user_id, source_type, source_id, tables_accessed "
                       "FROM audit_log WHERE org_id = %s AND sql LIKE %s ORDER BY chain_seq",
                       (org.id, f"%{schema}.customers%")).fetchall()
    by_kind = {r["sql"].split()[0]: r for r in rows if r["success"]}
    assert by_kind["INSERT"]["row_count"] == 2 and by_kind["UPDATE"]["row_count"] == 1
    select = by_kind["SELECT"]
    assert "%(id)s" in select["sql"] and "c@d.example" not in select["sql"]  # placeholders, never values
    assert select["tables_accessed"] == [f"{schema}.customers"]
    failure = next(r for r in rows if not r["success"])
    assert "nope" in failure["error"] and "does not exist" in failure["error"]
    assert {r["user_id"] for r in rows} == {"analyst-7"} and {r["source_type"] for r in rows} == {"postgres"}
    assert {r["source_id"] for r in rows} == {"crm-prod"}
    assert not any("DROP SCHEMA" in r["sql"] for r in rows)  # removed before the cleanup
