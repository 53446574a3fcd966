"""The SQLAlchemy hook with real drivers (psycopg 3, asyncpg) and a real server: overlapping
statements on one connection, transaction outcomes, savepoints, row counts of executemany."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from atlas_compliance.client import AuditClient, instrument_engine
from tests.client.conftest import engine_url


def rows(sql, org) -> list[dict]:
    return sql.execute("SELECT sql, success, row_count, duration_ms, transaction_outcome, parse_error, error "
                       "FROM audit_log WHERE org_id = %s ORDER BY chain_seq", (org.id,)).fetchall()


def outcomes(sql, org) -> list[tuple[str, str | None]]:
    return [(r["sql"], r["transaction_outcome"]) for r in rows(sql, org)]


@pytest.fixture()
def audit(live_server, org):
    client = AuditClient(live_server.url, org.ingest_key(), flush_interval=0.05)
    yield client
    client.close(timeout=30)


# --- point 1: overlapping statements on one connection ------------------------------------------------

@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
def test_overlapping_statements_on_one_async_session_are_each_recorded(driver, database_url, audit, org, sql):
    engine = create_async_engine(engine_url(database_url, driver))
    handle = instrument_engine(engine.sync_engine, audit)

    async def run() -> None:
        async with AsyncSession(engine) as session:
            await session.connection()  # the session's connection exists; the two statements share it
            await asyncio.gather(session.execute(sa.text("SELECT pg_sleep(0.3), 'slow-one'")),
                                 session.execute(sa.text("SELECT 'fast-one'")))
            await session.commit()
        await engine.dispose()

    asyncio.run(run())
    handle.remove()
    audit.flush(timeout=30)
    recorded = {r["sql"]: r for r in rows(sql, org)}
    slow = next(r for text, r in recorded.items() if "slow-one" in text)
    fast = next(r for text, r in recorded.items() if "fast-one" in text)
    assert slow["duration_ms"] >= 300 and slow["success"] and fast["success"]
    assert slow["transaction_outcome"] == fast["transaction_outcome"] == "committed"
    assert len(recorded) == 2


def test_a_connection_shared_by_threads_records_each_statement(scratch, audit, org, sql):
    engine, _ = scratch
    handle = instrument_engine(engine, audit)
    with engine.connect() as conn:
        slow = threading.Thread(target=lambda: conn.execute(sa.text("SELECT pg_sleep(0.3), 'slow-one'")))
        slow.start()
        time.sleep(0.05)  # the slow statement is in flight
        conn.execute(sa.text("SELECT 'fast-one'"))
        slow.join()
        conn.commit()
    handle.remove()
    audit.flush(timeout=30)
    recorded = {r["sql"]: r for r in rows(sql, org)}
    assert set(recorded) == {"SELECT pg_sleep(0.3), 'slow-one'", "SELECT 'fast-one'"}
    assert recorded["SELECT pg_sleep(0.3), 'slow-one'"]["duration_ms"] >= 300


# --- points 4 and 5: transaction outcomes and savepoints -----------------------------------------------

def test_a_rolled_back_update_is_marked_rolled_back(scratch, audit, org, sql):
    engine, schema = scratch
    table = f"{schema}.patients"
    sql.execute(f"INSERT INTO {table} SELECT g, 'p' || g, NULL FROM generate_series(1, 500) g")
    handle = instrument_engine(engine, audit)
    with engine.connect() as conn:
        conn.execute(sa.text(f"UPDATE {table} SET name = 'x'"))
        conn.rollback()
        conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE name = 'x'"))
        conn.commit()
    handle.remove()
    audit.flush(timeout=30)
    recorded = rows(sql, org)
    assert [(r["sql"], r["row_count"], r["transaction_outcome"]) for r in recorded] == [
        (f"UPDATE {table} SET name = 'x'", 500, "rolled_back"),
        (f"SELECT count(*) FROM {table} WHERE name = 'x'", 1, "committed"),
    ]
    assert sql.execute(f"SELECT count(*) AS n FROM {table} WHERE name = 'x'").fetchone()["n"] == 0


def test_savepoints_mark_what_they_undo_and_are_not_recorded(scratch, audit, org, sql):
    engine, schema = scratch
    table = f"{schema}.patients"
    handle = instrument_engine(engine, audit)
    with Session(engine) as session:
        session.execute(sa.text(f"INSERT INTO {table} (id, name) VALUES (1, 'kept')"))
        with session.begin_nested():
            session.execute(sa.text(f"INSERT INTO {table} (id, name) VALUES (2, 'released')"))
        nested = session.begin_nested()
        session.execute(sa.text(f"INSERT INTO {table} (id, name) VALUES (3, 'undone')"))
        inner = session.begin_nested()
        session.execute(sa.text(f"INSERT INTO {table} (id, name) VALUES (4, 'undone with its parent')"))
        inner.commit()
        nested.rollback()
        session.commit()
    handle.remove()
    audit.flush(timeout=30)
    assert [(text.split("VALUES ")[1], outcome) for text, outcome in outcomes(sql, org)] == [
        ("(1, 'kept')", "committed"),
        ("(2, 'released')", "committed"),
        ("(3, 'undone')", "rolled_back"),
        ("(4, 'undone with its parent')", "rolled_back"),
    ]
    assert all(r["parse_error"] is None for r in rows(sql, org))
    assert [r["id"] for r in sql.execute(f"SELECT id FROM {table} ORDER BY id")] == [1, 2]


def test_a_failed_statement_rolls_the_postgresql_transaction_back_even_on_commit(scratch, audit, org, sql):
    engine, schema = scratch
    table = f"{schema}.patients"
    handle = instrument_engine(engine, audit)
    with engine.connect() as conn:
        conn.execute(sa.text(f"INSERT INTO {table} (id) VALUES (1)"))
        with pytest.raises(sa.exc.ProgrammingError):
            conn.execute(sa.text(f"SELECT no_such_column FROM {table}"))
        conn.commit()  # PostgreSQL answers the COMMIT of an aborted transaction with ROLLBACK
        with conn.begin_nested() as savepoint:  # a failure undone by ROLLBACK TO does not abort
            with pytest.raises(sa.exc.IntegrityError):
                conn.execute(sa.text(f"INSERT INTO {table} (id) VALUES (7), (7)"))
            savepoint.rollback()
        conn.execute(sa.text(f"INSERT INTO {table} (id) VALUES (8)"))
        conn.commit()
    handle.remove()
    audit.flush(timeout=30)
    assert [(r["sql"], r["success"], r["transaction_outcome"]) for r in rows(sql, org)] == [
        (f"INSERT INTO {table} (id) VALUES (1)", True, "rolled_back"),
        (f"SELECT no_such_column FROM {table}", False, "rolled_back"),
        (f"INSERT INTO {table} (id) VALUES (7), (7)", False, "rolled_back"),
        (f"INSERT INTO {table} (id) VALUES (8)", True, "committed"),
    ]
    assert [r["id"] for r in sql.execute(f"SELECT id FROM {table}")] == [8]


def test_a_commit_the_server_refuses_is_rolled_back(database_url, audit, org, sql):
    name = f"deferred_{org.id.replace('-', '')[:12]}"
    sql.execute(f"CREATE TABLE {name} (id int UNIQUE DEFERRABLE INITIALLY DEFERRED)")
    engine = sa.create_engine(engine_url(database_url, "psycopg"))
    handle = instrument_engine(engine, audit)
    try:
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {name} VALUES (1), (1)"))  # checked at COMMIT
    finally:
        handle.remove()
        engine.dispose()
        sql.execute(f"DROP TABLE {name}")
    audit.flush(timeout=30)
    assert outcomes(sql, org) == [(f"INSERT INTO {name} VALUES (1), (1)", "rolled_back")]


def test_autocommit_statements_are_committed_at_once(scratch, audit, org, sql):
    engine, schema = scratch
    handle = instrument_engine(engine, audit)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"INSERT INTO {schema}.patients (id) VALUES (1)"))
        audit.flush(timeout=30)  # sent before any COMMIT: it committed by itself
        assert outcomes(sql, org) == [(f"INSERT INTO {schema}.patients (id) VALUES (1)", "committed")]
        conn.rollback()  # changes nothing in autocommit mode
    handle.remove()
    audit.flush(timeout=30)
    assert len(rows(sql, org)) == 1


def test_a_connection_lost_with_its_transaction_open_is_rolled_back(scratch, audit, org, sql):
    engine, schema = scratch
    handle = instrument_engine(engine, audit)
    with engine.connect() as conn:
        conn.execute(sa.text(f"INSERT INTO {schema}.patients (id) VALUES (1)"))
        conn.invalidate()  # the DBAPI connection is closed: the server rolls the transaction back
    handle.remove()
    audit.flush(timeout=30)
    assert outcomes(sql, org) == [(f"INSERT INTO {schema}.patients (id) VALUES (1)", "rolled_back")]


def test_held_statements_have_a_ceiling_and_remove_reports_open_transactions(scratch, audit, org, sql):
    engine, schema = scratch
    handle = instrument_engine(engine, audit, max_held_statements=3)
    conn = engine.connect()
    for i in range(5):
        conn.execute(sa.text(f"SELECT {i} FROM {schema}.patients"))
    audit.flush(timeout=30)  # the first four left when the fourth overflowed the ceiling, the fifth at once
    assert [outcome for _, outcome in outcomes(sql, org)] == ["unknown"] * 5
    conn.commit()
    conn.execute(sa.text(f"SELECT 'open' FROM {schema}.patients"))
    handle.remove()  # the transaction is still open: its statement goes out as unknown
    conn.close()
    audit.flush(timeout=30)
    assert outcomes(sql, org)[-1] == (f"SELECT 'open' FROM {schema}.patients", "unknown")
    assert len(rows(sql, org)) == 6


def test_without_transaction_outcomes_statements_leave_at_once(scratch, audit, org, sql):
    engine, schema = scratch
    handle = instrument_engine(engine, audit, transaction_outcomes=False)
    with engine.connect() as conn:
        conn.execute(sa.text(f"SELECT id FROM {schema}.patients"))
        audit.flush(timeout=30)
        assert outcomes(sql, org) == [(f"SELECT id FROM {schema}.patients", None)]
        conn.rollback()
    handle.remove()


@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
def test_async_sessions_mark_commits_and_rollbacks(driver, database_url, scratch, audit, org, sql):
    _, schema = scratch
    table = f"{schema}.patients"
    engine = create_async_engine(engine_url(database_url, driver))
    handle = instrument_engine(engine.sync_engine, audit)

    async def run() -> None:
        async with AsyncSession(engine) as session:
            await session.execute(sa.text(f"INSERT INTO {table} (id) VALUES (1)"))
            await session.commit()
            await session.execute(sa.text(f"DELETE FROM {table}"))
            await session.rollback()
            async with session.begin():
                await session.execute(sa.text(f"SELECT id FROM {table}"))
                async with session.begin_nested() as nested:
                    await session.execute(sa.text(f"DELETE FROM {table} WHERE id = 1"))
                    await nested.rollback()
        await engine.dispose()

    asyncio.run(run())
    handle.remove()
    audit.flush(timeout=30)
    assert outcomes(sql, org) == [
        (f"INSERT INTO {table} (id) VALUES (1)", "committed"),
        (f"DELETE FROM {table}", "rolled_back"),
        (f"SELECT id FROM {table}", "committed"),
        (f"DELETE FROM {table} WHERE id = 1", "rolled_back"),
    ]


# --- point 8: executemany row counts --------------------------------------------------------------------

@pytest.mark.parametrize(("driver", "expected"), [("psycopg", 3), ("asyncpg", None)])
def test_executemany_row_counts_per_driver(driver, expected, database_url, scratch, audit, org, sql):
    """psycopg reports the total over every parameter set; asyncpg reports none (documented)."""
    _, schema = scratch
    table = f"{schema}.patients"
    sql.execute(f"INSERT INTO {table} (id) SELECT generate_series(1, 3)")
    engine = create_async_engine(engine_url(database_url, driver))
    handle = instrument_engine(engine.sync_engine, audit)

    async def run() -> None:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"UPDATE {table} SET name = :name WHERE id = :id"),
                               [{"name": "n", "id": i} for i in (1, 2, 3)])
        await engine.dispose()

    asyncio.run(run())
    handle.remove()
    audit.flush(timeout=30)
    (row,) = rows(sql, org)
    assert row["row_count"] == expected and row["transaction_outcome"] == "committed"
