"""All SQL of PII classification: the classification table and the scanned catalog."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

Row = dict[str, Any]

_COLUMNS = ("id, table_name, column_name, connection_group_id, category, confidence, masking_strategy, reviewed, "
            "dismissed, method, reason, evidence, source_id, created_at, updated_at")


async def list_classifications(conn: AsyncConnection, org_id: str, *, table: str | None, category: str | None,
                               reviewed: bool | None, include_dismissed: bool) -> list[Row]:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM pii_column_classifications WHERE org_id = %(org)s "  # noqa: S608 - fixed list
        "AND (%(table)s::text IS NULL OR table_name = %(table)s) "
        "AND (%(category)s::text IS NULL OR category = %(category)s) "
        "AND (%(reviewed)s::boolean IS NULL OR reviewed = %(reviewed)s) "
        "AND (%(dismissed)s OR NOT dismissed) ORDER BY table_name, column_name, id",
        {"org": org_id, "table": table, "category": category, "reviewed": reviewed, "dismissed": include_dismissed})
    return await cur.fetchall()


async def get(conn: AsyncConnection, org_id: str, cid: str) -> Row | None:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM pii_column_classifications WHERE org_id = %s AND id = %s",  # noqa: S608
        (org_id, cid))
    return await cur.fetchone()


async def update(conn: AsyncConnection, org_id: str, cid: str, changes: dict[str, Any]) -> Row | None:
    allowed = {"category": "category", "maskingStrategy": "masking_strategy", "reviewed": "reviewed",
               "dismissed": "dismissed"}
    sets = ", ".join(f"{allowed[k]} = %({k})s" for k in changes if k in allowed)
    sets = (sets + ", " if sets else "") + "updated_at = now()"
    cur = await conn.execute(
        f"UPDATE pii_column_classifications SET {sets} WHERE org_id = %(org)s AND id = %(id)s "  # noqa: S608
        f"RETURNING {_COLUMNS}", {**changes, "org": org_id, "id": cid})
    return await cur.fetchone()


async def delete(conn: AsyncConnection, org_id: str, cid: str) -> bool:
    cur = await conn.execute("DELETE FROM pii_column_classifications WHERE org_id = %s AND id = %s RETURNING id",
                             (org_id, cid))
    return await cur.fetchone() is not None


async def mark_reviewed(conn: AsyncConnection, org_id: str, ids: list[str] | None) -> list[str]:
    cur = await conn.execute(
        "UPDATE pii_column_classifications SET reviewed = true, updated_at = now() WHERE org_id = %(org)s "
        "AND NOT reviewed AND NOT dismissed AND (%(ids)s::text[] IS NULL OR id = ANY(%(ids)s)) RETURNING id",
        {"org": org_id, "ids": ids})
    return [r["id"] for r in await cur.fetchall()]


async def find_existing(conn: AsyncConnection, org_id: str, table: str, column: str, group: str | None) -> Row | None:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM pii_column_classifications WHERE org_id = %s AND table_name = %s "  # noqa: S608
        "AND column_name = %s AND COALESCE(connection_group_id, '__default__') = COALESCE(%s, '__default__') "
        "FOR UPDATE", (org_id, table, column, group))
    return await cur.fetchone()


async def insert_detection(conn: AsyncConnection, org_id: str, d: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO pii_column_classifications (org_id, table_name, column_name, connection_group_id, category, "
        "confidence, masking_strategy, method, reason, evidence, source_id, detected_at, last_seen_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now(), now())",
        (org_id, d["table"], d["column"], d.get("group"), d["category"], d["confidence"], d["strategy"],
         d["method"], d.get("reason"), Jsonb(d["evidence"]) if d.get("evidence") is not None else None,
         d.get("source_id")))


async def refresh_detection(conn: AsyncConnection, cid: str, d: dict[str, Any]) -> None:
    """An unreviewed, undismissed row takes the new detection's facts (never the admin's choices)."""
    await conn.execute(
        "UPDATE pii_column_classifications SET category = %s, confidence = %s, method = %s, reason = %s, "
        "evidence = %s, source_id = coalesce(%s, source_id), last_seen_at = now(), updated_at = now() WHERE id = %s",
        (d["category"], d["confidence"], d["method"], d.get("reason"),
         Jsonb(d["evidence"]) if d.get("evidence") is not None else None, d.get("source_id"), cid))


async def touch_seen(conn: AsyncConnection, cid: str) -> None:
    await conn.execute("UPDATE pii_column_classifications SET last_seen_at = now() WHERE id = %s", (cid,))


async def replace_catalog(conn: AsyncConnection, org_id: str, source_id: str,
                          columns: list[tuple[str, str, str | None, int]]) -> None:
    """Store the scanned catalog of one source: (table, column, data type, ordinal)."""
    await conn.execute("DELETE FROM datasource_catalog WHERE org_id = %s AND source_id = %s", (org_id, source_id))
    async with conn.cursor() as cur:
        async with cur.copy("COPY datasource_catalog (org_id, source_id, table_name, column_name, data_type, ordinal) "
                            "FROM STDIN") as copy:
            for table, column, dtype, ordinal in columns:
                await copy.write_row((org_id, source_id, table, column, dtype, ordinal))


async def hmac_secret(conn: AsyncConnection) -> bytes:
    cur = await conn.execute("SELECT value FROM atlas_installation WHERE key = 'hmac_secret'")
    row = await cur.fetchone()
    return bytes.fromhex(row["value"])
