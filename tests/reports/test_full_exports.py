"""Exports carry every row: the JSON download and the CSV of both reports, past the JSON page cap
(10,000 data access rows, 5,000 user activity rows), streamed, and recorded in the admin action log."""

from __future__ import annotations

import csv
import io
import json

import pytest

from atlas_compliance.auth import service as auth
from atlas_compliance.reports.service import ROW_CAPS
from tests.cli.test_cli import cli  # noqa: F401  (the CLI runner fixture)
from tests.conftest import Org, assert_error
from tests.conftest import run_service as run

DA = "/api/v1/admin/compliance/reports/data-access"
UA = "/api/v1/admin/compliance/reports/user-activity"
PARAMS = {"startDate": "2026-04-01", "endDate": "2026-04-30"}
TABLES = 101   # 101 tables x 100 users: 10,100 (table, user) rows, past the 10,000 cap
USERS = 100
EXTRA_USERS = 5_001 - USERS  # users with one query each: 5,001 user activity rows, past the 5,000 cap


@pytest.fixture(scope="module")
def big(client):
    """An organization whose reports exceed the JSON caps (ingested through the API)."""
    row = run(client, auth.create_organization, "big-exports", "Big Exports")
    org = Org(id=row["id"], slug=row["slug"], name=row["name"], client=client)
    admin = org.add_user("admin")
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    wide = {f"t{t:03d}": ["id", "name"] for t in range(TABLES)}
    events = [{"eventId": f"wide-{u}", "sql": f"select /* {u} */ 1", "userId": f"user-{u:05d}",
               "timestamp": f"2026-04-{u % 28 + 1:02d}T10:00:00Z", "columnsByTable": wide} for u in range(USERS)]
    events += [{"eventId": f"one-{u}", "sql": f"select /* one {u} */ 1", "userId": f"solo-{u:05d}",
                "timestamp": "2026-04-15T12:00:00Z", "columnsByTable": {"t000": ["id"]}} for u in range(EXTRA_USERS)]
    for start in range(0, len(events), 2_000):
        resp = client.post("/api/v1/audit/events", json=events[start:start + 2_000], headers=key)
        assert resp.status_code == 200 and not resp.json()["rejected"], resp.text
    return org, admin


def all_pages(client, path: str, headers) -> list[dict]:
    rows: list[dict] = []
    while True:
        page = client.get(path, params={**PARAMS, "offset": len(rows)}, headers=headers).json()
        rows += page["rows"]
        if not page["truncated"]:
            return rows


def export_actions(sql, org_id: str) -> list[dict]:
    return sql.execute("SELECT action_type, target_id, status, metadata FROM admin_action_log "
                       "WHERE org_id = %s AND action_type = 'compliance.report_export' ORDER BY \"timestamp\"",
                       (org_id,)).fetchall()


@pytest.mark.parametrize(("path", "report", "expected_rows"), [
    (DA, "data-access", TABLES * USERS + EXTRA_USERS),  # the solo users each add a (t000, user) row
    (UA, "user-activity", USERS + EXTRA_USERS + 1),  # + the admin, a member without queries
])
def test_json_download_has_every_row_past_the_cap(client, sql, big, path, report, expected_rows):
    org, admin = big
    page = client.get(path, params=PARAMS, headers=admin.headers).json()
    assert page["truncated"] and len(page["rows"]) == ROW_CAPS[report] < page["totalRows"] == expected_rows
    before = len(export_actions(sql, org.id))
    # limit and offset page the JSON answer only: an export always carries every row.
    resp = client.get(path, params={**PARAMS, "download": "1", "limit": "5", "offset": "7"}, headers=admin.headers)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    assert resp.headers["content-disposition"] == (
        f'attachment; filename="{report}-report-{org.slug}-2026-04-01_2026-04-30.json"')
    assert "content-length" not in resp.headers  # streamed, not built in memory first
    document = resp.json()
    assert list(document) == list(page)  # the shape of a page, keys in the same order
    assert len(document["rows"]) == document["totalRows"] == document["limit"] == expected_rows
    assert (document["truncated"], document["offset"]) == (False, 0)
    assert document["summary"] == page["summary"] and document["filters"] == page["filters"]
    assert document["window"] == page["window"]
    assert document["rows"] == all_pages(client, path, admin.headers)
    actions = export_actions(sql, org.id)[before:]
    assert [(a["target_id"], a["status"], a["metadata"]["format"], a["metadata"]["rowCount"]) for a in actions] == [
        (report, "success", "json-download", expected_rows)]


@pytest.mark.parametrize(("path", "report"), [(DA, "data-access"), (UA, "user-activity")])
def test_csv_and_json_exports_hold_the_same_rows(client, sql, big, path, report):
    org, admin = big
    document = client.get(path, params={**PARAMS, "download": "1"}, headers=admin.headers).json()
    resp = client.get(path, params={**PARAMS, "format": "csv"}, headers=admin.headers)
    assert resp.headers["content-disposition"] == (
        f'attachment; filename="{report}-report-{org.slug}-2026-04-01_2026-04-30.csv"')
    parsed = list(csv.DictReader(io.StringIO(resp.text, newline="")))
    key = ("table_name", "user_id") if report == "data-access" else ("user_id", "total_queries")
    fields = ("tableName", "userId") if report == "data-access" else ("userId", "totalQueries")
    assert [tuple(r[k] for k in key) for r in parsed] == [
        tuple(str(r[f] if r[f] is not None else "") for f in fields) for r in document["rows"]]


def test_json_download_with_filters_and_no_rows(client, sql, big):
    org, admin = big
    filtered = client.get(DA, params={**PARAMS, "download": "1", "table": "t007", "role": "member"},
                          headers=admin.headers).json()
    assert filtered["rows"] == [] and filtered["totalRows"] == 0 and filtered["limit"] == 0
    assert filtered["summary"] == {"totalQueries": 0, "allQueries": 0, "uniqueUsers": 0, "uniqueTables": 0,
                                   "piiTablesAccessed": 0}
    only = client.get(DA, params={**PARAMS, "download": "1", "table": "t007"}, headers=admin.headers).json()
    assert [r["tableName"] for r in only["rows"]] == ["t007"] * USERS and only["summary"]["totalQueries"] == USERS
    assert_error(client.get(DA, params={**PARAMS, "download": "1", "endDate": "2026-02-30"},
                            headers=admin.headers), 400, "invalid_date")


def test_cli_json_report_has_every_row_and_matches_the_api(client, big, cli, tmp_path):  # noqa: F811
    org, admin = big
    target = tmp_path / "da.json"
    out = cli("report", "data-access", "--org", org.slug, "--start", PARAMS["startDate"], "--end",
              PARAMS["endDate"], "--format", "json", "-o", str(target)).output
    assert f"wrote {TABLES * USERS + EXTRA_USERS} rows to" in out  # (Rich wraps the path)
    written = json.loads(target.read_text(encoding="utf-8"))
    api = client.get(DA, params={**PARAMS, "download": "1"}, headers=admin.headers).json()
    assert written["rows"] == api["rows"] and written["summary"] == api["summary"]
    assert written["totalRows"] == len(written["rows"]) == TABLES * USERS + EXTRA_USERS


def test_export_names_carry_the_time_zone_and_filters(client, big):
    """Two exports of different windows or filters never share a file name (issue 19 §4)."""
    org, admin = big
    names = set()
    for extra in ({}, {"tz": "Europe/Paris"}, {"table": "t007"}, {"role": "member"}, {"userId": "u1"},
                  {"table": "t007", "role": "member", "tz": "Asia/Kolkata"}, {"table": "Odd Name/ü"}):
        resp = client.get(DA, params={**PARAMS, "format": "csv", **extra}, headers=admin.headers)
        assert resp.status_code == 200, resp.text
        names.add(resp.headers["content-disposition"])
    assert len(names) == 7
    expected = f"data-access-report-{org.slug}-2026-04-01_2026-04-30-Asia.Kolkata-role-member-table-t007.csv"
    assert f'attachment; filename="{expected}"' in names
    assert all(name.isascii() and " " not in name.split("filename=")[1] for name in names)
