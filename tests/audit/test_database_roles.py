"""The role model `db upgrade` sets up (docs/database-roles.md): the owner runs migrations, the service
role has DML rights the triggers restrict, and `atlas_writer` may only INSERT into audit_log."""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from atlas_compliance.db import security
from atlas_compliance.db.pool import to_libpq_url

REFUSED = psycopg.errors.InsufficientPrivilege


@pytest.fixture()
def roles(database_url):
    """Service and writer roles made by `apply_roles` (unique names), each with a login member."""
    tag = f"{os.getpid()}_{secrets.token_hex(3)}"
    service, writer = f"atlas_service_{tag}", f"atlas_writer_{tag}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        plan = security.apply_roles(conn, service, writer)
        assert plan.applied, plan.reason
        for role in (service, writer):
            conn.execute(f'CREATE ROLE "{role}_login" LOGIN IN ROLE "{role}"')
    parts = urlsplit(to_libpq_url(database_url))

    def connect(role: str) -> psycopg.Connection:
        url = urlunsplit((parts.scheme, f"{role}_login@{parts.netloc.split('@')[-1]}", parts.path, parts.query, ""))
        return psycopg.connect(url, autocommit=True, row_factory=psycopg.rows.dict_row)

    try:
        yield service, writer, connect
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            for role in (f"{service}_login", f"{writer}_login", service, writer):
                conn.execute(f'DROP OWNED BY "{role}"')
                conn.execute(f'DROP ROLE "{role}"')


def test_writer_may_only_insert_and_its_rows_are_chained_and_rolled_up(roles, org, sql, client):
    service, writer, connect = roles
    with connect(writer) as w:
        w.execute("INSERT INTO audit_log (org_id, user_id, auth_mode, sql, duration_ms, success, tables_accessed, "
                  "\"timestamp\") VALUES (%s, 'u1', 'none', 'select 1', 1, true, '[\"orders\"]', now())", (org.id,))
        for statement in ("SELECT count(*) FROM audit_log", "UPDATE audit_log SET deleted_at = now()",
                          "DELETE FROM audit_log", "INSERT INTO admin_action_log (action_type, target_type, "
                          "target_id, request_id) VALUES ('x', 'x', 'x', 'x')",
                          "SELECT * FROM audit_user_daily", "SELECT * FROM atlas_retention_purge('x', null, null, "
                          "'workspace', 'r', null)"):
            with pytest.raises(REFUSED):
                w.execute(statement)
    row = sql.execute("SELECT chain_seq, row_hash IS NOT NULL AS hashed FROM audit_log WHERE org_id = %s",
                      (org.id,)).fetchone()
    assert row == {"chain_seq": 1, "hashed": True}
    assert sql.execute("SELECT sum(query_count) AS n FROM audit_user_daily WHERE org_id = %s",
                       (org.id,)).fetchone()["n"] == 1
    admin = org.add_user("admin")
    body = client.get("/api/v1/admin/audit/verify", headers=admin.headers).json()
    assert body["ok"] is True and body["rowsChecked"] == 1


def test_service_role_runs_the_purge_but_cannot_change_evidence(roles, org, sql):
    service, writer, connect = roles
    with connect(service) as s:
        s.execute("INSERT INTO audit_log (org_id, auth_mode, sql, duration_ms, success, \"timestamp\") "
                  "VALUES (%s, 'none', 'old', 1, true, now() - interval '800 days'), "
                  "(%s, 'none', 'new', 1, true, now() - interval '19 days')", (org.id, org.id))
        got = s.execute("SELECT * FROM atlas_retention_purge(%s, 'u', 'u@x', 'workspace', 'r', null)",
                        (org.id,)).fetchone()
        assert got == {"soft_deleted": 1, "hard_deleted": 0}
        for statement in ("UPDATE audit_user_daily SET query_count = 7 WHERE org_id = %s",
                          "DELETE FROM admin_action_log WHERE org_id = %s",
                          "UPDATE atlas_retention_floor SET min_retention_days = 7 WHERE %s::text IS NOT NULL"):
            with pytest.raises(REFUSED):
                s.execute(statement, (org.id,))
        with pytest.raises(REFUSED):
            s.execute("UPDATE audit_retention_config SET retention_days = 7 WHERE org_id = %s", (org.id,))
        with pytest.raises(psycopg.errors.CheckViolation):
            s.execute("SELECT * FROM atlas_set_retention_policy(%s, 7, 0, 'u', 'u', 'workspace', 'r', null)",
                      (org.id,))
        s.execute("SELECT * FROM atlas_set_retention_policy(%s, 400, null, 'u', 'u@x', 'workspace', 'r', null)",
                  (org.id,))
    assert sql.execute("SELECT count(*) AS n FROM audit_log WHERE org_id = %s AND deleted_at IS NULL",
                       (org.id,)).fetchone()["n"] == 1


def test_roles_are_printed_when_they_cannot_be_created_and_never_the_owner(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        me = conn.execute("SELECT current_user").fetchone()[0]
        plan = security.apply_roles(conn, me, "atlas_writer_x")
        assert not plan.applied and "must not be the owner" in plan.reason
        role = f"atlas_nocreate_{os.getpid()}_{secrets.token_hex(3)}"
        conn.execute(f'CREATE ROLE "{role}"')
        try:
            conn.execute(f'SET ROLE "{role}"')
            plan = security.apply_roles(conn, f"{role}_svc", f"{role}_w")
            assert not plan.applied and "does not own the tables" in plan.reason
            assert f'CREATE ROLE "{role}_svc" NOLOGIN' in plan.statements
            assert f'GRANT INSERT ON "public".audit_log TO "{role}_w"' in plan.statements
            conn.execute("RESET ROLE")
        finally:
            conn.execute("RESET ROLE")
            conn.execute(f'DROP ROLE "{role}"')


def test_db_upgrade_sets_the_floor_from_configuration(database_url, monkeypatch, retention_floor, client, org):
    from typer.testing import CliRunner

    from atlas_compliance.cli.main import app
    from atlas_compliance.config import get_settings

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ATLAS_MIN_RETENTION_DAYS", "2190")  # HIPAA: six years
    monkeypatch.setenv("ATLAS_MIN_HARD_DELETE_DELAY_DAYS", "45")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["db", "upgrade", "--no-roles"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "retention floor: 2190 days, hard delete after at least 45 days (updated)" in result.output
    admin = org.add_user("admin")
    resp = client.put("/api/v1/admin/audit/retention", json={"retentionDays": 2000}, headers=admin.headers)
    assert resp.status_code == 400 and "at least 2190" in resp.json()["message"]
    resp = client.put("/api/v1/admin/audit/retention", json={"retentionDays": 2190, "hardDeleteDelayDays": 45},
                      headers=admin.headers)
    assert resp.status_code == 200


def test_upgrading_a_database_with_history_chains_its_tombstones_and_admin_actions(server_url):
    """Migration 0013 on a database written before it: old tombstones and admin actions join their
    chains, oldest first, and verification passes; then the guard holds."""
    import asyncio

    from atlas_compliance.audit import chain
    from atlas_compliance.db import migrate
    from tests.conftest import _with_dbname

    name = f"atlas_pre0013_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_dbname(server_url, name)
    try:
        migrate.upgrade(url, "0010")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO audit_log (org_id, auth_mode, sql, duration_ms, success, \"timestamp\") "
                         "SELECT 'o1', 'none', 'q' || g, 1, true, now() - interval '900 days' FROM generate_series(1, 4) g")
            with conn.transaction():  # the purge as it was before 0013
                conn.execute("SET LOCAL atlas.retention_purge = 'on'")
                conn.execute("UPDATE audit_log SET deleted_at = now() - interval '60 days' WHERE chain_seq <= 3")
                conn.execute("DELETE FROM audit_log WHERE deleted_at IS NOT NULL")
            for i in range(3):
                conn.execute("INSERT INTO admin_action_log (org_id, action_type, target_type, target_id, request_id) "
                             "VALUES ('o1', 'old.action', 'x', %s, 'r')", (str(i),))
        assert "0013" in migrate.upgrade(url)
        with psycopg.connect(url, autocommit=True) as conn:
            seqs = conn.execute("SELECT record_seq FROM audit_log_tombstone ORDER BY record_seq").fetchall()
            assert [r[0] for r in seqs] == [1, 2, 3]

        async def verify():
            conn = await psycopg.AsyncConnection.connect(url, row_factory=psycopg.rows.dict_row)
            try:
                return await chain.verify_chain(conn, "o1")
            finally:
                await conn.close()

        result = asyncio.run(verify())
        assert result.ok and result.rows_checked == 4 and result.purged_rows == 3
        assert [(c.chain, c.records, c.ok) for c in result.chains] == [("tombstone", 3, True),
                                                                      ("admin_action", 3, True)]
        with psycopg.connect(url, autocommit=True) as conn, pytest.raises(REFUSED):
            conn.execute("DELETE FROM admin_action_log")
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
