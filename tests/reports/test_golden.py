"""Golden tests: a hand-built audit log, every expected number written by hand (see golden.py)."""

from __future__ import annotations

import pytest

from tests.reports.golden import Golden, build_golden

DA = "/api/v1/admin/compliance/reports/data-access"
UA = "/api/v1/admin/compliance/reports/user-activity"
JAN = {"startDate": "2026-01-01", "endDate": "2026-01-31"}


@pytest.fixture(scope="module")
def golden(client, tmp_path_factory) -> Golden:
    import uuid

    import psycopg

    from atlas_compliance.auth import service as auth
    from tests.conftest import Org, run_service

    def make_org(name: str) -> Org:
        slug = f"golden-{uuid.uuid4().hex[:10]}"
        row = run_service(client, auth.create_organization, slug, name)
        return Org(id=row["id"], slug=row["slug"], name=row["name"], client=client)

    url = client.app.state.settings.database_url
    with psycopg.connect(url, autocommit=True, row_factory=psycopg.rows.dict_row) as sql:
        return build_golden(client, make_org, sql)


def da(client, g: Golden, **params):
    resp = client.get(DA, params={**JAN, **params}, headers=g.alice.headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def ua(client, g: Golden, **params):
    resp = client.get(UA, params={**JAN, **params}, headers=g.alice.headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


def keys(rows):
    return [(r["tableName"], r["userEmail"], r["queryCount"]) for r in rows]


def test_data_access_rows_summary_and_order(client, golden):
    g = golden
    body = da(client, g)
    A, B, C = g.alice.email, g.bob.email, g.carol.email
    assert keys(body["rows"]) == [
        ("orders", A, 3), ("users", A, 2),
        ("orders", B, 1), ("orders", None, 1), ("payments", A, 1), ("payments", C, 1), ("users", B, 1),
    ]
    by_key = {(r["tableName"], r["userEmail"]): r for r in body["rows"]}
    orders_alice = by_key[("orders", A)]
    assert orders_alice["uniqueColumns"] == ["id", "status", "total"]
    assert orders_alice["firstAccess"] == "2026-01-05T10:00:00Z"
    assert orders_alice["lastAccess"] == "2026-01-20T15:45:30Z"
    assert orders_alice["userId"] == g.alice.id and orders_alice["userRole"] == "admin"
    assert orders_alice["hasPII"] is False and orders_alice["piiColumns"] == []  # orders.total was dismissed
    # Columns are credited to their own table (reference bug §7.3).
    assert by_key[("users", A)]["uniqueColumns"] == ["email", "id"]
    assert by_key[("users", A)]["hasPII"] is True and by_key[("users", A)]["piiColumns"] == ["email"]
    assert by_key[("payments", A)]["uniqueColumns"] == ["order_id"]
    assert by_key[("payments", A)]["hasPII"] is True and by_key[("payments", A)]["piiColumns"] == []
    # A row written by another writer with plain SQL, legacy columns_accessed, mixed-case table name.
    assert by_key[("payments", C)]["uniqueColumns"] == ["amount", "id"]
    assert by_key[("payments", C)]["userRole"] == "owner"
    # The query with no user is reported, never dropped (reference bug §7.10).
    no_user = by_key[("orders", None)]
    assert no_user["userId"] is None and no_user["userRole"] is None and no_user["uniqueColumns"] == ["*"]
    # Users' rows: bob's soft-deleted query (users.ssn) is not counted (reference bug §7.8).
    assert by_key[("users", B)]["uniqueColumns"] == ["email"]
    # The late query on the window's last day is included (reference bug §7.6).
    assert by_key[("orders", B)]["lastAccess"] == "2026-01-31T23:30:00Z"
    assert body["summary"] == {"totalQueries": 7, "uniqueUsers": 3, "uniqueTables": 3, "piiTablesAccessed": 2,
                               "allQueries": 8}  # carol's query that touched no table: in all, not in total
    assert body["totalRows"] == 7 and body["truncated"] is False
    assert body["window"] == {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z", "tz": "UTC"}
    assert body["filters"]["startDate"] == "2026-01-01" and body["filters"]["role"] is None
    assert body["generatedAt"].endswith("Z")


def test_user_activity_rows_summary_and_order(client, golden):
    g = golden
    body = ua(client, g)
    rows = [(r["userEmail"], r["totalQueries"], r["tablesAccessed"], r["role"]) for r in body["rows"]]
    assert rows == [
        (g.alice.email, 3, ["orders", "payments", "users"], "admin"),  # 3-table join counts once (§7.1)
        (g.bob.email, 2, ["orders", "users"], "member"),
        (g.carol.email, 2, ["payments"], "owner"),  # includes her query that touched no table
        (None, 1, ["orders"], None),  # queries with no user
        (g.dave.email, 0, [], "member"),  # inactive members are listed (§7.11)
    ]
    by_email = {r["userEmail"]: r for r in body["rows"]}
    assert by_email[g.alice.email]["lastActiveAt"] == "2026-01-20T15:45:30Z"
    # Latest login into *this* org at or before the window's end (§7.12).
    assert by_email[g.alice.email]["lastLoginAt"] == "2026-01-15T08:00:00Z"
    assert by_email[g.dave.email]["lastActiveAt"] is None and by_email[g.dave.email]["lastLoginAt"] is None
    assert body["summary"] == {"totalUsers": 4, "activeUsers": 3, "totalQueries": 8, "tableQueries": 7}
    assert body["totalRows"] == 5


def test_role_filter(client, golden):
    g = golden
    body = da(client, g, role="member")
    assert keys(body["rows"]) == [("orders", g.bob.email, 1), ("users", g.bob.email, 1)]
    assert body["summary"] == {"totalQueries": 2, "uniqueUsers": 1, "uniqueTables": 2, "piiTablesAccessed": 1,
                               "allQueries": 2}
    body = ua(client, g, role="MEMBER")
    assert [(r["userEmail"], r["totalQueries"]) for r in body["rows"]] == [(g.bob.email, 2), (g.dave.email, 0)]
    assert body["summary"] == {"totalUsers": 2, "activeUsers": 1, "totalQueries": 2, "tableQueries": 2}


def test_table_filter_is_normalized_and_restricts_output(client, golden):
    g = golden
    for name in ("ORDERS", "public.orders", '"Orders"'):
        body = da(client, g, table=name)
        assert keys(body["rows"]) == [("orders", g.alice.email, 3), ("orders", g.bob.email, 1), ("orders", None, 1)]
        assert body["summary"]["totalQueries"] == 5 and body["summary"]["uniqueTables"] == 1
    body = ua(client, g, table="Orders")
    assert [(r["userEmail"], r["totalQueries"], r["tablesAccessed"]) for r in body["rows"]] == [
        (g.alice.email, 3, ["orders"]), (g.bob.email, 1, ["orders"]), (None, 1, ["orders"])]
    assert body["summary"] == {"totalUsers": 2, "activeUsers": 2, "totalQueries": 5, "tableQueries": 5}


def test_user_filter(client, golden):
    g = golden
    body = da(client, g, userId=g.bob.id)
    assert keys(body["rows"]) == [("orders", g.bob.email, 1), ("users", g.bob.email, 1)]
    body = ua(client, g, userId=g.dave.id)
    assert [(r["userEmail"], r["totalQueries"]) for r in body["rows"]] == [(g.dave.email, 0)]


def test_time_zone_and_timestamp_windows(client, golden):
    g = golden
    # Jan 31 in New York is [Jan 31 05:00Z, Feb 1 05:00Z): both of bob's late queries.
    body = da(client, g, startDate="2026-01-31", endDate="2026-01-31", tz="America/New_York")
    assert keys(body["rows"]) == [("orders", g.bob.email, 2)]
    assert body["window"] == {"start": "2026-01-31T05:00:00Z", "end": "2026-02-01T05:00:00Z",
                              "tz": "America/New_York"}
    # A timestamp end is inclusive; partial days at both ends are read exactly.
    body = da(client, g, startDate="2026-01-05T10:00:00Z", endDate="2026-01-20T15:45:30Z")
    assert keys(body["rows"])[:2] == [("orders", g.alice.email, 3), ("users", g.alice.email, 2)]
    body = da(client, g, startDate="2026-01-05T10:00:01Z", endDate="2026-01-20T15:45:29Z")
    assert ("orders", g.alice.email, 1) in keys(body["rows"])
    # Offset-less timestamps are read in tz: 05:00 in UTC+1 is 04:00Z, so nothing before 10:00Z on Jan 5.
    body = da(client, g, startDate="2026-01-05T11:00:00", endDate="2026-01-05T11:00:00", tz="Europe/Paris")
    assert keys(body["rows"]) == [("orders", g.alice.email, 1), ("users", g.alice.email, 1)]


def test_paging_and_truncation(client, golden):
    g = golden
    first = da(client, g, limit=3)
    assert first["totalRows"] == 7 and first["truncated"] is True and len(first["rows"]) == 3
    rest = da(client, g, limit=3, offset=3)
    last = da(client, g, limit=3, offset=6)
    assert len(rest["rows"]) == 3 and len(last["rows"]) == 1 and last["truncated"] is False
    everything = da(client, g)
    assert first["rows"] + rest["rows"] + last["rows"] == everything["rows"]
    assert first["summary"] == everything["summary"]  # summaries always cover the full result
    beyond = da(client, g, offset=100)
    assert beyond["rows"] == [] and beyond["totalRows"] == 7 and beyond["summary"] == everything["summary"]


def test_other_org_never_sees_these_rows(client, golden):
    g = golden
    admin = g.other.add_user("admin")
    body = client.get(DA, params=JAN, headers=admin.headers).json()
    # The other org wrote one row claiming alice's user id: it sees that row only, without alice's
    # email or role (she is not its member), and its own classification.
    assert [(r["tableName"], r["userId"], r["userEmail"], r["userRole"]) for r in body["rows"]] == [
        ("orders", g.alice.id, None, None), ("users", g.alice.id, None, None)]
    assert body["summary"] == {"totalQueries": 1, "uniqueUsers": 1, "uniqueTables": 2, "piiTablesAccessed": 1,
                               "allQueries": 1}
    orders = body["rows"][0]
    assert orders["uniqueColumns"] == ["card", "id"] and orders["piiColumns"] == ["id"]
    activity = client.get(UA, params=JAN, headers=admin.headers).json()
    assert [(r["userId"], r["totalQueries"]) for r in activity["rows"]] == [(g.alice.id, 1), (admin.id, 0)]
