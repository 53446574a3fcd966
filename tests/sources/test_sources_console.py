"""The console's Audit-log sources panel: in the page, and drawn by a real browser from the API."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.console.conftest import ARGS, CHROMIUM, browser_client, console_login
from tests.helpers_server import ThreadServer


def test_the_compliance_page_carries_the_panel_and_its_script(client, org):
    admin = org.add_user("admin")
    browser = browser_client(client)
    assert console_login(browser, admin).status_code == 303
    page = browser.get("/admin/compliance").text
    assert 'id="sources-panel"' in page and 'id="sources-table"' in page
    assert '<script src="/static/sources.js?v=' in page
    assert browser.get("/static/sources.js").status_code == 200


def test_a_browser_shows_each_source_its_last_import_and_the_mapped_roles(database_url, settings, client, org, sql):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    admin = org.add_user("admin")
    sql.execute("INSERT INTO audit_source (org_id, name, kind, events_stored, last_event_at, last_import_at) VALUES "
                "(%s, 'prod-pg', 'pgaudit', 123456, '2026-12-01T10:00:00Z', '2026-12-01T10:05:00Z'), "
                "(%s, 'prod-maria', 'mariadb-audit', 42, NULL, '2026-11-30T08:00:00Z')", (org.id, org.id))
    assert client.put("/api/v1/admin/sources/role-mappings/alice", json={"email": admin.email},
                      headers=admin.headers).status_code == 200
    with ThreadServer(database_url, settings) as server, sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = chromium.new_context(locale="en-US", timezone_id="UTC").new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server.base + "/admin/compliance")
            page.fill("#email", admin.email)
            page.fill("#password", admin.password)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#sources-table tbody tr")
            rows = page.locator("#sources-table tbody tr").all_inner_texts()
            assert [r.split("\t")[0] for r in rows] == ["prod-pg", "prod-maria"]  # most recently imported first
            first = rows[0]
            assert "PostgreSQL (pgAudit)" in first and "123,456" in first and "Dec 1, 2026" in first
            assert "MariaDB server_audit" in rows[1] and "—" in rows[1]  # no event yet
            assert page.locator("#role-mappings-list").inner_text() == f"db:alice → {admin.email}"
            assert page.locator("#sources-empty").is_hidden() and errors == []
        finally:
            chromium.close()
