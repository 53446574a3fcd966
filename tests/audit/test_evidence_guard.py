"""Evidence no writer can change (issue 15): attacks run as a non-superuser role with ordinary DML
rights on every table. Each is refused, or leaves the data untouched, and verification stays honest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from typer.testing import CliRunner

from atlas_compliance.cli.main import app
from atlas_compliance.config import get_settings
from tests.conftest import assert_error

URL = "/api/v1/audit/events"
VERIFY = "/api/v1/admin/audit/verify"
UA = "/api/v1/admin/compliance/reports/user-activity"
RETENTION = "/api/v1/admin/audit/retention"
REFUSED = psycopg.errors.InsufficientPrivilege


def iso(days_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ingest(client, org, ages: dict[str, float]) -> None:
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    events = [{"eventId": eid, "sql": f"SELECT * FROM orders -- {eid}", "timestamp": iso(age),
               "userId": "u1", "tablesAccessed": ["orders"], "columnsByTable": {"orders": ["id"]}}
              for eid, age in ages.items()]
    assert client.post(URL, json=events, headers=key).json()["inserted"] == len(events)


def state(sql, org_id: str) -> dict:
    """What an auditor would look at: live and soft-deleted rows, and what the rollups say."""
    return sql.execute(
        "SELECT (SELECT count(*) FROM audit_log WHERE org_id = %(o)s) AS rows, "
        "(SELECT count(*) FROM audit_log WHERE org_id = %(o)s AND deleted_at IS NOT NULL) AS soft_deleted, "
        "(SELECT coalesce(sum(query_count), 0) FROM audit_user_daily WHERE org_id = %(o)s) AS user_daily, "
        "(SELECT coalesce(sum(query_count), 0) FROM audit_access_daily WHERE org_id = %(o)s) AS access_daily, "
        "(SELECT coalesce(sum(query_count), 0) FROM audit_access_weekly WHERE org_id = %(o)s) AS access_weekly, "
        "(SELECT count(*) FROM audit_log_tombstone WHERE chain_key = %(o)s) AS tombstones",
        {"o": org_id}).fetchone()


def set_policy(sql, org_id: str, days: int, delay: int) -> None:
    """As the owner, through Atlas's own function (as the API does)."""
    sql.execute("SELECT * FROM atlas_set_retention_policy(%s, %s, %s, 'test', 'test', 'platform', 'test', null)",
                (org_id, days, delay))


def total_queries(client, admin, days: int = 800) -> int:
    params = {"startDate": (datetime.now(UTC) - timedelta(days=days)).date().isoformat(),
              "endDate": datetime.now(UTC).date().isoformat()}
    resp = client.get(UA, params=params, headers=admin.headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["summary"]["totalQueries"]


@pytest.fixture()
def seeded(client, org):
    """Ten rows: five 19 days old, five 2 years old; the default policy (365 days) and floor (365/30)."""
    ingest(client, org, {**{f"new{i}": 19 for i in range(5)}, **{f"old{i}": 730 for i in range(5)}})
    return org


def test_attack_1_session_setting_opens_nothing(client, seeded, sql, dml_sql):
    org = seeded
    admin = org.add_user("admin")
    before = state(sql, org.id)
    assert before["rows"] == 10 and before["user_daily"] == 10
    for setting in ("atlas.retention_purge", "atlas.owner_write"):
        with dml_sql.transaction():
            dml_sql.execute("SELECT set_config(%s, 'on', true)", (setting,))
            # A soft delete of rows too new for the policy leaves them untouched...
            cur = dml_sql.execute("UPDATE audit_log SET deleted_at = now() WHERE org_id = %s "
                                  "AND event_id LIKE 'new%%'", (org.id,))
            assert cur.rowcount == 0
        # ...and removing rows that were never purged is refused outright.
        with pytest.raises(REFUSED, match="soft-deleted"), dml_sql.transaction():
            dml_sql.execute("SELECT set_config(%s, 'on', true)", (setting,))
            dml_sql.execute("DELETE FROM audit_log WHERE org_id = %s AND event_id LIKE 'new%%'", (org.id,))
    assert state(sql, org.id) == before
    # Content never changes, whatever the role sets.
    with pytest.raises(REFUSED, match="append-only"), dml_sql.transaction():
        dml_sql.execute("SELECT set_config('atlas.owner_write', 'on', true)")
        dml_sql.execute("UPDATE audit_log SET user_id = 'someone-else' WHERE org_id = %s", (org.id,))
    with pytest.raises(REFUSED):
        dml_sql.execute("TRUNCATE audit_log")
    body = client.get(VERIFY, headers=admin.headers).json()
    assert body["ok"] is True and body["rowsChecked"] == 10 and body["purgedRows"] == 0
    assert total_queries(client, admin) == 10


@pytest.mark.parametrize("table", ["audit_access_weekly", "audit_access_daily", "audit_user_daily",
                                   "audit_column_dict", "audit_chain_head"])
def test_attack_2_derived_tables_refuse_every_writer(client, seeded, sql, dml_sql, table):
    org = seeded
    admin = org.add_user("admin")
    before = state(sql, org.id)
    counted = "query_count = 1" if table != "audit_column_dict" else "bit = 63"
    if table == "audit_chain_head":
        counted = "last_seq = 1"
    key = "chain_key" if table == "audit_chain_head" else "org_id"
    for statement in (f"UPDATE {table} SET {counted} WHERE {key} = %s", f"DELETE FROM {table} WHERE {key} = %s"):
        for setting in (None, "atlas.owner_write", "atlas.retention_purge"):
            with pytest.raises(REFUSED, match=table), dml_sql.transaction():
                if setting:
                    dml_sql.execute("SELECT set_config(%s, 'on', true)", (setting,))
                dml_sql.execute(statement, (org.id,))
    with pytest.raises(REFUSED):
        dml_sql.execute(f"TRUNCATE {table}")
    # The owner's own session is refused too, unless it is inside Atlas's definer functions.
    with pytest.raises(REFUSED):
        sql.execute(f"UPDATE {table} SET {counted} WHERE {key} = %s", (org.id,))
    assert state(sql, org.id) == before
    assert total_queries(client, admin) == 10
    assert client.get(VERIFY, headers=admin.headers).json()["ok"] is True


def test_forged_rollup_rows_are_refused(seeded, sql, dml_sql):
    with pytest.raises(REFUSED, match="audit_user_daily"):
        dml_sql.execute("INSERT INTO audit_user_daily (org_id, day, user_id, query_count, table_query_count, "
                        "first_ts, last_ts) VALUES (%s, '2026-01-01', 'ghost', 99, 99, now(), now())", (seeded.id,))


def test_attack_4_policy_below_the_floor_is_refused_and_purges_nothing_new(client, seeded, sql, dml_sql):
    org = seeded
    admin = org.add_user("admin")
    for body in ({"retentionDays": 7, "hardDeleteDelayDays": 0}, {"retentionDays": 364},
                 {"retentionDays": 365, "hardDeleteDelayDays": 29}):
        err = assert_error(client.put(RETENTION, json=body, headers=admin.headers), 400, "invalid_retention")
        assert "installation's minimum" in err["message"]
    assert client.get(RETENTION, headers=admin.headers).json()["retentionDays"] == 365
    # Through SQL, a DML role cannot change a policy at all; Atlas's own function refuses the floor too.
    with pytest.raises(REFUSED, match="audit_retention_config"):
        dml_sql.execute("UPDATE audit_retention_config SET retention_days = 7, hard_delete_delay_days = 0 "
                        "WHERE org_id = %s", (org.id,))
    with pytest.raises(psycopg.errors.CheckViolation, match="installation minimum"):
        sql.execute("SELECT * FROM atlas_set_retention_policy(%s, 7, 0, 'u', 'u', 'workspace', 'r', null)", (org.id,))
    # Nor can the role lower the floor itself.
    with pytest.raises(REFUSED, match="atlas_retention_floor"):
        dml_sql.execute("UPDATE atlas_retention_floor SET min_retention_days = 0, min_hard_delete_delay_days = 0")
    # Even a policy row forced below the floor (by a superuser) purges nothing newer than the floor.
    with sql.transaction():
        sql.execute("ALTER TABLE audit_retention_config DISABLE TRIGGER USER")
        sql.execute("UPDATE audit_retention_config SET retention_days = 7, hard_delete_delay_days = 0 "
                    "WHERE org_id = %s", (org.id,))
        sql.execute("ALTER TABLE audit_retention_config ENABLE TRIGGER USER")
    purge = client.post(f"{RETENTION}/purge", headers=admin.headers).json()
    assert purge == {"orgId": org.id, "softDeleted": 5, "hardDeleted": 0}  # only the 2-year-old rows
    after = state(sql, org.id)
    assert after["rows"] == 10 and after["soft_deleted"] == 5 and after["user_daily"] == 5
    again = client.post(f"{RETENTION}/purge", headers=admin.headers).json()
    assert again == {"orgId": org.id, "softDeleted": 0, "hardDeleted": 0}  # the 30-day delay floor holds
    body = client.get(VERIFY, headers=admin.headers).json()
    assert body["ok"] is True and body["rowsChecked"] == 10


def test_atlas_own_purge_statements_keep_succeeding(client, seeded, sql, dml_sql, retention_floor):
    """The reference's purge statements, run by a DML role on an adopted database: old-enough rows go,
    newer rows stay, no error; deleted_at cannot be backdated to skip the hard-delete delay."""
    org = seeded
    admin = org.add_user("admin")
    cur = dml_sql.execute("UPDATE audit_log SET deleted_at = '2000-01-01' WHERE org_id = %s AND deleted_at IS NULL "
                          "AND \"timestamp\" < now() - make_interval(days => 7)", (org.id,))
    assert cur.rowcount == 5
    rows = dml_sql.execute("SELECT event_id, deleted_at FROM audit_log WHERE org_id = %s AND deleted_at IS NOT NULL",
                           (org.id,)).fetchall()
    assert sorted(r["event_id"] for r in rows) == [f"old{i}" for i in range(5)]
    assert all(r["deleted_at"] > datetime.now(UTC) - timedelta(minutes=5) for r in rows)
    cur = dml_sql.execute("DELETE FROM audit_log WHERE org_id = %s AND deleted_at IS NOT NULL "
                          "AND deleted_at < now() - make_interval(days => 0)", (org.id,))
    assert cur.rowcount == 0  # the 30-day floor on the hard-delete delay
    # With the floor's delay at 0, the same statement removes them, and each leaves a tombstone.
    retention_floor(365, 0)
    set_policy(sql, org.id, 365, 0)
    cur = dml_sql.execute("DELETE FROM audit_log WHERE org_id = %s AND deleted_at IS NOT NULL "
                          "AND deleted_at < now() - make_interval(days => 0)", (org.id,))
    assert cur.rowcount == 5
    after = state(sql, org.id)
    assert after["rows"] == 5 and after["tombstones"] == 5 and after["user_daily"] == 5
    body = client.get(VERIFY, headers=admin.headers).json()
    assert body["ok"] is True and body["rowsChecked"] == 10 and body["purgedRows"] == 5
    assert total_queries(client, admin) == 5


def test_purge_function_applies_policy_and_records_itself(client, seeded, sql, dml_sql, retention_floor):
    org = seeded
    retention_floor(30, 0)
    # Refused to roles it was not granted to; granted, it does exactly what the policy says.
    with pytest.raises(REFUSED):
        dml_sql.execute("SELECT * FROM atlas_retention_purge(%s, 'x', 'x', 'workspace', 'r', null)", (org.id,))
    role = dml_sql.execute("SELECT current_user AS r").fetchone()["r"]
    sql.execute(f'GRANT EXECUTE ON FUNCTION atlas_retention_purge(text, text, text, text, text, text) TO "{role}"')
    set_policy(sql, org.id, 30, 0)
    got = dml_sql.execute("SELECT * FROM atlas_retention_purge(%s, 'u9', 'a@x', 'workspace', 'req-1', null)",
                          (org.id,)).fetchone()
    assert got == {"soft_deleted": 5, "hard_deleted": 5}  # a delay of 0 removes them at once
    got = dml_sql.execute("SELECT * FROM atlas_retention_purge(%s, 'u9', 'a@x', 'workspace', 'req-2', null)",
                          (org.id,)).fetchone()
    assert got == {"soft_deleted": 0, "hard_deleted": 0}
    actions = sql.execute("SELECT actor_id, request_id, metadata->>'softDeleted' AS s, metadata->>'hardDeleted' AS h "
                          "FROM admin_action_log WHERE org_id = %s AND action_type = 'audit_retention.manual_purge' "
                          "ORDER BY chain_seq", (org.id,)).fetchall()
    assert actions == [{"actor_id": "u9", "request_id": "req-1", "s": "5", "h": "5"},
                       {"actor_id": "u9", "request_id": "req-2", "s": "0", "h": "0"}]
    assert state(sql, org.id)["tombstones"] == 5


def test_tombstones_and_admin_actions_are_append_only(client, seeded, sql, dml_sql, retention_floor):
    org = seeded
    admin = org.add_user("admin")
    retention_floor(30, 0)
    client.put(RETENTION, json={"retentionDays": 30, "hardDeleteDelayDays": 0}, headers=admin.headers)
    client.post(f"{RETENTION}/purge", headers=admin.headers)
    client.post(f"{RETENTION}/purge", headers=admin.headers)
    assert state(sql, org.id)["tombstones"] == 5
    for conn in (dml_sql, sql):  # the DML role, and the owner's own session
        for statement in ("UPDATE audit_log_tombstone SET row_hash = '\\x00' WHERE chain_key = %s",
                          "DELETE FROM audit_log_tombstone WHERE chain_key = %s",
                          "UPDATE admin_action_log SET metadata = '{}' WHERE org_id = %s",
                          "DELETE FROM admin_action_log WHERE org_id = %s"):
            with pytest.raises(REFUSED, match="append-only"):
                conn.execute(statement, (org.id,))
        for table in ("audit_log_tombstone", "admin_action_log"):
            with pytest.raises(REFUSED):
                conn.execute(f"TRUNCATE {table}")
    # A forged tombstone (hiding a removed row) cannot be written.
    with pytest.raises(REFUSED, match="audit_log_tombstone"):
        dml_sql.execute("INSERT INTO audit_log_tombstone (chain_key, chain_seq, audit_id, row_hash) "
                        "VALUES (%s, 999, gen_random_uuid(), '\\x00')", (org.id,))
    assert state(sql, org.id)["tombstones"] == 5


def test_trigger_functions_cannot_be_borrowed(dml_sql):
    """The definer trigger functions run as the owner: no other role may attach them to its own table."""
    dml_sql.execute("CREATE TEMP TABLE mine (LIKE audit_log)")
    for fn in ("atlas_audit_rollup_insert", "atlas_audit_rollup_remove", "atlas_audit_before_insert",
               "atlas_evidence_chain_insert"):
        with pytest.raises(REFUSED):
            dml_sql.execute(f"CREATE TRIGGER t AFTER INSERT ON mine FOR EACH STATEMENT EXECUTE FUNCTION {fn}()")


# --- the tombstone and admin-action chains, attacked by a superuser with the triggers disabled --------

def superuser_tamper(sql, table: str, statement: str, params=()) -> None:
    with sql.transaction():
        sql.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        for one in statement.split("; "):
            sql.execute(one, params)
        sql.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def chain_of(client, admin, name: str) -> dict:
    body = client.get(VERIFY, headers=admin.headers).json()
    return {"ok": body["ok"], **next(c for c in body["chains"] if c["chain"] == name)}


@pytest.fixture()
def purged(client, seeded, sql, retention_floor):
    """The seeded org after a purge that removed its five old rows: 5 tombstones, 3 admin actions."""
    org = seeded
    admin = org.add_user("admin")
    retention_floor(30, 0)
    assert client.put(RETENTION, json={"retentionDays": 30, "hardDeleteDelayDays": 0},
                      headers=admin.headers).status_code == 200
    client.post(f"{RETENTION}/purge", headers=admin.headers)
    client.post(f"{RETENTION}/purge", headers=admin.headers)
    body = client.get(VERIFY, headers=admin.headers).json()
    assert body["ok"] is True and body["purgedRows"] == 5
    assert [(c["chain"], c["records"], c["headSeq"]) for c in body["chains"]] == [
        ("tombstone", 5, 5), ("admin_action", 3, 3)]
    return org, admin


def test_policy_change_is_a_chained_admin_action_with_old_and_new_values(purged, sql):
    org, admin = purged
    row = sql.execute("SELECT chain_seq, actor_email, scope, metadata FROM admin_action_log WHERE org_id = %s "
                      "AND action_type = 'audit_retention.policy_update'", (org.id,)).fetchone()
    assert row["chain_seq"] == 1 and row["scope"] == "workspace" and row["actor_email"] == admin.email
    assert row["metadata"] == {"previous": {"retentionDays": 365, "hardDeleteDelayDays": 30},
                               "new": {"retentionDays": 30, "hardDeleteDelayDays": 0}}


def test_edited_admin_action_is_found(client, purged, sql):
    org, admin = purged
    superuser_tamper(sql, "admin_action_log", "UPDATE admin_action_log SET metadata = '{\"new\": null}' "
                     "WHERE org_id = %s AND chain_seq = 1", (org.id,))
    got = chain_of(client, admin, "admin_action")
    assert got["ok"] is False and got["firstBreak"]["kind"] == "changed" and got["firstBreak"]["seq"] == 1


def test_edited_admin_action_with_its_hash_recomputed_breaks_the_next_link(client, purged, sql):
    org, admin = purged
    superuser_tamper(sql, "admin_action_log",
                     "UPDATE admin_action_log SET metadata = '{}' WHERE org_id = %(o)s AND chain_seq = 2; "
                     "UPDATE admin_action_log t SET row_hash = atlas_admin_action_hash(t, t.prev_hash) "
                     "WHERE org_id = %(o)s AND chain_seq = 2", {"o": org.id})
    got = chain_of(client, admin, "admin_action")
    assert got["firstBreak"]["kind"] == "inserted_out_of_order" and got["firstBreak"]["seq"] == 3


def test_removed_newest_admin_action_is_found(client, purged, sql):
    org, admin = purged
    superuser_tamper(sql, "admin_action_log", "DELETE FROM admin_action_log WHERE org_id = %s AND chain_seq = 3",
                     (org.id,))
    got = chain_of(client, admin, "admin_action")
    assert got["ok"] is False and got["firstBreak"]["kind"] == "removed" and got["firstBreak"]["seq"] == 3


@pytest.mark.parametrize("attack, kind, seq", [
    ("UPDATE audit_log_tombstone SET purged_at = purged_at - interval '1 day' WHERE chain_key = %(o)s "
     "AND record_seq = 2", "changed", 2),
    ("DELETE FROM audit_log_tombstone WHERE chain_key = %(o)s AND record_seq = 3", "removed", 3),
    ("INSERT INTO audit_log_tombstone (chain_key, chain_seq, audit_id, row_hash) "
     "VALUES (%(o)s, 999, gen_random_uuid(), '\\x00')", "outside_chain", None),
])
def test_tombstone_chain_breaks_are_found_and_named(client, purged, sql, database_url, monkeypatch, attack, kind,
                                                    seq):
    org, admin = purged
    superuser_tamper(sql, "audit_log_tombstone", attack, {"o": org.id})
    got = chain_of(client, admin, "tombstone")
    assert got["ok"] is False and got["firstBreak"]["kind"] == kind and got["firstBreak"]["seq"] == seq
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["audit", "verify", "--org", org.slug])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2 and f"{org.slug}: BROKEN tombstone chain at record {seq} ({kind})" in result.output


def test_concurrent_admin_actions_and_purges_keep_every_chain_whole(client, seeded, sql, database_url,
                                                                   retention_floor):
    """Writers of one org's admin log in parallel (and a purge writing tombstones meanwhile): each record
    gets the next position, none twice, and every chain verifies."""
    import threading

    org = seeded
    admin = org.add_user("admin")
    retention_floor(30, 0)
    set_policy(sql, org.id, 30, 0)
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            with psycopg.connect(database_url, autocommit=True) as conn:
                for i in range(25):
                    with conn.transaction():
                        conn.execute("INSERT INTO admin_action_log (org_id, action_type, target_type, target_id, "
                                     "request_id) VALUES (%s, 'test.parallel', 'x', %s, 'r')", (org.id, f"{worker}-{i}"))
                        if worker == 0 and i == 10:
                            conn.execute("SELECT * FROM atlas_retention_purge(%s, 'u', 'u', 'workspace', 'r', null)",
                                         (org.id,))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    seqs = [r["chain_seq"] for r in sql.execute("SELECT chain_seq FROM admin_action_log WHERE org_id = %s "
                                                "ORDER BY chain_seq", (org.id,)).fetchall()]
    assert seqs == list(range(1, 103))  # the policy change, 100 parallel records and the purge's own
    body = client.get(VERIFY, headers=admin.headers).json()
    assert body["ok"] is True and body["purgedRows"] == 5, body
    assert [(c["chain"], c["records"]) for c in body["chains"]] == [("tombstone", 5), ("admin_action", 102)]


def test_member_and_token_changes_are_chained_admin_actions(client, org, sql, database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        email = f"new-{org.slug}@example.test"
        assert runner.invoke(app, ["users", "create", email, "--org", org.slug, "--role", "member",
                                   "--password-stdin"], input="a long enough password\n").exit_code == 0
        assert runner.invoke(app, ["members", "add", email, "--org", org.slug, "--role", "admin"]).exit_code == 0
        created = runner.invoke(app, ["tokens", "create", "--org", org.slug, "--ingest", "--name", "proxy"])
        assert created.exit_code == 0, created.output
        token_id = created.output.split("ingest token ")[1].split()[0].rstrip(",")
        assert runner.invoke(app, ["tokens", "revoke", token_id]).exit_code == 0
    finally:
        get_settings.cache_clear()
    rows = sql.execute("SELECT chain_seq, action_type, actor_id, scope, target_id, metadata FROM admin_action_log "
                       "WHERE org_id = %s ORDER BY chain_seq", (org.id,)).fetchall()
    assert [(r["chain_seq"], r["action_type"], r["actor_id"], r["scope"]) for r in rows] == [
        (1, "member.user_created", "system:cli", "platform"), (2, "member.role_set", "system:cli", "platform"),
        (3, "token.created", "system:cli", "platform"), (4, "token.revoked", "system:cli", "platform")]
    assert rows[1]["metadata"] == {"email": email, "role": "admin"} and rows[3]["target_id"] == token_id
    admin = org.add_user("admin")
    body = client.get(VERIFY, headers=admin.headers).json()
    assert body["ok"] is True and body["chains"][1]["records"] == 4
