"""The console's PII tab in a real browser: PHI labels, suggestions to review, every category to choose
from, and adding a column the scanner missed."""

from __future__ import annotations

import pytest

from atlas_compliance.pii.categories import CATEGORIES
from tests.console.conftest import browser  # noqa: F401 - the Chromium fixture
from tests.helpers_server import ThreadServer

URL = "/api/v1/admin/compliance/classifications"
DETECTIONS = [
    {"tableName": "encounters", "columnName": "diagnosis_code", "category": "diagnosis_code", "confidence": "high",
     "method": "regex", "reason": "40/40 sampled values are ICD-10 diagnosis codes",
     "evidence": {"sampled": 40, "matched": 40, "examples": ["[REDACTED]"]}},
    {"tableName": "patients", "columnName": "email", "category": "email", "confidence": "high", "method": "regex",
     "reason": "40/40 sampled values are valid email addresses",
     "evidence": {"sampled": 40, "matched": 40, "examples": ["a***@example.com"]}},
    {"tableName": "customers", "columnName": "ssn", "category": "ssn", "confidence": "low", "method": "column_name",
     "reason": "suggestion to review: column name 'ssn', but only 0/40 sampled values have the shape of valid SSNs",
     "evidence": {"sampled": 40, "matched": 0, "examples": ["***"], "suggestion": True}},
]


@pytest.fixture(scope="module")
def tab(database_url, settings, client, make_org_module):
    org = make_org_module()
    admin = org.add_user("admin", login=False)
    token = {"Authorization": f"Bearer {org.personal_token(admin)}"}
    assert client.post(URL, json={"detections": DETECTIONS}, headers=token).json()["created"] == 3
    with ThreadServer(database_url, settings) as server:
        yield {"base": server.base, "admin": admin, "api": token, "client": client}


@pytest.fixture(scope="module")
def make_org_module(client):
    import uuid

    from atlas_compliance.auth import service as auth
    from tests.conftest import Org, run_service

    def make():
        slug = f"pii-tab-{uuid.uuid4().hex[:8]}"
        row = run_service(client, auth.create_organization, slug, "PII Tab Org")
        return Org(id=row["id"], slug=row["slug"], name=row["name"], client=client)

    return make


def open_tab(browser, tab):  # noqa: F811 - the fixture imported above
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    page = context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
    page.goto(tab["base"] + "/admin/compliance")
    page.fill("#email", tab["admin"].email)
    page.fill("#password", tab["admin"].password)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#pii-table tbody tr")
    return page


def cells(page, column: str) -> list[str]:
    return page.locator(f"tr[data-column='{column}'] td").all_inner_texts()


def test_phi_is_labeled_and_name_only_suggestions_are_marked(browser, tab):  # noqa: F811
    page = open_tab(browser, tab)
    assert cells(page, "encounters.diagnosis_code")[2] == "Diagnosis code (ICD-10) PHI"
    assert page.locator("tr[data-column='encounters.diagnosis_code'] .badge-accent").get_attribute("title") == \
        "Protected health information (HIPAA)"
    assert cells(page, "patients.email")[2] == "Email"  # PII, not PHI: no label
    assert "Suggestion: review" in cells(page, "customers.ssn")[4]
    assert "Suggestion" not in cells(page, "patients.email")[4]
    # Every category of the one table can be chosen when editing, grouped as PII and PHI.
    options = page.locator("#edit-category option").evaluate_all("os => os.map(o => o.value)")
    assert options == [c.id for c in CATEGORIES if c.group == "PII"] + [c.id for c in CATEGORIES if c.group == "PHI"]
    assert page.locator("#edit-category optgroup").evaluate_all("gs => gs.map(g => g.label)") == [
        "Personal data (PII)", "Health information (PHI)"]
    assert not page.js_errors


def test_an_admin_adds_a_column_the_scanner_missed(browser, tab):  # noqa: F811
    page = open_tab(browser, tab)
    page.click("#add-column")
    assert page.locator("#add-dialog").is_visible() and page.evaluate("document.activeElement.id") == "add-table"
    page.click("#add-save")  # empty: told what is missing, nothing sent
    assert page.locator("#add-table-error").inner_text() == "Enter the table, e.g. patients."
    assert page.locator("#add-column-error").inner_text() == "Enter the column's name."
    assert page.evaluate("document.activeElement.id") == "add-table"
    page.fill("#add-table", "lab_results")
    page.fill("#add-column-name", "Result_Text")
    page.select_option("#add-category", "lab_result")
    assert page.locator("#add-category option:checked").inner_text() == "Lab result (default: Redact)"
    page.fill("#add-note", "free-text results")
    page.click("#add-save")
    page.wait_for_selector("tr[data-column='lab_results.result_text']")
    assert page.locator("#add-dialog").is_hidden()
    assert page.locator("#pii-notice").inner_text() == "lab_results.result_text added as Lab result (Redact)."
    row = cells(page, "lab_results.result_text")
    assert row[2] == "Lab result PHI" and row[5:7] == ["Redact", "Reviewed"]
    assert row[4].startswith("Manual\nadded by ") and row[4].endswith(": free-text results")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Edit lab_results.result_text"
    stored = tab["client"].get(URL, headers=tab["api"]).json()["classifications"]
    added = next(c for c in stored if c["columnName"] == "result_text")
    assert (added["method"], added["reviewed"], added["maskingStrategy"]) == ("manual", True, "redact")
    # The same column again: the server's refusal is shown in the dialog, nothing is added.
    page.click("#add-column")
    page.fill("#add-table", "lab_results")
    page.fill("#add-column-name", "result_text")
    page.click("#add-save")
    page.wait_for_selector("#add-error:not([hidden])")
    assert "already classified as lab_result" in page.locator("#add-error").inner_text()
    page.click("#add-cancel")
    assert page.evaluate("document.activeElement.id") == "add-column"
    assert len(tab["client"].get(URL, headers=tab["api"]).json()["classifications"]) == 4
    assert not page.js_errors
