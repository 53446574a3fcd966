"""Tenant isolation: several organizations that share users, user ids, event ids, table and column names.

Each hypothesis example builds three fresh organizations. The same three people belong to each of them with
a random role (or not at all), each org has its own admin whose user id also turns up in the other orgs'
audit rows, every org sends event ids e0, e1, ... against the same tables, classifies its own random set of
columns as PII and has its own logins. One org may purge its whole trail through retention. Then, for a
random window and random filters, every read endpoint is asked by every org's admin, and each answer must
be exactly what that org's own data gives (computed here from DESIGN §5), never a row, count, email, role,
login or classification of another org:

- both reports as JSON, as a JSON download and as CSV parsed back;
- the console's daily volume chart;
- classifications (listing, and editing or deleting another org's classification by id: 404, unchanged);
- hash-chain verification, retention policy and purge, member listing.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
import uuid
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from atlas_compliance.auth import service as auth
from tests.conftest import assert_error, run_service

REPORTS = "/api/v1/admin/compliance/reports/"
CLASSIFICATIONS = "/api/v1/admin/compliance/classifications"
EVIDENCE = "/api/v1/admin/compliance/evidence"
RETENTION = "/api/v1/admin/audit/retention"
ORGS = 3
TABLES = ("patients", "invoices", "staff")
SHARED_COLUMNS = ("id", "email", "ssn", "*")
PII_CANDIDATES = (("patients", "email", "email"), ("patients", "ssn", "ssn"), ("invoices", "id", "other"),
                  ("staff", "email", "email"))
JAN = datetime(2026, 1, 1, tzinfo=UTC)
LATE_END = "2026-12-31"  # a window end after today's logins... and after every January event


@pytest.fixture(scope="module")
def people(client) -> dict[str, tuple[str, str]]:
    """Users created once (password hashing is slow): u0..u2 join every org, a<k> administers org k."""
    seed = uuid.uuid4().hex[:8]
    home = run_service(client, auth.create_organization, f"iso-home-{seed}", "Isolation home")
    found = {}
    for key in [f"u{i}" for i in range(3)] + [f"a{k}" for k in range(ORGS)]:
        user = run_service(client, auth.create_user, email=f"{key}-{seed}@iso.example",
                           password="password-" + secrets.token_hex(4), org_slug=home["slug"], role="member")
        found[key] = (user["id"], user["email"])
    return found


def iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").removesuffix(".000000") + "Z"


MINUTES = 28 * 24 * 60
EVENT_USERS = ["u0", "u1", "u2", "a0", "a1", "a2", "svc-etl", None]


def event_st(k: int, first: int, last: int):
    """An event of org k; most fall in the window's minutes [first, last], the rest anywhere in four weeks."""
    return st.fixed_dictionaries({
        "user": st.sampled_from(EVENT_USERS),
        "tables": st.dictionaries(st.sampled_from(TABLES),
                                  st.lists(st.sampled_from(SHARED_COLUMNS + (f"only{k}",)), max_size=3, unique=True),
                                  max_size=3),
        "minute": st.integers(first, last) | st.integers(first, last) | st.integers(0, MINUTES - 1),
        "success": st.booleans() | st.just(True),
    })


org_st = st.fixed_dictionaries({
    "roles": st.lists(st.sampled_from([None, "owner", "admin", "member"]), min_size=3, max_size=3),
    "pii": st.sets(st.sampled_from(PII_CANDIDATES)),
    "logins": st.lists(st.tuples(st.sampled_from(["u0", "u1", "u2"]), st.integers(0, 40 * 24 * 60)), max_size=3),
})


@st.composite
def query_st(draw):
    """A window and filters some member or id can pass: a role filter comes with a user of the u* kind only.
    Each filter is left out more often than not, so that answers have several rows."""
    user = draw(st.sampled_from([None, None, None, None, "u0", "u1", "a0", "svc-etl"]))
    roles = ["owner", "admin", "member"] if user in (None, "u0", "u1") else []
    return {"start_day": draw(st.integers(0, 20)), "span": draw(st.integers(0, 20)), "late_end": draw(st.booleans()),
            "user": user, "role": draw(st.sampled_from([None] * 5 + roles)) if roles else None,
            "table": draw(st.sampled_from([None, None, None, "patients", "INVOICES", "public.staff"]))}


def window_minutes(q) -> tuple[int, int]:
    """The first and last whole minute (from JAN, within the events' four weeks) of the query's window."""
    first = q["start_day"] * 24 * 60
    return first, MINUTES - 1 if q["late_end"] else min(MINUTES, first + (q["span"] + 1) * 24 * 60) - 1


@st.composite
def org_events_st(draw, k: int, q):
    """Org k's spec and events, one of which (the anchor) every filter of q keeps: every org has data.

    A role filter makes the anchor's user a member with that role in this org. Without a user or role
    filter a second anchor has no user, so the no-user row (which uniqueUsers must not count) is there."""
    spec = draw(org_st)
    first, last = window_minutes(q)
    if q["user"]:
        user = q["user"]
    elif q["role"]:
        user = draw(st.sampled_from(["u0", "u1", "u2"]))
    else:
        user = draw(st.sampled_from(EVENT_USERS))
    if q["role"]:
        spec["roles"][int(user[1:])] = q["role"]
    columns = st.lists(st.sampled_from(SHARED_COLUMNS + (f"only{k}",)), max_size=3, unique=True)
    tables = draw(st.dictionaries(st.sampled_from(TABLES), columns, min_size=1, max_size=3))
    if q["table"]:
        tables[q["table"].lower().removeprefix("public.")] = draw(columns)
    anchor = {"user": user, "tables": tables, "minute": draw(st.integers(first, last)), "success": True}
    events = draw(st.lists(event_st(k, first, last), min_size=3, max_size=24))
    events.insert(draw(st.integers(0, len(events))), anchor)
    if not q["user"] and not q["role"]:
        nobody = {"user": None, "tables": tables, "minute": draw(st.integers(first, last)), "success": True}
        events.insert(draw(st.integers(0, len(events))), nobody)
    return spec, events


@st.composite
def example_st(draw):
    q = draw(query_st())
    return q, tuple(draw(org_events_st(k, q)) for k in range(ORGS))


# Every example carries data (issue 23): each org's events include an anchor that the query keeps, so
# every org that did not purge has Data Access rows; before, most examples compared empty with empty.
# COVERED records the rows of each (example, org); the last test of the module checks it.
# Measured in one run (20 examples, 60 org answers): 186 Data Access rows, 1 to 8 per answer, 0 only for
# the 12 answers of an org that had purged its trail; 62% of the examples had a row without a user.
COVERED: list[int] = []


def expected_reports(k, spec, events, people, q, start, end, purged):
    """Both reports of org k per DESIGN §5, from org k's own events, members, logins and PII only."""
    uid = {key: value[0] for key, value in people.items()}
    members = {uid[f"a{k}"]: "admin"} | {uid[f"u{i}"]: r for i, r in enumerate(spec["roles"]) if r}
    email = {uid[key]: people[key][1] for key in people if uid[key] in members}
    pii: dict[str, set[str]] = {}
    for table, column, _ in spec["pii"]:
        pii.setdefault(table, set()).add(column)
    table = q["table"].lower().removeprefix("public.") if q["table"] else None
    user = uid.get(q["user"], q["user"]) if q["user"] else None
    counted = []
    for e in [] if purged else events:
        u = uid.get(e["user"], e["user"]) if e["user"] else None
        if e["success"] and start <= e["ts"] < end and (user is None or u == user) \
                and (q["role"] is None or members.get(u) == q["role"]):
            counted.append((u, e))

    pairs: dict = {}
    for u, e in counted:
        for t, cols in e["tables"].items():
            if table is None or t == table:
                p = pairs.setdefault((t, u), {"n": 0, "cols": set(), "ts": []})
                p["n"] += 1
                p["cols"] |= set(cols)
                p["ts"].append(e["ts"])
    da = []
    for (t, u), p in pairs.items():
        classified = pii.get(t, set())
        shown = classified if "*" in p["cols"] else classified & p["cols"]
        da.append({"tableName": t, "userId": u, "userEmail": email.get(u), "userLabel": None, "userRole": members.get(u),
                   "queryCount": p["n"], "uniqueColumns": sorted(p["cols"]), "hasPII": bool(classified),
                   "piiColumns": sorted(shown), "firstAccess": iso(min(p["ts"])), "lastAccess": iso(max(p["ts"]))})
    da.sort(key=lambda r: (-r["queryCount"], r["tableName"], r["userEmail"] is None, r["userEmail"] or "",
                           r["userId"] is None, r["userId"] or ""))
    touching = [(u, e) for u, e in counted if (table in e["tables"] if table else e["tables"])]
    da_summary = {"totalQueries": len(touching), "allQueries": len(touching if table else counted),
                  "uniqueUsers": len({u for _, u in pairs if u is not None}),
                  "uniqueTables": len({t for t, _ in pairs}),
                  "piiTablesAccessed": len({t for t, _ in pairs if pii.get(t)})}

    logins: dict[str, datetime] = {}
    for key, minute in spec["logins"]:
        at = JAN + timedelta(minutes=minute)
        if at < end:  # a login into this org, even by someone no longer a member
            logins[uid[key]] = max(at, logins.get(uid[key], at))
    activity: dict = {}
    for u, e in touching if table else counted:
        a = activity.setdefault(u, {"n": 0, "tables": set(), "last": e["ts"]})
        a["n"] += 1
        a["tables"] |= {t for t in e["tables"] if table is None or t == table}
        a["last"] = max(a["last"], e["ts"])
    if table is None:
        for member, role in members.items():
            if (user is None or member == user) and (q["role"] is None or role == q["role"]):
                activity.setdefault(member, {"n": 0, "tables": set(), "last": None})
    ua = [{"userId": u, "userEmail": email.get(u), "userLabel": None, "role": members.get(u), "totalQueries": a["n"],
           "tablesAccessed": sorted(a["tables"]), "lastActiveAt": iso(a["last"]),
           "lastLoginAt": iso(logins.get(u)) if u else None} for u, a in activity.items()]
    ua.sort(key=lambda r: (-r["totalQueries"], r["userEmail"] is None, r["userEmail"] or "", r["userId"] is None,
                           r["userId"] or ""))
    ua_summary = {"totalUsers": sum(r["userId"] is not None for r in ua),
                  "activeUsers": sum(r["userId"] is not None and r["totalQueries"] > 0 for r in ua),
                  "totalQueries": sum(r["totalQueries"] for r in ua), "tableQueries": len(touching)}
    volume = 0 if purged else sum(e["success"] and start <= e["ts"] < end for e in events)
    return da, da_summary, ua, ua_summary, members, email, volume


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def build(client, sql, people, k, spec, events):
    """Org k: its members with their roles, classifications, logins and audit trail; its admin's header."""
    slug = f"iso-{k}-{uuid.uuid4().hex[:10]}"
    org = run_service(client, auth.create_organization, slug, "Acme Health")  # the same display name everywhere
    run_service(client, auth.add_member, email=people[f"a{k}"][1], org_slug=slug, role="admin")
    for i, role in enumerate(spec["roles"]):
        if role:
            run_service(client, auth.add_member, email=people[f"u{i}"][1], org_slug=slug, role=role)
    bearer = lambda token: {"Authorization": f"Bearer {token}"}  # noqa: E731
    admin = bearer(run_service(client, auth.create_personal_token, org_slug=slug, email=people[f"a{k}"][1])["token"])
    ingest = bearer(run_service(client, auth.create_ingest_key, org_slug=slug, name="shared-name")["token"])
    uid = {key: value[0] for key, value in people.items()}
    payload = []
    for i, e in enumerate(events):
        e["ts"] = JAN + timedelta(minutes=e["minute"])
        payload.append({"eventId": f"e{i}", "sql": f"SELECT 1 -- {i}", "timestamp": iso(e["ts"]),
                        "success": e["success"], "userId": uid.get(e["user"], e["user"]) if e["user"] else None,
                        "columnsByTable": e["tables"], "tablesAccessed": sorted(e["tables"])})
    if payload:  # the same event ids in every org: each org stores its own
        resp = client.post("/api/v1/audit/events", json=payload, headers=ingest)
        assert resp.status_code == 200 and resp.json()["inserted"] == len(payload), resp.text
    if spec["pii"]:
        detections = [{"tableName": t, "columnName": c, "category": cat} for t, c, cat in spec["pii"]]
        assert client.post(CLASSIFICATIONS, json={"detections": detections}, headers=admin).status_code == 200
    for key, minute in spec["logins"]:  # sessions as a login of that day leaves them
        at = JAN + timedelta(minutes=minute)
        sql.execute('INSERT INTO session ("userId", token, "expiresAt", "createdAt", "activeOrganizationId") '
                    "VALUES (%s, %s, %s, %s, %s)", (uid[key], secrets.token_hex(16), at + timedelta(hours=8), at,
                                                    org["id"]))
    return org, admin


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(example=example_st(), purging=st.none() | st.integers(0, ORGS - 1))
def test_every_endpoint_answers_with_the_callers_org_only(client, sql, people, retention_floor, example, purging):
    q, orgs = example
    retention_floor(7, 30)  # this installation allows a 7-day policy
    built = [build(client, sql, people, k, spec, events) for k, (spec, events) in enumerate(orgs)]
    if purging is not None:  # one org purges everything older than a week: all of its (January) trail
        admin = built[purging][1]
        assert client.put(RETENTION, json={"retentionDays": 7}, headers=admin).status_code == 200
        purge = client.post(RETENTION + "/purge", headers=admin)
        assert purge.status_code == 200, purge.text

    start = JAN + timedelta(days=q["start_day"])
    end_day = LATE_END if q["late_end"] else (start + timedelta(days=q["span"])).date().isoformat()
    end = datetime.fromisoformat(end_day).replace(tzinfo=UTC) + timedelta(days=1)
    params = {"startDate": start.date().isoformat(), "endDate": end_day}
    uid = {key: value[0] for key, value in people.items()}
    params |= {name: value for name, value in (("userId", uid.get(q["user"], q["user"])), ("role", q["role"]),
                                               ("table", q["table"])) if value}

    for k, ((spec, events), (_org, admin)) in enumerate(zip(orgs, built, strict=True)):
        purged = k == purging
        da_rows, da_summary, ua_rows, ua_summary, members, email, volume = expected_reports(
            k, spec, events, people, q, start, end, purged)

        assert purged or da_rows, "the anchor event gives every org that did not purge a Data Access row"
        COVERED.append(len(da_rows))
        event("purged org" if purged else f"data-access rows: {'1' if len(da_rows) == 1 else '2+'}")
        event(f"no-user row: {any(r['userId'] is None for r in da_rows)}")
        da = client.get(REPORTS + "data-access", params=params, headers=admin).json()
        assert (da["rows"], da["summary"], da["totalRows"]) == (da_rows, da_summary, len(da_rows)), k
        ua = client.get(REPORTS + "user-activity", params=params, headers=admin).json()
        assert (ua["rows"], ua["summary"]) == (ua_rows, ua_summary), k
        download = client.get(REPORTS + "data-access", params=params | {"download": "1"}, headers=admin)
        assert "attachment" in download.headers["content-disposition"], k
        assert (download.json()["rows"], download.json()["summary"]) == (da_rows, da_summary), k

        exported = csv_rows(client.get(REPORTS + "data-access", params=params | {"format": "csv"},
                                       headers=admin).text)
        assert [(r["table_name"], r["user_id"] or None, r["user_email"] or None, int(r["query_count"]))
                for r in exported] == [(r["tableName"], r["userId"], r["userEmail"], r["queryCount"])
                                       for r in da_rows]
        exported = csv_rows(client.get(REPORTS + "user-activity", params=params | {"format": "csv"},
                                       headers=admin).text)
        assert [(r["user_id"] or None, r["role"] or None, int(r["total_queries"])) for r in exported] == \
            [(r["userId"], r["role"], r["totalQueries"]) for r in ua_rows]

        # The evidence bundle: the org's own reports (the very CSV bytes) and classifications, nothing else.
        bundle = zipfile.ZipFile(io.BytesIO(client.get(EVIDENCE, params=params, headers=admin).content))
        for report in ("data-access", "user-activity"):
            assert bundle.read(f"{report}.csv") == client.get(REPORTS + report, params=params | {"format": "csv"},
                                                              headers=admin).content, k
        assert json.loads(bundle.read("manifest.json"))["org"]["id"] == _org["id"], k
        bundled = json.loads(bundle.read("pii-classifications.json"))["classifications"]
        assert {(c["tableName"], c["columnName"], c["category"]) for c in bundled} == set(spec["pii"]), k

        chart = client.get("/api/v1/admin/compliance/volume", params={k_: params[k_] for k_ in ("startDate", "endDate")},
                           headers=admin).json()
        assert chart["totalQueries"] == volume, k

        listed = client.get(CLASSIFICATIONS, headers=admin).json()["classifications"]
        assert {(c["tableName"], c["columnName"], c["category"]) for c in listed} == set(spec["pii"]), k

        verified = client.get("/api/v1/admin/audit/verify", headers=admin).json()
        assert verified["ok"] and verified["firstBreak"] is None, verified
        if not purged:
            assert (verified["rowsChecked"], verified["purgedRows"]) == (len(events), 0), k

        policy = client.get(RETENTION, headers=admin).json()
        assert policy["retentionDays"] == (7 if purged else 365), k

        listed_members = client.get("/api/v1/admin/members", headers=admin).json()["members"]
        assert {(m["userId"], m["email"], m["role"]) for m in listed_members} == \
            {(u, email[u], role) for u, role in members.items()}, k

        # Failed access (issue 19 part 3): this org's failed, unpurged queries of the window only, per
        # (table, user), no other org's emails; and only this org's admin actions.
        window = {n: params[n] for n in ("startDate", "endDate")}
        failed: dict = {}
        for e in [] if purged else events:
            if not e["success"] and start <= e["ts"] < end:
                u = uid.get(e["user"], e["user"]) if e["user"] else None
                for t in sorted(e["tables"]) or [None]:
                    failed[(t, u)] = failed.get((t, u), 0) + 1
        view = client.get("/api/v1/admin/audit/failed-access", params=window, headers=admin).json()
        assert {(r["tableName"], r["userId"]): (r["userEmail"], r["failures"]) for r in view["queries"]} == \
            {key: (email.get(key[1]), n) for key, n in failed.items()}, k
        assert view["summary"]["failedQueries"] == view["summary"]["byClass"]["other"] == sum(
            not e["success"] and start <= e["ts"] < end for e in ([] if purged else events)), k
        actions = client.get("/api/v1/admin/audit/privileged-actions", params={
            "startDate": "2020-01-01", "endDate": "9998-12-31", "limit": 1000}, headers=admin).json()["actions"]
        assert actions and {a["actorEmail"] for a in actions} == {people[f"a{k}"][1]}, k

    # Another org's classification, addressed by its id: not found, and left as it was.
    victim = next((k for k, (spec, _) in enumerate(orgs) if spec["pii"]), None)
    if victim is not None:
        owner_admin, intruder = built[victim][1], built[(victim + 1) % ORGS][1]
        before = client.get(CLASSIFICATIONS, headers=owner_admin).json()["classifications"]
        cid = before[0]["id"]
        assert_error(client.put(f"{CLASSIFICATIONS}/{cid}", json={"dismissed": True}, headers=intruder), 404)
        assert_error(client.delete(f"{CLASSIFICATIONS}/{cid}", headers=intruder), 404)
        reviewed = client.post(f"{CLASSIFICATIONS}/review", json={"ids": [cid]}, headers=intruder)
        assert reviewed.status_code in (200, 404) and reviewed.json().get("reviewed", 0) == 0, reviewed.text
        assert client.get(CLASSIFICATIONS, headers=owner_admin).json()["classifications"] == before


def test_every_org_answer_carried_data():
    """Runs after the isolation test (module order): its answers reached beyond a single Data Access row."""
    if not COVERED:
        pytest.skip("the isolation test did not run in this session")
    # Measured: 186 rows over 60 answers. A total is not asserted: after a failure, hypothesis's shrunk
    # examples (few rows each) are recorded too. Each answer's own rows are asserted in the test.
    assert max(COVERED) >= 3, COVERED
