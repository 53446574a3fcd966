"""Database roles mapped to users: reports re-label a role's events (`db:ROLE`) under the user, in both
reports, from the rollups and the raw rows alike, with exact totals; unmapping splits them back; the
recorded events and their hash chain never change. API, CLI, bad input and other organizations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import assert_error

MAPPINGS = "/api/v1/admin/sources/role-mappings"
SOURCES = "/api/v1/admin/sources"


def _event(i: int, user: str, table: str, when: datetime, column: str = "id") -> dict:
    return {"eventId": f"map-{user}-{i}", "sql": f"SELECT {column} FROM {table}", "timestamp": when.isoformat(),
            "userId": user, "userLabel": user, "sourceId": "lab-pg", "sourceType": "postgres"}


@pytest.fixture()
def trail(org, client):
    """alice (an admin) queried patients herself and, as database role `alice`, patients and visits, on
    whole days (rollups) and on the partial days at the edges of the windows (raw rows)."""
    alice = org.add_user("admin")
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    events = []
    for day in range(4):
        when = today - timedelta(days=day)
        events += [_event(day, alice.id, "patients", when),
                   _event(day, "db:alice", "patients", when + timedelta(minutes=1), "ssn"),
                   _event(100 + day, "db:alice", "visits", when + timedelta(minutes=2)),
                   _event(200 + day, "db:carol", "visits", when + timedelta(minutes=3))]
    response = client.post("/api/v1/audit/events", json=events, headers=key)
    assert response.json()["inserted"] == len(events)
    return alice, today


def _windows(today: datetime) -> list[dict]:
    return [{"startDate": (today - timedelta(days=3)).date().isoformat(), "endDate": today.date().isoformat()},
            {"startDate": (today - timedelta(days=3, hours=1)).isoformat(),
             "endDate": (today + timedelta(hours=1)).isoformat()}]


def _reports(client, headers, window: dict, **filters) -> tuple[dict, dict]:
    params = {**window, **filters}
    access = client.get("/api/v1/admin/compliance/reports/data-access", params=params, headers=headers).json()
    activity = client.get("/api/v1/admin/compliance/reports/user-activity", params=params, headers=headers).json()
    return access, activity


def _pairs(access: dict) -> dict:
    return {(r["tableName"], r["userId"]): (r["queryCount"], r["uniqueColumns"], r["userEmail"]) for r in access["rows"]}


def _totals(activity: dict) -> dict:
    return {r["userId"]: r["totalQueries"] for r in activity["rows"]}


def test_mapping_merges_a_role_into_its_user_in_both_reports_and_unmapping_splits_it_back(org, client, trail, sql):
    alice, today = trail
    admin = alice.headers
    hashes = sql.execute("SELECT id, row_hash FROM audit_log WHERE org_id = %s ORDER BY chain_seq", (org.id,)).fetchall()
    before = {}
    for n, window in enumerate(_windows(today)):
        access, activity = _reports(client, admin, window)
        before[n] = (access, activity)
        pairs = _pairs(access)
        assert pairs[("patients", "db:alice")][0] == 4 and pairs[("patients", alice.id)][0] == 4
        assert _totals(activity)["db:alice"] == 8

    mapped = client.put(f"{MAPPINGS}/alice", json={"email": alice.email}, headers=admin)
    assert mapped.status_code == 200, mapped.text
    assert mapped.json() == {"role": "alice", "identity": "db:alice", "userId": alice.id, "email": alice.email,
                             "previousUserId": None}
    for n, window in enumerate(_windows(today)):
        access, activity = _reports(client, admin, window)
        pairs = _pairs(access)
        assert ("patients", "db:alice") not in pairs and ("visits", "db:alice") not in pairs
        assert pairs[("patients", alice.id)] == (8, ["id", "ssn"], alice.email)
        assert pairs[("visits", alice.id)] == (4, ["id"], alice.email)
        assert pairs[("visits", "db:carol")][0] == 4  # unmapped roles stay, as db:ROLE
        totals = _totals(activity)
        assert totals[alice.id] == 12 and "db:alice" not in totals and totals["db:carol"] == 4
        assert activity["summary"]["totalQueries"] == before[n][1]["summary"]["totalQueries"] == 16
        assert access["summary"]["totalQueries"] == before[n][0]["summary"]["totalQueries"]
        assert access["summary"]["uniqueUsers"] == before[n][0]["summary"]["uniqueUsers"] - 1
        # Filters see the resolved identity too.
        by_user, _ = _reports(client, admin, window, userId=alice.id)
        assert {k: v[0] for k, v in _pairs(by_user).items()} == {("patients", alice.id): 8, ("visits", alice.id): 4}
        by_role, role_activity = _reports(client, admin, window, role="admin")
        assert _totals(role_activity)[alice.id] == 12 and ("visits", alice.id) in _pairs(by_role)
        csv = client.get("/api/v1/admin/compliance/reports/data-access", headers=admin,
                         params={**window, "format": "csv"}).text
        assert "db:alice" not in csv and f"visits,{alice.id},{alice.email},admin,4," in csv

    # The recorded events, and so the chain, did not change.
    assert sql.execute("SELECT id, row_hash FROM audit_log WHERE org_id = %s ORDER BY chain_seq",
                       (org.id,)).fetchall() == hashes
    assert client.get("/api/v1/admin/audit/verify", headers=admin).json()["ok"] is True

    removed = client.delete(f"{MAPPINGS}/alice", headers=admin)
    assert removed.status_code == 200 and removed.json()["previousUserId"] == alice.id
    for n, window in enumerate(_windows(today)):
        access, activity = _reports(client, admin, window)
        assert access["rows"] == before[n][0]["rows"] and activity["rows"] == before[n][1]["rows"]
    actions = sql.execute("SELECT action_type, target_id, metadata->>'userId' AS user_id FROM admin_action_log "
                          "WHERE org_id = %s AND action_type LIKE 'sources.%%' ORDER BY \"timestamp\"", (org.id,)).fetchall()
    assert [(a["action_type"], a["target_id"]) for a in actions] == [("sources.role_mapped", "db:alice"),
                                                                     ("sources.role_unmapped", "db:alice")]


def test_role_mapping_bad_input_changes_nothing(org, client, make_org):
    admin = org.add_user("admin")
    member = org.add_user("member")
    outsider = make_org().add_user("admin")
    assert_error(client.put(f"{MAPPINGS}/alice", json={"email": outsider.email}, headers=admin.headers), 404,
                 "member_not_found")
    assert_error(client.put(f"{MAPPINGS}/alice", json={}, headers=admin.headers), 422)
    assert_error(client.put(f"{MAPPINGS}/alice", json={"email": member.email, "x": 1}, headers=admin.headers), 422)
    assert_error(client.put(f"{MAPPINGS}/alice", json={"email": 5}, headers=admin.headers), 422)
    assert_error(client.put(f"{MAPPINGS}/" + "r" * 201, json={"email": member.email}, headers=admin.headers), 422)
    assert_error(client.put(f"{MAPPINGS}/a%01b", json={"email": member.email}, headers=admin.headers), 400,
                 "invalid_db_role")
    # Over the route's body limit (64 KiB), refused while reading.
    assert_error(client.put(f"{MAPPINGS}/alice", json={"email": "x" * 100_000}, headers=admin.headers), 413,
                 "payload_too_large")
    assert_error(client.delete(f"{MAPPINGS}/alice", headers=admin.headers), 404, "role_not_mapped")
    assert client.get(MAPPINGS, headers=admin.headers).json() == {"mappings": []}
    # A role with a slash, as a server may name it, is a path of its own.
    ok = client.put(f"{MAPPINGS}/etl/loader", json={"email": member.email}, headers=admin.headers)
    assert ok.status_code == 200 and ok.json()["identity"] == "db:etl/loader"
    listed = client.get(MAPPINGS, headers=admin.headers).json()["mappings"]
    assert [(m["role"], m["email"], m["memberRole"]) for m in listed] == [("etl/loader", member.email, "member")]
    # Another organization's admin neither sees nor removes it.
    assert client.get(MAPPINGS, headers=outsider.headers).json() == {"mappings": []}
    assert_error(client.delete(f"{MAPPINGS}/etl/loader", headers=outsider.headers), 404)
    assert len(client.get(MAPPINGS, headers=admin.headers).json()["mappings"]) == 1


def test_sources_list_shows_each_import(org, client, sql):
    admin = org.add_user("admin")
    assert client.get(SOURCES, headers=admin.headers).json() == {"sources": []}
    sql.execute("INSERT INTO audit_source (org_id, name, kind, events_stored, last_event_at) "
                "VALUES (%s, 'lab-pg', 'pgaudit', 12, '2026-12-01T10:00:00Z')", (org.id,))
    listed = client.get(SOURCES, headers=admin.headers).json()["sources"]
    assert [(s["name"], s["kind"], s["eventsStored"], s["lastEventAt"], s["followedFiles"]) for s in listed] == [
        ("lab-pg", "pgaudit", 12, "2026-12-01T10:00:00Z", 0)]
