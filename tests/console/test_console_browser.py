"""The console in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import csv
import io
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.helpers_server import ThreadServer

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def world(database_url, settings, client):
    """A server with an org, its people, a recent audit trail and classifications."""
    import uuid

    from atlas_compliance.auth import service as auth
    from tests.conftest import Org, run_service

    slug = f"ui-{uuid.uuid4().hex[:8]}"
    row = run_service(client, auth.create_organization, slug, "Console Clinic")
    org = Org(id=row["id"], slug=row["slug"], name=row["name"], client=client)
    admin = org.add_user("admin", email=f"admin@{slug}.example")
    member = org.add_user("member", email=f"member@{slug}.example", login=False)
    analyst = org.add_user("member", email=f"analyst@{slug}.example", login=False)
    now = datetime.now(UTC).replace(microsecond=0)
    events = []
    for i in range(60):
        who = [admin.id, analyst.id, member.id, None][i % 4]
        ts = now - timedelta(days=i % 20, hours=i % 5)
        table = ["patients", "invoices", "encounters"][i % 3]
        events.append({"eventId": f"ui{i}", "sql": f"q{i}", "timestamp": ts.isoformat(), "userId": who,
                       "columnsByTable": {table: ["id", "email"] if table == "patients" else ["id", "amount"]}})
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    assert client.post("/api/v1/audit/events", json=events, headers=key).json()["inserted"] == 60
    detections = [{"tableName": "patients", "columnName": c, "category": cat, "confidence": conf, "method": "regex",
                   "reason": f"sampled values are {cat}"} for c, cat, conf in
                  (("email", "email", "high"), ("ssn", "ssn", "high"), ("phone", "phone", "medium"))]
    client.post("/api/v1/admin/compliance/classifications", json={"detections": detections}, headers=admin.headers)
    with ThreadServer(database_url, settings) as server:
        yield {"base": server.base, "org": org, "admin": admin, "member": member, "api": admin.headers}


def new_page(browser, world, who="admin", width=1280, height=900):
    context = browser.new_context(viewport={"width": width, "height": height}, timezone_id="UTC",
                                  accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(world["base"] + "/admin/compliance")
    member = world[who]
    page.fill("#email", member.email)
    page.fill("#password", member.password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    page.errors = errors
    return page


def api_report(world, kind, **params):
    resp = httpx.get(f"{world['base']}/api/v1/admin/compliance/reports/{kind}", params=params, headers=world["api"])
    assert resp.status_code == 200, resp.text
    return resp


def stat(page, label):
    return int(page.locator(f'[data-stat="{label}"]').inner_text().replace(",", ""))


def shoot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=False)
    shutil.copy(path, SCREENSHOTS / name)


def test_reports_match_the_api_and_live_in_the_url(browser, world):
    page = new_page(browser, world)
    page.click("#tab-reports")
    page.wait_for_selector("#f-from")
    today = datetime.now(UTC).date()
    assert page.input_value("#f-to") == today.isoformat()
    assert page.input_value("#f-from") == (today - timedelta(days=29)).isoformat()
    page.click("#generate")
    page.wait_for_selector("#report-table tbody tr")
    params = {"startDate": page.input_value("#f-from"), "endDate": page.input_value("#f-to"), "tz": "UTC"}
    api = api_report(world, "data-access", **params).json()
    assert stat(page, "Total queries") == api["summary"]["totalQueries"]
    assert stat(page, "Unique users") == api["summary"]["uniqueUsers"]
    assert stat(page, "PII tables accessed") == api["summary"]["piiTablesAccessed"] == 1
    assert page.locator("#report-table tbody tr").count() == len(api["rows"])
    first = page.locator("#report-table tbody tr").first.locator("td")
    assert first.nth(0).inner_text() == api["rows"][0]["tableName"]
    assert int(first.nth(3).inner_text()) == api["rows"][0]["queryCount"]
    assert first.nth(6).get_attribute("title").startswith(api["rows"][0]["firstAccess"])
    shoot(page, "reports-desktop.png")
    # Filters go into the URL: reload, back/forward and a pasted link reproduce the report.
    page.select_option("#f-type", "user-activity")
    page.select_option("#f-role", "member")
    page.click("#generate")
    page.wait_for_selector("#report-table tbody tr")
    assert "reportType=user-activity" in page.url and "role=member" in page.url
    ua = api_report(world, "user-activity", role="member", **params).json()
    assert stat(page, "Total users") == ua["summary"]["totalUsers"] == 2
    assert stat(page, "Total queries") == ua["summary"]["totalQueries"]
    page.reload()
    page.wait_for_selector("#report-table tbody tr")
    assert page.input_value("#f-role") == "member" and stat(page, "Total users") == 2
    page.go_back()
    page.wait_for_selector("[data-stat='Unique tables']")  # the data access report is back
    assert page.input_value("#f-type") == "data-access"
    assert stat(page, "Total queries") == api["summary"]["totalQueries"]
    page.go_forward()
    page.wait_for_selector("[data-stat='Active users']")
    shared = page.url
    other = new_page(browser, world)
    other.goto(shared)
    other.wait_for_selector("[data-stat='Active users']")
    assert stat(other, "Total users") == 2 and other.input_value("#f-role") == "member"
    assert not page.errors and not other.errors
    page.set_viewport_size({"width": 390, "height": 844})
    shoot(page, "reports-narrow.png")


def test_export_csv_equals_the_api(browser, world):
    page = new_page(browser, world)
    page.click("#tab-reports")
    page.click("#generate")
    page.wait_for_selector("#report-table tbody tr")
    with page.expect_download() as info:
        page.click("#export-csv")
    download = info.value
    org = world["org"].slug
    assert download.suggested_filename.startswith(f"data-access-report-{org}-")
    content = Path(download.path()).read_text(encoding="utf-8")
    params = {"startDate": page.input_value("#f-from"), "endDate": page.input_value("#f-to"), "tz": "UTC",
              "format": "csv"}
    expected = api_report(world, "data-access", **params).text
    assert list(csv.reader(io.StringIO(content, newline=""))) == list(csv.reader(io.StringIO(expected, newline="")))
    with page.expect_download() as info:
        page.click("#export-json")
    assert info.value.suggested_filename.endswith(".json")


def test_bad_range_is_shown_next_to_the_field(browser, world):
    page = new_page(browser, world)
    page.click("#tab-reports")
    page.fill("#f-from", "2026-03-10")
    page.fill("#f-to", "2026-03-01")
    page.click("#generate")
    error = page.locator("#err-to")
    error.wait_for(state="visible")
    assert "before the start date" in error.inner_text()
    assert page.locator("#report-output").is_hidden()


def classification(world, column, include_dismissed=True):
    body = httpx.get(f"{world['base']}/api/v1/admin/compliance/classifications",
                     params={"includeDismissed": str(include_dismissed).lower()}, headers=world["api"]).json()
    return next((c for c in body["classifications"] if c["columnName"] == column), None)


def test_classification_actions(browser, world):
    page = new_page(browser, world)
    page.wait_for_selector("#pii-table tbody tr")
    assert int(page.locator("[data-stat='Total PII columns']").inner_text()) == 3
    shoot(page, "classifications-desktop.png")
    row = page.locator("tr[data-column='patients.phone']")
    row.get_by_role("button", name="Edit patients.phone").click()
    page.select_option("#edit-category", "other")
    page.select_option("#edit-strategy", "hash")
    page.click("#edit-form button[value=save]")
    page.wait_for_selector("#edit-dialog", state="hidden")
    page.wait_for_selector("tr[data-column='patients.phone'] .badge.reviewed")
    phone = classification(world, "phone")
    assert (phone["category"], phone["maskingStrategy"], phone["reviewed"]) == ("other", "hash", True)
    page.locator("tr[data-column='patients.ssn']").get_by_role("button", name="Dismiss patients.ssn").click()
    page.wait_for_selector("tr[data-column='patients.ssn']", state="detached")
    assert classification(world, "ssn")["dismissed"] is True
    page.check("#show-dismissed")
    page.locator("tr[data-column='patients.ssn']").get_by_role("button", name="Restore patients.ssn").click()
    page.wait_for_selector("tr[data-column='patients.ssn'] .badge.reviewed")
    assert classification(world, "ssn")["dismissed"] is False
    page.locator("tr[data-column='patients.email']").get_by_role("button", name="Delete patients.email").click()
    page.click("#confirm-yes")
    page.wait_for_selector("tr[data-column='patients.email']", state="detached")
    assert classification(world, "email") is None
    page.set_viewport_size({"width": 390, "height": 844})
    shoot(page, "classifications-narrow.png")
    assert not page.errors


def test_member_gets_the_403_page(browser, world):
    page = new_page(browser, world, who="member")
    assert "Admin role required" in page.content()
