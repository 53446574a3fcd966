"""Routes: /api/v1/admin (organization administration for admins and owners)."""

from __future__ import annotations

from pydantic import BaseModel

from ..auth import repository as auth_repo
from .deps import DB, AdminPrincipal
from .errors import responses
from .routing import api_router

router = api_router(prefix="/api/v1/admin", tags=["admin"])


class MemberOut(BaseModel):
    userId: str
    email: str
    name: str
    role: str


class MembersResponse(BaseModel):
    members: list[MemberOut]


@router.get("/members", response_model=MembersResponse, responses=responses(401, 403),
            summary="List the organization's members")
async def list_members(principal: AdminPrincipal, db: DB) -> MembersResponse:
    """Members of the caller's organization with their roles (admin or owner only)."""
    async with db.transaction() as conn:
        rows = await auth_repo.list_members(conn, principal.org_id)
    return MembersResponse(members=[MemberOut(userId=r["id"], email=r["email"], name=r["name"], role=r["role"])
                                    for r in rows])
