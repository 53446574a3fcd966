"""Shared fixtures of the unusual-access flag tests: a clinic whose PII reads on Tuesday 2026-11-03 are
judged against the four Tuesdays before it (2026-10-06, -13, -20, -27)."""

from __future__ import annotations

from datetime import date

import pytest

from atlas_compliance.flags import service

FLAGS = "/api/v1/admin/flags"
DAY = date(2026, 11, 3)
BASELINE_TUESDAYS = ("2026-10-06", "2026-10-13", "2026-10-20", "2026-10-27")


def events(prefix: str, user: str, day: str, n: int, sql: str) -> list[dict]:
    return [{"eventId": f"{prefix}-{day}-{i}", "timestamp": f"{day}T{8 + i % 9:02d}:{i % 60:02d}:00Z",
             "userId": user, "sql": sql} for i in range(n)]


def send(client, key: dict, batch: list[dict]) -> int:
    inserted = 0
    for i in range(0, len(batch), 500):
        resp = client.post("/api/v1/audit/events", json=batch[i:i + 500], headers=key)
        assert resp.status_code in (200, 201), resp.text
        inserted += resp.json()["inserted"]
    return inserted


def evaluate(client, org_id: str, first: date = DAY, last: date = DAY) -> dict:
    db = client.app.state.db
    return client.portal.call(service.evaluate_org, db, org_id, first, last)


@pytest.fixture()
def clinic(client, org, sql):
    owner = org.add_user("owner", email=f"owner@{org.slug}.example")
    second = org.add_user("admin", email=f"second@{org.slug}.example")
    olga = org.add_user("member", email=f"olga@{org.slug}.example")
    bob = org.add_user("member", email=f"bob@{org.slug}.example")
    carl = org.add_user("member", email=f"carl@{org.slug}.example")
    for column, category in (("ssn", "ssn"), ("name", "person_name")):
        sql.execute("INSERT INTO pii_column_classifications (org_id, table_name, column_name, category) "
                    "VALUES (%s, 'patients', %s, %s)", (org.id, column, category))
    batch: list[dict] = []
    # olga reads patients.name 9, 9, 10 and 8 times on the baseline Tuesdays (median 9), then name and ssn
    # 60 times on 2026-11-03: volume (60 > max(50, 5 x 9)) and a first read of ssn.
    for day, n in zip(BASELINE_TUESDAYS, (9, 9, 10, 8), strict=True):
        batch += events("olga", olga.id, day, n, "SELECT name FROM patients")
    batch += events("olga", olga.id, "2026-11-03", 60, "SELECT name, ssn FROM patients")
    # bob reads name and ssn 20 times each baseline Tuesday (median 20): 90 on the day is above the floor
    # but not above 5 x 20, and he read both columns before: nothing.
    for day in BASELINE_TUESDAYS:
        batch += events("bob", bob.id, day, 20, "SELECT name, ssn FROM patients")
    batch += events("bob", bob.id, "2026-11-03", 90, "SELECT name, ssn FROM patients")
    # carl, seen once on 2026-10-08, reads name 50 times on the day: at the floor of 50, not above it, and
    # a column he read before: nothing.
    batch += events("carl", carl.id, "2026-10-08", 1, "SELECT name FROM patients")
    batch += events("carl", carl.id, "2026-11-03", 50, "SELECT name FROM patients")
    # A database role never seen before reads ssn 3 times: a new actor.
    batch += events("svc", "db:svc_etl", "2026-11-03", 3, "SELECT ssn FROM patients")
    # invoices has no PII: 200 reads by a newcomer flag nothing.
    batch += events("inv", "db:billing", "2026-11-03", 200, "SELECT id, total FROM invoices")
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    assert send(client, key, batch) == len(batch)
    return {"owner": owner, "second": second, "olga": olga, "bob": bob, "carl": carl, "key": key, "batch": batch}
