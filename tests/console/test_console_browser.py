"""The console in a real browser: Debian's Chromium driven by Playwright against a real uvicorn server.

Every number checked on screen is compared with the API's answer for the same filters.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.console.conftest import CLASSIFICATIONS

ROOT = Path(__file__).resolve().parents[2]
# Screenshots taken by the tests, to look at after a failure: a temporary folder, never a tracked file.
# The docs' screenshots are made from the demo data by `make screenshots` (tools/screenshots.py).
ARTIFACTS = Path(os.environ.get("ATLAS_TEST_ARTIFACTS") or Path(tempfile.gettempdir()) / "atlas-test-artifacts")
DOC_SCREENSHOTS = ROOT / "docs" / "screenshots"
VIEWER_TZ = "America/New_York"
DESKTOP = {"width": 1280, "height": 900}
NARROW = {"width": 390, "height": 844}
REPORTS = "/api/v1/admin/compliance/reports"

pytestmark = pytest.mark.browser  # the `browser` and `world` fixtures live in conftest.py


# ---------- helpers ----------

def new_page(browser, world, who: str | None = "dana", *, tz: str = VIEWER_TZ, viewport=DESKTOP,
             path: str = "/admin/compliance"):
    """A fresh browser context (own cookies) that signs in through the login form."""
    context = browser.new_context(viewport=viewport, timezone_id=tz, locale="en-US", accept_downloads=True)
    page = context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
    # Console errors too, except the browser's notes on expected 4xx answers (wrong password, 403 page).
    page.on("console", lambda msg: msg.type == "error" and not msg.text.startswith("Failed to load resource")
            and page.js_errors.append(msg.text))
    page.goto(world["base"] + path)
    if who:
        sign_in(page, world[who])
    return page


def sign_in(page, member) -> None:
    page.fill("#email", member.email)
    page.fill("#password", member.password)
    page.click("#login-form button[type=submit]")
    page.wait_for_load_state("load")


def wait_report(page) -> None:
    """Wait until the report on screen is the one the URL describes (and its chart is drawn)."""
    page.wait_for_function("""() => { const o = document.querySelector('#report-output');
        return !o.hidden && o.dataset.for === location.pathname + location.search; }""")
    page.wait_for_selector("#chart svg")


def url_state(page) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}


def api(world, path: str, **params) -> httpx.Response:
    resp = httpx.get(world["base"] + path, params=params, headers=world["api"], timeout=30)
    assert resp.status_code == 200, resp.text
    return resp


def report_api(world, page, **extra) -> dict:
    """The API's JSON for the filters in the page's URL."""
    s = url_state(page)
    params = {"startDate": s["from"], "endDate": s["to"], "tz": s["tz"], **extra}
    params |= {k: s[k] for k in ("userId", "role", "table") if k in s}
    return api(world, f"{REPORTS}/{s['reportType']}", **params)


def stat(page, label: str) -> int:
    return int(page.locator(f'#report-output [data-stat="{label}"], #pii-cards [data-stat="{label}"]')
               .inner_text().replace(",", ""))


def cells(page, row: int) -> list[str]:
    return page.locator("#report-table tbody tr").nth(row).locator("td").all_inner_texts()


def shoot(page, name: str) -> None:
    """The whole page, into the artifacts folder (see ARTIFACTS)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def _doc_screenshots() -> dict[str, tuple[int, str]]:
    """Each tracked screenshot's modification time and content hash (a rewrite with equal bytes counts too)."""
    return {p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(DOC_SCREENSHOTS.glob("*.png"))}


@pytest.fixture(scope="module", autouse=True)
def tracked_screenshots_stay_as_committed():
    """Running these tests leaves the docs' screenshots alone (they change only by `make screenshots`)."""
    before = _doc_screenshots()
    yield
    assert _doc_screenshots() == before, "a browser test wrote into docs/screenshots/"


def viewer_today() -> date:
    return datetime.now(ZoneInfo(VIEWER_TZ)).date()


# ---------- tests ----------

def test_sign_in_through_the_form_returns_to_the_requested_page(browser, world):
    page = new_page(browser, world, who=None, path="/admin/compliance?tab=reports")
    assert "/login?next=" in page.url
    page.fill("#email", world["dana"].email)
    page.fill("#password", "wrong password")
    page.click("#login-form button[type=submit]")
    assert page.locator("#login-message").inner_text() == "Wrong email or password."
    assert page.input_value("#email") == world["dana"].email
    sign_in(page, world["dana"])
    assert page.url.endswith("/admin/compliance?tab=reports")
    assert page.locator("#tab-reports").get_attribute("aria-current") == "page"
    assert page.locator("#panel-reports").is_visible() and page.locator("#panel-classifications").is_hidden()
    cookie = next(c for c in page.context.cookies() if c["name"] == "atlas_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert page.evaluate("document.cookie").find("atlas_session") == -1  # HttpOnly: invisible to scripts
    page.click("button:has-text('Sign out')")
    page.wait_for_url("**/login")
    page.goto(world["base"] + "/admin/compliance")
    assert "/login?next=" in page.url
    assert not page.js_errors


def test_data_access_report_matches_the_api(browser, world):
    page = new_page(browser, world)
    page.click("#tab-reports")
    today = viewer_today()
    assert page.input_value("#f-to") == today.isoformat()  # the viewer's calendar, not UTC
    assert page.input_value("#f-from") == (today - timedelta(days=29)).isoformat()
    assert page.locator("#report-output").is_hidden()  # nothing is generated before asking
    page.click("#generate")
    wait_report(page)
    assert url_state(page) == {"tab": "reports", "reportType": "data-access", "from": page.input_value("#f-from"),
                               "to": today.isoformat(), "tz": VIEWER_TZ}
    body = report_api(world, page).json()
    summary = body["summary"]
    assert [stat(page, k) for k in ("Queries touching a table", "Unique users", "Unique tables",
                                    "PII tables accessed")] == [
        summary["totalQueries"], summary["uniqueUsers"], summary["uniqueTables"], summary["piiTablesAccessed"]]
    # Both totals, each with its meaning: the report's (queries that touched a table) and the chart's (all).
    hint = page.locator('[data-hint="Queries touching a table"]').inner_text()
    assert hint == f"of {summary['allQueries']:,} queries in all, as in the chart"
    assert summary["uniqueTables"] == 5 and summary["piiTablesAccessed"] == 2
    assert page.locator("#report-table tbody tr").count() == len(body["rows"]) == body["totalRows"]
    assert page.locator("#results-desc").inner_text().startswith(f"{body['totalRows']} entries for ")
    for i in (0, len(body["rows"]) - 1):
        r = body["rows"][i]
        table, user, role, queries, columns, pii, first, last = cells(page, i)
        assert (table, user, int(queries)) == (r["tableName"], r["userEmail"] or "No user", r["queryCount"])
        assert role == (r["userRole"] or "—").capitalize()
        chips = page.locator("#report-table tbody tr").nth(i).locator("td").nth(4).locator(".chip")
        assert chips.all_text_contents() == [c + (" (PII)" if c in r["piiColumns"] else "") for c in r["uniqueColumns"]]
        assert pii.startswith("PII") == r["hasPII"]
        times = page.locator("#report-table tbody tr").nth(i).locator("time")
        assert times.nth(0).get_attribute("title") == f"{r['firstAccess']} (UTC)"
        assert times.nth(1).get_attribute("datetime") == r["lastAccess"]
    # PII columns are marked; times are shown in the viewer's zone.
    patients = next(i for i, r in enumerate(body["rows"]) if r["tableName"] == "patients" and r["piiColumns"])
    marked = page.locator("#report-table tbody tr").nth(patients).locator(".chip-pii").all_text_contents()
    assert [m.replace(" (PII)", "") for m in marked] == body["rows"][patients]["piiColumns"]
    first_access = datetime.fromisoformat(body["rows"][0]["firstAccess"].replace("Z", "+00:00"))
    local = first_access.astimezone(ZoneInfo(VIEWER_TZ))
    assert f"{local:%b} {local.day}, {local.year}" in cells(page, 0)[6]
    # The chart: one bar per day of the window, adding up to the report's total (no filters here).
    bars = page.locator("#chart rect.bar")
    assert bars.count() == 30
    assert sum(int(b) for b in bars.evaluate_all("els => els.map(e => e.dataset.queries)")) == summary["totalQueries"]
    # Client-side sorting of the loaded page.
    page.click("#report-table th button:has-text('Queries')")
    counts = [int(c) for c in page.locator("#report-table tbody tr td:nth-child(4)").all_inner_texts()]
    assert counts == sorted(counts)
    assert page.locator("#report-table th[aria-sort='ascending']").text_content() == "Queries"
    page.click("#report-table th button:has-text('Queries')")
    counts = [int(c) for c in page.locator("#report-table tbody tr td:nth-child(4)").all_inner_texts()]
    assert counts == sorted(counts, reverse=True)
    page.click("#report-table th button:has-text('Queries')")  # a third click: the report's own order again
    assert page.locator("#report-table th[aria-sort]").count() == 0
    assert cells(page, 0)[0] == body["rows"][0]["tableName"]
    shoot(page, "reports-desktop.png")
    assert not page.js_errors


def test_user_activity_filters_live_in_the_url(browser, world):
    page = new_page(browser, world)
    page.click("#tab-reports")
    page.click("#generate")
    wait_report(page)
    da_url = page.url
    page.select_option("#f-type", "user-activity")
    page.select_option("#f-role", "member")
    assert "Filters changed" in page.locator("#report-status").inner_text()
    page.click("#generate")
    wait_report(page)
    state = url_state(page)
    assert (state["reportType"], state["role"]) == ("user-activity", "member")
    body = report_api(world, page).json()
    assert [stat(page, k) for k in ("Total users", "Active users", "Total queries")] == [
        body["summary"]["totalUsers"], body["summary"]["activeUsers"], body["summary"]["totalQueries"]]
    assert page.locator('[data-hint="Total queries"]').inner_text() == \
        f"{body['summary']['tableQueries']:,} of them touched a table"
    assert body["summary"]["totalUsers"] == 3  # priya, li and etl (no activity this month, still listed)
    shown = page.locator("#report-table tbody tr td:first-child").all_inner_texts()
    assert shown == [r["userEmail"] for r in body["rows"]]
    idle = cells(page, shown.index("etl.loader@acme-clinic.example"))
    assert idle[2] == "0" and idle[3] == "—" and idle[4] == "—"
    # Reload, back and forward reproduce each report.
    page.reload()
    wait_report(page)
    assert page.input_value("#f-type") == "user-activity" and page.input_value("#f-role") == "member"
    assert stat(page, "Total users") == 3
    page.go_back()
    wait_report(page)
    assert page.url == da_url and page.input_value("#f-type") == "data-access" and page.input_value("#f-role") == ""
    assert stat(page, "Queries touching a table") == report_api(world, page).json()["summary"]["totalQueries"]
    page.go_forward()
    wait_report(page)
    assert stat(page, "Active users") == body["summary"]["activeUsers"]
    # The link, opened by someone else in another time zone, shows the same report.
    other = new_page(browser, world, "omar", tz="Asia/Tokyo")
    other.goto(page.url)
    wait_report(other)
    assert other.url == page.url and other.input_value("#f-role") == "member"
    assert other.input_value("#f-from") == url_state(page)["from"]
    assert [stat(other, k) for k in ("Total users", "Active users", "Total queries")] == [
        stat(page, k) for k in ("Total users", "Active users", "Total queries")]
    # Tabs keep the report: away to the classifications and back.
    page.click("#tab-classifications")
    page.wait_for_selector("#pii-table tbody tr")
    page.click("#tab-reports")
    wait_report(page)
    assert url_state(page)["reportType"] == "user-activity"
    page.set_viewport_size(NARROW)
    shoot(page, "reports-narrow.png")
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]  # only tables scroll sideways
    assert not page.js_errors and not other.js_errors


def page_overflow(page) -> dict:
    """How far the page itself scrolls sideways (tables scroll inside their own box, which is fine)."""
    return page.evaluate("""() => ({width: window.innerWidth,
        scrollWidth: Math.max(document.documentElement.scrollWidth, document.body.scrollWidth),
        maxScrollX: (window.scrollTo(10000, window.scrollY), window.scrollX)})""")


def test_no_sideways_page_scroll_at_390_px_on_either_tab(browser, world):
    page = new_page(browser, world, viewport=NARROW)
    page.wait_for_selector("#pii-table tbody tr")
    assert page.locator("#pii-table tbody tr").count() >= 5
    assert page_overflow(page) == {"width": 390, "scrollWidth": 390, "maxScrollX": 0}
    page.click("#tab-reports")
    page.click("#generate")
    wait_report(page)
    # PII chips carry a visually hidden " (PII)" for screen readers: it must stay inside the table's box.
    assert page.locator("#report-table .chip-pii .sr-only").count() >= 3
    assert page_overflow(page) == {"width": 390, "scrollWidth": 390, "maxScrollX": 0}
    wrap = page.locator("#report-wrap")
    assert wrap.evaluate("e => e.scrollWidth > e.clientWidth")  # the table scrolls inside its own box
    page.select_option("#f-type", "user-activity")
    page.click("#generate")
    wait_report(page)
    assert page_overflow(page) == {"width": 390, "scrollWidth": 390, "maxScrollX": 0}
    assert not page.js_errors


def test_exports_download_exactly_the_report_on_screen(browser, world):
    page = new_page(browser, world)
    page.click("#tab-reports")
    page.fill("#f-table", "patients")
    page.click("#generate")
    wait_report(page)
    page.select_option("#f-role", "member")  # edited but not generated: exports follow the screen, not the form
    with page.expect_download() as info:
        page.click("#export-csv")
    download = info.value
    s = url_state(page)
    # The name carries the window, its time zone and the filters of the report on screen (the table).
    zone = "" if s["tz"] == "UTC" else "-" + s["tz"].replace("/", ".")
    assert download.suggested_filename == f"data-access-report-acme-clinic-ui-{s['from']}_{s['to']}{zone}-table-patients.csv"
    got = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"), newline="")))
    expected = report_api(world, page, format="csv").text
    assert got == list(csv.reader(io.StringIO(expected, newline="")))
    rows = report_api(world, page).json()["rows"]
    assert len(got) == len(rows) + 1 and {r[0] for r in got[1:]} == {"patients"}
    with page.expect_download() as info:
        page.click("#export-json")
    assert info.value.suggested_filename.endswith(".json")
    document = json.loads(Path(info.value.path()).read_text(encoding="utf-8"))
    assert document["rows"] == rows and document["filters"]["role"] is None
    assert not page.js_errors


def test_large_reports_are_paged(browser, world):
    start = (viewer_today() - timedelta(days=75)).isoformat()
    end = (viewer_today() - timedelta(days=65)).isoformat()
    page = new_page(browser, world, path=f"/admin/compliance?tab=reports&from={start}&to={end}")
    wait_report(page)
    assert url_state(page)["tz"] == VIEWER_TZ  # the pasted link gained the zone its dates were read in
    assert page.locator("#report-table tbody tr").count() == 100
    assert page.locator("#page-info").inner_text() == "Rows 1–100 of 105"
    page.click("#next-page")
    page.wait_for_function("() => document.querySelector('#page-info').textContent.startsWith('Rows 101')")
    second = report_api(world, page, limit=100, offset=100).json()["rows"]
    assert page.locator("#report-table tbody tr td:first-child").all_inner_texts() == [r["tableName"] for r in second]
    assert page.locator("#next-page").is_disabled() and page.locator("#prev-page").is_enabled()
    assert not page.js_errors


def test_bad_input_is_shown_next_to_the_field(browser, world):
    page = new_page(browser, world)
    page.click("#tab-reports")
    page.fill("#f-from", "2026-03-10")
    page.fill("#f-to", "2026-03-01")
    page.click("#generate")
    assert page.locator("#err-to").inner_text() == "The end date is before the start date."
    assert page.locator("#f-to").get_attribute("aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "f-to"
    assert page.locator("#report-output").is_hidden() and "from=" not in page.url
    # A bad link: the API's 400 message appears next to the field it names.
    page.goto(world["base"] + "/admin/compliance?tab=reports&from=2026-02-30&to=2026-03-05")
    page.locator("#err-from").wait_for(state="visible")
    assert page.locator("#err-from").inner_text().startswith("invalid startDate '2026-02-30'")
    page.goto(world["base"] + "/admin/compliance?tab=reports&from=2026-03-01&to=2026-03-05&role=auditor")
    page.locator("#err-role").wait_for(state="visible")
    assert "Unknown role “auditor”" in page.locator("#err-role").inner_text()
    # Empty results say so.
    page.goto(world["base"] + "/admin/compliance?tab=reports&from=2026-03-01&to=2026-03-05&table=nothing_here")
    wait_report(page)
    assert page.locator("#report-empty").inner_text() == "No data access records found for the selected period."
    page.select_option("#f-type", "user-activity")
    page.click("#generate")
    wait_report(page)
    assert page.locator("#report-empty").inner_text() == "No user activity found for the selected period."
    assert not page.js_errors


def classification(world, column: str) -> dict | None:
    body = api(world, CLASSIFICATIONS, includeDismissed="true").json()
    return next((c for c in body["classifications"] if c["columnName"] == column), None)


def test_classifications_can_be_reviewed_edited_dismissed_restored_and_deleted(browser, world):
    page = new_page(browser, world)
    page.wait_for_selector("#pii-table tbody tr")
    summary = api(world, CLASSIFICATIONS).json()["summary"]
    assert [stat(page, k) for k in ("Total PII columns", "High confidence", "Unreviewed", "Tables affected")] == [
        summary["total"], summary["highConfidence"], summary["unreviewed"], summary["tablesAffected"]] == [6, 3, 5, 2]
    ssn_row = page.locator("tr[data-column='patients.ssn'] td").all_inner_texts()
    assert ssn_row[2:4] == ["SSN", "High"] and ssn_row[5:7] == ["Redact", "Reviewed"]
    assert ssn_row[4].startswith("Sampled values\n50/50 sample values match ssn pattern")
    reason = page.locator("tr[data-column='patients.ssn'] .reason")
    assert reason.get_attribute("title") == "50 of 50 sampled values matched"  # the evidence, on hover
    shoot(page, "classifications-desktop.png")
    page.set_viewport_size(NARROW)
    shoot(page, "classifications-narrow.png")
    page.set_viewport_size(DESKTOP)
    # Edit with the keyboard: the dialog takes the focus, Escape closes it and gives the focus back.
    edit = page.get_by_role("button", name="Edit patients.first_name")
    edit.focus()
    page.keyboard.press("Enter")
    assert page.locator("#edit-dialog").is_visible() and page.evaluate("document.activeElement.id") == "edit-category"
    page.keyboard.press("Escape")
    assert page.locator("#edit-dialog").is_hidden()
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Edit patients.first_name"
    page.keyboard.press("Enter")
    page.select_option("#edit-category", "other")
    page.select_option("#edit-strategy", "hash")
    page.click("#edit-save")
    page.wait_for_selector("#edit-dialog", state="hidden")
    page.wait_for_selector("tr[data-column='patients.first_name'] .badge-ok")
    c = classification(world, "first_name")
    assert (c["category"], c["maskingStrategy"], c["reviewed"]) == ("other", "hash", True)
    # Mark reviewed.
    page.get_by_role("button", name="Mark reviewed patients.last_name").click()
    page.wait_for_selector("tr[data-column='patients.last_name'] .badge-ok")
    assert classification(world, "last_name")["reviewed"] is True
    # Dismiss: the row leaves the list; "Show dismissed" brings it back with Restore.
    page.get_by_role("button", name="Dismiss analytics.daily_visits.client_ip").click()
    page.wait_for_selector("tr[data-column='analytics.daily_visits.client_ip']", state="detached")
    assert classification(world, "client_ip")["dismissed"] is True
    assert stat(page, "Tables affected") == 1
    page.check("#show-dismissed")
    page.get_by_role("button", name="Restore analytics.daily_visits.client_ip").click()
    page.wait_for_selector("tr[data-column='analytics.daily_visits.client_ip'] button:has-text('Dismiss')")
    assert classification(world, "client_ip")["dismissed"] is False
    # Delete asks first: Cancel keeps it, Delete removes it.
    page.get_by_role("button", name="Delete patients.email").click()
    page.locator("#confirm-dialog button[value=cancel]").click()
    assert classification(world, "email") is not None
    page.get_by_role("button", name="Delete patients.email").click()
    page.click("#confirm-yes")
    page.wait_for_selector("tr[data-column='patients.email']", state="detached")
    assert classification(world, "email") is None
    # Mark all reviewed.
    page.click("#review-all")
    page.wait_for_selector("#review-all", state="hidden")
    assert api(world, CLASSIFICATIONS).json()["summary"]["unreviewed"] == 0 and stat(page, "Unreviewed") == 0
    assert not page.js_errors


def test_controls_are_labelled_and_focus_is_visible(browser, world):
    page = new_page(browser, world)
    page.wait_for_selector("#pii-table tbody tr")
    unlabelled = """() => [...document.querySelectorAll('input, select, button, a[href]')]
        .filter(e => e.type !== 'hidden' && e.offsetParent !== null)
        .filter(e => !((e.labels && e.labels.length) || e.getAttribute('aria-label') || e.textContent.trim()))
        .map(e => e.outerHTML)"""
    assert page.evaluate(unlabelled) == []
    page.click("#tab-reports")
    assert page.evaluate(unlabelled) == []
    page.keyboard.press("Tab")
    assert page.evaluate("getComputedStyle(document.activeElement).boxShadow") != "none"
    page.focus("#f-type")
    assert page.evaluate("getComputedStyle(document.activeElement).boxShadow") != "none"
    # Keyboard only: choose a report type, submit with Enter.
    page.keyboard.press("ArrowDown")
    page.focus("#f-table")
    page.keyboard.press("Enter")
    wait_report(page)
    assert url_state(page)["reportType"] == "user-activity"
    assert not page.js_errors


def test_a_member_gets_the_admin_role_required_page(browser, world):
    page = new_page(browser, world, "priya")
    assert page.locator("h1").inner_text() == "Admin role required"
    response = page.goto(world["base"] + "/admin/compliance?tab=reports")
    assert response.status == 403 and "Admin role required" in page.content()
    page.click("button:has-text('Sign in with another account')")
    page.wait_for_url("**/login")
    sign_in(page, world["dana"])
    assert page.locator("h1").inner_text() == "Compliance"


# ---------- the audit events behind a report row (issue 19, part 1) ----------

EVENTS_API = "/api/v1/admin/audit/events"


def wait_events(page, rows: int | None = None) -> None:
    """Wait until the events on screen are those the URL describes (and, if given, that many rows)."""
    page.wait_for_function("""() => { const o = document.querySelector('#events-output');
        return !o.hidden && o.dataset.for === location.pathname + location.search; }""")
    if rows is not None:
        page.wait_for_function(f"() => document.querySelectorAll('#events-table tbody tr').length === {rows}")


def test_a_report_row_opens_the_queries_behind_it(browser, world):
    page = new_page(browser, world)
    page.click("#tab-reports")
    page.click("#generate")
    wait_report(page)
    body = report_api(world, page).json()
    i, r = next((i, r) for i, r in enumerate(body["rows"]) if r["userId"] and 1 < r["queryCount"] <= 100)
    report_state = url_state(page)
    page.locator("#report-table tbody tr").nth(i).locator("td").nth(3).locator("a").click()
    wait_events(page, r["queryCount"])  # the report counts successful queries: the link asks for those
    s = url_state(page)
    assert (s["tab"], s["userId"], s["table"], s["success"]) == ("events", r["userId"], r["tableName"], "true")
    assert (s["from"], s["to"], s["tz"]) == (report_state["from"], report_state["to"], VIEWER_TZ)  # same window
    listed = api(world, EVENTS_API, startDate=s["from"], endDate=s["to"], tz=s["tz"], userId=r["userId"],
                 table=r["tableName"], success="true", limit=1000).json()["events"]
    assert len(listed) == r["queryCount"]
    assert page.locator("#events-table tbody pre.sql").all_inner_texts() == [e["sql"] for e in listed]
    assert page.locator("#events-table tbody tr").first.locator("td").nth(1).inner_text() == r["userEmail"]
    page.reload()  # the link keeps the state: a reload shows the same events
    wait_events(page, r["queryCount"])
    assert page.input_value("#e-table") == r["tableName"] and page.input_value("#e-success") == "true"
    assert not page.js_errors


def test_recorded_sql_is_shown_as_text_folded_and_paged(browser, world):
    now = datetime.now(UTC)
    hostile = ('<img src=x onerror="window.pwned=1"><b>bold</b> SELECT ssn FROM patients WHERE note = \''
               + "x" * 500 + "'")
    events = [{"eventId": "ev-html", "sql": hostile, "userId": "mallory", "timestamp": (now - timedelta(hours=1)).isoformat()}]
    events += [{"eventId": f"ev-page-{i}", "sql": f"select {i} from invoices", "userId": "mallory",
                "timestamp": (now - timedelta(hours=2, seconds=i)).isoformat()} for i in range(150)]
    key = {"Authorization": f"Bearer {world['org'].ingest_key('explorer-test')}"}
    resp = httpx.post(world["base"] + "/api/v1/audit/events", json=events, headers=key, timeout=60)
    assert resp.status_code == 200 and resp.json()["inserted"] == 151, resp.text
    today = viewer_today()
    page = new_page(browser, world, viewport=NARROW,
                    path=f"/admin/compliance?tab=events&from={today - timedelta(days=1)}&to={today}&userId=mallory")
    wait_events(page, 100)
    first = page.locator("#events-table tbody tr").first
    assert first.locator("pre.sql").inner_text() == hostile[:240] + "…"
    assert page.locator("#events-table img, #events-table b").count() == 0 and page.evaluate("window.pwned") is None
    first.locator("button:has-text('Show all')").click()
    assert first.locator("pre.sql").inner_text() == hostile
    assert first.locator("button").get_attribute("aria-expanded") == "true"
    assert page_overflow(page) == {"width": 390, "scrollWidth": 390, "maxScrollX": 0}
    page.click("#events-more")
    wait_events(page, 151)
    assert page.locator("#events-more").is_hidden() and "151 events shown (all)" in page.inner_text("#events-info")
    shown = page.locator("#events-table tbody tr pre.sql").all_inner_texts()
    assert shown[1:] == [f"select {i} from invoices" for i in range(150)]  # newest first, each once
    assert page.get_attribute("#events-csv", "href").endswith("format=csv")
    assert not page.js_errors

def test_schema_catalog_panel_lists_what_the_api_lists(browser, world):
    """The read-only catalog panel: one row per (datasource, table, origin), its columns in catalog order."""
    from atlas_compliance.catalog import service as catalog_service
    from atlas_compliance.catalog.ddl import read_ddl
    from tests.conftest import run_service

    org = world["org"]
    facts = read_ddl("CREATE TABLE patients (id int, mrn text, ssn text); CREATE TABLE lab.results (id int, value text);",
                     "postgres").facts
    run_service(org.client, catalog_service.store_source, org.id, "clinic-ddl", "ddl", facts, actor="test")
    page = new_page(browser, world)
    page.wait_for_selector("#catalog-wrap:not([hidden])")
    expected: dict[tuple[str, str, str], list[str]] = {}
    for c in api(world, "/api/v1/admin/catalog").json()["columns"]:
        expected.setdefault((c["datasource"] or "audit trail", c["tableName"], c["origin"]), []).append(c["columnName"])
    rows = page.locator("#catalog-table tbody tr")
    shown = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        table, columns, origin, _ = row.locator("td").all_inner_texts()
        shown[(row.locator("th").inner_text(), table, origin)] = columns.split(", ")
    assert shown == expected
    assert shown[("clinic-ddl", "patients", "ddl")] == ["id", "mrn", "ssn"]
    assert page.locator("#catalog-empty").is_hidden() and page.locator("#catalog-more").is_hidden()
    assert page.js_errors == []


# ---------- Failed Access and Privileged Actions (issue 19, part 3) ----------

FAILED_API = "/api/v1/admin/audit/failed-access"
PRIVILEGED_API = "/api/v1/admin/audit/privileged-actions"


def wait_activity(page) -> None:
    page.wait_for_function("""() => { const o = document.querySelector('#activity-output');
        return !o.hidden && o.dataset.for === location.pathname + location.search; }""")


def activity_stat(page, label: str) -> int:
    return int(page.locator(f'#activity-cards [data-stat="{label}"]').inner_text().replace(",", ""))


def test_failed_access_report_matches_the_api(browser, world):
    now = datetime.now(UTC)
    dana = world["dana"]
    hostile = '<img src=x onerror="window.pwned=1">'
    events = [{"eventId": f"fa-{i}", "sql": sql, "userId": user, "userLabel": hostile, "success": False,
               "error": error, "timestamp": (now - timedelta(hours=1, minutes=i)).isoformat()}
              for i, (user, sql, error) in enumerate([
                  (dana.id, "SELECT ssn FROM patients", "permission denied for table patients"),
                  (dana.id, "SELECT ssn FROM patients", "canceling statement due to statement timeout"),
                  ("intruder", "SELEC 1", 'syntax error at or near "SELEC" (SQLSTATE 42601)')])]
    key = {"Authorization": f"Bearer {world['org'].ingest_key('failed-access-test')}"}
    assert httpx.post(world["base"] + "/api/v1/audit/events", json=events, headers=key, timeout=60).json()["inserted"] == 3
    wrong = httpx.post(world["base"] + "/api/v1/auth/login", json={"email": dana.email, "password": "wrong"}, timeout=30)
    assert wrong.status_code == 401
    today = viewer_today()
    page = new_page(browser, world)
    page.click("#tab-reports")
    page.select_option("#f-type", "failed-access")
    assert page.locator("#f-user").is_hidden() and page.locator("#f-action").is_hidden()
    page.fill("#f-from", str(today - timedelta(days=1)))
    page.fill("#f-to", str(today))
    page.click("#generate")
    wait_activity(page)
    s = url_state(page)
    assert s["reportType"] == "failed-access" and "userId" not in s
    body = api(world, FAILED_API, startDate=s["from"], endDate=s["to"], tz=s["tz"]).json()
    assert activity_stat(page, "Failed queries") == body["summary"]["failedQueries"] >= 3
    assert activity_stat(page, "Permission denied") == body["summary"]["byClass"]["permission_denied"] >= 1
    rows = page.locator("#activity-table tbody tr")
    assert rows.count() == len(body["queries"])
    assert rows.locator("td:first-child").all_inner_texts() == [q["tableName"] or "(no table)" for q in body["queries"]]
    i = next(i for i, q in enumerate(body["queries"]) if q["tableName"] == "patients" and q["userId"] == dana.id)
    mine = body["queries"][i]
    assert rows.nth(i).locator('td[data-class="permission_denied"]').inner_text() == str(
        mine["byClass"]["permission_denied"])
    intruder = next(i for i, q in enumerate(body["queries"]) if q["userId"] == "intruder")
    assert rows.nth(intruder).locator("td").nth(1).inner_text() == hostile  # a label, shown as text
    assert page.locator("#activity-table img").count() == 0 and page.evaluate("window.pwned") is None
    shoot(page, "failed-access.png")
    logins = page.locator("#logins-table tbody tr")
    assert logins.locator("td:first-child").all_inner_texts() == [r["email"] for r in body["logins"]]
    assert dana.email in [r["email"] for r in body["logins"]]
    href = page.get_attribute("#activity-csv", "href")
    assert href.startswith(FAILED_API) and href.endswith("format=csv")
    text = httpx.get(world["base"] + href, headers=world["api"], timeout=30).text
    assert text.startswith("kind,table_name,") and len(text.splitlines()) == 1 + len(body["queries"]) + len(body["logins"])
    # The failures of a row open the failed events behind it.
    rows.nth(i).locator("td").nth(3).locator("a").click()
    wait_events(page, mine["failures"])
    assert url_state(page)["success"] == "false" and url_state(page)["table"] == "patients"
    assert not page.js_errors


def test_privileged_actions_report_lists_the_admin_action_log(browser, world):
    today = viewer_today()
    window = f"from={today - timedelta(days=1)}&to={today}"
    page = new_page(browser, world, path=f"/admin/compliance?tab=reports&reportType=privileged-actions&{window}"
                                         "&actionType=compliance.*")
    wait_activity(page)
    assert page.input_value("#f-action") == "compliance.*" and page.locator("#f-role").is_hidden()
    s = url_state(page)
    body = api(world, PRIVILEGED_API, startDate=s["from"], endDate=s["to"], tz=s["tz"], actionType="compliance.*").json()
    assert body["actions"], "the world's classification upload and review are recorded"
    rows = page.locator("#activity-table tbody tr")
    assert rows.locator("td:nth-child(3)").all_inner_texts() == [a["actionType"] for a in body["actions"]]
    first = rows.first
    first.locator("summary").click()
    assert json.loads(first.locator("pre").inner_text()) == body["actions"][0]["details"]
    shoot(page, "privileged-actions.png")
    # Opening the view is itself recorded, by the viewer.
    looks = api(world, PRIVILEGED_API, startDate=s["from"], endDate=s["to"], tz=s["tz"],
                actionType="privileged_actions.view", actor=world["dana"].email).json()["actions"]
    assert looks and looks[0]["details"]["filters"]["actionType"] in ("compliance.*", "privileged_actions.view")
    # Filter by actor from the form; the URL keeps it; a reload shows the same.
    page.fill("#f-actor", world["dana"].email)
    page.click("#generate")
    wait_activity(page)
    assert url_state(page)["actor"] == world["dana"].email
    page.reload()
    wait_activity(page)
    assert page.input_value("#f-actor") == world["dana"].email
    assert page.get_attribute("#activity-csv", "href").endswith("format=csv")
    page.set_viewport_size(NARROW)  # only the table scrolls sideways, never the page
    assert page_overflow(page) == {"width": 390, "scrollWidth": 390, "maxScrollX": 0}
    page.fill("#f-action", "*")  # refused by the API: the message goes next to the field
    page.click("#generate")
    page.wait_for_selector("#err-actionType:not([hidden])")
    assert "actionType" in page.inner_text("#err-actionType") and page.locator("#activity-output").is_hidden()
    assert not page.js_errors
