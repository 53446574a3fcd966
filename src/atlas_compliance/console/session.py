"""The console's session cookie: who is signed in, where to go after login, cookie attributes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request, Response

from ..api.deps import SESSION_COOKIE
from ..auth import csrf
from ..auth import service as auth_service
from ..auth.schemas import Principal
from ..errors import Unauthorized

HOME = "/admin/compliance"
# Control characters and whitespace are refused: browsers drop tabs and newlines from URLs, so
# "/\t/evil.example" would become the protocol-relative "//evil.example".
_UNSAFE_NEXT = re.compile(r"[\x00-\x20\x7f\\]")


@dataclass(frozen=True)
class ConsoleSession:
    principal: Principal
    token: str
    csrf_token: str  # the HMAC the page's forms and fetch calls send back


def safe_next(target: str | None) -> str:
    """A same-site relative path to go to after login, else the console's home (never an open redirect).

    >>> [safe_next(t) for t in ("/admin/compliance?tab=reports", "https://evil.example", "//evil.example")]
    ['/admin/compliance?tab=reports', '/admin/compliance', '/admin/compliance']
    """
    if not target or len(target) > 2000 or not target.startswith("/") or _UNSAFE_NEXT.search(target):
        return HOME
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//") or target.startswith(("/login", "/logout")):
        return HOME
    return target


def cookie_secure(request: Request) -> bool:
    """Secure cookies over HTTPS, or everywhere when the installation says so (behind a TLS proxy)."""
    return request.url.scheme == "https" or bool(request.app.state.settings.secure_cookies)


async def current_session(request: Request) -> ConsoleSession | None:
    """The signed-in session of the ``atlas_session`` cookie, or None (missing, expired or revoked)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    async with request.app.state.db.transaction() as conn:
        try:
            principal = await auth_service.authenticate(conn, token)
        except Unauthorized:
            return None
        secret = await csrf.installation_secret(conn)
    if principal.kind != "session":  # personal tokens and ingest keys are for the API, not the console
        return None
    return ConsoleSession(principal=principal, token=token, csrf_token=csrf.session_token(secret, token))


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=request.app.state.settings.session_ttl, path="/",
                        httponly=True, samesite="lax", secure=cookie_secure(request))


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=cookie_secure(request))
