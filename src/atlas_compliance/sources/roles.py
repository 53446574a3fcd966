"""Database roles as users of the organization, and the sources that fed it.

Events read from a database's log carry the role that ran them (``db:<role>``). Mapping a role to a
member makes reports count those events, past and future, under that member; unmapping splits them
back. The events themselves never change (the mapping is applied when a report is made), so the hash
chain is untouched. Each change is recorded in ``admin_action_log``.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from ..audit import admin_actions
from ..audit.admin_actions import CLI_ACTOR, Actor
from ..auth import repository as auth_repo
from ..errors import BadRequest, NotFound
from . import repository as repo
from .events import role_identity

MAX_ROLE_NAME = 200

__all__ = ["CLI_ACTOR", "Actor", "map_role", "role_mappings", "unmap_role", "validate_role_name"]


def validate_role_name(role: str) -> str:
    """A database role name as its server writes it (PostgreSQL: up to 63 bytes; MariaDB: 80 characters).

    >>> validate_role_name("reporting_app")
    'reporting_app'
    """
    if not isinstance(role, str) or not role or len(role) > MAX_ROLE_NAME or any(ord(c) < 32 for c in role):
        raise BadRequest(f"invalid database role {str(role)[:40]!r}: use the role's name as the server logs it "
                         f"(1 to {MAX_ROLE_NAME} characters, no control characters), e.g. 'alice'",
                         code="invalid_db_role")
    return role


def _mapping_out(row: dict[str, Any]) -> dict[str, Any]:
    identity = row["db_identity"]
    return {"role": identity[len("db:"):], "identity": identity, "userId": row["user_id"], "email": row["email"],
            "memberRole": row["role"], "createdAt": row["created_at"], "createdBy": row["created_by"]}


async def map_role(conn: AsyncConnection, org_id: str, role: str, email: str, actor: Actor) -> dict[str, Any]:
    """Map ``role`` to the member with ``email``. A role already mapped is mapped anew."""
    identity = role_identity(validate_role_name(role))
    user = await auth_repo.get_user_by_email(conn, email.strip())
    member = await auth_repo.get_membership(conn, org_id, user["id"]) if user else None
    if user is None or member is None:
        raise NotFound(f"no member of this organization has the email {email.strip()[:200]!r}", code="member_not_found")
    previous = await repo.role_mapping(conn, org_id, identity)
    await repo.upsert_role_mapping(conn, org_id, identity, user["id"], actor.email)
    await admin_actions.record(
        conn, actor, org_id=org_id, action_type="sources.role_mapped", target_type="db_role", target_id=identity,
        details={"role": role, "userId": user["id"], "email": user["email"],
                 "previousUserId": previous["user_id"] if previous else None})
    return {"role": role, "identity": identity, "userId": user["id"], "email": user["email"],
            "previousUserId": previous["user_id"] if previous else None}


async def unmap_role(conn: AsyncConnection, org_id: str, role: str, actor: Actor) -> dict[str, Any]:
    """Remove the mapping of ``role``: reports show its events as ``db:<role>`` again."""
    identity = role_identity(validate_role_name(role))
    removed = await repo.delete_role_mapping(conn, org_id, identity)
    if removed is None:
        raise NotFound(f"the database role {role[:60]!r} is not mapped in this organization", code="role_not_mapped")
    await admin_actions.record(
        conn, actor, org_id=org_id, action_type="sources.role_unmapped", target_type="db_role", target_id=identity,
        details={"role": role, "previousUserId": removed["user_id"]})
    return {"role": role, "identity": identity, "previousUserId": removed["user_id"]}


async def role_mappings(conn: AsyncConnection, org_id: str) -> list[dict[str, Any]]:
    return [_mapping_out(r) for r in await repo.list_role_mappings(conn, org_id)]


async def sources(conn: AsyncConnection, org_id: str) -> list[dict[str, Any]]:
    """The sources that fed the organization, most recently imported first."""
    return [{"name": r["name"], "kind": r["kind"], "firstImportAt": r["first_import_at"],
             "lastImportAt": r["last_import_at"], "lastEventAt": r["last_event_at"],
             "eventsStored": int(r["events_stored"]), "followedFiles": int(r["followed_files"])}
            for r in await repo.list_sources(conn, org_id)]
