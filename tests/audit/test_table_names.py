"""One table-name rule (issue 16): Python's `normalize_table_name` and the SQL function
`atlas_normalize_table` (used for rows other writers insert with plain SQL) agree on every name of
`fixtures/table_names.tsv`, and a row stored either way lands in the same report row."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from atlas_compliance.audit.names import normalize_table_name, short_table_name

FIXTURE = Path(__file__).parent / "fixtures" / "table_names.tsv"
_ESCAPES = {"t": "\t", "n": "\n", "\\": "\\"}


def _unescape(field: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), field)


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for line in FIXTURE.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip("\n"):
            continue
        raw, expected, why = line.split("\t")
        cases.append((_unescape(raw), _unescape(expected), why))
    return cases


CASES = _cases()
LONG = ["x" * 600, "Prod.Public." + "P" * 700, "a." * 300 + "b"]


def test_fixture_covers_the_issue_cases():
    names = {raw for raw, _, _ in CASES}
    assert {"DB.public.Orders", "prod.public.patients", "staging.public.patients", "a.b.c.d"} <= names
    assert len(CASES) >= 35


@pytest.mark.parametrize(("raw", "expected", "why"), CASES, ids=[c[2] for c in CASES])
def test_python_normalizer(raw, expected, why):
    assert normalize_table_name(raw) == expected, why
    assert normalize_table_name(expected) == expected, "idempotent"


def test_sql_normalizer_agrees_on_every_name(sql):
    inputs = [raw for raw, _, _ in CASES] + LONG
    rows = sql.execute("SELECT n, atlas_normalize_table(n) AS got FROM unnest(%s::text[]) WITH ORDINALITY u(n, i) "
                       "ORDER BY i", (inputs,)).fetchall()
    got = [r["got"] for r in rows]
    assert got == [normalize_table_name(n) for n in inputs]
    assert got[:len(CASES)] == [expected for _, expected, _ in CASES]
    again = sql.execute("SELECT array_agg(atlas_normalize_table(n) ORDER BY i) AS a "
                        "FROM unnest(%s::text[]) WITH ORDINALITY u(n, i)", (got,)).fetchone()["a"]
    assert again == got


def test_short_form():
    assert short_table_name("prod.public.patients") == "patients"
    assert short_table_name("prod.crm.customers") == "crm.customers"
    assert short_table_name("crm.customers") == "crm.customers"
    assert short_table_name("a.b.c.d") == "a.b.c.d"


def test_plain_sql_row_and_api_row_land_in_one_report_row(client, org, sql):
    """The issue's case: `DB.public.Orders` written by plain SQL and by the API is one table; the
    same table in another database is another row; `table=` finds the short and qualified forms."""
    admin = org.add_user("admin")
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    events = [
        {"eventId": "n1", "timestamp": "2026-03-02T10:00:00Z", "userId": admin.id,
         "sql": "SELECT id FROM DB.public.Orders"},
        {"eventId": "n2", "timestamp": "2026-03-02T10:01:00Z", "userId": admin.id,
         "sql": "SELECT ssn FROM prod.public.patients"},
        {"eventId": "n3", "timestamp": "2026-03-02T10:02:00Z", "userId": admin.id,
         "sql": "SELECT ssn FROM staging.public.patients"},
        {"eventId": "n4", "timestamp": "2026-03-02T10:03:00Z", "userId": admin.id,
         "sql": "SELECT ssn FROM patients"},
        {"eventId": "n5", "timestamp": "2026-03-02T10:04:00Z", "userId": admin.id,
         "sql": "SELECT ssn FROM prod.patients"},
    ]
    resp = client.post("/api/v1/audit/events", json=events, headers=key)
    assert resp.status_code == 200, resp.text
    assert resp.json()["inserted"] == 5, resp.text
    sql.execute(
        "INSERT INTO audit_log (org_id, \"timestamp\", user_id, auth_mode, sql, duration_ms, success, tables_accessed, "
        "columns_accessed, columns_by_table) VALUES (%s, '2026-03-02T11:00:00Z', %s, 'managed', "
        "'SELECT total FROM DB.public.Orders', 1, true, '[\"DB.public.Orders\"]', '[\"total\"]', "
        "'{\"DB.\\\"public\\\".Orders\": [\"total\"]}')", (org.id, admin.id))
    report = "/api/v1/admin/compliance/reports/data-access"
    window = {"startDate": "2026-03-01", "endDate": "2026-03-31"}

    def rows(**params):
        resp = client.get(report, params={**window, **params}, headers=admin.headers)
        assert resp.status_code == 200, resp.text
        return {r["tableName"]: (r["queryCount"], r["uniqueColumns"]) for r in resp.json()["rows"]}, resp.json()

    everything, _ = rows()
    assert everything == {
        "db.public.orders": (2, ["id", "total"]),
        "prod.public.patients": (1, ["ssn"]),
        "staging.public.patients": (1, ["ssn"]),
        "patients": (1, ["ssn"]),
        "prod.patients": (1, ["ssn"]),
    }
    short, body = rows(table="Patients")
    assert short == {k: everything[k] for k in ("patients", "prod.public.patients", "staging.public.patients")}
    assert body["filters"]["table"] == "patients"
    assert body["summary"]["totalQueries"] == 3
    assert rows(table="public.patients")[0] == short
    assert rows(table="PROD.public.patients")[0] == {"prod.public.patients": (1, ["ssn"])}
    assert rows(table="prod.patients")[0] == {"prod.patients": (1, ["ssn"])}
    assert rows(table="orders")[0] == {"db.public.orders": (2, ["id", "total"])}
    activity = client.get("/api/v1/admin/compliance/reports/user-activity", params={**window, "table": "patients"},
                          headers=admin.headers).json()["rows"]
    assert [(r["userId"], r["totalQueries"], r["tablesAccessed"]) for r in activity] == [
        (admin.id, 3, ["patients", "prod.public.patients", "staging.public.patients"])]
    _, echoed = rows(table="a.b.c.d")
    assert echoed["filters"]["table"] == "a.b.c.d"
    assert echoed["rows"] == []


def test_pii_classified_under_the_short_name_flags_the_three_part_name(client, org):
    """Scans name tables without their database: `prod.public.patients` read through a query is the
    classified `patients` for PII (row flags and the summary's PII table count)."""
    admin = org.add_user("admin")
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    detections = [{"tableName": "patients", "columnName": "ssn", "category": "ssn"},
                  {"tableName": "crm.customers", "columnName": "email", "category": "email"}]
    resp = client.post("/api/v1/admin/compliance/classifications", json={"detections": detections},
                       headers=admin.headers)
    assert resp.status_code == 200, resp.text
    events = [{"eventId": f"p{i}", "timestamp": "2026-03-02T10:00:00Z", "userId": admin.id, "sql": sql}
              for i, sql in enumerate(["SELECT ssn, name FROM prod.public.patients",
                                       "SELECT email FROM prod.crm.customers",
                                       "SELECT ssn FROM prod.other.patients"])]
    assert client.post("/api/v1/audit/events", json=events, headers=key).json()["inserted"] == 3
    body = client.get("/api/v1/admin/compliance/reports/data-access",
                      params={"startDate": "2026-03-01", "endDate": "2026-03-31"}, headers=admin.headers).json()
    rows = {r["tableName"]: (r["hasPII"], r["piiColumns"]) for r in body["rows"]}
    assert rows == {"prod.public.patients": (True, ["ssn"]), "prod.crm.customers": (True, ["email"]),
                    "prod.other.patients": (False, [])}
    assert body["summary"]["piiTablesAccessed"] == 2
