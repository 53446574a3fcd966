"""The console's exports in a real browser, on an organization whose reports are larger than the
API's JSON pages (10,000 data access rows, 5,000 user activity rows): Export JSON and Export CSV
download every row, under the API's file names, and each download is recorded."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from atlas_compliance.auth import service as auth
from atlas_compliance.reports.service import ROW_CAPS
from tests.conftest import Org, run_service
from tests.console.test_console_browser import NARROW, new_page, url_state, wait_report
from tests.helpers_server import ThreadServer

pytestmark = pytest.mark.browser  # the `browser` fixture lives in conftest.py

TABLES, USERS, SOLO = 101, 100, 4_901  # 10,100 + 4,901 data access rows; 5,001 users with queries


@pytest.fixture(scope="module")
def large(database_url, settings, client):
    row = run_service(client, auth.create_organization, "large-exports-ui", "Large Exports")
    org = Org(id=row["id"], slug=row["slug"], name=row["name"], client=client)
    admin = org.add_user("admin", email="lee.admin@large-exports.example", login=False)
    now = datetime.now(UTC).replace(microsecond=0)
    wide = {f"t{t:03d}": ["id", "email"] for t in range(TABLES)}
    events = [{"eventId": f"wide-{u}", "sql": f"select /* {u} */ 1", "userId": f"user-{u:05d}",
               "timestamp": (now - timedelta(days=2, minutes=u)).isoformat(), "columnsByTable": wide}
              for u in range(USERS)]
    events += [{"eventId": f"solo-{u}", "sql": f"select /* solo {u} */ 1", "userId": f"solo-{u:05d}",
                "timestamp": (now - timedelta(days=3, seconds=u)).isoformat(), "columnsByTable": {"t000": ["id"]}}
               for u in range(SOLO)]
    ingest = {"Authorization": f"Bearer {org.ingest_key()}"}
    for start in range(0, len(events), 2_000):
        resp = client.post("/api/v1/audit/events", json=events[start:start + 2_000], headers=ingest)
        assert resp.status_code == 200 and not resp.json()["rejected"], resp.text
    with ThreadServer(database_url, settings) as server:
        yield {"base": server.base, "org": org, "admin": admin}


def download(page, selector: str):
    with page.expect_download(timeout=120_000) as info:
        page.click(selector)
    return info.value


def exports(sql, org_id: str) -> list[tuple]:
    return [(r["target_id"], r["status"], r["metadata"]["format"], r["metadata"]["rowCount"]) for r in sql.execute(
        "SELECT target_id, status, metadata FROM admin_action_log WHERE org_id = %s "
        "AND action_type = 'compliance.report_export' ORDER BY \"timestamp\"", (org_id,)).fetchall()]


@pytest.mark.parametrize(("report", "rows"), [("data-access", TABLES * USERS + SOLO),
                                              ("user-activity", USERS + SOLO + 1)])  # + the admin, idle
def test_exports_carry_every_row_past_the_page_cap(browser, large, sql, report, rows):
    assert rows > ROW_CAPS[report]
    page = new_page(browser, large, "admin", viewport=NARROW)
    page.click("#tab-reports")
    page.select_option("#f-type", report)
    page.click("#generate")
    wait_report(page)
    assert page.locator("#page-info").inner_text() == f"Rows 1–100 of {rows:,}"
    s = url_state(page)
    zone = "" if s["tz"] == "UTC" else "-" + s["tz"].replace("/", ".")  # the viewer's zone names the file too
    name = f"{report}-report-large-exports-ui-{s['from']}_{s['to']}{zone}"
    before = exports(sql, large["org"].id)

    as_json = download(page, "#export-json")
    assert as_json.suggested_filename == f"{name}.json"
    document = json.loads(Path(as_json.path()).read_text(encoding="utf-8"))
    assert len(document["rows"]) == document["totalRows"] == rows and document["truncated"] is False
    assert document["filters"]["startDate"] == s["from"] and document["window"]["tz"] == s["tz"]

    as_csv = download(page, "#export-csv")
    assert as_csv.suggested_filename == f"{name}.csv"
    lines = list(csv.reader(io.StringIO(Path(as_csv.path()).read_text(encoding="utf-8"), newline="")))
    assert len(lines) == rows + 1
    key = (lambda r: (r["tableName"], r["userId"])) if report == "data-access" else (lambda r: (r["userId"] or "",))
    assert [tuple(line[:2] if report == "data-access" else line[:1]) for line in lines[1:]] == [
        key(r) for r in document["rows"]]

    assert exports(sql, large["org"].id)[len(before):] == [(report, "success", "json-download", rows),
                                                           (report, "success", "csv", rows)]
    assert not page.js_errors
