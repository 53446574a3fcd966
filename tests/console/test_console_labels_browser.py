"""The Reports tab names ids that never were members by the label their events carried (issue 19, part 2):
as text, marked "(not a member)", never with someone else's email; members by their email."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from atlas_compliance.auth import service as auth
from tests.conftest import Org, run_service
from tests.console.test_console_browser import new_page, wait_report
from tests.helpers_server import ThreadServer

pytestmark = pytest.mark.browser  # the `browser` fixture lives in conftest.py
HOSTILE = '<img src=x onerror="window.hacked=1">etl'


@pytest.fixture(scope="module")
def labelled_ui(database_url, settings, client):
    row = run_service(client, auth.create_organization, "labels-ui", "Labels Clinic")
    org = Org(id=row["id"], slug=row["slug"], name=row["name"], client=client)
    admin = org.add_user("admin", email="lena.admin@labels-ui.example")
    now = datetime.now(UTC).replace(microsecond=0)
    events = [{"eventId": "svc", "sql": "select id from patients", "userId": "svc-nightly", "userLabel": HOSTILE,
               "timestamp": (now - timedelta(days=1)).isoformat(), "columnsByTable": {"patients": ["id"]}},
              {"eventId": "own", "sql": "select id from invoices", "userId": admin.id, "userLabel": "lena's laptop",
               "timestamp": (now - timedelta(days=1)).isoformat(), "columnsByTable": {"invoices": ["id"]}}]
    ingest = {"Authorization": f"Bearer {org.ingest_key()}"}
    assert client.post("/api/v1/audit/events", json=events, headers=ingest).json()["inserted"] == 2
    with ThreadServer(database_url, settings) as server:
        yield {"base": server.base, "org": org, "admin": admin}


def test_non_members_are_shown_by_their_label_as_text(browser, labelled_ui):
    page = new_page(browser, labelled_ui, "admin", path="/admin/compliance?tab=reports")
    page.click("#generate")
    wait_report(page)
    label = page.locator('[data-label-of="svc-nightly"]')
    assert label.inner_text() == f"{HOSTILE} (not a member)"  # shown as text, not run
    assert page.evaluate("() => window.hacked") is None
    users = page.locator("#report-table tbody tr td:nth-child(2)").all_inner_texts()
    assert labelled_ui["admin"].email in users  # a member is named by email, never by a label
    assert not any("lena's laptop" in u for u in users)
    assert not page.js_errors
