"""The audit-log explorer (issue 19, part 1): the recorded events behind a report row.

API filters and content, stable cursor paging under concurrent ingest, the CSV export, the admin action
it leaves, other organizations, bad input, and the CLI."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from atlas_compliance.cli.main import app
from atlas_compliance.config import get_settings
from tests.conftest import assert_error

URL = "/api/v1/admin/audit/events"
WINDOW = {"startDate": "2026-03-01", "endDate": "2026-03-31"}

EVENTS = [
    {"eventId": "e1", "timestamp": "2026-03-02T09:00:00Z", "userId": "olga", "sql": "SELECT name, ssn FROM patients"},
    {"eventId": "e2", "timestamp": "2026-03-03T09:00:00Z", "userId": "olga",
     "sql": "SELECT o.total FROM orders o JOIN patients p ON p.id = o.patient_id"},
    {"eventId": "e3", "timestamp": "2026-03-04T09:00:00Z", "userId": "bob", "sql": "UPDATE orders SET total = 0",
     "success": False, "error": "permission denied for table orders"},
    {"eventId": "e4", "timestamp": "2026-03-05T09:00:00Z", "userId": "bob", "sql": "SELECT 1",
     "sourceId": "warehouse", "userLabel": "=HYPERLINK(\"http://x\")"},
    {"eventId": "e5", "timestamp": "2026-04-05T09:00:00Z", "userId": "olga", "sql": "SELECT ssn FROM patients"},
]


@pytest.fixture()
def trail(client, org):
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    resp = client.post("/api/v1/audit/events", json=EVENTS, headers=key)
    assert resp.status_code == 200 and resp.json()["inserted"] == len(EVENTS), resp.text
    admin = org.add_user("admin")
    resp = client.post("/api/v1/admin/compliance/classifications", headers=admin.headers, json={"detections": [
        {"tableName": "patients", "columnName": "ssn", "category": "ssn"}]})
    assert resp.status_code == 200, resp.text
    return {"admin": admin, "key": key}


def ids(resp) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [e["eventId"] for e in resp.json()["events"]]


def test_filters_and_what_each_event_carries(client, org, trail):
    h = trail["admin"].headers
    assert ids(client.get(URL, params=WINDOW, headers=h)) == ["e4", "e3", "e2", "e1"]  # newest first; e5 is April
    assert ids(client.get(URL, params={**WINDOW, "table": "PUBLIC.Patients"}, headers=h)) == ["e2", "e1"]
    assert ids(client.get(URL, params={**WINDOW, "column": "ssn"}, headers=h)) == ["e1"]
    assert ids(client.get(URL, params={**WINDOW, "table": "orders", "column": "total"}, headers=h)) == ["e3", "e2"]
    assert ids(client.get(URL, params={**WINDOW, "userId": "bob"}, headers=h)) == ["e4", "e3"]
    assert ids(client.get(URL, params={**WINDOW, "success": "false"}, headers=h)) == ["e3"]
    assert ids(client.get(URL, params={**WINDOW, "source": "warehouse"}, headers=h)) == ["e4"]
    assert ids(client.get(URL, params={**WINDOW, "q": "JOIN PATIENTS"}, headers=h)) == ["e2"]
    assert ids(client.get(URL, params={"startDate": "2026-03-02T00:00:00", "endDate": "2026-03-03T08:00:00",
                                       "tz": "Europe/Paris"}, headers=h)) == ["e1"]

    first = client.get(URL, params={**WINDOW, "userId": "olga", "table": "patients"}, headers=h).json()
    e1 = first["events"][-1]
    assert e1["sql"] == "SELECT name, ssn FROM patients" and e1["tables"] == ["patients"]
    assert sorted(e1["columnsByTable"]["patients"]) == ["name", "ssn"]
    assert e1["piiColumns"] == {"patients": ["ssn"]} and e1["success"] is True and e1["chainSeq"] == 1
    assert first["filters"]["table"] == "patients" and first["window"]["tz"] == "UTC"
    e3 = client.get(URL, params={**WINDOW, "success": "false"}, headers=h).json()["events"][0]
    assert e3["error"] == "permission denied for table orders" and e3["piiColumns"] == {}


def test_paging_is_stable_while_events_keep_arriving(client, org, trail):
    h = trail["admin"].headers
    page = client.get(URL, params={**WINDOW, "limit": 2}, headers=h).json()
    seen = [e["eventId"] for e in page["events"]]
    assert seen == ["e4", "e3"] and page["nextCursor"]
    # Meanwhile: one event older than the cursor (it would shift the pages) and one newer.
    late = [{"eventId": "late-old", "timestamp": "2026-03-01T01:00:00Z", "sql": "SELECT 2"},
            {"eventId": "late-new", "timestamp": "2026-03-30T01:00:00Z", "sql": "SELECT 3"}]
    assert client.post("/api/v1/audit/events", json=late, headers=trail["key"]).json()["inserted"] == 2
    while page["nextCursor"]:
        page = client.get(URL, params={**WINDOW, "limit": 2, "cursor": page["nextCursor"]}, headers=h).json()
        seen += [e["eventId"] for e in page["events"]]
    assert seen == ["e4", "e3", "e2", "e1"]  # each once, nothing that arrived after the first page
    assert ids(client.get(URL, params=WINDOW, headers=h)) == ["late-new", "e4", "e3", "e2", "e1", "late-old"]


def test_csv_export_has_every_event_guarded(client, org, trail):
    resp = client.get(URL, params={**WINDOW, "format": "csv", "limit": 1}, headers=trail["admin"].headers)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    assert f"audit-events-{org.slug}-20260301T000000Z_20260401T000000Z.csv" in resp.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert [r["event_id"] for r in rows] == ["e4", "e3", "e2", "e1"]  # every event, whatever limit says
    assert rows[0]["user_label"].startswith("'=HYPERLINK")
    assert rows[3]["pii_columns"] == "patients.ssn" and rows[3]["sql"] == "SELECT name, ssn FROM patients"
    assert sorted(rows[2]["columns"].split("; ")) == ["orders.patient_id", "orders.total", "patients.id"]


def test_each_look_is_recorded_as_an_admin_action(client, org, trail, sql):
    admin = trail["admin"]
    client.get(URL, params={**WINDOW, "table": "patients"}, headers=admin.headers)
    client.get(URL, params={**WINDOW, "format": "csv"}, headers=admin.headers)
    actions = sql.execute("SELECT action_type, actor_email, metadata FROM admin_action_log WHERE org_id = %s "
                          "AND target_type = 'audit_events' ORDER BY \"timestamp\"", (org.id,)).fetchall()
    assert [(a["action_type"], a["actor_email"]) for a in actions] == [("audit_events.view", admin.email),
                                                                       ("audit_events.export", admin.email)]
    assert actions[0]["metadata"]["filters"]["table"] == "patients" and actions[0]["metadata"]["rowCount"] == 2
    assert actions[1]["metadata"]["rowCount"] == 4


def test_another_organization_sees_none_of_it(client, org, make_org, trail):
    other = make_org().add_user("admin")
    assert ids(client.get(URL, params=WINDOW, headers=other.headers)) == []
    cursor = client.get(URL, params={**WINDOW, "limit": 1}, headers=trail["admin"].headers).json()["nextCursor"]
    assert ids(client.get(URL, params={**WINDOW, "cursor": cursor}, headers=other.headers)) == []
    text = client.get(URL, params={**WINDOW, "format": "csv"}, headers=other.headers).text
    assert "patients" not in text and len(text.splitlines()) == 1


@pytest.mark.parametrize(("params", "status", "code"), [
    ({"cursor": "not-a-cursor"}, 400, "invalid_cursor"),
    ({"cursor": "eyJ0IjogMX0"}, 400, "invalid_cursor"),
    ({"limit": 0}, 400, "invalid_limit"),
    ({"limit": 1001}, 400, "invalid_limit"),
    ({"startDate": "March"}, 400, "invalid_date"),
    ({"tz": "Mars/Olympus"}, 400, "invalid_tz"),
    ({"q": "x" * 1001}, 422, None),
    ({"q": "a\x00b"}, 400, "bad_request"),  # the middleware refuses a NUL anywhere in the URL
    ({"success": "maybe"}, 422, None),
    ({"format": "xml"}, 422, None),
])
def test_bad_input_is_refused_and_not_recorded(client, org, trail, sql, params, status, code):
    resp = client.get(URL, params={**WINDOW, **params}, headers=trail["admin"].headers)
    assert_error(resp, status, code)
    assert sql.execute("SELECT count(*) FROM admin_action_log WHERE org_id = %s AND target_type = 'audit_events'",
                       (org.id,)).fetchone()["count"] == 0


@pytest.fixture()
def cli(database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})
    get_settings.cache_clear()


def test_cli_lists_the_same_events(cli, org, trail, tmp_path, sql):
    base = ["audit", "events", "--org", org.slug, "--start", "2026-03-01", "--end", "2026-03-31"]
    result = cli(*base, "--format", "json", "--table", "patients")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["eventId"] for e in lines] == ["e2", "e1"] and lines[1]["piiColumns"] == {"patients": ["ssn"]}
    result = cli(*base, "--failed")
    assert result.exit_code == 0 and "UPDATE orders SET total = 0" in result.stdout and "SELECT 1" not in result.stdout
    out = tmp_path / "events.csv"
    assert cli(*base, "--format", "csv", "-o", str(out), "--limit", "3").exit_code == 0
    assert [r["event_id"] for r in csv.DictReader(out.open(newline=""))] == ["e4", "e3", "e2"]
    bad = cli(*base, "--start", "yesterday")
    assert bad.exit_code == 1 and "--start" in bad.output and "Traceback" not in bad.output
    assert sql.execute("SELECT count(*) FROM admin_action_log WHERE org_id = %s AND target_type = 'audit_events'",
                       (org.id,)).fetchone()["count"] == 3
