"""The console without a browser: pages, cookies, CSRF, the 403 page, security headers."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from atlas_compliance.api.deps import SESSION_COOKIE


def login(client: TestClient, member, next_url: str = "") -> object:
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"email": member.email, "password": member.password, "csrf": token,
                                       "next": next_url}, follow_redirects=False)


def fresh(client) -> TestClient:
    return TestClient(client.app, base_url="http://testserver")


def test_login_page_and_security_headers(client):
    resp = client.get("/login")
    assert resp.status_code == 200 and "Sign in" in resp.text
    csp = resp.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["x-frame-options"] == "DENY" and resp.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/console.js").status_code == 200


def test_login_sets_a_safe_cookie_and_shows_the_console(client, org):
    admin = org.add_user("admin", login=False)
    browser = fresh(client)
    resp = login(browser, admin)
    assert resp.status_code == 303 and resp.headers["location"] == "/admin/compliance"
    cookie = resp.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain HTTP in tests; HTTPS requests get Secure
    page = browser.get("/admin/compliance?tab=reports")
    assert page.status_code == 200 and 'id="panel-reports"' in page.text
    assert re.search(r'<meta name="csrf-token" content="[0-9a-f]{64}">', page.text)
    assert browser.get("/api/v1/auth/me").json()["user"]["email"] == admin.email


def test_https_cookie_is_secure(client, org):
    admin = org.add_user("admin", login=False)
    browser = TestClient(client.app, base_url="https://testserver")
    assert "Secure" in login(browser, admin).headers["set-cookie"]


def test_wrong_password_and_expired_form(client, org):
    admin = org.add_user("admin", login=False)
    browser = fresh(client)
    page = browser.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    bad = browser.post("/login", data={"email": admin.email, "password": "nope-nope", "csrf": token})
    assert bad.status_code == 401 and "Wrong email or password." in bad.text
    forged = fresh(client).post("/login", data={"email": admin.email, "password": admin.password, "csrf": "x"})
    assert forged.status_code == 403 and SESSION_COOKIE not in forged.headers.get("set-cookie", "")


def test_member_sees_the_403_page(client, org):
    member = org.add_user("member", login=False)
    browser = fresh(client)
    login(browser, member)
    page = browser.get("/admin/compliance")
    assert page.status_code == 403 and "Admin role required" in page.text


def test_not_signed_in_redirects_and_next_is_never_offsite(client, org):
    resp = fresh(client).get("/admin/compliance?tab=reports&from=2026-01-01", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/login?next=%2Fadmin%2Fcompliance")
    admin = org.add_user("admin", login=False)
    for evil in ("https://evil.example/x", "//evil.example", "/\\evil.example"):
        assert login(fresh(client), admin, evil).headers["location"] == "/admin/compliance"
    assert login(fresh(client), admin, "/admin/compliance?tab=reports").headers["location"] == (
        "/admin/compliance?tab=reports")


def test_cookie_writes_need_the_csrf_token(client, org):
    admin = org.add_user("admin", login=False)
    browser = fresh(client)
    login(browser, admin)
    page = browser.get("/admin/compliance")
    csrf = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.text).group(1)
    upload = {"detections": [{"tableName": "t", "columnName": "email", "category": "email"}]}
    url = "/api/v1/admin/compliance/classifications"
    denied = browser.post(url, json=upload)
    assert denied.status_code == 403 and denied.json()["error"] == "csrf_failed"
    assert browser.post(url, json=upload, headers={"X-CSRF-Token": "0" * 64}).status_code == 403
    assert browser.post(url, json=upload, headers={"X-CSRF-Token": csrf}).json()["created"] == 1
    # Reads with the cookie need no token; bearer-token writes are not affected.
    assert browser.get(url).status_code == 200
    assert client.post(url, json=upload, headers=org.add_user("admin").headers).status_code == 200


def test_logout_revokes_the_session(client, org):
    admin = org.add_user("admin", login=False)
    browser = fresh(client)
    login(browser, admin)
    page = browser.get("/admin/compliance")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    cookie = browser.cookies.get(SESSION_COOKIE)
    assert browser.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {cookie}"}).status_code == 401


def test_volume_and_tables_endpoints(client, org):
    admin = org.add_user("admin", login=False)
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    client.post("/api/v1/audit/events", headers=key, json=[
        {"sql": "q", "timestamp": "2026-03-01T10:00:00Z", "tablesAccessed": ["orders"]},
        {"sql": "q", "timestamp": "2026-03-01T23:30:00Z", "tablesAccessed": ["patients"]},
        {"sql": "q", "timestamp": "2026-03-02T10:00:00Z", "tablesAccessed": ["orders"]}])
    browser = fresh(client)
    login(browser, admin)
    body = browser.get("/admin/compliance/volume", params={"startDate": "2026-03-01", "endDate": "2026-03-02"}).json()
    assert body["days"] == [{"day": "2026-03-01", "count": 2}, {"day": "2026-03-02", "count": 1}]
    ny = browser.get("/admin/compliance/volume", params={"startDate": "2026-03-01", "endDate": "2026-03-02",
                                                         "tz": "America/New_York"}).json()
    assert ny["days"] == [{"day": "2026-03-01", "count": 2}, {"day": "2026-03-02", "count": 1}]
    assert browser.get("/admin/compliance/tables").json() == {"tables": ["orders", "patients"]}
    assert browser.get("/admin/compliance/volume", params={"startDate": "x", "endDate": "2026-03-02"}).status_code == 400
    assert fresh(client).get("/admin/compliance/tables").status_code == 403
