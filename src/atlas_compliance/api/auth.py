"""Routes: /api/v1/auth (login, logout, me)."""

from __future__ import annotations

from fastapi import Request

from ..auth import service
from ..auth.schemas import LoginRequest, LoginResponse, LogoutResponse, MeResponse
from .deps import DB, CurrentPrincipal, client_ip, get_settings
from .errors import responses
from .routing import api_router

router = api_router(prefix="/api/v1/auth", tags=["auth"])


@router.post("/login", response_model=LoginResponse, responses=responses(400, 401, 403, 413, 422, 429),
             summary="Log in with email and password")
async def login(body: LoginRequest, request: Request, db: DB) -> LoginResponse:
    """Open a session (default 7 days) in one organization and return its bearer token.

    Wrong passwords and unknown emails both answer 401. After 10 failures for one email from one client
    address (or 30 from one client address, whatever the emails) within 15 minutes, attempts from that
    address answer 429 with `Retry-After`; the same user signing in from another address is not affected.
    The client address is the connection's peer, or with `ATLAS_TRUSTED_PROXIES` the right-most address
    of `X-Forwarded-For` that is not a trusted proxy.
    """
    settings = get_settings(request)
    result = await service.login(
        db, email=body.email, password=body.password, org_slug=body.org, ip=client_ip(request),
        user_agent=request.headers.get("user-agent"), ttl_seconds=settings.session_ttl,
        max_failures=settings.login_max_failures, window_seconds=settings.login_window_seconds)
    return LoginResponse(token=result.token, expiresAt=result.expires_at, user=result.user,
                         organization=result.organization, role=result.role)


@router.post("/logout", response_model=LogoutResponse, responses=responses(400, 401),
             summary="Revoke the current session")
async def logout(principal: CurrentPrincipal, db: DB) -> LogoutResponse:
    """Revoke the session token used for this request. The session row is kept for login history."""
    async with db.transaction() as conn:
        revoked = await service.logout(conn, principal)
    return LogoutResponse(revoked=revoked)


@router.get("/me", response_model=MeResponse, responses=responses(401), summary="Who am I")
async def me(principal: CurrentPrincipal) -> MeResponse:
    """The caller's user, organization, role and credential kind."""
    user = ({"id": principal.user_id, "email": principal.email or "", "name": principal.email or ""}
            if principal.user_id else None)
    return MeResponse(user=user, organization={"id": principal.org_id, "slug": principal.org_slug,
                                               "name": principal.org_name},
                      role=principal.role, credential=principal.kind, scopes=sorted(principal.scopes))
