"""Routes: /api/v1/admin (organization administration for admins and owners)."""

from __future__ import annotations

from ..auth import service as auth_service
from ..auth.schemas import MemberOut, MembersResponse
from .deps import DB, AdminPrincipal
from .errors import responses
from .routing import api_router

router = api_router(prefix="/api/v1/admin", tags=["admin"])


@router.get("/members", response_model=MembersResponse, responses=responses(401, 403),
            summary="List the organization's members")
async def list_members(principal: AdminPrincipal, db: DB) -> MembersResponse:
    """Members of the caller's organization with their roles (admin or owner only)."""
    async with db.transaction() as conn:
        rows = await auth_service.list_members(conn, principal.org_id)
    return MembersResponse(members=[MemberOut(userId=r["id"], email=r["email"], name=r["name"], role=r["role"])
                                    for r in rows])
