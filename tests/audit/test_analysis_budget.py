"""No request stalls the others (issue 13.4): SQL is analysed in worker processes, each statement
within a budget; a statement over budget is stored unanalysed, the rest of its batch normally."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest
from fastapi.testclient import TestClient

from atlas_compliance.app import create_app
from atlas_compliance.audit import analysis, bulk
from atlas_compliance.audit.analysis import AnalysisPool, ParseBudget
from atlas_compliance.audit.service import prepare_batch
from atlas_compliance.db.pool import Database

URL = "/api/v1/audit/events"
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def union_chain(branches: int, table: str = "tbl") -> str:
    return " UNION ".join(f"SELECT id, name FROM {table}_{i % 50} WHERE id = {i}" for i in range(branches))


def test_a_statement_over_the_size_budget_is_stored_and_the_rest_of_its_batch_too(client, org, sql):
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    huge = union_chain(10_000)  # 350 KiB: over the default budget of 256 KiB
    events = [{"eventId": "before", "sql": "SELECT id FROM patients"}, {"eventId": "huge", "sql": huge},
              {"eventId": "after", "sql": "SELECT email FROM users"}]
    assert client.post(URL, json=events, headers=key).json() == {"inserted": 3, "duplicates": 0, "rejected": []}
    rows = {r["event_id"]: r for r in sql.execute(
        "SELECT event_id, sql, tables_accessed, columns_accessed, parse_error FROM audit_log WHERE org_id = %s",
        (org.id,))}
    assert rows["huge"]["sql"] == huge  # stored whole, never dropped
    assert rows["huge"]["tables_accessed"] is None and rows["huge"]["columns_accessed"] is None
    assert rows["huge"]["parse_error"] == (f"too complex to analyse: the statement is {len(huge.encode()):,} bytes, "
                                           "over the budget of 262,144 bytes")
    assert rows["before"]["tables_accessed"] == ["patients"] and rows["before"]["parse_error"] is None
    assert rows["after"]["tables_accessed"] == ["users"] and rows["after"]["parse_error"] is None


@pytest.fixture()
def pool():
    pool = AnalysisPool(2, ParseBudget(max_bytes=1024 * 1024, seconds=0.3))
    yield pool
    pool.shutdown()


def test_a_statement_over_the_time_budget_is_stored_unanalysed(pool):
    slow = union_chain(6_000, "slow")  # seconds of analysis, far over 0.3 s
    events = [{"sql": "SELECT id FROM a"}, {"sql": slow}, {"sql": "SELECT b.x FROM b"}]
    rows, rejected = pool.submit(prepare_batch, events, NOW, None).result(timeout=120)
    assert rejected == []
    assert [(p.row[16], p.row[19]) for p in rows] == [
        ('["a"]', None), (None, "too complex to analyse: analysis took longer than the budget of 0.3 s"),
        ('["b"]', None)]  # the worker's timer stopped it, or (timer held off by compiled code) the pool


def _items(values: list[str]) -> list[str]:
    """Stands for an analysis: "hang" never returns and cannot be interrupted, "die" kills the worker."""
    out = []
    for index, value in enumerate(values):
        forced = analysis.begin_item(index)
        if forced is not None:
            out.append(forced)
            continue
        if value in ("hang", "die"):
            analysis._analyser.progress[1] = time.monotonic()  # analysing, as analyse() marks it
            if value == "die":
                os._exit(3)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # out of the timer's reach
            time.sleep(3600)
        out.append(f"ok {value}")
    return out


def test_a_worker_stuck_past_the_budget_is_replaced_and_the_batch_completed(pool):
    answer = pool.submit(_items, ["a", "hang", "b", "die", "c"]).result(timeout=120)
    assert answer[0] == "ok a" and answer[2] == "ok b" and answer[4] == "ok c"
    assert answer[1] == "too complex to analyse: analysis took longer than the budget of 0.3 s"
    assert answer[3] == "too complex to analyse: the analysis worker stopped (exit code 3)"
    assert pool.replaced == 2
    assert pool.submit(_items, ["d"]).result(timeout=60) == ["ok d"]  # the replacements work


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


def test_healthz_answers_while_a_worst_case_batch_is_analysed_and_the_pool_stops_with_the_app(settings, org):
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    batch = [{"sql": union_chain(3_000, f"t{n}")} for n in range(8)]  # distinct texts: no cache hits
    app = create_app(Database(settings.database_url, max_size=4), settings, manage_pool=True)
    pool: AnalysisPool = app.state.analysis
    with TestClient(app) as client:
        assert not pool.started  # lazily: nothing ingested yet
        answers: list = []
        sender = threading.Thread(target=lambda: answers.append(client.post(URL, json=batch, headers=key)))
        sender.start()
        deadline = time.monotonic() + 120
        while not (pool.started and any(w.progress[1] for w in pool._all)):  # a worker is analysing
            assert sender.is_alive() and time.monotonic() < deadline
            time.sleep(0.01)
        health = client.get("/healthz")
        assert health.status_code == 200
        assert sender.is_alive()  # answered while the batch was still being analysed
        sender.join(timeout=300)
        assert answers[0].status_code == 200 and answers[0].json()["inserted"] == 8
        pids = pool.worker_pids()
        assert len(pids) == pool.workers
    deadline = time.monotonic() + 30
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(pid) for pid in pids)  # the app's shutdown stopped its workers
    with pytest.raises(RuntimeError):
        pool.submit(prepare_batch, [], NOW, None)


def test_a_bulk_import_does_not_hold_the_org_lock_while_its_workers_parse(settings, org, sql):
    """The writer commits what is prepared and waits for the workers outside its transaction: another
    writer of the org can take the chain lock meanwhile (before: the lock was held for the wait)."""
    gate = threading.Event()

    def prepare(job, numbers, records):
        if numbers[0] > 1:
            gate.wait(60)  # the workers are still parsing the second chunk
        return bulk.prepare_chunk(job, numbers, records)

    job = bulk.ChunkJob(file_name="f.ndjson", org_id=org.id, now=NOW, catalog=None)
    # (record, content digest) pairs, as the import reads them; these records carry their own eventId.
    batches = [([1], [(b'{"eventId": "one", "sql": "SELECT a FROM t"}', "d1")]),
               ([2], [(b'{"eventId": "two", "sql": "SELECT b FROM u"}', "d2")])]
    observed: dict[str, object] = {}

    async def scenario():
        db = Database(settings.database_url, max_size=4)
        await db.open()
        try:
            chunks = bulk.prepared_in_order(None, job, batches, inflight=1, ahead=2, prepare=prepare)
            writing = asyncio.ensure_future(bulk.write_chunks(db, org.id, chunks, commit_every=1_000))
            deadline = time.monotonic() + 60
            while sql.execute("SELECT count(*) AS n FROM audit_log WHERE org_id = %s",
                              (org.id,)).fetchone()["n"] == 0:
                assert time.monotonic() < deadline and not writing.done()
                await asyncio.sleep(0.05)
            with psycopg.connect(settings.database_url) as other:
                other.execute("SET lock_timeout = '2s'")
                observed["locked"] = other.execute(
                    "SELECT 1 FROM audit_chain_head WHERE chain_key = %s FOR UPDATE", (org.id,)).fetchone() is not None
            gate.set()
            observed["totals"] = await writing
        finally:
            gate.set()
            await db.close()

    asyncio.run(scenario())
    assert observed["locked"] is True
    assert observed["totals"].inserted == 2
    assert [r["event_id"] for r in sql.execute(
        "SELECT event_id FROM audit_log WHERE org_id = %s ORDER BY chain_seq", (org.id,))] == ["one", "two"]
