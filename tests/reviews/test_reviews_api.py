"""Access reviews (issue 20) through the API: open (frozen population), decide, sign off, export, follow-ups."""

from __future__ import annotations

import base64
import csv
import io

import psycopg
import pytest

from atlas_compliance.audit import signing
from atlas_compliance.auth import offboarding
from atlas_compliance.reviews import service
from tests.conftest import assert_error, run_service
from tests.reviews.conftest import MARCH, REVIEWS


def open_review(client, headers, **extra) -> dict:
    resp = client.post(REVIEWS, json={**MARCH, **extra}, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()


def items_by_user(document: dict, kind: str = "user") -> dict:
    return {i["userId"]: i for i in document["items"] if i["kind"] == kind}


def actions(sql, org_id: str, campaign_id: str) -> list[tuple[str, str]]:
    rows = sql.execute("SELECT action_type, actor_email, chain_seq FROM admin_action_log WHERE org_id = %s "
                       "AND target_id = %s ORDER BY chain_seq", (org_id, campaign_id)).fetchall()
    assert all(r["chain_seq"] is not None for r in rows)  # in the org's chained admin record
    return [(r["action_type"], r["actor_email"]) for r in rows]


def test_a_quarterly_review_is_opened_worked_through_signed_off_and_exported(client, org, clinic, sql, settings):
    owner, second, olga = clinic["owner"], clinic["second"], clinic["olga"]
    key = signing.load_signing_key(settings)  # the installation key exists: the sign-off is signed
    doc = open_review(client, owner.headers, title="Q1 2026 access review")
    campaign, rid = doc["campaign"], doc["campaign"]["id"]
    assert (campaign["status"], campaign["periodStart"], campaign["periodEnd"], campaign["dueDate"]) == \
        ("open", "2026-03-01", "2026-03-31", "2026-04-30")
    users = items_by_user(doc)
    # Every member as of the period's end, active or not, and the user id that is no member.
    assert set(users) == {owner.id, second.id, olga.id, clinic["idle"].id, "svc-etl"}
    assert (users[olga.id]["userEmail"], users[olga.id]["userRole"], users[olga.id]["figures"]["totalQueries"]) == \
        (olga.email, "member", 5)
    assert users["svc-etl"]["userEmail"] is None
    access = {(i["tableName"], i["userId"]): i for i in doc["items"] if i["kind"] == "access"}
    assert access[("patients", olga.id)]["figures"]["queryCount"] == 5
    assert access[("patients", olga.id)]["figures"]["uniqueColumns"] == ["name", "ssn"]
    assert campaign["progress"] == {"userItems": 5, "userDecided": 0, "accessItems": 3, "accessDecided": 0,
                                    "piiAccessItems": 0, "piiConfirmedByTwo": 0}

    decide = lambda who, body: client.post(f"{REVIEWS}/{rid}/decisions", json=body, headers=who.headers)  # noqa: E731
    # A revoke or flag without a note, and a decision on one's own access, are refused; nothing is stored.
    assert_error(decide(owner, {"items": [users[olga.id]["item"]], "decision": "revoke"}), 400, "note_required")
    assert_error(decide(owner, {"items": [users["svc-etl"]["item"]], "decision": "flag", "note": "  "}), 400,
                 "note_required")
    refused = assert_error(decide(owner, {"items": [users[clinic["idle"].id]["item"], users[owner.id]["item"]],
                                          "decision": "keep"}), 403, "self_review")
    assert "your own access" in refused["message"]
    assert sql.execute("SELECT count(*) AS n FROM review_decision WHERE campaign_id = %s", (rid,)).fetchone()["n"] == 0

    assert decide(owner, {"items": [users[olga.id]["item"]], "decision": "revoke",
                          "note": "left the billing team"}).status_code == 200
    assert decide(owner, {"items": [users["svc-etl"]["item"]], "decision": "flag",
                          "note": "unknown service account"}).status_code == 200
    assert decide(owner, {"items": [users[second.id]["item"], users[clinic["idle"].id]["item"]],
                          "decision": "keep"}).status_code == 200
    # Sign-off needs every user item decided (the owner's own is left) and a statement.
    incomplete = assert_error(client.post(f"{REVIEWS}/{rid}/signoff", json={"statement": "done"},
                                          headers=owner.headers), 409, "review_incomplete")
    assert str(users[owner.id]["item"]) in incomplete["message"]
    assert decide(second, {"items": [users[owner.id]["item"]], "decision": "keep"}).status_code == 200
    assert_error(client.post(f"{REVIEWS}/{rid}/signoff", json={"statement": " "}, headers=owner.headers), 400,
                 "statement_required")
    assert_error(client.post(f"{REVIEWS}/{rid}/followups", json={"item": users[olga.id]["item"], "note": "x"},
                             headers=owner.headers), 409, "review_open")

    signed = client.post(f"{REVIEWS}/{rid}/signoff", json={"statement": "Reviewed all Q1 access."},
                         headers=owner.headers)
    assert signed.status_code == 200, signed.text
    off = signed.json()["campaign"]["signOff"]
    assert (off["by"]["email"], off["statement"], off["signatureKeyId"]) == \
        (owner.email, "Reviewed all Q1 access.", key.key_id)
    # Read-only from now on: decisions and a second sign-off are refused.
    assert_error(decide(second, {"items": [users[olga.id]["item"]], "decision": "keep"}), 409, "review_signed_off")
    assert_error(client.post(f"{REVIEWS}/{rid}/signoff", json={"statement": "again"}, headers=second.headers), 409,
                 "review_signed_off")

    exported = client.get(f"{REVIEWS}/{rid}/export", headers=owner.headers)
    assert exported.status_code == 200
    assert "attachment" in exported.headers["content-disposition"]
    evidence = exported.json()
    assert {r["email"]: r["decisions"] for r in evidence["reviewers"]} == {owner.email: 4, second.email: 1}
    current = items_by_user(evidence)
    assert (current[olga.id]["decision"]["decision"], current[olga.id]["decision"]["note"]) == \
        ("revoke", "left the billing team")
    assert current[owner.id]["decision"]["decidedBy"]["email"] == second.email
    # The signature covers the population and the decisions as exported.
    digest = service.content_digest(evidence["campaign"], evidence["items"], evidence["decisions"])
    assert digest == off["contentSha256"]
    message = service.signoff_message(rid, org.id, owner.id, _parse(off["at"]), off["statement"], digest)
    assert key.verifying().verify(base64.b64decode(off["signature"]), message)

    table = list(csv.DictReader(io.StringIO(client.get(f"{REVIEWS}/{rid}/export", params={"format": "csv"},
                                                       headers=owner.headers).text)))
    assert len(table) == 8
    assert next(r for r in table if r["user_id"] == "svc-etl" and r["kind"] == "user")["user_label"] == "ETL job"
    olga_line = next(r for r in table if r["user_id"] == olga.id and r["kind"] == "user")
    assert (olga_line["decision"], olga_line["note"], olga_line["decided_by"], olga_line["status"],
            olga_line["signed_off_by"], olga_line["total_queries"]) == \
        ("revoke", "left the billing team", owner.email, "signed_off", owner.email, "5")

    # Follow-ups: the revocation is marked done once, with a note; other items have none.
    followups = client.get(f"{REVIEWS}/{rid}/export", params={"followups": "true"}, headers=owner.headers).json()
    assert [i["userId"] for i in followups["items"]] == [olga.id]
    body = {"item": users[olga.id]["item"], "note": "access removed, ticket OPS-12"}
    assert client.post(f"{REVIEWS}/{rid}/followups", json=body, headers=second.headers).status_code == 200
    assert_error(client.post(f"{REVIEWS}/{rid}/followups", json=body, headers=second.headers), 409, "followup_done")
    assert_error(client.post(f"{REVIEWS}/{rid}/followups", json={"item": users[second.id]["item"], "note": "x"},
                             headers=second.headers), 409, "not_a_revocation")
    done = items_by_user(client.get(f"{REVIEWS}/{rid}", headers=owner.headers).json())[olga.id]["followUp"]
    assert (done["doneBy"]["email"], done["note"]) == (second.email, "access removed, ticket OPS-12")
    # The signed digest still matches after the follow-up (follow-ups come after the sign-off).
    later = client.get(f"{REVIEWS}/{rid}/export", headers=owner.headers).json()
    assert service.content_digest(later["campaign"], later["items"], later["decisions"]) == off["contentSha256"]

    assert actions(sql, org.id, rid) == [
        ("review.open", owner.email), ("review.decide", owner.email), ("review.decide", owner.email),
        ("review.decide", owner.email), ("review.decide", second.email), ("review.signoff", owner.email),
        ("review.export", owner.email), ("review.export", owner.email), ("review.export", owner.email),
        ("review.followup_done", second.email), ("review.export", owner.email)]
    listing = client.get(REVIEWS, headers=second.headers).json()["campaigns"]
    assert [(c["id"], c["status"], c["progress"]["userDecided"]) for c in listing] == [(rid, "signed_off", 5)]


def _parse(text: str):
    from datetime import datetime
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_population_stays_frozen_after_new_ingest_and_offboarding(client, org, clinic, sql):
    owner, olga = clinic["owner"], clinic["olga"]
    rid = open_review(client, owner.headers)["campaign"]["id"]
    before = client.get(f"{REVIEWS}/{rid}", headers=owner.headers).json()
    late = [{"eventId": f"late{i}", "timestamp": "2026-03-20T10:00:00Z", "userId": olga.id,
             "sql": "SELECT dob FROM patients"} for i in range(3)]
    assert client.post("/api/v1/audit/events", json=late, headers=clinic["key"]).json()["inserted"] == 3
    run_service(client, offboarding.remove_member, email=olga.email, org_slug=org.slug)
    run_service(client, offboarding.remove_member, email=clinic["idle"].email, org_slug=org.slug)
    # The report of the same period changed (the ingest counts) …
    report = client.get("/api/v1/admin/compliance/reports/data-access", params=MARCH, headers=owner.headers).json()
    assert next(r for r in report["rows"] if r["userId"] == olga.id)["queryCount"] == 8
    # … the campaign did not.
    after = client.get(f"{REVIEWS}/{rid}", headers=owner.headers).json()
    assert after == before
    assert items_by_user(after)[olga.id]["figures"]["totalQueries"] == 5
    assert clinic["idle"].id in items_by_user(after)


def test_another_organization_neither_sees_nor_acts_on_a_campaign(client, org, clinic, make_org):
    rid = open_review(client, clinic["owner"].headers)["campaign"]["id"]
    item = open_review(client, clinic["owner"].headers)["items"][0]["item"]
    stranger = make_org().add_user("admin")
    h = stranger.headers
    assert client.get(REVIEWS, headers=h).json() == {"campaigns": []}
    assert_error(client.get(f"{REVIEWS}/{rid}", headers=h), 404, "review_not_found")
    assert_error(client.get(f"{REVIEWS}/{rid}/export", headers=h), 404, "review_not_found")
    assert_error(client.post(f"{REVIEWS}/{rid}/decisions", json={"items": [item], "decision": "keep"}, headers=h),
                 404, "review_not_found")
    assert_error(client.post(f"{REVIEWS}/{rid}/signoff", json={"statement": "x"}, headers=h), 404, "review_not_found")
    assert client.get(f"{REVIEWS}/{rid}", headers=clinic["owner"].headers).json()["campaign"]["progress"][
        "userDecided"] == 0


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"startDate": "2026-03-01"}, 422, None),
    ({**MARCH, "startDate": "2026-03-01T00:00:00Z"}, 400, "invalid_date"),
    ({**MARCH, "endDate": "2026-02-30"}, 400, "invalid_date"),
    ({"startDate": "2026-04-01", "endDate": "2026-03-01"}, 400, "invalid_range"),
    ({**MARCH, "tz": "Mars/Olympus"}, 400, "invalid_tz"),
    ({**MARCH, "role": "root"}, 400, "invalid_role"),
    ({**MARCH, "dueDate": "2026-03-15"}, 400, "invalid_date"),
    ({**MARCH, "surprise": 1}, 422, None),
])
def test_bad_input_to_open_is_refused_and_creates_nothing(client, org, clinic, sql, body, status, code):
    count = lambda: sql.execute("SELECT count(*) AS n FROM review_campaign WHERE org_id = %s",  # noqa: E731
                                (org.id,)).fetchone()["n"]
    assert_error(client.post(REVIEWS, json=body, headers=clinic["owner"].headers), status, code)
    assert count() == 0


def test_bad_decisions_are_refused_and_change_nothing(client, org, clinic, sql):
    rid = open_review(client, clinic["owner"].headers)["campaign"]["id"]
    h = clinic["owner"].headers
    for body, status, code in [({"items": [1], "decision": "maybe"}, 422, None),
                               ({"items": [], "decision": "keep"}, 422, None),
                               ({"items": [1, 999], "decision": "keep"}, 404, "item_not_found"),
                               ({"items": [1], "decision": "keep", "note": "x" * 2001}, 422, None)]:
        assert_error(client.post(f"{REVIEWS}/{rid}/decisions", json=body, headers=h), status, code)
    assert_error(client.post(f"{REVIEWS}/not-a-campaign/decisions", json={"items": [1], "decision": "keep"},
                             headers=h), 404, "review_not_found")
    assert sql.execute("SELECT count(*) AS n FROM review_decision WHERE campaign_id = %s", (rid,)).fetchone()["n"] == 0


def test_the_database_keeps_items_and_decisions_append_only_and_a_signed_campaign_closed(client, org, clinic, sql):
    owner, second = clinic["owner"], clinic["second"]
    doc = open_review(client, owner.headers)
    rid = doc["campaign"]["id"]
    users = items_by_user(doc)
    assert client.post(f"{REVIEWS}/{rid}/decisions", json={"items": [i["item"] for u, i in users.items()
                                                                     if u != owner.id], "decision": "keep"},
                       headers=owner.headers).status_code == 200
    for statement in ("UPDATE review_decision SET decision = 'revoke', note = 'x' WHERE campaign_id = %s",
                      "DELETE FROM review_decision WHERE campaign_id = %s",
                      "UPDATE review_item SET figures = '{}' WHERE campaign_id = %s",
                      "DELETE FROM review_item WHERE campaign_id = %s",
                      "UPDATE review_campaign SET title = 'x' WHERE id = %s"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            sql.execute(statement, (rid,))
    # Self-review is refused by the database too, whoever writes.
    with pytest.raises(psycopg.errors.CheckViolation):
        sql.execute("INSERT INTO review_decision (campaign_id, item_id, decision, decided_by_id) "
                    "SELECT campaign_id, id, 'keep', user_id FROM review_item WHERE campaign_id = %s AND user_id = %s",
                    (rid, owner.id))
    assert client.post(f"{REVIEWS}/{rid}/decisions", json={"items": [users[owner.id]["item"]], "decision": "keep"},
                       headers=second.headers).status_code == 200
    assert client.post(f"{REVIEWS}/{rid}/signoff", json={"statement": "ok"}, headers=owner.headers).status_code == 200
    with pytest.raises(psycopg.errors.CheckViolation):
        sql.execute("INSERT INTO review_decision (campaign_id, item_id, decision, decided_by_id) "
                    "SELECT campaign_id, id, 'keep', 'someone' FROM review_item WHERE campaign_id = %s LIMIT 1",
                    (rid,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        sql.execute("UPDATE review_campaign SET status = 'signed_off', statement = 'rewritten' WHERE id = %s", (rid,))


def test_an_overdue_campaign_is_listed_as_overdue(client, org, clinic):
    h = clinic["owner"].headers
    past = open_review(client, h, startDate="2025-01-01", endDate="2025-03-31")["campaign"]
    current = open_review(client, h, startDate="2026-10-01", endDate="2099-12-31")["campaign"]
    assert (past["overdue"], past["dueDate"], current["overdue"]) == (True, "2025-04-30", False)
    overdue = client.get(REVIEWS, params={"overdue": "true"}, headers=h).json()["campaigns"]
    assert [c["id"] for c in overdue] == [past["id"]]


def test_a_second_agreeing_reviewer_is_required_on_pii_accesses_when_the_org_says_so(client, org, clinic, sql):
    owner, second, olga = clinic["owner"], clinic["second"], clinic["olga"]
    h = owner.headers
    detection = {"tableName": "patients", "columnName": "ssn", "category": "ssn"}
    assert client.post("/api/v1/admin/compliance/classifications", json={"detections": [detection]},
                       headers=h).status_code == 200
    assert client.put("/api/v1/admin/review-settings", json={"piiSecondReviewer": True}, headers=h).json()[
        "piiSecondReviewer"] is True
    doc = open_review(client, h)
    rid = doc["campaign"]["id"]
    assert doc["campaign"]["piiSecondReviewer"] is True
    # A later change of the setting leaves the open campaign's rule alone.
    assert client.put("/api/v1/admin/review-settings", json={"piiSecondReviewer": False},
                      headers=h).status_code == 200
    users = items_by_user(doc)
    pii = next(i for i in doc["items"] if i["kind"] == "access" and i["hasPII"])
    assert (pii["tableName"], pii["userId"]) == ("patients", olga.id)

    def decide(who, items, decision):
        body = {"items": items, "decision": decision, **({"note": "why"} if decision != "keep" else {})}
        assert client.post(f"{REVIEWS}/{rid}/decisions", json=body, headers=who.headers).status_code == 200

    def sign():
        return client.post(f"{REVIEWS}/{rid}/signoff", json={"statement": "ok"}, headers=h)

    decide(owner, [n["item"] for u, n in users.items() if u != owner.id], "keep")
    decide(second, [users[owner.id]["item"]], "keep")
    assert "second reviewer" in assert_error(sign(), 409, "review_incomplete")["message"]
    decide(owner, [pii["item"]], "keep")
    decide(owner, [pii["item"]], "keep")  # the same reviewer twice is not two reviewers
    assert_error(sign(), 409, "review_incomplete")
    decide(second, [pii["item"]], "revoke")  # two reviewers who disagree
    assert_error(sign(), 409, "review_incomplete")
    decide(owner, [pii["item"]], "revoke")  # now they agree
    current = client.get(f"{REVIEWS}/{rid}", headers=h).json()
    assert current["campaign"]["progress"]["piiConfirmedByTwo"] == current["campaign"]["progress"]["piiAccessItems"]
    assert next(i for i in current["items"] if i["item"] == pii["item"])["confirmedByTwo"] is True
    assert sign().status_code == 200
    # Campaigns opened after the change do not require it.
    assert open_review(client, h)["campaign"]["piiSecondReviewer"] is False
    assert [r["action_type"] for r in sql.execute(
        "SELECT action_type FROM admin_action_log WHERE org_id = %s AND action_type = 'review.settings_update'",
        (org.id,)).fetchall()] == ["review.settings_update"] * 2


def test_a_signed_off_campaign_is_in_the_evidence_bundle_of_any_window_it_covers(client, org, clinic):
    import json
    import zipfile

    owner, second = clinic["owner"], clinic["second"]
    doc = open_review(client, owner.headers)
    rid, users = doc["campaign"]["id"], items_by_user(doc)
    others = [i["item"] for uid, i in users.items() if uid != owner.id]
    assert client.post(f"{REVIEWS}/{rid}/decisions", json={"items": others, "decision": "keep"},
                       headers=owner.headers).status_code == 200
    assert client.post(f"{REVIEWS}/{rid}/decisions", json={"items": [users[owner.id]["item"]], "decision": "keep"},
                       headers=second.headers).status_code == 200

    def bundled(start: str, end: str) -> list[dict]:
        resp = client.get("/api/v1/admin/compliance/evidence", params={"startDate": start, "endDate": end},
                          headers=owner.headers)
        assert resp.status_code == 200, resp.text
        with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
            return json.loads(zf.read("access-reviews.json"))["reviews"]

    assert bundled("2026-03-15", "2026-04-15") == []  # open campaigns are not evidence yet
    assert client.post(f"{REVIEWS}/{rid}/signoff", json={"statement": "March reviewed."},
                       headers=owner.headers).status_code == 200
    found = bundled("2026-03-15", "2026-04-15")
    assert [r["campaign"]["id"] for r in found] == [rid]
    assert found[0]["campaign"]["signOff"]["statement"] == "March reviewed."
    assert len(found[0]["decisions"]) == len(users)
    assert bundled("2026-04-01", "2026-04-30") == []  # a window the campaign does not cover
