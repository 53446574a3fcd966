"""Routes: /api/v1/admin/sources (the audit-log sources that fed the organization, and database roles
mapped to its users). Admins and owners only; the organization comes from the credential."""

from __future__ import annotations

from datetime import datetime

from fastapi import Body, Path, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from ..sources import roles
from .deps import DB, AdminPrincipal, request_actor
from .errors import responses
from .routing import api_router

router = api_router(prefix="/api/v1/admin/sources", tags=["sources"])


class SourceOut(BaseModel):
    name: str = Field(description="The source's name (`--source` of the import command).")
    kind: str = Field(description="`pgaudit` (PostgreSQL logs) or `mariadb-audit` (server_audit).")
    firstImportAt: datetime
    lastImportAt: datetime = Field(description="When an import (or a follower) last stored events or moved on.")
    lastEventAt: datetime | None = Field(description="The time of the latest event stored from it.")
    eventsStored: int
    followedFiles: int = Field(description="Files of a followed log directory whose position is kept.")


class SourcesOut(BaseModel):
    sources: list[SourceOut]


class RoleMappingOut(BaseModel):
    role: str = Field(description="The database role, as its server logs it.")
    identity: str = Field(description="The identity its events carry: `db:<role>`.")
    userId: str
    email: str | None = Field(description="The user's email while they are a member of the organization.")
    memberRole: str | None
    createdAt: datetime
    createdBy: str | None


class RoleMappingsOut(BaseModel):
    mappings: list[RoleMappingOut]


class RoleMappingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: StrictStr = Field(min_length=1, max_length=320, description="Email of a member of the organization.")


class RoleMappingChange(BaseModel):
    role: str
    identity: str
    userId: str | None = None
    email: str | None = None
    previousUserId: str | None


ROLE = Path(description="The database role as its server logs it (e.g. `alice`).", max_length=200)


@router.get("", response_model=SourcesOut, responses=responses(401, 403),
            summary="List the audit-log sources that fed the organization")
async def list_sources(principal: AdminPrincipal, db: DB) -> SourcesOut:
    """Each source imported with `atlas-compliance import pgaudit|mariadb-audit`: its kind, when it was
    first and last imported, the latest event stored from it, how many events it stored."""
    async with db.transaction() as conn:
        return SourcesOut.model_validate({"sources": await roles.sources(conn, principal.org_id)})


@router.get("/role-mappings", response_model=RoleMappingsOut, responses=responses(401, 403),
            summary="List database roles mapped to users")
async def list_role_mappings(principal: AdminPrincipal, db: DB) -> RoleMappingsOut:
    """Database roles whose events the reports count under a user of the organization."""
    async with db.transaction() as conn:
        return RoleMappingsOut.model_validate({"mappings": await roles.role_mappings(conn, principal.org_id)})


@router.put("/role-mappings/{role:path}", response_model=RoleMappingChange, responses=responses(400, 401, 403, 404, 422),
            summary="Map a database role to a user")
async def put_role_mapping(request: Request, principal: AdminPrincipal, db: DB, role: str = ROLE,
                           body: RoleMappingIn = Body(...)) -> RoleMappingChange:
    """Reports made from now on count the role's events (`db:<role>`), past and future, under the member
    with `email` (404 if no member has it). The recorded events and their hash chain do not change.
    Recorded in the admin action log."""
    async with db.transaction() as conn:
        result = await roles.map_role(conn, principal.org_id, role, body.email, _actor(request, principal))
    return RoleMappingChange.model_validate(result)


@router.delete("/role-mappings/{role:path}", response_model=RoleMappingChange, responses=responses(400, 401, 403, 404),
               summary="Remove a database role's mapping")
async def delete_role_mapping(request: Request, principal: AdminPrincipal, db: DB, role: str = ROLE
                              ) -> RoleMappingChange:
    """Reports count the role's events as `db:<role>` again (404 if it is not mapped). Recorded in the
    admin action log."""
    async with db.transaction() as conn:
        result = await roles.unmap_role(conn, principal.org_id, role, _actor(request, principal))
    return RoleMappingChange.model_validate(result)


def _actor(request: Request, principal) -> roles.Actor:
    return request_actor(request, principal)
