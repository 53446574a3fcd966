"""instrument_engine: a real SQLAlchemy engine on the test PostgreSQL, recorded through a real server."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from atlas_compliance.client import AuditClient, instrument_engine


def audit_rows(sql, org) -> list[dict]:
    return sql.execute("SELECT sql, success, error, row_count, duration_ms, user_id, user_label, source_type, "
                       "source_id, target_host, actor_kind, tables_accessed FROM audit_log WHERE org_id = %s "
                       "ORDER BY chain_seq", (org.id,)).fetchall()


def test_every_statement_is_recorded_with_placeholders_not_values(live_server, org, sql, scratch):
    engine, schema = scratch
    table = f"{schema}.patients"
    current_user = {"id": "analyst-7"}
    audit = AuditClient(live_server.url, org.ingest_key(), flush_interval=0.05)
    handle = instrument_engine(engine, audit, user=lambda: current_user["id"], source_id="clinic-prod",
                               user_label="Dr. Analyst")
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {table} (id, name, ssn) VALUES (:id, :name, :ssn)"),
                     [{"id": 1, "name": "Ada", "ssn": "123-45-6789"}, {"id": 2, "name": "Bob", "ssn": "987-65-4321"}])
        names = conn.execute(sa.text(f"SELECT name FROM {table} WHERE ssn = :ssn"), {"ssn": "123-45-6789"}).all()
        current_user["id"] = "analyst-8"  # the callable is asked per statement
        conn.execute(sa.text(f"UPDATE {table} SET name = :name WHERE id >= :low"), {"name": "X", "low": 1})
    with pytest.raises(sa.exc.ProgrammingError), engine.connect() as conn:
        conn.execute(sa.text(f"SELECT no_such_column FROM {table}"))
    handle.remove()
    with engine.connect() as conn:
        conn.execute(sa.text(f"SELECT count(*) FROM {table}"))  # after remove(): not recorded
    audit.close(timeout=30)
    assert names == [("Ada",)]

    rows = audit_rows(sql, org)
    assert [(r["sql"], r["success"], r["row_count"], r["user_id"]) for r in rows] == [
        (f"INSERT INTO {table} (id, name, ssn) VALUES (%(id)s, %(name)s, %(ssn)s)", True, 2, "analyst-7"),
        (f"SELECT name FROM {table} WHERE ssn = %(ssn)s", True, 1, "analyst-7"),
        (f"UPDATE {table} SET name = %(name)s WHERE id >= %(low)s", True, 2, "analyst-8"),
        (f"SELECT no_such_column FROM {table}", False, None, "analyst-8"),
    ]
    assert not any("123-45-6789" in r["sql"] or "Ada" in r["sql"] for r in rows)  # parameter values stay out
    assert rows[3]["error"] == 'column "no_such_column" does not exist'
    assert all(r["error"] is None for r in rows[:3])
    assert {(r["source_type"], r["source_id"], r["target_host"], r["actor_kind"], r["user_label"]) for r in rows} == {
        ("postgres", "clinic-prod", engine.url.host, "human", "Dr. Analyst")}
    assert all(r["duration_ms"] >= 0 for r in rows)
    assert rows[1]["tables_accessed"] == [table]  # the server extracts tables from the placeholder text


def test_recording_failures_never_break_the_application(live_server, org, sql, scratch, caplog):
    engine, schema = scratch

    def broken_user() -> str:
        raise RuntimeError("no request context")

    audit = AuditClient(live_server.url, org.ingest_key(), flush_interval=0.05)
    handle = instrument_engine(engine, audit, user=broken_user, target_host="db.internal")
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {schema}.patients")).scalar_one() == 0
    handle.remove()
    handle.remove()  # idempotent
    assert not handle.active
    audit.close(timeout=30)
    # The statement is recorded without a user, and the event says why.
    rows = audit_rows(sql, org)
    assert [(r["sql"], r["user_id"], r["user_label"]) for r in rows] == [
        (f"SELECT count(*) FROM {schema}.patients", None,
         "user unknown: the user callable raised RuntimeError: no request context")]
    assert "user unknown: the user callable raised RuntimeError: no request context" in caplog.text
    with pytest.raises(ValueError, match="actor_kind"):
        instrument_engine(engine, audit, actor_kind="robot")
