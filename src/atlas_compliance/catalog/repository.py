"""All SQL of the schema catalog (`datasource_catalog`, migration 0015)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import Row

from .facts import LEARNED_SOURCE, Fact


async def replace_source(conn: AsyncConnection, org_id: str, source: str, origin: str,
                         facts: Sequence[Fact]) -> None:
    """Replace everything one datasource's catalog says (a sync or import is the whole truth of
    that source); learned facts, under their own source, are untouched."""
    await conn.execute("DELETE FROM datasource_catalog WHERE org_id = %s AND source_id = %s", (org_id, source))
    async with conn.cursor() as cur:
        async with cur.copy("COPY datasource_catalog (org_id, source_id, schema_name, table_name, column_name, "
                            "data_type, ordinal, origin) FROM STDIN") as copy:
            for f in facts:
                await copy.write_row((org_id, source, f.schema, f.table, f.column, f.data_type, f.ordinal, origin))


_LEARN = """
INSERT INTO datasource_catalog (org_id, source_id, schema_name, table_name, column_name, origin)
SELECT %(org)s, %(source)s, CASE WHEN l.t ~ '^[^.]+\\.[^.]+$' THEN split_part(l.t, '.', 1) END, l.t, l.c, 'learned'
FROM unnest(%(tables)s::text[], %(columns)s::text[]) AS l(t, c)
ON CONFLICT (org_id, source_id, table_name, column_name) DO NOTHING
"""


async def learn(conn: AsyncConnection, org_id: str, pairs: Sequence[tuple[str, str]]) -> int:
    """Record (table, column) pairs seen in the trail as learned facts, in one statement; pairs
    already learned are left as they are (their `scanned_at` is when first seen). Returns how many
    were new."""
    if not pairs:
        return 0
    cur = await conn.execute(_LEARN, {"org": org_id, "source": LEARNED_SOURCE, "tables": [p[0] for p in pairs],
                                      "columns": [p[1] for p in pairs]})
    return cur.rowcount


async def load_rows(conn: AsyncConnection, org_id: str, *, include_learned: bool = True) -> list[tuple[str, str, str]]:
    """(table, column, origin) of the org's facts (for :func:`~.facts.build_catalog`)."""
    learned = "" if include_learned else " AND origin <> 'learned'"
    cur = await conn.execute(
        f"SELECT table_name, column_name, origin FROM datasource_catalog WHERE org_id = %s{learned}",  # noqa: S608
        (org_id,))
    return [(r["table_name"], r["column_name"], r["origin"]) for r in await cur.fetchall()]


async def list_facts(conn: AsyncConnection, org_id: str, *, source: str | None = None,
                     table: str | None = None, origin: str | None = None, limit: int = 10_000,
                     offset: int = 0) -> tuple[list[Row], int]:
    """The org's facts, ordered datasource, schema, table, ordinal, column; and their total count."""
    where = ["org_id = %(org)s"]
    if source is not None:
        where.append("source_id = %(source)s")
    if table is not None:
        where.append("table_name = %(table)s")
    if origin is not None:
        where.append("origin = %(origin)s")
    params: dict[str, Any] = {"org": org_id, "source": source, "table": table, "origin": origin,
                              "limit": limit, "offset": offset}
    cond = " AND ".join(where)
    cur = await conn.execute(
        "SELECT source_id, schema_name, table_name, column_name, data_type, ordinal, origin, scanned_at, "  # noqa: S608
        f"count(*) OVER () AS total FROM datasource_catalog WHERE {cond} "
        'ORDER BY source_id COLLATE "C", schema_name COLLATE "C" NULLS FIRST, table_name COLLATE "C", ordinal, '
        'column_name COLLATE "C" LIMIT %(limit)s OFFSET %(offset)s', params)
    rows = await cur.fetchall()
    if rows:
        return rows, int(rows[0]["total"])
    cur = await conn.execute(f"SELECT count(*) AS n FROM datasource_catalog WHERE {cond}", params)  # noqa: S608
    return rows, int((await cur.fetchone())["n"])
