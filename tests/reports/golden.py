"""A small, hand-built audit log. Every expected number in the golden tests is written by hand."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from tests.conftest import Member, Org


@dataclass
class Golden:
    org: Org
    other: Org
    alice: Member  # admin
    bob: Member  # member
    carol: Member  # owner
    dave: Member  # member, no activity


def ingest(client, headers, events) -> dict:
    resp = client.post("/api/v1/audit/events", json=events, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def build_golden(client, make_org, sql: psycopg.Connection) -> Golden:
    org = make_org("Golden Health")
    other = make_org("Other Org")
    alice = org.add_user("admin", email=f"alice@{org.slug}.example")
    bob = org.add_user("member", email=f"bob@{org.slug}.example")
    carol = org.add_user("owner", email=f"carol@{org.slug}.example")
    dave = org.add_user("member", email=f"dave@{org.slug}.example", login=False)
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    a, b, c = alice.id, bob.id, carol.id
    result = ingest(client, key, [
        # 1. alice joins orders and users
        {"eventId": "g1", "timestamp": "2026-01-05T10:00:00Z", "userId": a, "sql": "q1",
         "columnsByTable": {"orders": ["id", "total"], "users": ["email", "id"]}},
        # 2. alice reads orders
        {"eventId": "g2", "timestamp": "2026-01-06T11:00:00Z", "userId": a, "sql": "q2",
         "columnsByTable": {"orders": ["status", "total"]}},
        # 3. bob reads users
        {"eventId": "g3", "timestamp": "2026-01-10T09:00:00Z", "userId": b, "sql": "q3",
         "columnsByTable": {"users": ["email"]}},
        # 4. bob, late on the window's last day (a date-only end includes it)
        {"eventId": "g4", "timestamp": "2026-01-31T23:30:00Z", "userId": b, "sql": "q4",
         "columnsByTable": {"orders": ["id"]}},
        # 5. bob, just after the window
        {"eventId": "g5", "timestamp": "2026-02-01T00:00:00Z", "userId": b, "sql": "q5",
         "columnsByTable": {"orders": ["id"]}},
        # 6. alice, a failed query: never counted
        {"eventId": "g6", "timestamp": "2026-01-07T08:00:00Z", "userId": a, "sql": "q6", "success": False,
         "error": "permission denied", "columnsByTable": {"orders": ["secret"]}},
        # 7. a query with no user
        {"eventId": "g7", "timestamp": "2026-01-08T12:00:00Z", "sql": "q7", "actorKind": "mcp",
         "columnsByTable": {"orders": ["*"]}},
        # 8. carol, a query that touched no table
        {"eventId": "g8", "timestamp": "2026-01-09T12:00:00Z", "userId": c, "sql": "SELECT 1",
         "tablesAccessed": []},
        # 9. bob, soft-deleted below
        {"eventId": "g9", "timestamp": "2026-01-11T12:00:00Z", "userId": b, "sql": "q9",
         "columnsByTable": {"users": ["ssn"]}},
        # 11. alice, a three-table join
        {"eventId": "g11", "timestamp": "2026-01-20T15:45:30Z", "userId": a, "sql": "q11",
         "columnsByTable": {"orders": ["id"], "users": ["id"], "payments": ["order_id"]}},
    ])
    assert result == {"inserted": 10, "duplicates": 0, "rejected": []}
    # 10. carol, written by another writer with plain SQL, Atlas style (unqualified columns, mixed case).
    sql.execute(
        "INSERT INTO audit_log (org_id, user_id, auth_mode, sql, duration_ms, success, tables_accessed, "
        "columns_accessed, \"timestamp\") VALUES (%s, %s, 'managed', 'q10', 3, true, '[\"Payments\"]', "
        "'[\"amount\", \"id\"]', '2026-01-12T07:00:00Z')", (org.id, c))
    with sql.transaction():
        sql.execute("SET LOCAL atlas.owner_write = 'on'")
        sql.execute("UPDATE audit_log SET deleted_at = now() WHERE org_id = %s AND event_id = 'g9'", (org.id,))
    # The other organization: same table names, and even alice's user id, must never leak.
    ingest(client, {"Authorization": f"Bearer {other.ingest_key()}"}, [
        {"eventId": "x1", "timestamp": "2026-01-05T10:00:00Z", "userId": a, "sql": "x",
         "columnsByTable": {"orders": ["id", "card"], "users": ["email"]}},
    ])
    # PII: users.email and payments.card_number are PII; orders.total was dismissed.
    for table, column, dismissed in (("users", "email", False), ("payments", "card_number", False),
                                     ("orders", "total", True)):
        sql.execute("INSERT INTO pii_column_classifications (org_id, table_name, column_name, category, dismissed) "
                    "VALUES (%s, %s, %s, 'email', %s)", (org.id, table, column, dismissed))
    sql.execute("INSERT INTO pii_column_classifications (org_id, table_name, column_name, category) "
                "VALUES (%s, 'orders', 'id', 'other')", (other.id,))
    # Logins: alice in this org on Jan 15 and after the window; in the other org on Jan 25.
    for when, org_id in (("2026-01-15T08:00:00Z", org.id), ("2026-02-10T08:00:00Z", org.id),
                         ("2026-01-25T08:00:00Z", other.id)):
        sql.execute('INSERT INTO session ("userId", token, "expiresAt", "createdAt", "activeOrganizationId", '
                    "revoked_at) VALUES (%s, md5(random()::text), %s, %s, %s, %s)", (a, when, when, org_id, when))
    return Golden(org=org, other=other, alice=alice, bob=bob, carol=carol, dave=dave)
