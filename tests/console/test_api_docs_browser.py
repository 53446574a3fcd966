"""/docs (Swagger UI) in a real browser with the network cut off: every request that does not go to
this server is blocked, and the page must still list every operation, under the console's
Content-Security-Policy, without a violation, a failed request or a script error."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from tests.helpers_server import ThreadServer

pytestmark = pytest.mark.browser  # the `browser` fixture lives in conftest.py


@pytest.fixture(scope="module")
def server(database_url, settings):
    with ThreadServer(database_url, settings) as running:
        yield running


@pytest.fixture(scope="module")
def operations(server) -> list[tuple[str, str, str]]:
    """(METHOD, path, summary) of every operation in the OpenAPI document."""
    paths = httpx.get(server.base + "/openapi.json", timeout=10).json()["paths"]
    found = [(method.upper(), path, op.get("summary", "")) for path, item in paths.items()
             for method, op in item.items() if method in ("get", "put", "post", "delete", "patch")]
    assert len(found) >= 15, found
    return found


def offline_page(browser, server):
    """A page whose network ends at this server, recording what it tried to reach and what went wrong."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.blocked, page.problems = [], []
    local = urlsplit(server.base).netloc

    def route(route):
        url = urlsplit(route.request.url)
        if url.scheme in ("http", "https") and url.netloc != local:
            page.blocked.append(route.request.url)
            return route.abort("internetdisconnected")
        return route.continue_()

    context.route("**/*", route)
    page.on("pageerror", lambda exc: page.problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: msg.type in ("error", "warning") and page.problems.append(msg.text))
    page.on("requestfailed", lambda req: page.problems.append(f"request failed: {req.url} {req.failure}"))
    return page


def csp_violations(page) -> list[str]:
    return [p for p in page.problems if "Content Security Policy" in p or "Refused to" in p]


def test_swagger_ui_lists_every_operation_offline(browser, server, operations):
    page = offline_page(browser, server)
    response = page.goto(server.base + "/docs")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_selector(".opblock-summary", timeout=30_000)
    shown = page.eval_on_selector_all(
        ".opblock", """els => els.map(e => [e.querySelector('.opblock-summary-method').textContent,
            e.querySelector('.opblock-summary-path').dataset.path])""")
    assert sorted(map(tuple, shown)) == sorted((m, p) for m, p, _ in operations)
    summaries = page.locator(".opblock-summary-description").all_inner_texts()
    assert "Data Access Report: who queried which tables, when, how often" in summaries
    assert page.locator(".info .title").inner_text().startswith("Atlas Compliance")
    assert page.blocked == [] and csp_violations(page) == [] and page.problems == []
    page.context.close()


def test_redoc_leads_to_swagger_ui(browser, server, operations):
    """Redoc is not served (its styles need a weaker CSP, and Redoc 3 calls home); old links still work."""
    resp = httpx.get(server.base + "/redoc", timeout=10)
    assert (resp.status_code, resp.headers["location"]) == (308, "/docs")
    page = offline_page(browser, server)
    page.goto(server.base + "/redoc")
    page.wait_for_selector(".opblock-summary", timeout=30_000)
    assert page.url == server.base + "/docs" and page.locator(".opblock").count() == len(operations)
    assert page.blocked == [] and page.problems == []
    page.context.close()


def test_the_docs_page_has_no_inline_script_or_style_and_its_assets_ship_in_the_package(server):
    resp = httpx.get(server.base + "/docs", timeout=10)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    html = resp.text
    assert "<style" not in html and " style=" not in html and "//" not in html.replace("http://", "")
    scripts = [part.split(">", 1)[0] for part in html.split("<script")[1:]]
    assert len(scripts) == 2 and all(' src="/api-docs-assets/' in tag for tag in scripts), scripts
    for src in [tag.split('src="', 1)[1].split('"', 1)[0] for tag in scripts]:
        asset = httpx.get(server.base + src, timeout=10)
        assert asset.status_code == 200 and "javascript" in asset.headers["content-type"], src
        assert "script-src 'self'" in asset.headers["content-security-policy"]
