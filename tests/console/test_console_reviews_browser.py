"""The Access reviews tab in a real browser: open a review from the report filters, decide (in bulk and one by
one, with the note rules), sign off, export; what the page shows is what the API holds."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from atlas_compliance.auth import service as auth
from tests.conftest import Org, run_service
from tests.console.test_console_browser import NARROW, new_page, page_overflow, wait_report
from tests.helpers_server import ThreadServer

pytestmark = pytest.mark.browser  # the `browser` fixture lives in conftest.py
REVIEWS = "/api/v1/admin/reviews"


@pytest.fixture(scope="module")
def clinic_ui(database_url, settings, client):
    row = run_service(client, auth.create_organization, "reviews-ui", "Reviews Clinic")
    org = Org(id=row["id"], slug=row["slug"], name=row["name"], client=client)
    admin = org.add_user("admin", email="rita.admin@reviews-ui.example")
    nurse = org.add_user("member", email="nina.nurse@reviews-ui.example", login=False)
    clerk = org.add_user("member", email="carl.clerk@reviews-ui.example", login=False)
    now = datetime.now(UTC).replace(microsecond=0)
    events = [{"eventId": f"r{i}", "sql": "select ssn from patients", "userId": (nurse if i % 3 else clerk).id,
               "timestamp": (now - timedelta(days=2, minutes=i)).isoformat(),
               "columnsByTable": {"patients": ["ssn"]}} for i in range(9)]
    events.append({"eventId": "own", "sql": "select 1 from invoices", "userId": admin.id,
                   "timestamp": (now - timedelta(days=2)).isoformat(), "columnsByTable": {"invoices": ["id"]}})
    ingest = {"Authorization": f"Bearer {org.ingest_key()}"}
    assert client.post("/api/v1/audit/events", json=events, headers=ingest).json()["inserted"] == 10
    with ThreadServer(database_url, settings) as server:
        yield {"base": server.base, "org": org, "admin": admin, "nurse": nurse, "clerk": clerk,
               "api": admin.headers}


def test_an_admin_opens_works_through_and_signs_off_a_review(browser, clinic_ui):
    world = clinic_ui
    page = new_page(browser, world, "admin", path="/admin/compliance?tab=reports&reportType=user-activity&role=member")
    page.click("#generate")
    wait_report(page)
    page.click("#tab-reviews")
    assert page.locator("#panel-reviews").is_visible()
    assert page.input_value("#r-role") == "member"  # the report's filters carry over
    page.fill("#r-title", "Members, last 30 days")
    page.click("#review-open")
    page.wait_for_selector("#review-detail:not([hidden])")
    rid = page.get_attribute("#review-detail", "data-review")
    assert f"review={rid}" in page.url
    users = page.locator("#review-items tr[data-kind=user]")
    assert users.count() == 2  # the two members; the admin is out of this scope
    assert "0 of 2 people decided" in page.inner_text("#review-progress")

    # Revoke without a note is refused on the page, nothing is sent; with a note it is recorded.
    nurse_row = page.locator("#review-items tr[data-kind=user]", has_text=world["nurse"].email)
    nurse_row.locator(".review-pick").check()
    page.click("#review-revoke")
    assert "note is required" in page.inner_text("#reviews-error")
    page.fill("#review-note", "no longer on the ward")
    page.click("#review-revoke")
    page.wait_for_function("() => document.querySelector('#review-progress').textContent.startsWith('1 of 2')")
    # Bulk keep of what is left, from the keyboard: the button selects the undecided people.
    page.focus("#review-select-undecided")
    page.keyboard.press("Enter")
    page.click("#review-keep")
    page.wait_for_function("() => document.querySelector('#review-progress').textContent.startsWith('2 of 2')")
    nurse_row = page.locator("#review-items tr[data-kind=user]", has_text=world["nurse"].email)
    assert "revoke" in nurse_row.inner_text() and "no longer on the ward" in nurse_row.inner_text()

    page.click("#review-signoff")
    page.fill("#signoff-statement", "Reviewed member access for the period.")
    page.click("#signoff-submit")
    page.wait_for_selector("#review-detail[data-status=signed_off]")
    assert "Signed off by rita.admin@reviews-ui.example" in page.inner_text("#review-signed")
    assert page.locator("#review-decide-bar").is_hidden() and page.locator("#review-signoff").is_hidden()
    assert page.locator("#reviews-table tr", has_text="Members, last 30 days").locator(".badge").inner_text() == \
        "Signed off"

    # The page showed what the API holds, and the export link serves the evidence.
    held = httpx.get(f"{world['base']}{REVIEWS}/{rid}", headers=world["api"]).json()
    decisions = {i["userEmail"]: i["decision"]["decision"] for i in held["items"] if i["kind"] == "user"}
    assert decisions == {world["nurse"].email: "revoke", world["clerk"].email: "keep"}
    assert held["campaign"]["signOff"]["statement"] == "Reviewed member access for the period."
    href = page.get_attribute("#review-csv", "href")
    lines = list(csv.DictReader(io.StringIO(httpx.get(world["base"] + href, headers=world["api"]).text)))
    assert {r["user_email"]: r["decision"] for r in lines if r["kind"] == "user"} == decisions
    assert not page.js_errors


def test_a_refused_decision_is_shown_and_changes_nothing(browser, clinic_ui):
    world = clinic_ui
    opened = httpx.post(f"{world['base']}{REVIEWS}", headers=world["api"], json={
        "startDate": (datetime.now(UTC) - timedelta(days=10)).date().isoformat(),
        "endDate": datetime.now(UTC).date().isoformat()}).json()
    rid = opened["campaign"]["id"]
    page = new_page(browser, world, "admin", path=f"/admin/compliance?tab=reviews&review={rid}")
    page.wait_for_selector("#review-detail:not([hidden])")
    own = page.locator("#review-items tr[data-kind=user]", has_text=world["admin"].email)
    own.locator(".review-pick").check()
    page.click("#review-keep")
    page.wait_for_selector("#reviews-error:not([hidden])")
    assert "your own access" in page.inner_text("#reviews-error")
    held = httpx.get(f"{world['base']}{REVIEWS}/{rid}", headers=world["api"]).json()
    assert held["campaign"]["progress"]["userDecided"] == 0
    assert not page.js_errors


def test_no_sideways_page_scroll_at_390_px_on_the_reviews_tab(browser, clinic_ui):
    world = clinic_ui
    opened = httpx.post(f"{world['base']}{REVIEWS}", headers=world["api"], json={
        "startDate": (datetime.now(UTC) - timedelta(days=10)).date().isoformat(),
        "endDate": datetime.now(UTC).date().isoformat(), "title": "A long title " * 8}).json()
    page = new_page(browser, world, "admin", viewport=NARROW,
                    path=f"/admin/compliance?tab=reviews&review={opened['campaign']['id']}")
    page.wait_for_selector("#review-detail:not([hidden])")
    assert page_overflow(page) == {"width": 390, "scrollWidth": 390, "maxScrollX": 0}
    assert not page.js_errors
