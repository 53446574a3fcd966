"""FastAPI dependencies: the database and the authenticated principal.

Route handlers own their transaction (``async with db.transaction()``), so a 2xx answer is only
sent after the commit.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import Depends, Request

from ..audit.admin_actions import Actor
from ..auth import csrf
from ..auth import service as auth_service
from ..auth.schemas import Principal
from ..config import Settings
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
            # carrying its CSRF token (an HMAC of the session token, see auth/csrf.py).
            secret = await csrf.installation_secret(conn)
            if not csrf.session_token_valid(secret, token, request.headers.get(csrf.HEADER)):
                raise Forbidden("missing or invalid X-CSRF-Token header: reload the console page",
                                code="csrf_failed")
    request.state.principal = principal
    return principal


async def get_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    return auth_service.require_admin(principal)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forwarded_client(peer: str | None, forwarded_for: list[str], trusted: tuple) -> str | None:
    """The client address: the connection's peer, unless the peer is a trusted proxy; then the right-most
    address of ``X-Forwarded-For`` that is not a trusted proxy (the left part of the header is whatever the
    client wrote, so it is never believed). An entry that is not an address ends the walk at the proxy that
    passed it on.

    >>> import ipaddress
    >>> proxies = (ipaddress.ip_network("10.0.0.0/8"),)
    >>> forwarded_client("10.0.0.2", ["6.6.6.6, 198.51.100.7, 10.0.0.9"], proxies)
    '198.51.100.7'
    >>> forwarded_client("203.0.113.5", ["6.6.6.6"], proxies)
    '203.0.113.5'
    """
    if not trusted or peer is None:
        return peer
    current = peer
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in [None, *reversed(hops)]:
        address = _address(current) if hop is None else _address(hop)
        if address is None:
            return current
        current = str(address)
        if not any(address in network for network in trusted):
            return current
    return current


def client_ip(request: Request) -> str | None:
    """The address login limits count and logs store (see :func:`forwarded_client`)."""
    peer = request.client.host if request.client else None
    settings: Settings = request.app.state.settings
    return forwarded_client(peer, request.headers.getlist("x-forwarded-for"), settings.trusted_networks)


def request_actor(request: Request, principal: Principal) -> Actor:
    """The member acting through this request, for the admin action log."""
    return Actor(user_id=principal.user_id, email=principal.email, request_id=request.state.request_id,
                 ip=client_ip(request))


DB = Annotated[Database, Depends(get_db)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
AdminPrincipal = Annotated[Principal, Depends(get_admin)]
