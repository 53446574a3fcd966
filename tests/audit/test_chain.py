"""The append-only, tamper-evident audit log: guards, verification, retention."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import assert_error

URL = "/api/v1/audit/events"
VERIFY = "/api/v1/admin/audit/verify"


def seed(client, org, n=5, day="2026-03-0"):
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    events = [{"eventId": f"c{i}", "sql": f"SELECT {i}", "timestamp": f"{day}{i % 9 + 1}T10:00:00Z",
               "tablesAccessed": ["orders"]} for i in range(n)]
    assert client.post(URL, json=events, headers=key).json()["inserted"] == n


def test_database_refuses_update_delete_truncate(client, org, sql):
    seed(client, org)
    for statement in ("UPDATE audit_log SET sql = 'x' WHERE org_id = %s",
                      "DELETE FROM audit_log WHERE org_id = %s"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            sql.execute(statement, (org.id,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        sql.execute("TRUNCATE audit_log")
    # Even for the owner inside Atlas's own purge, content cannot change; only deleted_at may be set.
    with pytest.raises(psycopg.errors.InsufficientPrivilege), sql.transaction():
        sql.execute("SET LOCAL atlas.owner_write = 'on'")
        sql.execute("UPDATE audit_log SET sql = 'x' WHERE org_id = %s", (org.id,))


def test_verify_ok_and_roles(client, org, make_org):
    seed(client, org, 7)
    admin = org.add_user("admin")
    body = client.get(VERIFY, headers=admin.headers).json()
    assert body == {"ok": True, "rowsChecked": 7, "purgedRows": 0, "headSeq": 7, "firstBreak": None, "chains": [
        {"chain": "tombstone", "ok": True, "records": 0, "headSeq": 0, "firstBreak": None},
        {"chain": "admin_action", "ok": True, "records": 0, "headSeq": 0, "firstBreak": None}],
        "rollups": {"ok": True, "since": None, "differenceCount": 0, "differences": []}}
    assert_error(client.get(VERIFY, headers=org.add_user("member").headers), 403)
    assert_error(client.get(VERIFY, headers={"Authorization": f"Bearer {org.ingest_key()}"}), 403)
    assert_error(client.get(VERIFY), 401)
    other_admin = make_org().add_user("admin")
    assert client.get(VERIFY, headers=other_admin.headers).json()["rowsChecked"] == 0


def tamper(sql, statement, params):
    """Do what an attacker with database access would: switch the guards off and change rows."""
    with sql.transaction():
        sql.execute("SET CONSTRAINTS ALL IMMEDIATE")
        sql.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        for one in statement.split(";"):
            sql.execute(one, params)
        sql.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")


def test_changed_row_is_found(client, org, sql):
    seed(client, org, 6)
    admin = org.add_user("admin")
    tamper(sql, "UPDATE audit_log SET sql = 'SELECT ssn FROM patients' WHERE org_id = %s AND chain_seq = 4",
           (org.id,))
    body = client.get(VERIFY, headers=admin.headers).json()
    assert body["ok"] is False
    assert body["firstBreak"]["seq"] == 4 and body["firstBreak"]["kind"] == "changed"
    assert body["rowsChecked"] == 3


def test_removed_row_is_found(client, org, sql):
    seed(client, org, 6)
    admin = org.add_user("admin")
    tamper(sql, "DELETE FROM audit_log WHERE org_id = %s AND chain_seq = 3", (org.id,))
    body = client.get(VERIFY, headers=admin.headers).json()
    assert body["ok"] is False and body["firstBreak"]["kind"] == "removed" and body["firstBreak"]["seq"] == 3


def test_removed_last_row_is_found(client, org, sql):
    seed(client, org, 4)
    admin = org.add_user("admin")
    tamper(sql, "DELETE FROM audit_log WHERE org_id = %s AND chain_seq = 4", (org.id,))
    body = client.get(VERIFY, headers=admin.headers).json()
    assert body["ok"] is False and body["firstBreak"]["kind"] == "removed" and body["firstBreak"]["seq"] == 4


def test_row_inserted_out_of_order_is_found(client, org, sql):
    seed(client, org, 4)
    admin = org.add_user("admin")
    # Swap two rows' positions: each row's own hash still covers its content but the links break.
    tamper(sql, "UPDATE audit_log SET chain_seq = -2 WHERE org_id = %(o)s AND chain_seq = 2;"
                "UPDATE audit_log SET chain_seq = 2 WHERE org_id = %(o)s AND chain_seq = 3;"
                "UPDATE audit_log SET chain_seq = 3 WHERE org_id = %(o)s AND chain_seq = -2", {"o": org.id})
    body = client.get(VERIFY, headers=admin.headers).json()
    assert body["ok"] is False and body["firstBreak"]["seq"] == 2
    assert body["firstBreak"]["kind"] in ("changed", "inserted_out_of_order")


def test_row_written_without_the_chain_is_found(client, org, sql):
    seed(client, org, 3)
    admin = org.add_user("admin")
    tamper(sql, "INSERT INTO audit_log (org_id, auth_mode, sql, duration_ms, success) "
                "VALUES (%s, 'none', 'forged', 0, true)", (org.id,))
    body = client.get(VERIFY, headers=admin.headers).json()
    assert body["ok"] is False and body["firstBreak"]["kind"] == "outside_chain"


def test_retention_purge_keeps_verification_valid(client, org, sql, retention_floor):
    retention_floor(30, 0)  # the installation allows 30-day policies and immediate hard delete
    admin = org.add_user("admin")
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    old = [{"eventId": f"old{i}", "sql": "SELECT 1", "timestamp": "2020-01-01T00:00:00Z",
            "tablesAccessed": ["orders"]} for i in range(3)]
    new = [{"eventId": f"new{i}", "sql": "SELECT 1", "tablesAccessed": ["orders"]} for i in range(2)]
    client.post(URL, json=old + new, headers=key)
    policy = client.get("/api/v1/admin/audit/retention", headers=admin.headers).json()
    assert policy["retentionDays"] == 365 and policy["hardDeleteDelayDays"] == 30
    assert_error(client.put("/api/v1/admin/audit/retention", json={"retentionDays": 3}, headers=admin.headers),
                 400, "invalid_retention")
    resp = client.put("/api/v1/admin/audit/retention", json={"retentionDays": 30}, headers=admin.headers)
    assert resp.status_code == 200 and resp.json()["retentionDays"] == 30
    purge = client.post("/api/v1/admin/audit/retention/purge", headers=admin.headers).json()
    assert purge == {"orgId": org.id, "softDeleted": 3, "hardDeleted": 0}  # hard delete waits 30 days
    live = sql.execute("SELECT count(*) AS n FROM audit_log WHERE org_id = %s AND deleted_at IS NULL",
                       (org.id,)).fetchone()["n"]
    assert live == 2
    client.put("/api/v1/admin/audit/retention", json={"retentionDays": 30, "hardDeleteDelayDays": 0},
               headers=admin.headers)
    purge = client.post("/api/v1/admin/audit/retention/purge", headers=admin.headers).json()
    assert purge == {"orgId": org.id, "softDeleted": 0, "hardDeleted": 3}
    rows = sql.execute("SELECT count(*) AS n FROM audit_log WHERE org_id = %s", (org.id,)).fetchone()["n"]
    assert rows == 2
    body = client.get(VERIFY, headers=admin.headers).json()
    assert body["ok"] is True and body["rowsChecked"] == 5 and body["purgedRows"] == 3
    actions = [r["action_type"] for r in sql.execute(
        "SELECT action_type FROM admin_action_log WHERE org_id = %s ORDER BY \"timestamp\"", (org.id,)).fetchall()]
    assert actions == ["audit_retention.policy_update", "audit_retention.manual_purge",
                       "audit_retention.policy_update", "audit_retention.manual_purge"]
    assert_error(client.put("/api/v1/admin/audit/retention", json={"retentionDays": 30},
                            headers=org.add_user("member").headers), 403)


# --- tests that fail when the verifier itself is broken ----------------------------------------------

REHASH = "UPDATE audit_log a SET row_hash = atlas_audit_hash(a, a.prev_hash) WHERE org_id = %(o)s AND chain_seq = %(s)s"


def test_row_rehashed_after_tampering_is_found_by_the_next_link(client, org, sql):
    """The edited row's own hash is recomputed, so only the link from the next row can show the edit."""
    seed(client, org, 6)
    admin = org.add_user("admin")
    tamper(sql, "UPDATE audit_log SET sql = 'SELECT nothing' WHERE org_id = %(o)s AND chain_seq = %(s)s;" + REHASH,
           {"o": org.id, "s": 3})
    body = client.get(VERIFY, headers=admin.headers).json()
    assert body["ok"] is False and body["rowsChecked"] == 3
    assert (body["firstBreak"]["seq"], body["firstBreak"]["kind"]) == (4, "inserted_out_of_order")


def test_verification_carries_the_hash_across_chunks(client, org, sql, monkeypatch):
    """With two rows per chunk, row 3 opens the second chunk: only the hash carried over from row 2 can show
    that row 2 was edited and rehashed."""
    from atlas_compliance.audit import chain

    monkeypatch.setattr(chain, "CHUNK", 2)
    seed(client, org, 7)
    admin = org.add_user("admin")
    body = client.get(VERIFY, headers=admin.headers).json()
    assert body["ok"] is True and body["rowsChecked"] == 7  # chunks of two, joined without a false break
    tamper(sql, "UPDATE audit_log SET sql = 'SELECT nothing' WHERE org_id = %(o)s AND chain_seq = %(s)s;" + REHASH,
           {"o": org.id, "s": 2})
    body = client.get(VERIFY, headers=admin.headers).json()
    assert body["ok"] is False and body["firstBreak"]["seq"] == 3 and body["rowsChecked"] == 2
