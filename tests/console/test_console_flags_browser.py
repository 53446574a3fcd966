"""Open unusual-access flags on the Reports tab in a real browser (issue 21): what the API holds, with a link
to the queries behind each flag; acknowledged from the page (a note required), it leaves the list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from atlas_compliance.auth import service as auth
from atlas_compliance.flags import service
from tests.conftest import Org, run_service
from tests.console.test_console_browser import new_page
from tests.helpers_server import ThreadServer

pytestmark = pytest.mark.browser  # the `browser` fixture lives in conftest.py


@pytest.fixture(scope="module")
def flags_ui(database_url, settings, client):
    row = run_service(client, auth.create_organization, "flags-ui", "Flags Clinic")
    org = Org(id=row["id"], slug=row["slug"], name=row["name"], client=client)
    admin = org.add_user("admin", email="rita.admin@flags-ui.example")
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    events = [{"eventId": f"f{i}", "sql": "select ssn from patients", "userId": "db:report_bot",
               "timestamp": f"{day}T10:0{i}:00Z"} for i in range(3)]
    ingest = {"Authorization": f"Bearer {org.ingest_key()}"}
    assert client.post("/api/v1/audit/events", json=events, headers=ingest).json()["inserted"] == 3
    upload = {"detections": [{"tableName": "patients", "columnName": "ssn", "category": "ssn"}]}
    assert client.post("/api/v1/admin/compliance/classifications", json=upload, headers=admin.headers).status_code == 200
    client.portal.call(service.evaluate_org, client.app.state.db, org.id, day, day)
    with ThreadServer(database_url, settings) as server:
        yield {"base": server.base, "org": org, "admin": admin, "day": str(day)}


def test_open_flags_are_listed_with_a_link_to_their_queries(browser, client, flags_ui):
    world = flags_ui
    page = new_page(browser, world, "admin", path="/admin/compliance?tab=reports")
    page.wait_for_selector("#flags-table tbody tr")
    rows = page.locator("#flags-table tbody tr")
    assert rows.count() == 1
    text = rows.first.inner_text()
    assert "New actor" in text and "db:report_bot" in text and "patients.ssn in 3 queries" in text
    link = urlsplit(rows.first.locator("a.flag-queries").get_attribute("href"))
    assert {k: v[0] for k, v in parse_qs(link.query).items()} == {
        "tab": "events", "from": world["day"], "to": world["day"], "tz": "UTC", "userId": "db:report_bot",
        "table": "patients"}
    assert page.js_errors == []

    # A note is required (nothing is sent without one); with one, the flag is acknowledged and leaves the list.
    row = rows.first
    row.locator(".flag-ack button").click()
    assert row.locator(".flag-status").inner_text() == "A note is required."
    row.locator(".flag-disposition").select_option("investigating")
    row.locator(".flag-note").fill("the new reporting job; asking its owner")
    row.locator(".flag-ack button").click()
    page.wait_for_selector("#flags-empty:has-text('No open flags.')")
    assert page.locator("#flags-wrap").is_hidden()
    flag = client.get("/api/v1/admin/flags", headers=world["admin"].headers).json()["flags"][0]
    assert (flag["open"], flag["latestDisposition"]["disposition"], flag["latestDisposition"]["note"],
            flag["latestDisposition"]["by"]["email"], flag["dispositionCount"]) == \
        (False, "investigating", "the new reporting job; asking its owner", world["admin"].email, 1)
    page.reload()
    page.wait_for_selector("#flags-empty:has-text('No open flags.')")
    assert page.js_errors == []
