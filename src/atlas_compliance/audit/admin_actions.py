"""The one way an admin action is written: who (actor and scope), which org, what (action type and
target), details as JSON; the database adds the time and links the record into the org's chain of
admin actions (migration 0013), which `audit verify` checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from . import repository as repo


@dataclass(frozen=True)
class Actor:
    """Who acts: a member (user id, email) in a workspace, or a system actor (``system:<name>``) at
    platform scope; with the request it came in (id, client address) when there is one."""

    user_id: str | None
    email: str | None
    request_id: str
    ip: str | None = None
    scope: str = "workspace"

    @classmethod
    def system(cls, name: str = "cli", request_id: str = "cli") -> Actor:
        return cls(user_id=f"system:{name}", email=f"system:{name}", request_id=request_id, scope="platform")


CLI_ACTOR = Actor.system("cli")


async def record(conn: AsyncConnection, actor: Actor, *, org_id: str | None, action_type: str, target_type: str,
                 target_id: str, details: dict[str, Any] | None, status: str = "success") -> None:
    """Write one admin action in the caller's transaction (so it commits with the change it records)."""
    await repo.insert_admin_action(
        conn, org_id=org_id, actor_id=actor.user_id, actor_email=actor.email, scope=actor.scope,
        action_type=action_type, target_type=target_type, target_id=target_id, status=status, metadata=details,
        request_id=actor.request_id, ip_address=actor.ip)
