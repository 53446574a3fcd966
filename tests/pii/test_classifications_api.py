"""PII classification API: roles, isolation, stickiness, admin action records, bad input."""

from __future__ import annotations

import pytest

from tests.conftest import assert_error

URL = "/api/v1/admin/compliance/classifications"


def upload(client, admin, detections):
    resp = client.post(URL, json={"detections": detections}, headers=admin.headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


D_EMAIL = {"tableName": "Public.Patients", "columnName": "Email", "category": "email", "confidence": "high",
           "method": "regex", "reason": "40/40 sampled values are email addresses",
           "evidence": {"sampled": 40, "matched": 40, "examples": ["a***@example.com"]}}
D_SSN = {"tableName": "patients", "columnName": "ssn", "category": "ssn", "confidence": "medium",
         "method": "column_name", "reason": "column name 'ssn'"}


def listing(client, admin, **params):
    resp = client.get(URL, params=params, headers=admin.headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_upload_list_and_summary(client, org):
    admin = org.add_user("admin")
    assert upload(client, admin, [D_EMAIL, D_SSN]) == {"created": 2, "updated": 0, "unchanged": 0, "keptReviewed": 0}
    body = listing(client, admin)
    got = [(c["tableName"], c["columnName"], c["category"], c["reviewed"], c["dismissed"]) for c in
           body["classifications"]]
    assert got == [("patients", "email", "email", False, False), ("patients", "ssn", "ssn", False, False)]
    assert body["summary"] == {"total": 2, "highConfidence": 1, "unreviewed": 2, "tablesAffected": 1, "dismissed": 0}
    email = body["classifications"][0]
    assert email["method"] == "regex" and email["evidence"]["matched"] == 40 and email["maskingStrategy"] == "partial"
    assert [c["columnName"] for c in listing(client, admin, category="ssn")["classifications"]] == ["ssn"]
    assert listing(client, admin, table="PATIENTS")["summary"]["total"] == 2
    assert listing(client, admin, reviewed="true")["classifications"] == []


def test_edits_are_sticky_against_later_uploads(client, org, sql):
    admin = org.add_user("admin")
    upload(client, admin, [D_EMAIL, D_SSN])
    ids = {c["columnName"]: c["id"] for c in listing(client, admin)["classifications"]}
    # The admin reviews email with another strategy and dismisses ssn.
    resp = client.put(f"{URL}/{ids['email']}", json={"maskingStrategy": "hash", "reviewed": True},
                      headers=admin.headers)
    assert resp.status_code == 200 and resp.json()["maskingStrategy"] == "hash" and resp.json()["reviewed"] is True
    assert client.put(f"{URL}/{ids['ssn']}", json={"dismissed": True}, headers=admin.headers).status_code == 200
    # A later scan detects both again, differently: nothing the admin decided changes.
    again = [{**D_EMAIL, "category": "other", "confidence": "low"}, {**D_SSN, "confidence": "high"},
             {"tableName": "patients", "columnName": "phone", "category": "phone"}]
    assert upload(client, admin, again) == {"created": 1, "updated": 0, "unchanged": 0, "keptReviewed": 2}
    all_rows = {c["columnName"]: c for c in listing(client, admin, includeDismissed="true")["classifications"]}
    assert all_rows["email"]["category"] == "email" and all_rows["email"]["maskingStrategy"] == "hash"
    assert all_rows["ssn"]["dismissed"] is True and all_rows["ssn"]["confidence"] == "medium"
    assert all_rows["phone"]["reviewed"] is False
    assert "ssn" not in {c["columnName"] for c in listing(client, admin)["classifications"]}
    # Restore the dismissed one.
    client.put(f"{URL}/{ids['ssn']}", json={"dismissed": False}, headers=admin.headers)
    assert "ssn" in {c["columnName"] for c in listing(client, admin)["classifications"]}
    # An unreviewed detection is refreshed by a new upload.
    assert upload(client, admin, [{"tableName": "patients", "columnName": "phone", "category": "phone",
                                   "confidence": "high"}])["updated"] == 1
    # Only the fields the admin sent are recorded.
    updates = sql.execute("SELECT target_id, metadata FROM admin_action_log WHERE org_id = %s AND action_type = "
                          "'compliance.pii_config_update' ORDER BY \"timestamp\"", (org.id,)).fetchall()
    assert [u["metadata"] for u in updates] == [{"maskingStrategy": "hash", "reviewed": True}, {"dismissed": True},
                                                 {"dismissed": False}]


def test_review_given_ids_or_all_pending_and_delete(client, org, sql):
    admin = org.add_user("owner")
    upload(client, admin, [D_EMAIL, D_SSN, {"tableName": "staff", "columnName": "email", "category": "email"}])
    ids = [c["id"] for c in listing(client, admin)["classifications"]]
    assert client.post(f"{URL}/review", json={"ids": ids[:1]}, headers=admin.headers).json() == {"reviewed": 1}
    assert client.post(f"{URL}/review", headers=admin.headers).json() == {"reviewed": 2}
    assert client.post(f"{URL}/review", json={}, headers=admin.headers).json() == {"reviewed": 0}
    assert listing(client, admin)["summary"]["unreviewed"] == 0
    assert client.delete(f"{URL}/{ids[0]}", headers=admin.headers).json() == {"deleted": True}
    assert_error(client.delete(f"{URL}/{ids[0]}", headers=admin.headers), 404, "classification_not_found")
    assert listing(client, admin)["summary"]["total"] == 2
    actions = [r["action_type"] for r in sql.execute(
        "SELECT action_type FROM admin_action_log WHERE org_id = %s ORDER BY \"timestamp\"", (org.id,)).fetchall()]
    assert actions == ["compliance.pii_upsert", "compliance.pii_review", "compliance.pii_review",
                       "compliance.pii_review", "compliance.pii_config_delete"]


def test_roles_and_isolation(client, org, make_org):
    admin = org.add_user("admin")
    upload(client, admin, [D_EMAIL])
    cid = listing(client, admin)["classifications"][0]["id"]
    member = org.add_user("member")
    ingest = {"Authorization": f"Bearer {org.ingest_key()}"}
    for headers in (member.headers, ingest):
        assert_error(client.get(URL, headers=headers), 403)
        assert_error(client.put(f"{URL}/{cid}", json={"reviewed": True}, headers=headers), 403)
        assert_error(client.delete(f"{URL}/{cid}", headers=headers), 403)
        assert_error(client.post(f"{URL}/review", headers=headers), 403)
        assert_error(client.post(URL, json={"detections": [D_SSN]}, headers=headers), 403)
    assert_error(client.get(URL), 401)
    other = make_org().add_user("admin")
    assert listing(client, other)["classifications"] == []
    assert_error(client.put(f"{URL}/{cid}", json={"reviewed": True}, headers=other.headers), 404)
    assert_error(client.delete(f"{URL}/{cid}", headers=other.headers), 404)
    assert client.post(f"{URL}/review", json={"ids": [cid]}, headers=other.headers).json() == {"reviewed": 0}
    assert listing(client, admin)["classifications"][0]["reviewed"] is False


@pytest.mark.parametrize("body", [{"category": "favourite_color"}, {"maskingStrategy": "rot13"}, {"reviewed": "yes"},
                                  {"dismissed": None}, {"reviewed": 1},
                                  {"unknown": 1}, {"dismissed": None, "category": 5}])
def test_bad_updates_are_422_and_change_nothing(client, org, sql, body):
    admin = org.add_user("admin")
    upload(client, admin, [D_EMAIL])
    before = listing(client, admin)["classifications"][0]
    assert_error(client.put(f"{URL}/{before['id']}", json=body, headers=admin.headers), 422)
    assert listing(client, admin)["classifications"][0] == before
    assert_error(client.put(f"{URL}/no-such-id", json={"reviewed": True}, headers=admin.headers), 404)
    assert_error(client.post(URL, json={"detections": [{**D_EMAIL, "category": "blood_type"}]},
                             headers=admin.headers), 422)
    assert_error(client.post(URL, json={"detections": [{**D_EMAIL, "tableName": ""}]}, headers=admin.headers), 422)


def test_report_uses_classifications(client, org):
    admin = org.add_user("admin")
    upload(client, admin, [D_EMAIL])
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    client.post("/api/v1/audit/events", json=[{"sql": "q", "timestamp": "2026-02-01T00:00:00Z",
                                               "columnsByTable": {"patients": ["email", "id"]}}], headers=key)
    report = client.get("/api/v1/admin/compliance/reports/data-access",
                        params={"startDate": "2026-02-01", "endDate": "2026-02-01"}, headers=admin.headers).json()
    assert report["rows"][0]["hasPII"] is True and report["rows"][0]["piiColumns"] == ["email"]
    cid = listing(client, admin)["classifications"][0]["id"]
    client.put(f"{URL}/{cid}", json={"dismissed": True}, headers=admin.headers)
    report = client.get("/api/v1/admin/compliance/reports/data-access",
                        params={"startDate": "2026-02-01", "endDate": "2026-02-01"}, headers=admin.headers).json()
    assert report["rows"][0]["hasPII"] is False and report["summary"]["piiTablesAccessed"] == 0
