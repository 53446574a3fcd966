"""Migrations build the Atlas-compatible schema from empty; the demo builds and then reuses its data."""

from __future__ import annotations

import secrets

import psycopg
import pytest

from atlas_compliance.db import migrate
from tests.conftest import _with_dbname

ATLAS_TABLES = {"organization", "user", "account", "member", "session", "audit_log", "pii_column_classifications",
                "admin_action_log", "audit_retention_config", "api_token"}
AUDIT_COLUMNS = {"id", "timestamp", "user_id", "user_label", "auth_mode", "sql", "duration_ms", "row_count",
                 "success", "error", "source_id", "source_type", "target_host", "tables_accessed",
                 "columns_accessed", "org_id", "deleted_at", "actor_kind", "client_id", "tool_name",
                 "parent_audit_id", "event_id", "columns_by_table"}


@pytest.fixture()
def empty_database(server_url):
    name = f"atlas_empty_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield _with_dbname(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrations_up_from_empty_and_idempotent(empty_database):
    assert not migrate.up_to_date(empty_database)
    applied = migrate.upgrade(empty_database)
    assert applied and applied[0] == "0001" and applied[-1] == migrate.newest_revision()
    assert migrate.up_to_date(empty_database)
    assert migrate.upgrade(empty_database) == []
    with psycopg.connect(empty_database) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
        assert ATLAS_TABLES <= tables
        columns = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'audit_log'")}
        assert AUDIT_COLUMNS <= columns
        member_cols = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'member'")}
        assert {"organizationId", "userId", "role"} <= member_cols


def test_demo_builds_then_reuses(client, settings):
    from atlas_compliance.demo import seed

    db = client.app.state.db

    async def build():
        return await seed.seed_demo(db, target=1500, days=20)

    first = client.portal.call(build)
    assert first.audit_rows > 1000
    assert {role for _, role in first.people} == {"owner", "admin", "member"}
    second = client.portal.call(build)
    assert second.audit_rows == first.audit_rows and second.created is False
    login = client.post("/api/v1/auth/login", json={"email": first.admin_email, "password": "atlas-demo-2026"})
    assert login.status_code == 200 and login.json()["role"] == "admin"
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    report = client.get("/api/v1/admin/compliance/reports/user-activity",
                        params={"startDate": "2020-01-01", "endDate": "2030-01-01"}, headers=headers).json()
    assert report["summary"]["totalUsers"] == 32 + 8 + 1  # members, the demo's agents and its anomalous account
    assert 0 < report["summary"]["totalQueries"] <= first.audit_rows
    data = client.get("/api/v1/admin/compliance/reports/data-access",
                      params={"startDate": "2020-01-01", "endDate": "2030-01-01"}, headers=headers).json()
    assert {"patients", "invoices", "encounters"} <= {r["tableName"] for r in data["rows"]}


def test_newest_revision_from_file_names_is_alembics_head():
    """The quick up-to-date check reads the newest revision off the file names; Alembic must agree."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate._config("postgresql://unused@localhost/none"))
    assert script.get_heads() == [migrate.newest_revision()]


def test_a_database_one_revision_behind_is_upgraded(empty_database):
    from alembic.script import ScriptDirectory

    migrate.upgrade(empty_database)
    newest = migrate.newest_revision()
    script = ScriptDirectory.from_config(migrate._config("postgresql://unused@localhost/none"))
    previous = script.get_revision(newest).down_revision  # revision numbers need not be consecutive
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = %s", (previous,))
    assert not migrate.up_to_date(empty_database)
    assert migrate.upgrade(empty_database) == [newest]


def test_migrated_schema_matches_the_checked_in_snapshot(empty_database):
    """Every change to a table, index, constraint, trigger or function shows in review as a change to
    tests/schema.snapshot (write it again with `python -m tools.schema_snapshot --write`)."""
    from tools.schema_snapshot import SNAPSHOT, describe

    migrate.upgrade(empty_database)
    now, recorded = describe(empty_database).splitlines(), SNAPSHOT.read_text().splitlines()
    added, removed = sorted(set(now) - set(recorded)), sorted(set(recorded) - set(now))
    assert not added and not removed, (
        "the migrated schema differs from tests/schema.snapshot; if intended, run "
        "`python -m tools.schema_snapshot --write`\n+ " + "\n+ ".join(added) + "\n- " + "\n- ".join(removed))
