"""Report endpoints: roles, validation (documented 4xx, never 500), CSV, admin action records."""

from __future__ import annotations

import csv
import io

import pytest

from tests.conftest import assert_error

DA = "/api/v1/admin/compliance/reports/data-access"
UA = "/api/v1/admin/compliance/reports/user-activity"
PARAMS = {"startDate": "2026-01-01", "endDate": "2026-03-01"}


def _seed(client, org, events):
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    assert client.post("/api/v1/audit/events", json=events, headers=key).status_code == 200


@pytest.mark.parametrize("path", [DA, UA])
def test_roles(client, org, make_org, path):
    _seed(client, org, [{"sql": "q", "timestamp": "2026-02-01T00:00:00Z", "tablesAccessed": ["t"]}])
    for role in ("owner", "admin"):
        member = org.add_user(role)
        assert client.get(path, params=PARAMS, headers=member.headers).status_code == 200
        pat = {"Authorization": f"Bearer {org.personal_token(member)}"}
        assert client.get(path, params=PARAMS, headers=pat).status_code == 200
    assert_error(client.get(path, params=PARAMS, headers=org.add_user("member").headers), 403, "forbidden_role")
    assert_error(client.get(path, params=PARAMS, headers={"Authorization": f"Bearer {org.ingest_key()}"}), 403)
    assert_error(client.get(path, params=PARAMS), 401)
    other = make_org().add_user("admin")
    body = client.get(path, params=PARAMS, headers=other.headers).json()
    assert body["summary"]["totalQueries"] == 0


BAD_VALUES = [
    ({"startDate": "2026"}, 400, "invalid_date", "startDate"),
    ({"startDate": "2026-03"}, 400, "invalid_date", "startDate"),
    ({"startDate": "1"}, 400, "invalid_date", "startDate"),
    ({"startDate": "foo 2026"}, 400, "invalid_date", "startDate"),
    ({"startDate": "2026-02-30"}, 400, "invalid_date", "startDate"),
    ({"startDate": "0000-01-01"}, 400, "invalid_date", "startDate"),
    ({"startDate": "1e10"}, 400, "invalid_date", "startDate"),
    ({"endDate": "not-a-date"}, 400, "invalid_date", "endDate"),
    ({"endDate": "2026-13-01"}, 400, "invalid_date", "endDate"),
    ({"startDate": "2026-03-02", "endDate": "2026-03-01"}, 400, "invalid_range", "startDate"),
    ({"tz": "Mars/Olympus"}, 400, "invalid_tz", "tz"),
    ({"tz": "../../etc/passwd"}, 400, "invalid_tz", "tz"),
    ({"role": "superuser"}, 400, "invalid_role", "role"),
    ({"role": "admin,member"}, 400, "invalid_role", "role"),
    ({"limit": "0"}, 400, "invalid_limit", "limit"),
    ({"limit": "10001"}, 400, "invalid_limit", "limit"),
    ({"limit": "99999999999999999999"}, 400, "invalid_limit", "limit"),
    ({"offset": "-1"}, 400, "invalid_offset", "offset"),
    ({"offset": "1e10"}, 422, "validation_error", "offset"),
    ({"format": "xml"}, 422, "validation_error", "format"),
]


@pytest.mark.parametrize(("override", "status", "code", "names"), BAD_VALUES,
                         ids=["&".join(f"{k}={v}" for k, v in o.items()) for o, *_ in BAD_VALUES])
def test_bad_input_is_a_clear_4xx_and_records_nothing(client, org, sql, override, status, code, names):
    admin = org.add_user("admin")
    before = sql.execute("SELECT count(*) AS n FROM admin_action_log WHERE org_id = %s", (org.id,)).fetchone()["n"]
    body = assert_error(client.get(DA, params={**PARAMS, **override}, headers=admin.headers), status, code)
    assert names in body["message"]
    if status == 400:
        assert "e.g." in body["message"]  # shows an accepted example
    after = sql.execute("SELECT count(*) AS n FROM admin_action_log WHERE org_id = %s", (org.id,)).fetchone()["n"]
    assert after == before


@pytest.mark.parametrize("missing", ["startDate", "endDate"])
def test_missing_dates_are_422(client, org, missing):
    admin = org.add_user("admin")
    params = {k: v for k, v in PARAMS.items() if k != missing}
    body = assert_error(client.get(UA, params=params, headers=admin.headers), 422, "validation_error")
    assert missing in body["message"]


def test_csv_matches_json_and_is_guarded(client, org, sql):
    admin = org.add_user("admin")
    _seed(client, org, [
        {"sql": "q1", "timestamp": "2026-02-01T10:00:00Z", "userId": admin.id,
         "columnsByTable": {"=cmd|' /C calc'!A0": ["a,b", 'say "hi"'], "orders": ["id"]}},
        {"sql": "q2", "timestamp": "2026-02-02T10:00:00Z", "userId": "+1@evil.example",
         "columnsByTable": {"orders": ["total", "-x"]}},
        {"sql": "q3", "timestamp": "2026-02-03T10:00:00Z", "userId": "  @SUM(1)", "tablesAccessed": ["orders"]},
    ])
    json_body = client.get(DA, params=PARAMS, headers=admin.headers).json()
    resp = client.get(DA, params={**PARAMS, "format": "csv"}, headers=admin.headers)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    assert resp.headers["content-disposition"] == (
        f'attachment; filename="data-access-report-{org.slug}-2026-01-01_2026-03-01.csv"')
    raw = resp.content.decode("utf-8")
    assert raw.startswith("table_name,user_id,user_email,user_role,query_count,unique_columns,has_pii,"
                          "first_access,last_access,pii_columns,user_label\r\n")
    assert raw.endswith("\r\n") and "\n" not in raw.replace("\r\n", "")
    parsed = list(csv.DictReader(io.StringIO(raw, newline="")))
    assert len(parsed) == len(json_body["rows"]) == json_body["totalRows"] == 4

    def unguard(value: str) -> str:
        return value[1:] if value.startswith("'") else value

    for row, expected in zip(parsed, json_body["rows"], strict=True):
        assert unguard(row["table_name"]) == expected["tableName"]
        assert unguard(row["user_id"]) == (expected["userId"] or "")
        assert int(row["query_count"]) == expected["queryCount"]
        assert unguard(row["unique_columns"]) == "; ".join(expected["uniqueColumns"])
        assert row["has_pii"] == str(expected["hasPII"]).lower()
        assert row["first_access"] == expected["firstAccess"]
    guarded = {r["table_name"] for r in parsed} | {r["user_id"] for r in parsed}
    assert "'=cmd|' /c calc'!a0" in guarded  # table names are normalized to lowercase and "'+1@evil.example" in guarded and "'  @SUM(1)" in guarded
    ua_csv = client.get(UA, params={**PARAMS, "format": "csv"}, headers=admin.headers)
    assert ua_csv.content.decode().startswith(
        "user_id,user_email,role,total_queries,tables_accessed,last_active_at,last_login_at,user_label\r\n")
    assert 'filename="user-activity-report-' in ua_csv.headers["content-disposition"]


def test_json_download_and_admin_action_log(client, org, sql):
    admin = org.add_user("admin")
    _seed(client, org, [{"sql": "q", "timestamp": "2026-02-01T00:00:00Z", "tablesAccessed": ["t"]}])
    resp = client.get(DA, params={**PARAMS, "download": "1", "role": "admin"}, headers=admin.headers)
    assert resp.headers["content-disposition"].endswith('-2026-01-01_2026-03-01-role-admin.json"')
    client.get(UA, params={**PARAMS, "format": "csv"}, headers=admin.headers)
    rows = sql.execute("SELECT actor_id, actor_email, action_type, target_id, metadata FROM admin_action_log "
                       "WHERE org_id = %s ORDER BY \"timestamp\"", (org.id,)).fetchall()
    assert [(r["action_type"], r["target_id"]) for r in rows] == [
        ("compliance.report_export", "data-access"), ("compliance.report_export", "user-activity")]
    assert rows[0]["actor_id"] == admin.id and rows[0]["actor_email"] == admin.email
    assert rows[0]["metadata"]["format"] == "json-download" and rows[0]["metadata"]["filters"]["role"] == "admin"
    assert rows[0]["metadata"]["rowCount"] == 0
    assert rows[1]["metadata"]["format"] == "csv" and rows[1]["metadata"]["rowCount"] == 2  # admin + no-user row


def test_spec_curl_examples(client, org):
    """The spec's examples: GET with startDate/endDate and a Bearer token, JSON and CSV."""
    admin = org.add_user("admin")
    _seed(client, org, [{"sql": "q", "timestamp": "2026-02-01T00:00:00Z", "userId": admin.id,
                         "columnsByTable": {"orders": ["id"]}}])
    headers = {"Authorization": f"Bearer {admin.token}"}
    da = client.get(f"{DA}?startDate=2026-01-01&endDate=2026-03-01", headers=headers)
    assert da.status_code == 200
    row = da.json()["rows"][0]
    assert set(row) >= {"tableName", "userId", "userEmail", "userRole", "queryCount", "uniqueColumns", "hasPII",
                        "firstAccess", "lastAccess"}
    assert set(da.json()) >= {"rows", "summary", "filters", "generatedAt"}
    assert set(da.json()["summary"]) == {"totalQueries", "allQueries", "uniqueUsers", "uniqueTables",
                                        "piiTablesAccessed"}
    ua = client.get(f"{UA}?startDate=2026-01-01&endDate=2026-03-01", headers=headers)
    assert set(ua.json()["rows"][0]) >= {"userId", "userEmail", "role", "totalQueries", "tablesAccessed",
                                         "lastActiveAt", "lastLoginAt"}
    csv_resp = client.get(f"{DA}?startDate=2026-01-01&endDate=2026-03-01&format=csv", headers=headers)
    assert csv_resp.status_code == 200 and "attachment" in csv_resp.headers["content-disposition"]
