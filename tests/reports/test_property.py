"""Property: for random audit logs, windows and filters, both reports equal a brute-force Python
computation of DESIGN §5."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings, target
from hypothesis import strategies as st

from atlas_compliance.auth import service as auth
from tests.conftest import run_service

DA = "/api/v1/admin/compliance/reports/data-access"
UA = "/api/v1/admin/compliance/reports/user-activity"
TABLES = ["alpha", "beta", "gamma"]
COLUMNS = ["a", "b", "c", "*"]
ROLES = {"m1": "admin", "m2": "member", "m3": "owner"}
BASE = datetime(2026, 1, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def people(client):
    """Three users created once; each example adds them to a fresh organization."""
    seed = uuid.uuid4().hex[:8]
    org = run_service(client, auth.create_organization, f"prop-{seed}", "Property")
    found = {}
    for key, role in ROLES.items():
        user = run_service(client, auth.create_user, email=f"{key}-{seed}@prop.example", password="password-123",
                           org_slug=org["slug"], role=role)
        found[key] = (user["id"], user["email"])
    admin_token = client.post("/api/v1/auth/login", json={"email": found["m1"][1], "password": "password-123",
                                                           "org": org["slug"]})
    assert admin_token.status_code == 200
    return found


def bounds(w):
    zone = ZoneInfo(w["tz"])
    start_day = (BASE + timedelta(days=w["start_day"])).date()
    end_day = start_day + timedelta(days=w["span"])
    if w["start_hour"] is None:
        start_text, start = start_day.isoformat(), datetime.combine(start_day, time(0), zone)
    else:
        start = datetime.combine(start_day, time(w["start_hour"]), zone)
        start_text = start.replace(tzinfo=None).isoformat()
    if w["end_hour"] is None:
        end_text, end = end_day.isoformat(), datetime.combine(end_day + timedelta(days=1), time(0), zone)
    else:
        inclusive = datetime.combine(end_day, time(w["end_hour"]), zone)
        end_text, end = inclusive.replace(tzinfo=None).isoformat(), inclusive + timedelta(microseconds=1)
    return start_text, end_text, start.astimezone(UTC), end.astimezone(UTC)


def iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def brute_force(events, people, f, start, end):
    uid = {k: v[0] for k, v in people.items()}
    email = {v[0]: v[1] for v in people.values()}
    role_of = {uid[k]: r for k, r in ROLES.items()}
    table = f["table"].lower().removeprefix("public.") if f["table"] else None
    user = uid.get(f["user"], f["user"]) if f["user"] else None
    # An id that never was a member shows the label of its latest labelled, counted query before the
    # window's end (any filter, any start); the later time wins, then the greater label.
    latest: dict = {}
    for e in events:
        u = uid.get(e["user"], e["user"]) if e["user"] else None
        if u is None or u in role_of or e["label"] is None or not e["success"] or e["deleted"] or e["ts"] >= end:
            continue
        latest[u] = max(latest.get(u, (e["ts"], e["label"])), (e["ts"], e["label"]))
    label_of = {u: found[1] for u, found in latest.items()}
    counted = []
    for e in events:
        u = uid.get(e["user"], e["user"]) if e["user"] else None
        if not e["success"] or e["deleted"] or not (start <= e["ts"] < end):
            continue
        if user is not None and u != user:
            continue
        if f["role"] is not None and role_of.get(u) != f["role"]:
            continue
        counted.append((u, e))
    pairs: dict = {}
    for u, e in counted:
        for t, cols in e["tables"].items():
            if table is not None and t != table:
                continue
            p = pairs.setdefault((t, u), {"n": 0, "cols": set(), "first": e["ts"], "last": e["ts"]})
            p["n"] += 1
            p["cols"] |= set(cols)
            p["first"], p["last"] = min(p["first"], e["ts"]), max(p["last"], e["ts"])
    da_rows = [{
        "tableName": t, "userId": u, "userEmail": email.get(u), "userLabel": label_of.get(u),
        "userRole": role_of.get(u), "queryCount": p["n"],
        "uniqueColumns": sorted(p["cols"]), "hasPII": t == "alpha",
        "piiColumns": (["a"] if ("a" in p["cols"] or "*" in p["cols"]) else []) if t == "alpha" else [],
        "firstAccess": iso(p["first"]), "lastAccess": iso(p["last"])} for (t, u), p in pairs.items()]
    da_rows.sort(key=lambda r: (-r["queryCount"], r["tableName"], r["userEmail"] is None, r["userEmail"] or "",
                                r["userId"] is None, r["userId"] or ""))
    with_tables = [(u, e) for u, e in counted if (e["tables"] if table is None else table in e["tables"])]
    da_summary = {"totalQueries": len(with_tables), "allQueries": len(counted if table is None else with_tables),
                  "uniqueUsers": len({u for (_, u) in pairs if u is not None}),
                  "uniqueTables": len({t for (t, _) in pairs}),
                  "piiTablesAccessed": int(any(t == "alpha" for (t, _) in pairs))}
    per_user: dict = {}
    for u, e in (with_tables if table is not None else counted):
        s = per_user.setdefault(u, {"n": 0, "tables": set(), "last": e["ts"]})
        s["n"] += 1
        s["tables"] |= {t for t in e["tables"] if table is None or t == table}
        s["last"] = max(s["last"], e["ts"])
    if table is None:
        for key in ROLES:
            member = uid[key]
            if (user is None or member == user) and (f["role"] is None or ROLES[key] == f["role"]):
                per_user.setdefault(member, {"n": 0, "tables": set(), "last": None})
    ua_rows = [{"userId": u, "userEmail": email.get(u), "userLabel": label_of.get(u), "role": role_of.get(u),
                "totalQueries": s["n"],
                "tablesAccessed": sorted(s["tables"]), "lastActiveAt": iso(s["last"]), "lastLoginAt": None}
               for u, s in per_user.items()]
    ua_rows.sort(key=lambda r: (-r["totalQueries"], r["userEmail"] is None, r["userEmail"] or "",
                                r["userId"] is None, r["userId"] or ""))
    ua_summary = {"totalUsers": sum(1 for r in ua_rows if r["userId"] is not None),
                  "activeUsers": sum(1 for r in ua_rows if r["userId"] is not None and r["totalQueries"] > 0),
                  "totalQueries": sum(r["totalQueries"] for r in ua_rows), "tableQueries": len(with_tables)}
    return da_rows, da_summary, ua_rows, ua_summary


# Every example carries data (issue 23): the strategies below build, for a drawn window and filters, one
# "anchor" event that the window and every filter keep, so the Data Access Report of each example has at
# least one row and no example compares an empty answer with an empty answer. The other events fall
# anywhere in the three weeks, as before. COVERED records each example's row count; the last test of this
# module checks it. Measured in one run (40 examples): every example had 1 to 6 Data Access rows, 163 in
# all, and 61% had a row of queries without a user (the row a uniqueUsers bug would count).
MINUTES = 21 * 24 * 60
USERS = ["m1", "m2", "m3", "x1", None]
tables_st = st.dictionaries(st.sampled_from(TABLES), st.lists(st.sampled_from(COLUMNS), max_size=3, unique=True),
                            max_size=3)


def event_st(first: int, last: int):
    """An event; most fall in the window's minutes [first, last], the rest anywhere in the three weeks."""
    return st.fixed_dictionaries({
        "user": st.sampled_from(USERS),
        "tables": tables_st,
        "minute": st.integers(first, last) | st.integers(first, last) | st.integers(0, MINUTES - 1),
        "success": st.booleans() | st.just(True),
        "deleted": st.integers(0, 9).map(lambda n: n == 0),
        "label": st.none() | st.sampled_from(["svc-a", "svc-b"]),
    })


window_st = st.fixed_dictionaries({
    "start_day": st.integers(0, 8), "span": st.integers(0, 14),
    "start_hour": st.none() | st.integers(0, 23), "end_hour": st.none() | st.integers(0, 23),
    "tz": st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"]),
}).filter(lambda w: bounds(w)[2] < bounds(w)[3])  # an end before the start is test_end_before_start's case
COVERED: list[int] = []  # Data Access rows of each example run


@st.composite
def filter_st(draw):
    """Filters some member or id can pass: a user filter's role filter is that user's role."""
    user = draw(st.none() | st.sampled_from(["m1", "m2", "x1"]))
    roles = ["owner", "admin", "member"] if user is None else [ROLES[user]] if user in ROLES else []
    return {"user": user, "role": draw(st.none() | st.sampled_from(roles)) if roles else None,
            "table": draw(st.none() | st.sampled_from(["alpha", "BETA", "public.gamma"]))}


@st.composite
def example_st(draw):
    """A window, filters, and events of which at least one (the anchor) is counted under both."""
    window, filters = draw(window_st), draw(filter_st())
    _, _, start, end = bounds(window)
    first = max(0, math.ceil((start - BASE).total_seconds() / 60))
    last = min(MINUTES, math.ceil((end - BASE).total_seconds() / 60)) - 1
    if filters["user"]:
        user = filters["user"]
    elif filters["role"]:
        user = next(key for key, role in ROLES.items() if role == filters["role"])
    else:
        user = draw(st.sampled_from(USERS))
    tables = draw(tables_st)
    if filters["table"]:
        tables[filters["table"].lower().removeprefix("public.")] = draw(
            st.lists(st.sampled_from(COLUMNS), max_size=3, unique=True))
    elif not tables:
        tables[draw(st.sampled_from(TABLES))] = []
    anchor = {"user": user, "tables": tables, "minute": draw(st.integers(first, last)), "success": True,
              "deleted": False, "label": draw(st.none() | st.sampled_from(["svc-a", "svc-b"]))}
    events = draw(st.lists(event_st(first, last), min_size=5, max_size=39))
    events.insert(draw(st.integers(0, len(events))), anchor)
    return window, filters, events


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(example=example_st())
def test_reports_equal_brute_force(client, people, example):
    window, filters, events = example
    for e in events:
        e["ts"] = BASE + timedelta(minutes=e["minute"])
    start_text, end_text, start, end = bounds(window)
    da_rows, da_summary, ua_rows, ua_summary = brute_force(events, people, filters, start, end)
    assert da_rows, "the anchor event gives every example a Data Access row"
    COVERED.append(len(da_rows))
    target(float(len(da_rows)), label="data-access rows")
    event(f"data-access rows: {'1' if len(da_rows) == 1 else '2-9' if len(da_rows) < 10 else '10+'}")
    event(f"no-user row: {any(r['userId'] is None for r in da_rows)}")
    slug = f"p-{uuid.uuid4().hex[:10]}"
    org = run_service(client, auth.create_organization, slug, "P")
    for key, role in ROLES.items():
        run_service(client, auth.add_member, email=people[key][1], org_slug=slug, role=role)
    admin_login = client.post("/api/v1/auth/login", json={"email": people["m1"][1], "password": "password-123",
                                                          "org": slug})
    headers = {"Authorization": f"Bearer {admin_login.json()['token']}"}
    uid = {k: v[0] for k, v in people.items()}
    payload = []
    for i, e in enumerate(events):
        payload.append({"eventId": f"p{i}", "sql": f"q{i}", "timestamp": iso(e["ts"]), "success": e["success"],
                        "userId": uid.get(e["user"], e["user"]) if e["user"] else None, "userLabel": e["label"],
                        "columnsByTable": e["tables"], "tablesAccessed": sorted(e["tables"])})
    key = {"Authorization": f"Bearer {run_service(client, auth.create_ingest_key, org_slug=slug, name='k')['token']}"}
    assert client.post("/api/v1/audit/events", json=payload, headers=key).json()["inserted"] == len(payload)
    deleted = [f"p{i}" for i, e in enumerate(events) if e["deleted"]]
    url = client.app.state.settings.database_url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO pii_column_classifications (org_id, table_name, column_name, category) "
                     "VALUES (%s, 'alpha', 'a', 'email')", (org["id"],))
        if deleted:
            with conn.transaction():
                conn.execute("SET LOCAL atlas.owner_write = 'on'")
                conn.execute("UPDATE audit_log SET deleted_at = now() WHERE org_id = %s AND event_id = ANY(%s)",
                             (org["id"], deleted))
    params = {"startDate": start_text, "endDate": end_text, "tz": window["tz"]}
    params.update({k: v for k, v in (("userId", uid.get(filters["user"], filters["user"])),
                                     ("role", filters["role"]), ("table", filters["table"])) if v})
    da = client.get(DA, params=params, headers=headers).json()
    assert da["rows"] == da_rows
    assert da["summary"] == da_summary and da["totalRows"] == len(da_rows)
    ua = client.get(UA, params=params, headers=headers).json()
    assert ua["rows"] == ua_rows
    assert ua["summary"] == ua_summary


def test_end_before_start_in_the_windows_zone(client, people):
    """A window whose end hour comes before its start hour on the same day is refused, not empty."""
    slug = f"p-{uuid.uuid4().hex[:10]}"
    run_service(client, auth.create_organization, slug, "P")
    run_service(client, auth.add_member, email=people["m1"][1], org_slug=slug, role="admin")
    login = client.post("/api/v1/auth/login", json={"email": people["m1"][1], "password": "password-123",
                                                    "org": slug})
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    params = {"startDate": "2026-01-12T10:00:00", "endDate": "2026-01-12T09:00:00", "tz": "Asia/Kolkata"}
    resp = client.get(DA, params=params, headers=headers)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_range"


def test_every_example_carried_data():
    """Runs after the property test (module order): each of its examples had Data Access rows."""
    if not COVERED:
        pytest.skip("the property test did not run in this session")
    # Measured: 163 rows over 40 examples. A total is not asserted: after a failure, hypothesis's
    # shrunk examples (few rows each) are recorded too.
    assert min(COVERED) >= 1 and max(COVERED) >= 3, COVERED
