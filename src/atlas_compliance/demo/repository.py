"""SQL used only by the demo: historical logins and the check for existing demo data."""

from __future__ import annotations

from datetime import datetime

from psycopg import AsyncConnection


async def insert_past_logins(conn: AsyncConnection, rows: list[tuple[str, str, datetime, str]]) -> None:
    """(user_id, org_id, created_at, token_hash) rows: sessions that happened in the past, now expired."""
    async with conn.cursor() as cur:
        await cur.executemany(
            'INSERT INTO session ("userId", "activeOrganizationId", "createdAt", "updatedAt", "expiresAt", token, '
            "origin, \"ipAddress\") VALUES (%s, %s, %s, %s, %s + interval '8 hours', %s, 'console', '10.0.0.12')",
            [(u, o, t, t, t, h) for u, o, t, h in rows])


async def audit_row_count(conn: AsyncConnection, org_id: str) -> int:
    cur = await conn.execute("SELECT count(*) AS n FROM audit_log WHERE org_id = %s", (org_id,))
    row = await cur.fetchone()
    return int(row["n"])
