"""The console without a browser: pages, cookies, CSRF, the 403 page, security headers, daily volume."""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import quote

import pytest

from atlas_compliance.api.deps import SESSION_COOKIE
from atlas_compliance.app import create_app
from atlas_compliance.auth import service as auth
from tests.conftest import assert_error, run_service
from tests.console.conftest import META_TOKEN, browser_client, console_login, login_token, page_token

CSP_DIRECTIVES = ["default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
                  "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"]
ASSETS = {"console.css": "text/css", "dom.js": "javascript", "chart.js": "javascript",
          "classifications.js": "javascript", "reports.js": "javascript", "activity.js": "javascript",
          "console.js": "javascript",
          "favicon.svg": "image/svg+xml"}


def cookie_header(resp, name: str) -> str:
    return next(v for v in resp.headers.get_list("set-cookie") if v.startswith(f"{name}="))


def assert_no_inline_code(html: str) -> None:
    """The CSP forbids inline scripts and styles: the pages must not need them."""
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", html)
    assert " style=" not in html and "<style" not in html and " onclick=" not in html


def test_login_page_renders_with_the_restrictive_csp(client):
    resp = client.get("/login")
    assert resp.status_code == 200
    assert '<h1 id="login-title">Sign in</h1>' in resp.text and 'type="password"' in resp.text
    assert 'id="org"' not in resp.text  # the organization field appears only when needed
    csp = resp.headers["content-security-policy"]
    assert all(d in csp for d in CSP_DIRECTIVES), csp
    assert "unsafe-inline" not in csp and "http" not in csp
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["referrer-policy"] == "same-origin"
    assert resp.headers["cache-control"] == "no-store"
    nonce_cookie = cookie_header(resp, "atlas_login_csrf")
    assert "HttpOnly" in nonce_cookie and "SameSite=strict" in nonce_cookie and "Path=/login" in nonce_cookie
    assert_no_inline_code(resp.text)
    assert "//" not in re.sub(r'(xmlns|href)="[^"]*"', "", resp.text.split("<body", 1)[1])  # no CDN


def test_assets_ship_in_the_package(client):
    for name, content_type in ASSETS.items():
        resp = client.get(f"/static/{name}")
        assert resp.status_code == 200, name
        assert content_type in resp.headers["content-type"] and resp.headers["x-content-type-options"] == "nosniff"
        assert "https://" not in resp.text and "@import" not in resp.text and "@font-face" not in resp.text


def test_login_sets_the_session_cookie_and_opens_the_console(client, org, settings, sql):
    admin = org.add_user("admin", login=False)
    browser = browser_client(client)
    resp = console_login(browser, admin)
    assert resp.status_code == 303 and resp.headers["location"] == "/admin/compliance"
    cookie = cookie_header(resp, SESSION_COOKIE)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert f"Max-Age={settings.session_ttl}" in cookie and "Secure" not in cookie  # plain HTTP here
    page = browser.get("/admin/compliance?tab=reports")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "<h1>Compliance</h1>" in page.text
    assert "PII classifications, data access reports, and user activity audits." in page.text
    assert 'id="panel-reports" class="panel" aria-labelledby="tab-reports">' in page.text  # the tab from the URL
    assert_no_inline_code(page.text)
    # The page's CSRF token is the documented HMAC of the session token under the installation secret.
    secret = bytes.fromhex(sql.execute("SELECT value FROM atlas_installation WHERE key = 'hmac_secret'")
                           .fetchone()["value"])
    session = browser.cookies.get(SESSION_COOKIE)
    expected = hmac.new(secret, f"csrf:{session}".encode(), hashlib.sha256).hexdigest()
    assert META_TOKEN.search(page.text).group(1) == expected
    assert browser.get("/api/v1/auth/me").json()["user"]["email"] == admin.email
    # Signed in, /login goes straight to the console.
    assert browser.get("/login", follow_redirects=False).headers["location"] == "/admin/compliance"


def test_secure_cookie_over_https_or_when_configured(client, org, settings):
    admin = org.add_user("admin", login=False)
    over_https = console_login(browser_client(client, base_url="https://testserver"), admin)
    assert "Secure" in cookie_header(over_https, SESSION_COOKIE)
    # Behind a TLS-terminating proxy the app sees plain HTTP: ATLAS_SECURE_COOKIES forces the flag.
    forced = browser_client(client, app=create_app(client.app.state.db,
                                                   settings.model_copy(update={"secure_cookies": True})))
    form = forced.get("/login")
    nonce_cookie = cookie_header(form, "atlas_login_csrf")
    assert "Secure" in nonce_cookie
    nonce = nonce_cookie.split(";", 1)[0].split("=", 1)[1]
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    behind_proxy = forced.post("/login", data={"email": admin.email, "password": admin.password, "csrf": token},
                               headers={"Cookie": f"atlas_login_csrf={nonce}"}, follow_redirects=False)
    assert behind_proxy.status_code == 303 and "Secure" in cookie_header(behind_proxy, SESSION_COOKIE)


def test_the_login_form_needs_its_signed_token(client, org):
    admin = org.add_user("admin", login=False)
    browser = browser_client(client)
    form = {"email": admin.email, "password": admin.password}
    no_token = browser.post("/login", data=form)
    assert no_token.status_code == 403 and "This form expired" in no_token.text
    assert SESSION_COOKIE not in no_token.headers.get("set-cookie", "")
    # A token without the nonce cookie it was issued with (a forged cross-site post) is refused.
    token = login_token(browser)
    assert browser_client(client).post("/login", data={**form, "csrf": token}).status_code == 403
    # Naive double-submit (the cookie's own value echoed in the form) is refused: the token is signed.
    browser.get("/login")
    nonce = browser.cookies.get("atlas_login_csrf")
    assert browser.post("/login", data={**form, "csrf": nonce}).status_code == 403
    assert console_login(browser, admin).status_code == 303


def test_wrong_password_and_rate_limit_are_shown_on_the_form(client, org, settings):
    admin = org.add_user("admin", login=False)
    browser = browser_client(client, ip="192.0.2.41")
    wrong = console_login(browser, admin, password="not-the-password")
    assert wrong.status_code == 401 and "Wrong email or password." in wrong.text
    assert f'value="{admin.email}"' in wrong.text and "not-the-password" not in wrong.text
    for _ in range(settings.login_max_failures - 1):
        assert console_login(browser, admin, password="not-the-password").status_code == 401
    limited = console_login(browser, admin)  # even the right password, while the limit holds
    assert limited.status_code == 429
    retry = int(limited.headers["retry-after"])
    assert 1 <= retry <= settings.login_window_seconds
    assert f"Too many failed sign-in attempts. Try again in {retry} seconds." in limited.text
    assert SESSION_COOKIE not in limited.headers.get("set-cookie", "")


def test_the_organization_field_appears_when_the_user_has_several(client, make_org):
    first, second = make_org("First"), make_org("Second")
    admin = first.add_user("admin", login=False)
    run_service(client, auth.add_member, email=admin.email, org_slug=second.slug, role="owner")
    browser = browser_client(client, ip="192.0.2.42")
    ask = console_login(browser, admin)
    assert ask.status_code == 400 and 'id="org"' in ask.text
    assert "You belong to several organizations" in ask.text and first.slug in ask.text and second.slug in ask.text
    unknown = console_login(browser, admin, org="not-mine")
    assert unknown.status_code == 403 and 'id="org"' in unknown.text
    assert console_login(browser, admin, org=second.slug).status_code == 303
    assert browser.get("/api/v1/auth/me").json()["organization"]["slug"] == second.slug


def test_a_member_gets_the_admin_role_required_page(client, org):
    member = org.add_user("member", login=False)
    browser = browser_client(client)
    assert console_login(browser, member).status_code == 303
    page = browser.get("/admin/compliance?tab=reports")
    assert page.status_code == 403 and "Admin role required" in page.text and "HTTP 403" in page.text
    assert 'id="panel-reports"' not in page.text and "console.js" not in page.text
    assert_error(browser.get("/api/v1/admin/compliance/classifications"), 403, "forbidden_role")
    # The 403 page can still sign out (its form carries the CSRF token).
    token = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text).group(1)
    assert browser.post("/logout", data={"csrf": token}, follow_redirects=False).headers["location"] == "/login"


def test_signed_out_visitors_go_to_login_and_next_is_never_offsite(client, org):
    target = "/admin/compliance?tab=reports&from=2026-01-01&to=2026-01-31"
    resp = browser_client(client).get(target, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/login?next=" + quote(target, safe="")
    login_page = browser_client(client).get(resp.headers["location"])
    assert f'name="next" value="{target.replace("&", "&amp;")}"' in login_page.text
    admin = org.add_user("admin", login=False)
    assert console_login(browser_client(client), admin, next_url=target).headers["location"] == target
    for evil in ("https://evil.example/x", "//evil.example", "/\\evil.example", "/\t/evil.example",
                 "http:/evil.example", "javascript:alert(1)", "evil.example", "/logout", " /x"):
        assert console_login(browser_client(client), admin, next_url=evil).headers["location"] == "/admin/compliance"
    # A stale cookie (revoked or unknown session) is dropped on the way to the login page.
    stale = browser_client(client)
    stale.cookies.set(SESSION_COOKIE, "atlas_sess_unknown")
    resp = stale.get("/admin/compliance", follow_redirects=False)
    assert resp.status_code == 303 and f'{SESSION_COOKIE}=""' in resp.headers["set-cookie"]


@pytest.fixture()
def classification(client, org):
    owner = org.add_user("owner")
    body = {"detections": [{"tableName": "patients", "columnName": "ssn", "category": "ssn", "confidence": "high"}]}
    url = "/api/v1/admin/compliance/classifications"
    assert client.post(url, json=body, headers=owner.headers).json()["created"] == 1
    return client.get(url, headers=owner.headers).json()["classifications"][0]


def test_cookie_authenticated_writes_need_the_csrf_header(client, org, classification):
    admin = org.add_user("admin", login=False)
    browser = browser_client(client)
    console_login(browser, admin)
    token = page_token(browser)
    url = f"/api/v1/admin/compliance/classifications/{classification['id']}"
    assert_error(browser.put(url, json={"maskingStrategy": "hash"}), 403, "csrf_failed")
    assert_error(browser.put(url, json={"maskingStrategy": "hash"}, headers={"X-CSRF-Token": "0" * 64}), 403,
                 "csrf_failed")
    assert_error(browser.delete(url), 403, "csrf_failed")
    assert_error(browser.post("/api/v1/admin/compliance/classifications/review"), 403, "csrf_failed")
    # Another session's token does not fit this session.
    other = browser_client(client)
    console_login(other, org.add_user("admin", login=False))
    assert_error(browser.put(url, json={"reviewed": True}, headers={"X-CSRF-Token": page_token(other)}), 403,
                 "csrf_failed")
    # Nothing changed; with the page's token the write goes through.
    assert browser.get(url.rsplit("/", 1)[0]).json()["classifications"][0]["maskingStrategy"] != "hash"
    ok = browser.put(url, json={"maskingStrategy": "hash"}, headers={"X-CSRF-Token": token})
    assert ok.status_code == 200 and ok.json()["maskingStrategy"] == "hash"


def test_authorization_header_calls_are_not_affected_by_csrf(client, org, classification):
    admin = org.add_user("admin")
    url = f"/api/v1/admin/compliance/classifications/{classification['id']}"
    resp = client.put(url, json={"reviewed": True}, headers=admin.headers)
    assert resp.status_code == 200 and resp.json()["reviewed"] is True
    personal = {"Authorization": f"Bearer {org.personal_token(admin)}"}
    assert client.post("/api/v1/admin/compliance/classifications/review", json={}, headers=personal).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=admin.headers).json() == {"revoked": True}


def test_logout_needs_the_token_and_revokes_the_session(client, org):
    admin = org.add_user("admin", login=False)
    browser = browser_client(client)
    console_login(browser, admin)
    token = page_token(browser)
    session = browser.cookies.get(SESSION_COOKIE)
    bearer = {"Authorization": f"Bearer {session}"}
    refused = browser.post("/logout", data={}, follow_redirects=False)
    assert refused.status_code == 403 and "csrf_failed" in refused.text
    assert client.get("/api/v1/auth/me", headers=bearer).status_code == 200  # still signed in
    resp = browser.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/login"
    assert f'{SESSION_COOKIE}=""' in resp.headers["set-cookie"] and "Max-Age=0" in resp.headers["set-cookie"]
    assert_error(client.get("/api/v1/auth/me", headers=bearer), 401, "token_revoked")
    assert browser.get("/admin/compliance", follow_redirects=False).status_code == 303


def test_daily_volume_counts_successful_queries_per_local_day(client, org, make_org):
    admin = org.add_user("admin", login=False)
    events = [
        {"sql": "select 1", "timestamp": "2026-03-01T10:00:00Z", "tablesAccessed": ["orders"]},
        {"sql": "select 2", "timestamp": "2026-03-02T03:30:00Z", "tablesAccessed": ["patients"]},
        {"sql": "select 3", "timestamp": "2026-03-02T10:00:00Z", "tablesAccessed": ["orders"]},
        {"sql": "select 4", "timestamp": "2026-03-02T11:00:00Z", "tablesAccessed": ["orders"], "success": False},
        {"sql": "select 5", "timestamp": "2026-03-04T12:00:00Z", "tablesAccessed": ["orders"]},
    ]
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    assert client.post("/api/v1/audit/events", json=events, headers=key).json()["inserted"] == 5
    other = make_org()  # another organization's queries never count
    client.post("/api/v1/audit/events", json=events, headers={"Authorization": f"Bearer {other.ingest_key()}"})
    browser = browser_client(client)
    console_login(browser, admin)
    window = {"startDate": "2026-03-01", "endDate": "2026-03-04"}
    utc = browser.get("/api/v1/admin/compliance/volume", params=window).json()
    assert utc["days"] == [{"date": "2026-03-01", "queries": 1}, {"date": "2026-03-02", "queries": 2},
                           {"date": "2026-03-03", "queries": 0}, {"date": "2026-03-04", "queries": 1}]
    assert utc["totalQueries"] == 4 and utc["window"] == {"start": "2026-03-01T00:00:00Z",
                                                          "end": "2026-03-05T00:00:00Z", "tz": "UTC"}
    # In New York, 03:30 UTC on March 2 is still March 1.
    ny = browser.get("/api/v1/admin/compliance/volume", params={**window, "tz": "America/New_York"}).json()
    assert [d["queries"] for d in ny["days"]] == [2, 1, 0, 1]
    # The same numbers as the Data Access Report for that window.
    report = browser.get("/api/v1/admin/compliance/reports/data-access", params=window).json()
    assert report["summary"]["totalQueries"] == utc["totalQueries"]
    assert_error(browser.get("/api/v1/admin/compliance/volume", params={**window, "endDate": "2026-02-30"}), 400,
                 "invalid_date")
    assert_error(browser.get("/api/v1/admin/compliance/volume", params={"startDate": "2020-01-01", "endDate": "2026-01-01"}),
                 400, "window_too_long")
    assert_error(browser_client(client).get("/api/v1/admin/compliance/volume", params=window), 401)
    member = browser_client(client)
    console_login(member, org.add_user("member", login=False))
    assert_error(member.get("/api/v1/admin/compliance/volume", params=window), 403, "forbidden_role")
