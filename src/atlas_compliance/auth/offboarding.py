"""Offboarding: removing a member from an organization, and disabling a user everywhere.

Neither deletes anything a report reads: the membership's interval in `member_history` is closed by a
trigger (migration 0016), so past reports keep naming the person as they were at the end of each window.
What goes is access: the removed membership's sessions and personal access tokens are revoked, and a
disabled user is removed from every organization and marked `banned`.
"""

from __future__ import annotations

from psycopg import AsyncConnection

from ..errors import Conflict, NotFound
from . import repository as repo
from .service import get_organization


async def _user(conn: AsyncConnection, email: str) -> dict:
    user = await repo.get_user_by_email(conn, email.strip())
    if user is None:
        raise NotFound(f"no user with email {email!r}", code="user_not_found")
    return user


async def _end_membership(conn: AsyncConnection, org: dict, user: dict) -> dict:
    cur = await conn.execute(
        'SELECT role FROM member WHERE "organizationId" = %s AND "userId" = %s FOR UPDATE', (org["id"], user["id"]))
    member = await cur.fetchone()
    if member is None:
        raise NotFound(f"{user['email']} is not a member of {org['slug']}", code="not_a_member")
    if member["role"] == "owner":
        # The organization must keep someone who can administer it (and add the next owner).
        cur = await conn.execute(
            """SELECT count(*) AS n FROM member WHERE "organizationId" = %s AND role = 'owner' AND "userId" <> %s""",
            (org["id"], user["id"]))
        if (await cur.fetchone())["n"] == 0:
            raise Conflict(f"{user['email']} is the last owner of {org['slug']}: make another member owner first "
                           "('members add EMAIL --org SLUG --role owner')", code="last_owner")
    await conn.execute('DELETE FROM member WHERE "organizationId" = %s AND "userId" = %s', (org["id"], user["id"]))
    sessions = await conn.execute(
        'UPDATE session SET revoked_at = now() WHERE "userId" = %s AND "activeOrganizationId" = %s '
        "AND revoked_at IS NULL", (user["id"], org["id"]))
    tokens = await conn.execute(
        "UPDATE api_token SET revoked_at = now() WHERE user_id = %s AND org_id = %s AND revoked_at IS NULL",
        (user["id"], org["id"]))
    return {"org": org["slug"], "orgId": org["id"], "role": member["role"], "sessionsRevoked": sessions.rowcount,
            "tokensRevoked": tokens.rowcount}


async def remove_member(conn: AsyncConnection, *, email: str, org_slug: str) -> dict:
    """End ``email``'s membership of ``org_slug`` and revoke its sessions and personal tokens there."""
    org = await get_organization(conn, org_slug)
    user = await _user(conn, email)
    return {"userId": user["id"], "email": user["email"], **await _end_membership(conn, org, user)}


async def disable_user(conn: AsyncConnection, *, email: str) -> dict:
    """End every membership of ``email``, revoke all their sessions and personal tokens, mark them banned."""
    user = await _user(conn, email)
    ended = [await _end_membership(conn, dict(m), user) for m in await repo.list_memberships(conn, user["id"])]
    await conn.execute('UPDATE "user" SET banned = true, "updatedAt" = now() WHERE id = %s', (user["id"],))
    await conn.execute('UPDATE session SET revoked_at = now() WHERE "userId" = %s AND revoked_at IS NULL',
                       (user["id"],))
    await conn.execute("UPDATE api_token SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL",
                       (user["id"],))
    return {"userId": user["id"], "email": user["email"], "memberships": ended}
