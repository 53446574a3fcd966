"""POST /api/v1/audit/events: validation, idempotency, limits, credentials."""

from __future__ import annotations

import orjson

from tests.conftest import assert_error

URL = "/api/v1/audit/events"


def count(sql, org) -> int:
    return sql.execute("SELECT count(*) AS n FROM audit_log WHERE org_id = %s", (org.id,)).fetchone()["n"]


def test_batch_is_stored_and_resending_stores_nothing_twice(client, org, sql):
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    events = [{"eventId": f"e{i}", "sql": "SELECT id FROM orders", "userId": "u1",
               "timestamp": "2026-03-01T10:00:00+02:00", "durationMs": 5, "rowCount": 3, "sourceType": "postgres",
               "actorKind": "agent", "tablesAccessed": ["orders"], "columnsByTable": {"orders": ["id"]}}
              for i in range(5)]
    assert client.post(URL, json=events, headers=key).json() == {"inserted": 5, "duplicates": 0, "rejected": []}
    assert client.post(URL, json=events, headers=key).json() == {"inserted": 0, "duplicates": 5, "rejected": []}
    assert count(sql, org) == 5
    row = sql.execute("SELECT * FROM audit_log WHERE org_id = %s AND event_id = 'e0'", (org.id,)).fetchone()
    assert row["timestamp"].isoformat() == "2026-03-01T08:00:00+00:00"
    assert row["user_id"] == "u1" and row["duration_ms"] == 5 and row["row_count"] == 3 and row["success"] is True
    assert row["auth_mode"] == "managed" and row["actor_kind"] == "agent" and row["source_type"] == "postgres"
    assert row["tables_accessed"] == ["orders"] and row["columns_by_table"] == {"orders": ["id"]}
    assert row["columns_accessed"] == ["id"]


def test_duplicates_within_one_batch(client, org, sql):
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    events = [{"eventId": "same", "sql": "SELECT 1"}, {"eventId": "same", "sql": "SELECT 1"}, {"sql": "SELECT 2"}]
    assert client.post(URL, json=events, headers=key).json() == {"inserted": 2, "duplicates": 1, "rejected": []}
    assert count(sql, org) == 2


def test_ndjson_body(client, org, sql):
    key = {"Authorization": f"Bearer {org.ingest_key()}", "Content-Type": "application/x-ndjson"}
    body = b"\n".join(orjson.dumps({"sql": f"SELECT {i}", "eventId": f"n{i}"}) for i in range(3)) + b"\n"
    assert client.post(URL, content=body, headers=key).json()["inserted"] == 3
    assert count(sql, org) == 3


def test_invalid_events_are_rejected_one_by_one(client, org, sql):
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    events = [
        {"sql": "SELECT 1"},  # 0 ok
        {"userId": "u"},  # 1 no sql
        {"sql": 42},  # 2 wrong type
        {"sql": "SELECT 1", "timestamp": "yesterday"},  # 3 unparseable timestamp
        {"sql": "SELECT 1", "timestamp": "2026-03-01T10:00:00"},  # 4 no offset
        {"sql": "SELECT \u0000 1"},  # 5 NUL
        {"sql": "x" * (1024 * 1024 + 1)},  # 6 too large
        {"sql": "SELECT 1", "actorKind": "robot"},  # 7 unknown actor kind
        {"sql": "SELECT 1", "durationMs": "5"},  # 8 wrong type
        "not an object",  # 9
        {"sql": "SELECT 1", "success": "yes"},  # 10 wrong type
        {"sql": "SELECT 1", "unknownField": 1},  # 11 unknown field
        {"sql": "SELECT 2", "timestamp": "2026-03-01T10:00:00Z"},  # 12 ok
    ]
    body = client.post(URL, json=events, headers=key).json()
    assert body["inserted"] == 2 and body["duplicates"] == 0
    rejected = {r["index"]: r["error"] for r in body["rejected"]}
    assert sorted(rejected) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert "sql" in rejected[1] and "timestamp" in rejected[3] and "offset" in rejected[4]
    assert "NUL" in rejected[5] and "1 MB" in rejected[6] and "actorKind" in rejected[7]
    assert count(sql, org) == 2


def test_malformed_body_stores_nothing(client, org, sql):
    key = {"Authorization": f"Bearer {org.ingest_key()}", "Content-Type": "application/json"}
    for body in (b"{not json", b"[{\"sql\": \"SELECT 1\"}", b"", b"{\"sql\": \"SELECT 1\"}\nnot json"):
        assert_error(client.post(URL, content=body, headers=key), 422, "malformed_body")
    assert count(sql, org) == 0


def test_limits(client, org, sql):
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    assert_error(client.post(URL, json=[{"sql": "SELECT 1"}] * 10_001, headers=key), 413, "too_many_events")
    big = b"[" + b",".join([b'{"sql": "' + b"x" * 1000 + b'"}'] * 11_000) + b"]"
    assert_error(client.post(URL, content=big, headers={**key, "Content-Type": "application/json"}), 413)
    assert count(sql, org) == 0


def test_who_may_write(client, org, make_org, sql):
    admin = org.add_user("admin")
    member = org.add_user("member")
    assert client.post(URL, json=[{"sql": "SELECT 1"}], headers=admin.headers).json()["inserted"] == 1
    assert_error(client.post(URL, json=[{"sql": "SELECT 1"}], headers=member.headers), 403)
    assert_error(client.post(URL, json=[{"sql": "SELECT 1"}]), 401)
    # The organization comes from the credential: another org's key writes into the other org.
    other = make_org()
    client.post(URL, json=[{"sql": "SELECT 1"}], headers={"Authorization": f"Bearer {other.ingest_key()}"})
    assert count(sql, org) == 1 and count(sql, other) == 1


def test_plain_sql_insert_joins_the_chain_and_reports(client, org, sql):
    """Rows inserted by another writer (as Atlas does) are first-class."""
    admin = org.add_user("admin")
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    client.post(URL, json=[{"sql": "SELECT 1", "timestamp": "2026-02-01T00:00:00Z"}], headers=key)
    sql.execute("INSERT INTO audit_log (org_id, user_id, auth_mode, sql, duration_ms, success, tables_accessed, "
                "columns_accessed, \"timestamp\") VALUES (%s, 'ext', 'managed', 'select email from users', 1, true, "
                "'[\"users\"]', '[\"email\"]', '2026-02-02T00:00:00Z')", (org.id,))
    client.post(URL, json=[{"sql": "SELECT 2", "timestamp": "2026-02-03T00:00:00Z"}], headers=key)
    seqs = [r["chain_seq"] for r in sql.execute(
        "SELECT chain_seq FROM audit_log WHERE org_id = %s ORDER BY chain_seq", (org.id,)).fetchall()]
    assert seqs == [1, 2, 3]
    verify = client.get("/api/v1/admin/audit/verify", headers=admin.headers).json()
    assert verify["ok"] is True and verify["rowsChecked"] == 3
    report = client.get("/api/v1/admin/compliance/reports/data-access",
                        params={"startDate": "2026-02-01", "endDate": "2026-02-28"}, headers=admin.headers).json()
    assert [(r["tableName"], r["userId"], r["uniqueColumns"]) for r in report["rows"]] == [("users", "ext", ["email"])]


def test_concurrent_batches_with_the_same_ids_store_each_event_once(client, org, sql):
    """Two writers retrying the same batch at once: each event is stored once, the chain stays valid."""
    import asyncio

    from atlas_compliance.audit import service

    events = [{"eventId": f"dup{i}", "sql": f"SELECT {i}", "tablesAccessed": ["t"]} for i in range(300)]
    db = client.app.state.db

    async def one_writer():
        async with db.transaction() as conn:
            return await service.ingest_events(conn, org.id, events)

    async def both():
        return await asyncio.gather(one_writer(), one_writer())

    first, second = client.portal.call(both)
    assert sorted([first.inserted, second.inserted]) == [0, 300]
    assert first.duplicates + second.duplicates == 300
    assert count(sql, org) == 300
    admin = org.add_user("admin")
    assert client.get("/api/v1/admin/audit/verify", headers=admin.headers).json()["ok"] is True
