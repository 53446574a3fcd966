"""The Reports tab's "Download evidence bundle" in a real browser: a signed zip for the report on screen
(its window, time zone and filters), which `evidence verify` accepts."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import pytest

from atlas_compliance.audit import signing
from atlas_compliance.evidence.verify import verify_bundle
from tests.console.test_console_browser import new_page, report_api, url_state, wait_report

pytestmark = pytest.mark.browser  # the `browser` and `world` fixtures live in conftest.py


def test_evidence_button_downloads_a_signed_zip_of_the_report_on_screen(browser, world, settings):
    page = new_page(browser, world)
    page.click("#tab-reports")
    page.fill("#f-table", "patients")
    page.click("#generate")
    wait_report(page)
    page.select_option("#f-role", "member")  # edited but not generated: the bundle follows the screen
    button = page.locator("#export-evidence")
    assert button.inner_text().strip() == "Download evidence bundle"
    with page.expect_download(timeout=60_000) as info:
        button.click()
    download = info.value
    s = url_state(page)
    name = download.suggested_filename
    assert name.startswith(f"evidence-acme-clinic-ui-{s['from']}_{s['to']}-{s['tz'].replace('/', '.')}-table-patients-")
    assert name.endswith(".zip")
    path = Path(download.path())
    assert verify_bundle(path, signing.load_signing_key(settings, create=False).verifying()).ok
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        bundled = zf.read("data-access.csv").decode("utf-8")
    assert manifest["filters"] == {"userId": None, "role": None, "table": "patients"}
    assert manifest["tz"] == s["tz"] and manifest["window"]["startDate"] == s["from"]
    assert manifest["generatedBy"]["email"] == world["dana"].email
    expected = report_api(world, page, format="csv").text
    assert list(csv.reader(io.StringIO(bundled, newline=""))) == list(csv.reader(io.StringIO(expected, newline="")))
    assert not page.js_errors
