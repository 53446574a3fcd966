"""Ids that never were members of the organization (service accounts, agents, database roles) are shown by
the label their events carried, as of the window's end (issue 19, part 2). Expected values by hand."""

from __future__ import annotations

import csv
import io

import pytest

from atlas_compliance.auth import offboarding
from tests.conftest import run_service

URL = "/api/v1/audit/events"
DA = "/api/v1/admin/compliance/reports/data-access"
UA = "/api/v1/admin/compliance/reports/user-activity"
ETL = "svc-etl-7f3a"


def ingest(client, org, events) -> None:
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    body = [{"eventId": f"l{i}", "sql": "SELECT id FROM orders", "tablesAccessed": ["orders"], **e}
            for i, e in enumerate(events)]
    assert client.post(URL, json=body, headers=key).json()["inserted"] == len(body)


@pytest.fixture()
def labelled(client, org):
    admin = org.add_user("admin")
    ingest(client, org, [
        {"userId": ETL, "userLabel": "etl (old name)", "timestamp": "2026-03-01T10:00:00Z"},
        {"userId": ETL, "userLabel": "etl nightly", "timestamp": "2026-03-03T09:00:00Z"},
        {"userId": ETL, "userLabel": "etl — failed run", "timestamp": "2026-03-03T10:00:00Z", "success": False},
        {"userId": ETL, "timestamp": "2026-03-03T11:00:00Z"},  # no label: the earlier one stays
        {"userId": ETL, "userLabel": "etl renamed", "timestamp": "2026-03-03T23:00:00Z"},
        {"userId": "db:reporting", "userLabel": "b-label", "timestamp": "2026-03-02T08:00:00Z"},
        {"userId": "db:reporting", "userLabel": "a-label", "timestamp": "2026-03-02T08:00:00Z"},  # tie: greatest
        {"userId": admin.id, "userLabel": "admin's laptop", "timestamp": "2026-03-02T12:00:00Z"},
    ])
    return org, admin


def labels(client, admin, url, **params) -> dict:
    body = client.get(url, params={"startDate": "2026-03-01", **params}, headers=admin.headers).json()
    return {r["userId"]: (r["userEmail"], r["userLabel"]) for r in body["rows"]}


def test_label_as_of_the_windows_end(client, labelled):
    org, admin = labelled
    # Ends on the 2nd: the label of the 1st (from the daily rollup).
    assert labels(client, admin, DA, endDate="2026-03-02")[ETL] == (None, "etl (old name)")
    # Ends at noon on the 3rd: the 09:00 label (the 3rd read from the raw rows); the failed run's label and
    # the unlabelled query do not count.
    assert labels(client, admin, DA, endDate="2026-03-03T12:00:00")[ETL] == (None, "etl nightly")
    assert labels(client, admin, UA, endDate="2026-03-03T12:00:00")[ETL] == (None, "etl nightly")
    # Whole days: the latest label of the 3rd.
    assert labels(client, admin, DA, endDate="2026-03-31")[ETL] == (None, "etl renamed")
    # A window that starts after the last query still names it by its last label before the end.
    found = labels(client, admin, DA, endDate="2026-03-31", userId=ETL)
    assert found == {ETL: (None, "etl renamed")}
    # Two labels at the same moment: the greater one, every time.
    assert labels(client, admin, UA, endDate="2026-03-31")["db:reporting"] == (None, "b-label")
    # Members are named by their email, never by a label their events carry.
    assert labels(client, admin, UA, endDate="2026-03-31")[admin.id] == (admin.email, None)


def test_time_zone_of_the_window_end(client, labelled):
    org, admin = labelled
    # 2026-03-03 in Tokyo ends at 15:00 UTC on the 3rd: before the 23:00 rename.
    assert labels(client, admin, DA, endDate="2026-03-03", tz="Asia/Tokyo")[ETL] == (None, "etl nightly")
    # In Los Angeles the 3rd ends at 08:00 UTC on the 4th: after it.
    assert labels(client, admin, DA, endDate="2026-03-03", tz="America/Los_Angeles")[ETL] == (None, "etl renamed")


def test_csv_console_order_and_cli_carry_it(client, labelled):
    org, admin = labelled
    resp = client.get(DA, params={"startDate": "2026-03-01", "endDate": "2026-03-31", "format": "csv"},
                      headers=admin.headers)
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert list(rows[0])[-2:] == ["pii_columns", "user_label"]
    assert {r["user_id"]: r["user_label"] for r in rows} == {ETL: "etl renamed", "db:reporting": "b-label",
                                                            admin.id: ""}
    resp = client.get(UA, params={"startDate": "2026-03-01", "endDate": "2026-03-31", "format": "csv"},
                      headers=admin.headers)
    assert {r["user_id"]: r["user_label"] for r in csv.DictReader(io.StringIO(resp.text))}[ETL] == "etl renamed"


def test_former_members_keep_their_email_and_other_orgs_labels_stay_out(client, labelled, make_org):
    org, admin = labelled
    leaver = org.add_user("member")
    ingest(client, org, [{"eventId": "leaver", "userId": leaver.id, "userLabel": "leaver's tool",
                          "timestamp": "2026-03-02T10:00:00Z"}])
    run_service(client, offboarding.remove_member, email=leaver.email, org_slug=org.slug)
    assert labels(client, admin, UA, endDate="2026-03-31")[leaver.id] == (leaver.email, None)
    other = make_org()
    ingest(client, other, [{"eventId": "x", "userId": ETL, "userLabel": "other org's name",
                            "timestamp": "2026-03-20T10:00:00Z"}])
    assert labels(client, admin, DA, endDate="2026-03-31")[ETL] == (None, "etl renamed")
    other_admin = other.add_user("admin")
    assert labels(client, other_admin, DA, endDate="2026-03-31")[ETL] == (None, "other org's name")
