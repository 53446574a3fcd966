"""Shared fixtures of the access-review tests: a small clinic with activity in March 2026."""

from __future__ import annotations

import pytest

REVIEWS = "/api/v1/admin/reviews"
MARCH = {"startDate": "2026-03-01", "endDate": "2026-03-31"}


@pytest.fixture()
def clinic(client, org):
    owner = org.add_user("owner", email=f"owner@{org.slug}.example")
    second = org.add_user("admin", email=f"second@{org.slug}.example")
    olga = org.add_user("member", email=f"olga@{org.slug}.example")
    idle = org.add_user("member", email=f"idle@{org.slug}.example", login=False)
    events = [{"eventId": f"m{i}", "timestamp": f"2026-03-{i + 2:02d}T10:00:00Z", "userId": olga.id,
               "sql": "SELECT name, ssn FROM patients"} for i in range(5)]
    events += [{"eventId": "svc", "timestamp": "2026-03-09T10:00:00Z", "userId": "svc-etl", "userLabel": "ETL job",
                "sql": "SELECT id FROM invoices"},
               {"eventId": "own", "timestamp": "2026-03-10T10:00:00Z", "userId": owner.id,
                "sql": "SELECT id FROM invoices"}]
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    assert client.post("/api/v1/audit/events", json=events, headers=key).json()["inserted"] == 7
    return {"owner": owner, "second": second, "olga": olga, "idle": idle, "key": key}
