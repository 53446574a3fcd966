"""Small read-only queries the console needs besides the reports: daily volume and table names."""

from __future__ import annotations

from datetime import date

from psycopg import AsyncConnection

from .window import ReportWindow


async def daily_volume(conn: AsyncConnection, org_id: str, window: ReportWindow) -> list[tuple[date, int]]:
    """Successful, not deleted queries per calendar day of the window's time zone."""
    cur = await conn.execute(
        'SELECT ("timestamp" AT TIME ZONE %(tz)s)::date AS day, count(*) AS n FROM audit_log '
        'WHERE org_id = %(org)s AND success AND deleted_at IS NULL AND "timestamp" >= %(s)s AND "timestamp" < %(e)s '
        "GROUP BY 1 ORDER BY 1", {"tz": window.tz, "org": org_id, "s": window.start, "e": window.end})
    return [(r["day"], int(r["n"])) for r in await cur.fetchall()]


async def known_tables(conn: AsyncConnection, org_id: str, limit: int = 500) -> list[str]:
    """Tables seen in the organization's audit trail (for filter suggestions)."""
    cur = await conn.execute(
        "SELECT DISTINCT table_name FROM audit_access_daily WHERE org_id = %s ORDER BY table_name LIMIT %s",
        (org_id, limit))
    return [r["table_name"] for r in await cur.fetchall()]
