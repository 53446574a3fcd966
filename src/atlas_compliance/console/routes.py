"""The admin console: /login, /logout and /admin/compliance.

Pages are rendered here with Jinja2; the compliance page's data comes from the JSON API, called by
``static/*.js`` with the session cookie (and the CSRF token for writes). No SQL lives here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, get_args
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ..api.deps import SESSION_COOKIE, client_ip
from ..auth import csrf
from ..auth import service as auth_service
from ..errors import AtlasError, Forbidden, RateLimited, Unauthorized
from ..pii.categories import CATEGORIES
from ..pii.schemas import Category, Strategy
from .session import (
    HOME,
    ConsoleSession,
    clear_session_cookie,
    cookie_secure,
    current_session,
    safe_next,
    set_session_cookie,
)

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"  # mounted at /static by the app


def _asset_version() -> str:
    """A short hash of the shipped assets, appended to their URLs so a new release is never served stale."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.glob("*")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:10]


TEMPLATES = Jinja2Templates(directory=str(TEMPLATE_DIR))
TEMPLATES.env.globals["asset_version"] = _asset_version()
TEMPLATES.env.globals["categories"] = get_args(Category)
TEMPLATES.env.globals["strategies"] = get_args(Strategy)
TEMPLATES.env.globals["pii_category_catalog"] = [
    {"id": c.id, "label": c.label, "group": c.group, "masking": c.masking} for c in CATEGORIES]
NO_STORE = {"Cache-Control": "no-store"}  # pages carry a CSRF token and who is signed in

router = APIRouter(include_in_schema=False)


def _page(request: Request, template: str, context: dict[str, Any], status: int = 200,
          headers: dict[str, str] | None = None) -> Response:
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status,
                                      headers={**NO_STORE, **(headers or {})})


async def _login_page(request: Request, *, status: int = 200, message: str | None = None, email: str = "",
                      next_url: str = HOME, org: str = "", org_choices: list[str] | None = None,
                      headers: dict[str, str] | None = None) -> Response:
    """The login form with a fresh signed double-submit token (its nonce goes in a cookie)."""
    nonce = csrf.new_login_nonce()
    async with request.app.state.db.transaction() as conn:
        token = csrf.login_token(await csrf.installation_secret(conn), nonce)
    response = _page(request, "login.html", {
        "message": message, "email": email, "next": next_url, "csrf": token, "org": org,
        "show_org": org_choices is not None or bool(org), "org_choices": org_choices or []},
        status=status, headers=headers)
    response.set_cookie(csrf.LOGIN_COOKIE, nonce, max_age=3600, path="/login", httponly=True, samesite="strict",
                        secure=cookie_secure(request))
    return response


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303, headers=NO_STORE)
    if request.cookies.get(SESSION_COOKIE):
        clear_session_cookie(response, request)  # expired or revoked: forget it
    return response


@router.get("/")
async def root() -> Response:
    return RedirectResponse(HOME, status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    if await current_session(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303, headers=NO_STORE)
    return await _login_page(request, next_url=safe_next(next))


@router.post("/login", response_class=HTMLResponse)
async def login_submit(
    request: Request,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    org: Annotated[str, Form(max_length=100)] = "",
    csrf_token: Annotated[str, Form(alias="csrf", max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    next_url = safe_next(next)
    email, org = email.strip(), org.strip()
    settings = request.app.state.settings
    failure: AtlasError | None = None
    async with request.app.state.db.transaction() as conn:
        secret = await csrf.installation_secret(conn)
    if not csrf.login_token_valid(secret, request.cookies.get(csrf.LOGIN_COOKIE), csrf_token):
        failure = Forbidden("the login form expired or was not sent by this site", code="csrf_failed")
    else:
        try:
            result = await auth_service.login(
                request.app.state.db, email=email, password=password, org_slug=org or None, ip=client_ip(request),
                user_agent=request.headers.get("user-agent"), ttl_seconds=settings.session_ttl,
                max_failures=settings.login_max_failures, window_seconds=settings.login_window_seconds,
                origin="console")
        except AtlasError as exc:
            failure = exc
    if failure is not None:
        return await _login_failure(request, failure, email=email, org=org, next_url=next_url)
    previous = await current_session(request)
    if previous is not None:  # signing in again replaces the session this browser held
        async with request.app.state.db.transaction() as conn:
            await auth_service.logout(conn, previous.principal)
    response = RedirectResponse(next_url, status_code=303, headers=NO_STORE)
    set_session_cookie(response, request, result.token)
    response.delete_cookie(csrf.LOGIN_COOKIE, path="/login")
    return response


async def _login_failure(request: Request, failure: AtlasError, *, email: str, org: str, next_url: str) -> Response:
    page = {"email": email, "next_url": next_url, "org": org}
    if failure.code == "csrf_failed":
        return await _login_page(request, status=403, message="This form expired. Please sign in again.", **page)
    if isinstance(failure, RateLimited):
        retry = str(failure.retry_after)
        return await _login_page(
            request, status=429, headers={"Retry-After": retry},
            message=f"Too many failed sign-in attempts. Try again in {retry} seconds.", **page)
    if isinstance(failure, Unauthorized):
        return await _login_page(request, status=401, message="Wrong email or password.", **page)
    if failure.code == "org_required":
        choices = list((failure.details or {}).get("organizations", []))
        message = "You belong to several organizations. Enter the one to sign in to" + (
            f": {', '.join(choices)}." if choices else ".")
        return await _login_page(request, status=400, message=message, org_choices=choices, **page)
    if failure.code == "not_a_member" and org:
        return await _login_page(request, status=403, org_choices=[],
                                 message=f"You are not a member of the organization “{org}”.", **page)
    return await _login_page(request, status=failure.status, message=failure.message, **page)


@router.post("/logout")
async def logout(request: Request, csrf_token: Annotated[str, Form(alias="csrf", max_length=200)] = "") -> Response:
    session = await current_session(request)
    if session is not None:
        async with request.app.state.db.transaction() as conn:
            secret = await csrf.installation_secret(conn)
            if not csrf.session_token_valid(secret, session.token, csrf_token):
                return _page(request, "message.html", {
                    "title": "Sign-out refused", "code": "csrf_failed", "session": session,
                    "text": "The form was missing its security token, so you are still signed in. "
                            "Go back, reload the page and sign out again."}, status=403)
            await auth_service.logout(conn, session.principal)
    response = RedirectResponse("/login", status_code=303, headers=NO_STORE)
    clear_session_cookie(response, request)
    return response


@router.get("/admin/compliance", response_class=HTMLResponse)
async def compliance(request: Request, tab: Annotated[str, Query(max_length=40)] = "classifications") -> Response:
    session: ConsoleSession | None = await current_session(request)
    if session is None:
        return _login_redirect(request)
    if not session.principal.is_admin:
        return _page(request, "forbidden.html", {"session": session}, status=403)
    return _page(request, "compliance.html", {
        "session": session, "tab": tab if tab in ("reports", "events", "reviews") else "classifications"})


