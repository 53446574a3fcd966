"""All SQL of the audit-log sources: the sources of an organization, followers' positions, and the
mapping of database roles to users."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

Row = dict[str, Any]


@dataclass(frozen=True)
class StoredPosition:
    file_key: str
    path: str
    offset: int
    line: int
    fingerprint: bytes
    fingerprint_bytes: int


async def source_kind(conn: AsyncConnection, org_id: str, name: str) -> str | None:
    cur = await conn.execute("SELECT kind FROM audit_source WHERE org_id = %s AND name = %s", (org_id, name))
    row = await cur.fetchone()
    return row["kind"] if row else None


async def record_import(conn: AsyncConnection, org_id: str, name: str, kind: str, stored: int,
                        last_event_at: datetime | None) -> None:
    """Note that ``name`` fed the org just now (``stored`` new events, the latest at ``last_event_at``)."""
    await conn.execute(
        "INSERT INTO audit_source (org_id, name, kind, events_stored, last_event_at) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (org_id, name) DO UPDATE SET last_import_at = now(), "
        "events_stored = audit_source.events_stored + EXCLUDED.events_stored, "
        "last_event_at = greatest(audit_source.last_event_at, EXCLUDED.last_event_at)",
        (org_id, name, kind, stored, last_event_at))


async def list_sources(conn: AsyncConnection, org_id: str) -> list[Row]:
    cur = await conn.execute(
        "SELECT s.name, s.kind, s.first_import_at, s.last_import_at, s.last_event_at, s.events_stored, "
        "(SELECT count(*) FROM audit_source_position p WHERE p.org_id = s.org_id AND p.source_name = s.name) "
        "AS followed_files FROM audit_source s WHERE s.org_id = %s ORDER BY s.last_import_at DESC, s.name",
        (org_id,))
    return await cur.fetchall()


async def load_positions(conn: AsyncConnection, org_id: str, source: str) -> dict[str, StoredPosition]:
    cur = await conn.execute(
        "SELECT file_key, path, byte_offset, line_number, fingerprint, fingerprint_bytes "
        "FROM audit_source_position WHERE org_id = %s AND source_name = %s", (org_id, source))
    return {r["file_key"]: StoredPosition(r["file_key"], r["path"], int(r["byte_offset"]), int(r["line_number"]),
                                          bytes(r["fingerprint"]), int(r["fingerprint_bytes"]))
            for r in await cur.fetchall()}


async def save_positions(conn: AsyncConnection, org_id: str, source: str,
                         positions: Sequence[StoredPosition]) -> None:
    """Replace the follower's positions of ``source`` by ``positions`` (files gone from the directory
    are forgotten). The caller's transaction also holds the events read up to them."""
    keys = [p.file_key for p in positions]
    await conn.execute("DELETE FROM audit_source_position WHERE org_id = %s AND source_name = %s "
                       "AND NOT (file_key = ANY(%s))", (org_id, source, keys))
    if not positions:
        return
    await conn.execute(
        "INSERT INTO audit_source_position (org_id, source_name, file_key, path, byte_offset, line_number, "
        "fingerprint, fingerprint_bytes) "
        "SELECT %s, %s, * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::bytea[], %s::int[]) "
        "ON CONFLICT (org_id, source_name, file_key) DO UPDATE SET path = EXCLUDED.path, "
        "byte_offset = EXCLUDED.byte_offset, line_number = EXCLUDED.line_number, "
        "fingerprint = EXCLUDED.fingerprint, fingerprint_bytes = EXCLUDED.fingerprint_bytes, updated_at = now()",
        (org_id, source, keys, [p.path for p in positions], [p.offset for p in positions],
         [p.line for p in positions], [p.fingerprint for p in positions],
         [p.fingerprint_bytes for p in positions]))


async def try_follow_lock(conn: AsyncConnection, org_id: str, source: str) -> bool:
    """A session-level advisory lock: one follower per (organization, source) at a time."""
    cur = await conn.execute("SELECT pg_try_advisory_lock(hashtextextended('atlas.follow:' || %s || ':' || %s, 0)) "
                             "AS locked", (org_id, source))
    row = await cur.fetchone()
    return bool(row["locked"])


# --- database roles mapped to users ---------------------------------------------------------------

async def role_mapping(conn: AsyncConnection, org_id: str, identity: str) -> Row | None:
    cur = await conn.execute("SELECT user_id FROM db_role_mapping WHERE org_id = %s AND db_identity = %s",
                             (org_id, identity))
    return await cur.fetchone()


async def upsert_role_mapping(conn: AsyncConnection, org_id: str, identity: str, user_id: str,
                              created_by: str | None) -> None:
    await conn.execute(
        "INSERT INTO db_role_mapping (org_id, db_identity, user_id, created_by) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (org_id, db_identity) DO UPDATE SET user_id = EXCLUDED.user_id, "
        "created_by = EXCLUDED.created_by, created_at = now()", (org_id, identity, user_id, created_by))


async def delete_role_mapping(conn: AsyncConnection, org_id: str, identity: str) -> Row | None:
    cur = await conn.execute("DELETE FROM db_role_mapping WHERE org_id = %s AND db_identity = %s RETURNING user_id",
                             (org_id, identity))
    return await cur.fetchone()


async def list_role_mappings(conn: AsyncConnection, org_id: str) -> list[Row]:
    """Every mapping of the org, with the user's email while they are a member (else None)."""
    cur = await conn.execute(
        'SELECT r.db_identity, r.user_id, u.email, m.role, r.created_at, r.created_by FROM db_role_mapping r '
        'LEFT JOIN (member m JOIN "user" u ON u.id = m."userId") '
        '    ON m."organizationId" = r.org_id AND m."userId" = r.user_id '
        "WHERE r.org_id = %s ORDER BY r.db_identity COLLATE \"C\"", (org_id,))
    return await cur.fetchall()


async def mapped_identities(conn: AsyncConnection, org_id: str, user_id: str) -> list[str]:
    cur = await conn.execute("SELECT db_identity FROM db_role_mapping WHERE org_id = %s AND user_id = %s",
                             (org_id, user_id))
    return [r["db_identity"] for r in await cur.fetchall()]
