"""FastAPI dependencies: the database and the authenticated principal.

Route handlers own their transaction (``async with db.transaction()``), so a 2xx answer is only
sent after the commit.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..audit.admin_actions import Actor
from ..auth import service as auth_service
from ..auth.schemas import Principal
from ..config import Settings
from ..console import csrf
from ..db.pool import Database
from ..errors import Forbidden, Unauthorized

SESSION_COOKIE = "atlas_session"


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("malformed Authorization header: use 'Bearer <token>'", code="invalid_token")
        return value.strip()
    return request.cookies.get(SESSION_COOKIE)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_principal(request: Request) -> Principal:
    token = bearer_token(request)
    if not token:
        raise Unauthorized("authentication required: send 'Authorization: Bearer <token>'",
                           code="unauthenticated")
    db: Database = request.app.state.db
    async with db.transaction() as conn:
        principal = await auth_service.authenticate(conn, token)
        if request.method not in SAFE_METHODS and not request.headers.get("authorization"):
            # The credential came from the console's cookie, which a browser also sends on requests
            # that other sites forge: unsafe methods must prove they come from a console page by
            # carrying its CSRF token (an HMAC of the session token, see console/csrf.py).
            secret = await csrf.installation_secret(conn)
            if not csrf.session_token_valid(secret, token, request.headers.get(csrf.HEADER)):
                raise Forbidden("missing or invalid X-CSRF-Token header: reload the console page",
                                code="csrf_failed")
    request.state.principal = principal
    return principal


async def get_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    return auth_service.require_admin(principal)


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def request_actor(request: Request, principal: Principal) -> Actor:
    """The member acting through this request, for the admin action log."""
    return Actor(user_id=principal.user_id, email=principal.email, request_id=request.state.request_id,
                 ip=client_ip(request))


DB = Annotated[Database, Depends(get_db)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
AdminPrincipal = Annotated[Principal, Depends(get_admin)]
