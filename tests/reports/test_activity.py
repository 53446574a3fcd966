"""Failed, denied and privileged activity (issue 19, part 3): the Failed access and Privileged actions views.

Exact counts per error class on a seeded trail, failed logins per user and address, another organization's
failures never shown, the admin action log read back (filters, paging, CSV), each look recorded, bad input,
the error-class rules (the SQL and the Python agree), and the CLI."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from atlas_compliance.audit import admin_actions
from atlas_compliance.cli.main import app
from atlas_compliance.config import get_settings
from atlas_compliance.reports import activity
from tests.conftest import assert_error, run_service

FAILED = "/api/v1/admin/audit/failed-access"
PRIVILEGED = "/api/v1/admin/audit/privileged-actions"
MARCH = {"startDate": "2026-03-01", "endDate": "2026-03-31"}
TODAY = datetime.now(UTC).date()
AROUND_TODAY = {"startDate": str(TODAY - timedelta(days=1)), "endDate": str(TODAY + timedelta(days=1))}


def _events(bob_id: str) -> list[dict]:
    def failed(event_id: str, day: int, user: str, sql: str, error: str) -> dict:
        return {"eventId": event_id, "timestamp": f"2026-03-{day:02d}T09:00:00Z", "userId": user, "sql": sql,
                "success": False, "error": error, "userLabel": f"label-{user[:4]}"}

    return [
        failed("f1", 2, "olga", "SELECT * FROM patients", "permission denied for table patients"),
        failed("f2", 3, "olga", "SELECT * FROM patients",
               "canceling statement due to statement timeout (SQLSTATE 57014)"),
        failed("f3", 4, "olga", "SELEC oops", 'syntax error at or near "SELEC" (SQLSTATE 42601)'),
        failed("f4", 5, bob_id, "UPDATE orders SET total = 0", "permission denied for table orders"),
        failed("f5", 6, bob_id, "SELECT o.total FROM orders o JOIN patients p ON p.id = o.patient_id",
               "Approval required: PHI bulk export"),
        failed("f6", 7, bob_id, "SELECT 1", "canceling statement due to user request"),
        {"eventId": "s1", "timestamp": "2026-03-02T10:00:00Z", "userId": "olga", "sql": "SELECT name FROM patients"},
        failed("f7", 5 + 30, "olga", "SELECT * FROM patients", "permission denied for table patients")
        | {"timestamp": "2026-04-05T09:00:00Z"},
    ]


@pytest.fixture()
def trail(client, org, make_org, sql):
    bob = org.add_user("member")
    admin = org.add_user("admin")
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    resp = client.post("/api/v1/audit/events", json=_events(bob.id), headers=key)
    assert resp.status_code == 200 and resp.json()["inserted"] == 8, resp.text
    # Another organization: its failures and its member's failed logins are never shown to `org`.
    other = make_org()
    stranger = other.add_user("member")
    other_key = {"Authorization": f"Bearer {other.ingest_key()}"}
    resp = client.post("/api/v1/audit/events", headers=other_key, json=[
        {"timestamp": "2026-03-02T09:00:00Z", "userId": "olga", "sql": "SELECT * FROM secrets", "success": False,
         "error": "permission denied for table secrets"}])
    assert resp.status_code == 200, resp.text
    # The test client always signs in from "testclient": earlier tests' failures from it would trip the
    # per-address rate limit. Let them be an hour old (as if time had passed); they stay recorded.
    sql.execute("UPDATE login_attempt SET attempted_at = attempted_at - interval '1 hour' "
                "WHERE ip_address = 'testclient' AND attempted_at > now() - interval '1 hour'")
    for email in (bob.email, bob.email, stranger.email, "nobody@nowhere.example"):
        assert client.post("/api/v1/auth/login", json={"email": email, "password": "wrong"}).status_code == 401
    return {"admin": admin, "bob": bob, "other": other, "stranger": stranger}


def test_failed_queries_per_table_and_user_with_error_classes(client, org, trail):
    resp = client.get(FAILED, params=MARCH, headers=trail["admin"].headers)
    assert resp.status_code == 200, resp.text
    view = resp.json()
    bob = trail["bob"]
    got = [(r["tableName"], r["userEmail"] or r["userId"], r["failures"], r["byClass"]) for r in view["queries"]]

    def cls(p=0, s=0, t=0, o=0):
        return {"permission_denied": p, "syntax": s, "timeout": t, "other": o}

    assert got == [
        ("orders", bob.email, 2, cls(p=1, o=1)),
        ("patients", bob.email, 1, cls(o=1)),
        ("patients", "olga", 2, cls(p=1, t=1)),
        (None, bob.email, 1, cls(t=1)),  # "(no table)": SELECT 1
        (None, "olga", 1, cls(s=1)),  # did not parse: no table
    ]
    assert view["summary"] == {"failedQueries": 6, "byClass": cls(p=2, s=1, t=2, o=1), "failedLogins": 0,
                               "loginAddresses": 0}  # March: no logins then; each failed query counted once
    olga = view["queries"][2]
    assert olga["userLabel"] == "label-olga" and olga["userEmail"] is None and olga["userRole"] is None
    assert (olga["firstFailure"], olga["lastFailure"]) == ("2026-03-02T09:00:00Z", "2026-03-03T09:00:00Z")
    assert view["queries"][0]["userRole"] == "member"
    assert [c["key"] for c in view["errorClasses"]] == ["permission_denied", "syntax", "timeout", "other"]
    assert "secrets" not in resp.text  # the other organization's failure


def test_failed_logins_per_member_and_address(client, org, trail):
    view = client.get(FAILED, params=AROUND_TODAY, headers=trail["admin"].headers).json()
    assert [(r["email"], r["userId"], r["ipAddress"], r["failures"]) for r in view["logins"]] == [
        (trail["bob"].email, trail["bob"].id, "testclient", 2)]  # not the stranger's, not the unknown email's
    assert view["summary"]["failedLogins"] == 2 and view["summary"]["loginAddresses"] == 1
    assert view["queries"] == [] and view["summary"]["failedQueries"] == 0
    theirs = client.get(FAILED, params=AROUND_TODAY, headers=trail["other"].add_user("admin").headers).json()
    assert [(r["email"], r["failures"]) for r in theirs["logins"]] == [(trail["stranger"].email, 1)]


def test_failed_access_csv_and_the_recorded_look(client, org, trail, sql):
    params = {"startDate": "2026-03-01", "endDate": AROUND_TODAY["endDate"], "format": "csv"}
    resp = client.get(FAILED, params=params, headers=trail["admin"].headers)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    assert f"failed-access-{org.slug}-20260301T000000Z_" in resp.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert [(r["kind"], r["table_name"], r["failures"]) for r in rows] == [
        ("query", "orders", "2"), ("query", "patients", "1"), ("query", "patients", "3"),  # olga: f7 (April) too
        ("query", "(no table)", "1"), ("query", "(no table)", "1"), ("login", "", "2")]
    assert rows[2]["permission_denied"] == "2" and rows[2]["user_label"] == "label-olga"
    assert rows[5]["user_email"] == trail["bob"].email and rows[5]["ip_address"] == "testclient"
    client.get(FAILED, params=MARCH, headers=trail["admin"].headers)
    looks = sql.execute("SELECT action_type, actor_email, metadata FROM admin_action_log WHERE org_id = %s "
                        "AND target_type = 'failed_access' ORDER BY chain_seq", (org.id,)).fetchall()
    assert [(a["action_type"], a["actor_email"]) for a in looks] == [
        ("failed_access.export", trail["admin"].email), ("failed_access.view", trail["admin"].email)]
    assert looks[1]["metadata"]["failedQueries"] == 6 and looks[1]["metadata"]["rowCount"] == 5


def test_purged_rows_are_not_counted(client, org, trail, sql):
    with sql.transaction():
        sql.execute("SET LOCAL atlas.owner_write = 'on'")  # as the purge does (the owner's path)
        sql.execute("UPDATE audit_log SET deleted_at = now() WHERE org_id = %s AND event_id = 'f1'", (org.id,))
    view = client.get(FAILED, params=MARCH, headers=trail["admin"].headers).json()
    assert view["summary"]["failedQueries"] == 5 and view["summary"]["byClass"]["permission_denied"] == 1


@pytest.fixture()
def actions(client, org, trail):
    """Three actions with known details, recorded in this order."""
    admin = trail["admin"]
    actor = admin_actions.Actor(user_id=admin.id, email=admin.email, request_id="req-1", ip="10.0.0.9")
    for kind, target, details in [
        ("member.role_set", trail["bob"].id, {"old": {"role": "member"}, "new": {"role": "admin"}}),
        ("compliance.classification_update", "c-1", {"old": {"reviewed": False}, "new": {"reviewed": True}}),
        ("member.remove", trail["bob"].id, {"email": trail["bob"].email}),
    ]:
        run_service(client, admin_actions.record, actor, org_id=org.id, action_type=kind, target_type="member",
                    target_id=target, details=details)
    return admin


def test_privileged_actions_newest_first_with_filters(client, org, actions):
    h = actions.headers
    page = client.get(PRIVILEGED, params={**AROUND_TODAY, "actionType": "member.*"}, headers=h).json()
    assert [a["actionType"] for a in page["actions"]] == ["member.remove", "member.role_set"]
    role_set = page["actions"][1]
    assert role_set["details"] == {"old": {"role": "member"}, "new": {"role": "admin"}}
    assert (role_set["actorEmail"], role_set["ipAddress"], role_set["requestId"], role_set["status"]) == (
        actions.email, "10.0.0.9", "req-1", "success")
    exact = client.get(PRIVILEGED, params={**AROUND_TODAY, "actionType": "member.remove"}, headers=h).json()
    assert [a["actionType"] for a in exact["actions"]] == ["member.remove"]
    mine = client.get(PRIVILEGED, params={**AROUND_TODAY, "actor": actions.email.upper()}, headers=h).json()
    # The two looks above were recorded too (by the same admin, before this one).
    assert [a["actionType"] for a in mine["actions"]] == [
        "privileged_actions.view", "privileged_actions.view", "member.remove", "compliance.classification_update",
        "member.role_set"]
    assert client.get(PRIVILEGED, params=MARCH, headers=h).json()["actions"] == []  # none in March


def test_privileged_actions_paging_is_stable_and_csv_has_every_row(client, org, actions, make_org):
    h = actions.headers
    base = {**AROUND_TODAY, "actor": actions.id}
    page = client.get(PRIVILEGED, params={**base, "limit": 2}, headers=h).json()
    seen = [a["actionType"] for a in page["actions"]]
    while page["nextCursor"]:  # every page is itself recorded: it never shows up in the same listing
        page = client.get(PRIVILEGED, params={**base, "limit": 2, "cursor": page["nextCursor"]}, headers=h).json()
        seen += [a["actionType"] for a in page["actions"]]
    assert seen == ["member.remove", "compliance.classification_update", "member.role_set"]
    resp = client.get(PRIVILEGED, params={**AROUND_TODAY, "format": "csv", "actionType": "member.*"}, headers=h)
    assert resp.status_code == 200 and f"privileged-actions-{org.slug}-" in resp.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert [r["action_type"] for r in rows] == ["member.remove", "member.role_set"]
    assert json.loads(rows[1]["details"]) == {"old": {"role": "member"}, "new": {"role": "admin"}}
    other = make_org().add_user("admin")
    assert client.get(PRIVILEGED, params=AROUND_TODAY, headers=other.headers).json()["actions"] == []
    cursor = client.get(PRIVILEGED, params={**base, "limit": 1}, headers=h).json()["nextCursor"]
    theirs = client.get(PRIVILEGED, params={**AROUND_TODAY, "cursor": cursor}, headers=other.headers).json()
    # Only their own first look (recorded in their organization); nothing of this one.
    assert [(a["actorEmail"], a["actionType"]) for a in theirs["actions"]] == [(other.email,
                                                                                "privileged_actions.view")]


def test_a_retention_change_is_listed_with_its_old_and_new_values(client, org, admin):
    resp = client.put("/api/v1/admin/audit/retention", json={"retentionDays": 400}, headers=admin.headers)
    assert resp.status_code == 200, resp.text
    page = client.get(PRIVILEGED, params={**AROUND_TODAY, "actionType": "audit_retention.*"},
                      headers=admin.headers).json()
    assert [(a["actionType"], a["actorEmail"], a["details"]) for a in page["actions"]] == [
        ("audit_retention.policy_update", admin.email,
         {"previous": {"retentionDays": 365, "hardDeleteDelayDays": 30},
          "new": {"retentionDays": 400, "hardDeleteDelayDays": 30}})]


@pytest.mark.parametrize(("url", "params", "status", "code"), [
    (FAILED, {"startDate": "March"}, 400, "invalid_date"),
    (FAILED, {"tz": "Mars/Olympus"}, 400, "invalid_tz"),
    (FAILED, {"startDate": "2026-04-01"}, 400, "invalid_range"),
    (FAILED, {"format": "xml"}, 422, None),
    (PRIVILEGED, {"cursor": "not-a-cursor"}, 400, "invalid_cursor"),
    (PRIVILEGED, {"cursor": "eyJhIjogLTF9"}, 400, "invalid_cursor"),
    (PRIVILEGED, {"limit": 0}, 400, "invalid_limit"),
    (PRIVILEGED, {"limit": 1001}, 400, "invalid_limit"),
    (PRIVILEGED, {"actionType": "*"}, 400, "invalid_action_type"),
    (PRIVILEGED, {"actionType": "me*mber"}, 400, "invalid_action_type"),
    (PRIVILEGED, {"actor": "x" * 501}, 422, None),
    (PRIVILEGED, {"endDate": "2026-02-30"}, 400, "invalid_date"),
])
def test_bad_input_is_refused_and_not_recorded(client, org, admin, sql, url, params, status, code):
    assert_error(client.get(url, params={**MARCH, **params}, headers=admin.headers), status, code)
    assert sql.execute("SELECT count(*) FROM admin_action_log WHERE org_id = %s AND target_type IN "
                       "('failed_access', 'admin_actions')", (org.id,)).fetchone()["count"] == 0


ERRORS = [
    ("permission denied for table orders", "permission_denied"),
    ("ERROR: permission denied for schema x (SQLSTATE 42501)", "permission_denied"),
    ("new row violates row-level security policy for table t", "permission_denied"),
    ('password authentication failed for user "x" (SQLSTATE 28P01)', "permission_denied"),
    ("MariaDB error 1142", "permission_denied"),
    ('syntax error at or near "SELEC" (SQLSTATE 42601)', "syntax"),
    ('relation "staging_claims" does not exist', "syntax"),
    ('column "x" does not exist (sqlstate 42703)', "syntax"),
    ("MariaDB error 1064", "syntax"),
    ("MariaDB error 10640", "other"),
    ("canceling statement due to statement timeout", "timeout"),
    ("canceling statement due to lock timeout (SQLSTATE 55P03)", "timeout"),
    ("terminating connection due to administrator command (SQLSTATE 57P01)", "timeout"),
    ("Lock wait timeout exceeded", "timeout"),
    ('duplicate key value violates unique constraint "k" (SQLSTATE 23505)', "other"),
    ("permission denied, they said (SQLSTATE 23505)", "other"),  # a SQLSTATE decides over the text
    ("Approval required: PHI bulk export", "other"),
    ("", "other"),
    (None, "other"),
]


@pytest.mark.parametrize(("error", "expected"), ERRORS)
def test_error_classes_python(error, expected):
    assert activity.classify(error) == expected


def test_error_classes_sql_agrees(sql):
    errors = [e for e, _ in ERRORS]
    got = sql.execute(f"SELECT {activity.classify_sql('e.error')} AS cls FROM unnest(%s::text[]) "
                      "WITH ORDINALITY e(error, n) ORDER BY n", (errors,)).fetchall()
    assert [r["cls"] for r in got] == [expected for _, expected in ERRORS]


@pytest.fixture()
def cli(database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})
    get_settings.cache_clear()


def test_cli_failed_access(cli, org, trail, tmp_path, sql):
    base = ["audit", "failed-access", "--org", org.slug, "--from", "2026-03-01", "--to", "2026-03-31"]
    result = cli(*base)
    assert result.exit_code == 0, result.output
    assert "(no table)" in result.stdout and "olga" in result.stdout and "6 failed queries" in result.stdout
    result = cli(*base, "--format", "json")
    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)
    assert view["summary"]["byClass"] == {"permission_denied": 2, "syntax": 1, "timeout": 2, "other": 1}
    out = tmp_path / "failed.csv"
    assert cli(*base, "--format", "csv", "-o", str(out)).exit_code == 0
    assert [r["table_name"] for r in csv.DictReader(out.open(newline=""))] == [
        "orders", "patients", "patients", "(no table)", "(no table)"]
    bad = cli(*base[:-2], "--to", "soon")
    assert bad.exit_code == 1 and "--to" in bad.output and "Traceback" not in bad.output
    assert sql.execute("SELECT count(*) FROM admin_action_log WHERE org_id = %s AND target_type = 'failed_access'",
                       (org.id,)).fetchone()["count"] == 3


def test_cli_privileged_actions(cli, org, actions, tmp_path):
    base = ["audit", "privileged-actions", "--org", org.slug, "--from", AROUND_TODAY["startDate"],
            "--to", AROUND_TODAY["endDate"]]
    result = cli(*base, "--action-type", "member.*")
    assert result.exit_code == 0, result.output
    assert "member.remove" in result.stdout and "member.role_set" in result.stdout
    assert "compliance.classification_update" not in result.stdout
    result = cli(*base, "--format", "json", "--actor", actions.email)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["actionType"] for a in lines] == ["member.remove", "compliance.classification_update",
                                                "member.role_set"]
    out = tmp_path / "actions.csv"
    assert cli(*base, "--format", "csv", "-o", str(out), "--limit", "1").exit_code == 0
    rows = list(csv.DictReader(out.open(newline="")))
    # The newest: the CLI's own look of the run before (recorded after its listing).
    assert len(rows) == 1 and (rows[0]["action_type"], rows[0]["actor_email"]) == ("privileged_actions.export",
                                                                                    "system:cli")
    bad = cli(*base, "--action-type", "*")
    assert bad.exit_code == 1 and "actionType" not in bad.output and "--action-type" in bad.output
