"""All SQL of the auth domain. Values are always bind parameters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

Row = dict[str, Any]


async def insert_organization(conn: AsyncConnection, slug: str, name: str) -> Row:
    cur = await conn.execute(
        "INSERT INTO organization (slug, name) VALUES (%s, %s) RETURNING id, slug, name", (slug, name))
    return await cur.fetchone()


async def get_organization_by_slug(conn: AsyncConnection, slug: str) -> Row | None:
    cur = await conn.execute("SELECT id, slug, name FROM organization WHERE slug = %s", (slug,))
    return await cur.fetchone()


async def list_organizations(conn: AsyncConnection) -> list[Row]:
    cur = await conn.execute(
        'SELECT o.id, o.slug, o.name, o."createdAt" AS created_at, '
        '(SELECT count(*) FROM member m WHERE m."organizationId" = o.id) AS members '
        "FROM organization o ORDER BY o.slug")
    return await cur.fetchall()


async def insert_user(conn: AsyncConnection, email: str, name: str) -> Row:
    cur = await conn.execute(
        'INSERT INTO "user" (email, name, "normalizedEmail") VALUES (%s, %s, %s) RETURNING id, email, name',
        (email, name, email.lower()))
    return await cur.fetchone()


async def get_user_by_email(conn: AsyncConnection, email: str) -> Row | None:
    """The user with this email, whatever its case: by ``normalizedEmail`` first; else by the email itself,
    compared in lower case (an Atlas database has users created before it filled ``normalizedEmail``, and
    Better Auth may normalize differently). With several matches, the exact normalized one, then the oldest.
    The credential account's password comes along (NULL when there is none)."""
    cur = await conn.execute(
        'SELECT u.id, u.email, u.name, (SELECT a.password FROM account a WHERE a."userId" = u.id '
        "AND a.\"providerId\" = 'credential' AND a.password IS NOT NULL "
        'ORDER BY a."updatedAt" DESC NULLS LAST, a.id LIMIT 1) AS password FROM "user" u '
        'WHERE u."normalizedEmail" = %(e)s OR lower(u.email) = %(e)s '
        'ORDER BY (u."normalizedEmail" = %(e)s) IS TRUE DESC, u."createdAt", u.id LIMIT 1', {"e": email.lower()})
    return await cur.fetchone()


async def set_password(conn: AsyncConnection, user_id: str, password_hash: str) -> None:
    """Write the user's credential password: update their credential account(s) if they have one (an Atlas
    database has no unique key there, and may hold several), else create it with every value supplied
    (Better Auth's tables have no defaults)."""
    cur = await conn.execute(
        'UPDATE account SET password = %s, "updatedAt" = now() WHERE "userId" = %s AND "providerId" = \'credential\'',
        (password_hash, user_id))
    if cur.rowcount == 0:
        await conn.execute(
            'INSERT INTO account (id, "accountId", "providerId", "userId", password, "createdAt", "updatedAt") '
            "VALUES (gen_random_uuid()::text, %s, 'credential', %s, %s, now(), now())",
            (user_id, user_id, password_hash))


async def upsert_member(conn: AsyncConnection, org_id: str, user_id: str, role: str) -> Row:
    cur = await conn.execute(
        'INSERT INTO member ("organizationId", "userId", role) VALUES (%s, %s, %s) '
        'ON CONFLICT ("organizationId", "userId") DO UPDATE SET role = EXCLUDED.role '
        "RETURNING id, role", (org_id, user_id, role))
    return await cur.fetchone()


async def get_membership(conn: AsyncConnection, org_id: str, user_id: str) -> Row | None:
    cur = await conn.execute(
        'SELECT role FROM member WHERE "organizationId" = %s AND "userId" = %s', (org_id, user_id))
    return await cur.fetchone()


async def list_memberships(conn: AsyncConnection, user_id: str) -> list[Row]:
    cur = await conn.execute(
        'SELECT o.id, o.slug, o.name, m.role FROM member m JOIN organization o ON o.id = m."organizationId" '
        'WHERE m."userId" = %s ORDER BY m."createdAt", o.slug', (user_id,))
    return await cur.fetchall()


async def list_members(conn: AsyncConnection, org_id: str) -> list[Row]:
    cur = await conn.execute(
        'SELECT u.id, u.email, u.name, m.role FROM member m JOIN "user" u ON u.id = m."userId" '
        'WHERE m."organizationId" = %s ORDER BY u.email', (org_id,))
    return await cur.fetchall()


async def lock_login_address(conn: AsyncConnection, ip: str | None) -> None:
    """Serialize the rate-limit check and the recording of an attempt per client address (until commit),
    so that parallel attempts cannot all pass the check before any of them is counted."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('atlas-login:' || %s, 0))", (ip or "",))


async def count_recent_failures(conn: AsyncConnection, *, ip: str | None, email: str | None = None,
                                window_seconds: int) -> tuple[int, datetime | None]:
    """Failed (or not yet decided) attempts from ``ip`` within the window, for one ``email`` if given."""
    where = "ip_address IS NULL" if ip is None else "ip_address = %(ip)s"
    if email is not None:
        where += " AND email = %(email)s"
    cur = await conn.execute(
        f"SELECT count(*) AS n, min(attempted_at) AS oldest FROM login_attempt WHERE {where} "  # noqa: S608
        "AND NOT success AND attempted_at > now() - make_interval(secs => %(window)s)",
        {"ip": ip, "email": email, "window": window_seconds})
    row = await cur.fetchone()
    return int(row["n"]), row["oldest"]


async def record_login_attempt(conn: AsyncConnection, email: str, ip: str | None, success: bool) -> int:
    cur = await conn.execute("INSERT INTO login_attempt (email, ip_address, success) VALUES (%s, %s, %s) "
                             "RETURNING id", (email, ip, success))
    row = await cur.fetchone()
    return int(row["id"])


async def mark_login_succeeded(conn: AsyncConnection, attempt_id: int) -> None:
    await conn.execute("UPDATE login_attempt SET success = true WHERE id = %s", (attempt_id,))


async def insert_session(conn: AsyncConnection, *, user_id: str, org_id: str, token_hash: str, ttl_seconds: int,
                         ip: str | None, user_agent: str | None, origin: str) -> Row:
    cur = await conn.execute(
        'INSERT INTO session ("userId", "activeOrganizationId", token, "expiresAt", "ipAddress", "userAgent", '
        'origin) VALUES (%s, %s, %s, now() + make_interval(secs => %s), %s, %s, %s) '
        'RETURNING id, "expiresAt" AS expires_at',
        (user_id, org_id, token_hash, ttl_seconds, ip, user_agent, origin))
    return await cur.fetchone()


_PRINCIPAL_SESSION = """
SELECT s.id AS credential_id, s."expiresAt" < now() AS expired, s.revoked_at IS NOT NULL AS revoked,
       u.id AS user_id, u.email, o.id AS org_id, o.slug AS org_slug, o.name AS org_name, m.role
FROM session s
JOIN "user" u ON u.id = s."userId"
JOIN organization o ON o.id = s."activeOrganizationId"
LEFT JOIN member m ON m."organizationId" = o.id AND m."userId" = u.id
WHERE s.token = %s
"""

_PRINCIPAL_TOKEN = """
SELECT t.id AS credential_id, t.kind, t.scopes, t.expires_at IS NOT NULL AND t.expires_at < now() AS expired,
       t.revoked_at IS NOT NULL AS revoked, u.id AS user_id, u.email,
       o.id AS org_id, o.slug AS org_slug, o.name AS org_name, m.role,
       t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute' AS use_stale
FROM api_token t
JOIN organization o ON o.id = t.org_id
LEFT JOIN "user" u ON u.id = t.user_id
LEFT JOIN member m ON m."organizationId" = o.id AND m."userId" = u.id
WHERE t.token_hash = %s
"""


async def find_session(conn: AsyncConnection, token_hash: str) -> Row | None:
    cur = await conn.execute(_PRINCIPAL_SESSION, (token_hash,))
    return await cur.fetchone()


async def find_api_token(conn: AsyncConnection, token_hash: str) -> Row | None:
    cur = await conn.execute(_PRINCIPAL_TOKEN, (token_hash,))
    return await cur.fetchone()


async def touch_api_token(conn: AsyncConnection, token_id: str) -> None:
    await conn.execute(
        "UPDATE api_token SET last_used_at = now() WHERE id = %s "
        "AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')", (token_id,))


async def revoke_session(conn: AsyncConnection, session_id: str) -> bool:
    cur = await conn.execute(
        'UPDATE session SET revoked_at = now(), "updatedAt" = now() WHERE id = %s AND revoked_at IS NULL',
        (session_id,))
    return cur.rowcount == 1


async def insert_api_token(conn: AsyncConnection, *, org_id: str, user_id: str | None, kind: str, name: str,
                           token_hash: str, prefix: str, scopes: list[str], expires_in_seconds: int | None,
                           created_by: str | None) -> Row:
    cur = await conn.execute(
        "INSERT INTO api_token (org_id, user_id, kind, name, token_hash, token_prefix, scopes, expires_at, "
        "created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, "
        "CASE WHEN %s::int IS NULL THEN NULL ELSE now() + make_interval(secs => %s::int) END, %s) "
        "RETURNING id, expires_at",
        (org_id, user_id, kind, name, token_hash, prefix, scopes, expires_in_seconds, expires_in_seconds,
         created_by))
    return await cur.fetchone()


async def revoke_api_token(conn: AsyncConnection, token_id: str) -> Row | None:
    cur = await conn.execute(
        "UPDATE api_token SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s "
        "RETURNING id, kind, name, org_id", (token_id,))
    return await cur.fetchone()


async def list_api_tokens(conn: AsyncConnection, org_id: str) -> list[Row]:
    cur = await conn.execute(
        "SELECT t.id, t.kind, t.name, t.token_prefix, t.created_at, t.expires_at, t.revoked_at, t.last_used_at, "
        'u.email FROM api_token t LEFT JOIN "user" u ON u.id = t.user_id WHERE t.org_id = %s '
        "ORDER BY t.created_at", (org_id,))
    return await cur.fetchall()


async def installation_secret(conn: AsyncConnection) -> bytes:
    """The installation's HMAC key (``atlas_installation.hmac_secret``, made by the first migration)."""
    cur = await conn.execute("SELECT value FROM atlas_installation WHERE key = 'hmac_secret'")
    row = await cur.fetchone()
    return bytes.fromhex(row["value"])
