"""Routes: /docs, the OpenAPI document in Swagger UI, and /redoc, which now leads there.

Swagger UI's script and stylesheet ship inside the package (``docs_assets/swagger-ui/``: a byte-for-byte
copy of the npm package swagger-ui-dist, licence kept; see ``docs_assets/VENDORED.md`` and
``tools/vendor_api_docs.sh``), so the page works without internet. It runs under the console's
Content-Security-Policy: no inline script or style (its start-up lives in ``swagger-ui-init.js``), and it
makes no request off this site.

Redoc is not served: its styling library inserts ``<style>`` elements, which that policy refuses
(``style-src 'self'``), and Redoc 3 also sends telemetry to, and loads its logo from, Redocly's servers.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

ASSETS_DIR = Path(__file__).parent / "docs_assets"
ASSETS_URL = "/api-docs-assets"
OPENAPI_URL = "/openapi.json"

router = APIRouter(include_in_schema=False)


def _version() -> str:
    """A short hash of the shipped assets: a new release is never served from a stale cache."""
    digest = hashlib.sha256()
    for path in sorted(p for p in ASSETS_DIR.rglob("*") if p.is_file()):
        digest.update(path.relative_to(ASSETS_DIR).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:10]


_V = _version()
SWAGGER_UI_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Atlas Compliance API — Swagger UI</title>
  <link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="{ASSETS_URL}/swagger-ui/swagger-ui.css?v={_V}">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{OPENAPI_URL}"></div>
  <noscript>This page needs JavaScript. The OpenAPI document is at <a href="{OPENAPI_URL}">{OPENAPI_URL}</a>.</noscript>
  <script src="{ASSETS_URL}/swagger-ui/swagger-ui-bundle.js?v={_V}"></script>
  <script src="{ASSETS_URL}/swagger-ui-init.js?v={_V}"></script>
</body>
</html>
"""


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    """The OpenAPI document in Swagger UI (every operation, its parameters and answers; try it out)."""
    return HTMLResponse(SWAGGER_UI_PAGE)


@router.get("/redoc")
async def redoc() -> RedirectResponse:
    """Old links to Redoc land on Swagger UI (see the module docstring for why Redoc is not served)."""
    return RedirectResponse("/docs", status_code=308)


def install(app: FastAPI) -> None:
    """The pages and their assets (the app is created with ``docs_url=None, redoc_url=None``)."""
    app.include_router(router)
    app.mount(ASSETS_URL, StaticFiles(directory=str(ASSETS_DIR)), name="api-docs-assets")
