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


# One statement for a whole batch of detections (a scan or an upload of up to 10,000): the incoming rows
# as arrays, joined once to the rows they meet as they were before the statement (every part of a
# statement sees the same snapshot); new columns are inserted (ON CONFLICT DO NOTHING: a concurrent scan
# may have inserted one meanwhile), existing ones updated through that join. Sticky: a reviewed or
# dismissed row (as it is when updated, not as it was read) keeps everything but last_seen_at; an
# unreviewed row takes the detection's facts, and its masking only while that is still the old
# category's default. An unchanged row keeps its updated_at.
_UPSERT = """
WITH incoming AS (
    SELECT * FROM unnest(%(tables)s::text[], %(columns)s::text[], %(groups)s::text[], %(categories)s::text[],
                         %(confidences)s::text[], %(strategies)s::text[], %(methods)s::text[], %(reasons)s::text[],
                         %(evidence)s::jsonb[], %(sources)s::text[])
        AS i(table_name, column_name, connection_group_id, category, confidence, masking_strategy, method, reason,
             evidence, source_id)
),
met AS (
    SELECT i.*, c.id AS existing_id, c.reviewed OR c.dismissed AS sticky,
           (c.category, c.confidence, c.method) IS NOT DISTINCT FROM (i.category, i.confidence, i.method)
             AND c.reason IS NOT DISTINCT FROM i.reason AND c.evidence IS NOT DISTINCT FROM i.evidence AS same
    FROM incoming i
    LEFT JOIN pii_column_classifications c
      ON c.org_id = %(org)s AND c.table_name = i.table_name AND c.column_name = i.column_name
     AND COALESCE(c.connection_group_id, '__default__') = COALESCE(i.connection_group_id, '__default__')
),
inserted AS (
    INSERT INTO pii_column_classifications (org_id, table_name, column_name, connection_group_id, category,
        confidence, masking_strategy, method, reason, evidence, source_id, detected_at, last_seen_at)
    SELECT %(org)s, table_name, column_name, connection_group_id, category, confidence, masking_strategy, method,
           reason, evidence, source_id, now(), now()
    FROM met WHERE existing_id IS NULL
    ON CONFLICT (org_id, table_name, column_name, COALESCE(connection_group_id, '__default__')) DO NOTHING
    RETURNING 1
),
touched AS (
    UPDATE pii_column_classifications t SET
        last_seen_at = now(),
        category = CASE WHEN t.reviewed OR t.dismissed THEN t.category ELSE m.category END,
        confidence = CASE WHEN t.reviewed OR t.dismissed THEN t.confidence ELSE m.confidence END,
        method = CASE WHEN t.reviewed OR t.dismissed THEN t.method ELSE m.method END,
        reason = CASE WHEN t.reviewed OR t.dismissed THEN t.reason ELSE m.reason END,
        evidence = CASE WHEN t.reviewed OR t.dismissed THEN t.evidence ELSE m.evidence END,
        masking_strategy = CASE
            WHEN NOT (t.reviewed OR t.dismissed) AND t.category <> m.category
             AND t.masking_strategy = %(defaults)s::jsonb ->> t.category THEN m.masking_strategy
            ELSE t.masking_strategy END,
        source_id = CASE WHEN t.reviewed OR t.dismissed OR m.same THEN t.source_id
                         ELSE coalesce(m.source_id, t.source_id) END,
        updated_at = CASE WHEN t.reviewed OR t.dismissed OR m.same THEN t.updated_at ELSE now() END
    FROM met m
    WHERE t.id = m.existing_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM inserted) AS created,
       count(*) FILTER (WHERE existing_id IS NOT NULL AND NOT sticky AND NOT same) AS updated,
       count(*) FILTER (WHERE existing_id IS NOT NULL AND NOT sticky AND same) AS unchanged,
       count(*) FILTER (WHERE existing_id IS NOT NULL AND sticky) AS kept_reviewed,
       (SELECT count(*) FROM touched) AS touched
FROM met
"""


async def upsert_detections(conn: AsyncConnection, org_id: str, detections: list[dict[str, Any]],
                            default_masking: dict[str, str]) -> Row:
    """Insert or refresh a batch of detections in one statement; counts of what happened to each.

    ``detections`` must name each (table, column, group) at most once (ON CONFLICT cannot touch a row
    twice in one statement); ``default_masking`` is the category → strategy table.
    """
    def column(key: str) -> list[Any]:
        return [d.get(key) for d in detections]

    cur = await conn.execute(_UPSERT, {
        "org": org_id, "tables": column("table"), "columns": column("column"), "groups": column("group"),
        "categories": column("category"), "confidences": column("confidence"), "strategies": column("strategy"),
        "methods": column("method"), "reasons": column("reason"),
        "evidence": [Jsonb(e) if e is not None else None for e in column("evidence")],
        "sources": column("source_id"), "defaults": Jsonb(default_masking)})
    return await cur.fetchone()


async def replace_catalog(conn: AsyncConnection, org_id: str, source_id: str,
                          columns: list[tuple[str, str, str | None, int]]) -> None:
    """Store the scanned catalog of one source: (table, column, data type, ordinal)."""
    await conn.execute("DELETE FROM datasource_catalog WHERE org_id = %s AND source_id = %s", (org_id, source_id))
    async with conn.cursor() as cur:
        async with cur.copy("COPY datasource_catalog (org_id, source_id, table_name, column_name, data_type, ordinal) "
                            "FROM STDIN") as copy:
            for table, column, dtype, ordinal in columns:
                await copy.write_row((org_id, source_id, table, column, dtype, ordinal))


async def insert_manual(conn: AsyncConnection, org_id: str, d: dict[str, Any]) -> Row | None:
    """A classification an admin added by hand (reviewed); None when the column already has one."""
    cur = await conn.execute(
        "INSERT INTO pii_column_classifications (org_id, table_name, column_name, connection_group_id, category, "  # noqa: S608 - fixed list
        "confidence, masking_strategy, reviewed, method, reason, source_id, detected_at, last_seen_at) "
        "VALUES (%(org)s, %(table)s, %(column)s, %(group)s, %(category)s, 'high', %(strategy)s, true, 'manual', "
        "%(reason)s, 'manual', now(), now()) "
        "ON CONFLICT (org_id, table_name, column_name, COALESCE(connection_group_id, '__default__')) DO NOTHING "
        f"RETURNING {_COLUMNS}", {"org": org_id, **d})
    return await cur.fetchone()


async def find_classification(conn: AsyncConnection, org_id: str, table: str, column: str,
                              group: str | None) -> Row | None:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM pii_column_classifications WHERE org_id = %s AND table_name = %s "  # noqa: S608
        "AND column_name = %s AND COALESCE(connection_group_id, '__default__') = COALESCE(%s, '__default__')",
        (org_id, table, column, group))
    return await cur.fetchone()
