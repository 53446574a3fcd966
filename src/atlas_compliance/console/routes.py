"""The admin console: /login, /logout and /admin/compliance (server-rendered, small vanilla JS)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ..api.deps import SESSION_COOKIE
from ..auth import service as auth_service
from ..auth.schemas import Principal
from ..errors import AtlasError, RateLimited, Unauthorized
from ..reports import console_data
from ..reports.window import parse_window
from . import csrf

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
STATIC_DIR = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/admin/compliance"
    return target


def _secure(request: Request) -> bool:
    forced = request.app.state.settings.secure_cookies
    return forced if forced is not None else request.url.scheme == "https"


async def _principal(request: Request) -> tuple[Principal | None, str | None]:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None, None
    async with request.app.state.db.transaction() as conn:
        try:
            return await auth_service.authenticate(conn, token), token
        except Unauthorized:
            return None, None


def _login_page(request: Request, *, message: str | None = None, email: str = "", next_url: str = "",
                show_org: bool = False, status: int = 200, headers: dict | None = None) -> Response:
    token = csrf.new_login_token()
    response = TEMPLATES.TemplateResponse(request, "login.html", {
        "message": message, "email": email, "next": next_url, "show_org": show_org, "csrf": token},
        status_code=status, headers=headers)
    response.set_cookie(csrf.LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request),
                        path="/login", max_age=3600)
    return response


@router.get("/", response_class=RedirectResponse)
async def root() -> RedirectResponse:
    return RedirectResponse("/admin/compliance", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, next_url=_safe_next(next))


@router.post("/login", response_class=HTMLResponse)
async def login_submit(request: Request, email: Annotated[str, Form(max_length=320)] = "",
                       password: Annotated[str, Form(max_length=1024)] = "",
                       org: Annotated[str, Form(max_length=100)] = "", csrf_token: Annotated[str, Form(
                           alias="csrf", max_length=100)] = "", next: Annotated[str, Form(max_length=2000)] = "") -> Response:
    next_url = _safe_next(next)
    if not csrf.same(csrf_token, request.cookies.get(csrf.LOGIN_COOKIE)):
        return _login_page(request, message="Your form expired; please sign in again.", email=email,
                           next_url=next_url, status=403)
    settings = request.app.state.settings
    failure: AtlasError | None = None
    async with request.app.state.db.transaction() as conn:
        try:
            result = await auth_service.login(
                conn, email=email, password=password, org_slug=org or None,
                ip=request.client.host if request.client else None, user_agent=request.headers.get("user-agent"),
                ttl_seconds=settings.session_ttl, max_failures=settings.login_max_failures,
                window_seconds=settings.login_window_seconds, origin="console")
        except AtlasError as exc:
            failure = exc  # leave the block normally so a recorded failed attempt is committed
    if failure is not None:
        if isinstance(failure, RateLimited):
            return _login_page(request, message=failure.message, email=email, next_url=next_url, status=429,
                               headers=failure.headers)
        if isinstance(failure, Unauthorized):
            return _login_page(request, message="Wrong email or password.", email=email, next_url=next_url,
                               status=401)
        return _login_page(request, message=failure.message, email=email, next_url=next_url,
                           show_org=failure.code in ("org_required", "not_a_member"), status=failure.status)
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(SESSION_COOKIE, result.token, httponly=True, samesite="lax", secure=_secure(request),
                        max_age=settings.session_ttl, path="/")
    response.delete_cookie(csrf.LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, csrf_token: Annotated[str, Form(alias="csrf", max_length=100)] = "") -> Response:
    principal, token = await _principal(request)
    if principal is not None and token is not None:
        async with request.app.state.db.transaction() as conn:
            if not csrf.valid(token, csrf_token, await csrf.installation_secret(conn)):
                return HTMLResponse("Invalid CSRF token. Go back and reload the page.", status_code=403)
            await auth_service.logout(conn, principal)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/admin/compliance", response_class=HTMLResponse)
async def compliance(request: Request, tab: str = "classifications") -> Response:
    principal, token = await _principal(request)
    if principal is None or token is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    if not principal.is_admin:
        return TEMPLATES.TemplateResponse(request, "forbidden.html", {"principal": principal}, status_code=403)
    async with request.app.state.db.transaction() as conn:
        csrf_token = csrf.token_for(token, await csrf.installation_secret(conn))
    return TEMPLATES.TemplateResponse(request, "compliance.html", {
        "principal": principal, "csrf": csrf_token, "tab": "reports" if tab == "reports" else "classifications"})


@router.get("/admin/compliance/volume")
async def volume(request: Request, startDate: Annotated[str, Query(max_length=64)],
                 endDate: Annotated[str, Query(max_length=64)],
                 tz: Annotated[str, Query(max_length=64)] = "UTC") -> Response:
    """Daily query volume for the chart (signed-in admins only)."""
    principal, _ = await _principal(request)
    if principal is None or not principal.is_admin:
        return JSONResponse({"error": "forbidden", "message": "admin role required"}, status_code=403)
    window = parse_window(startDate, endDate, tz)
    if window.end - window.start > timedelta(days=400):
        return JSONResponse({"days": [], "note": "window longer than 400 days: no chart"})
    async with request.app.state.db.transaction() as conn:
        days = await console_data.daily_volume(conn, principal.org_id, window)
    return JSONResponse({"days": [{"day": d.isoformat(), "count": n} for d, n in days]})


@router.get("/admin/compliance/tables")
async def tables(request: Request) -> Response:
    """Tables seen in the audit trail, for the table filter's suggestions."""
    principal, _ = await _principal(request)
    if principal is None or not principal.is_admin:
        return JSONResponse({"error": "forbidden", "message": "admin role required"}, status_code=403)
    async with request.app.state.db.transaction() as conn:
        return JSONResponse({"tables": await console_data.known_tables(conn, principal.org_id)})
