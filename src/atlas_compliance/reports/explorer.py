"""The audit-log explorer: the recorded events behind a report row, with their SQL (issue 19, part 1).

One query shape serves the API (JSON pages and a streamed CSV), the CLI and the console. Events are
listed newest first, ordered by ``(timestamp, chain_seq)``; soft-deleted (purged) rows are not listed,
as reports do not count them.

Paging is by cursor and stable under concurrent ingest: the first page fixes the chain position it
read up to (``upto``), and every later page of the same listing reads only rows at or below it, so
rows ingested meanwhile (even with earlier timestamps) neither shift nor repeat what is paged. A new
listing (no cursor) sees them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from psycopg import AsyncConnection
from psycopg.rows import dict_row, tuple_row

from ..audit.names import normalize_column_name
from ..errors import BadRequest
from .window import ReportWindow, iso_utc

MAX_PAGE = 1_000
DEFAULT_PAGE = 100
MAX_QUERY_TEXT = 1_000


@dataclass(frozen=True)
class EventFilters:
    user_id: str | None = None
    table: str | None = None  # normalized
    column: str | None = None  # normalized
    success: bool | None = None
    source: str | None = None  # a source id or a source type
    q: str | None = None  # text the SQL contains (case-insensitive)

    def to_dict(self) -> dict[str, Any]:
        return {"userId": self.user_id, "table": self.table, "column": self.column, "success": self.success,
                "source": self.source, "q": self.q}


@dataclass(frozen=True)
class Cursor:
    timestamp: datetime
    seq: int
    upto: int

    def encode(self) -> str:
        raw = orjson.dumps({"t": iso_utc(self.timestamp), "s": self.seq, "u": self.upto})
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def decode(text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            data = orjson.loads(raw)
            cursor = Cursor(datetime.fromisoformat(data["t"].replace("Z", "+00:00")), int(data["s"]), int(data["u"]))
            if cursor.timestamp.tzinfo is None or cursor.seq < 0 or cursor.upto < 0:
                raise ValueError(text)
            return cursor
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, orjson.JSONDecodeError):
            raise BadRequest("invalid cursor: pass the nextCursor of the previous page unchanged",
                             code="invalid_cursor") from None


def parse_event_filters(user_id: str | None, table: str | None, column: str | None, success: bool | None,
                        source: str | None, q: str | None) -> EventFilters:
    from ..audit.names import normalize_table_name

    if q is not None and len(q) > MAX_QUERY_TEXT:
        raise BadRequest(f"q is longer than {MAX_QUERY_TEXT:,} characters", code="invalid_query")
    if q is not None and "\x00" in q:
        raise BadRequest("q must not contain NUL characters", code="invalid_query")
    return EventFilters(
        user_id=user_id or None,
        table=normalize_table_name(table) if table and table.strip() else None,
        column=normalize_column_name(column.strip()) if column and column.strip() else None,
        success=success, source=(source or "").strip() or None, q=q or None)


def parse_limit(limit: int | None) -> int:
    value = DEFAULT_PAGE if limit is None else limit
    if not 1 <= value <= MAX_PAGE:
        raise BadRequest(f"invalid limit {limit}: use 1 to {MAX_PAGE:,} and page with cursor", code="invalid_limit")
    return value


_SELECT = """
SELECT a.id, a.event_id, a."timestamp", a.user_id, a.user_label, u.email AS user_email, a.sql,
       a.tables_accessed, a.columns_by_table, a.columns_accessed, a.success, a.error, a.transaction_outcome,
       a.duration_ms, a.row_count, a.source_id, a.source_type, a.target_host, a.parse_error, a.chain_seq
FROM audit_log a
LEFT JOIN (member em JOIN "user" u ON u.id = em."userId")
    ON em."organizationId" = %(org)s AND em."userId" = a.user_id
WHERE a.org_id = %(org)s AND a.deleted_at IS NULL
  AND a."timestamp" >= %(start)s AND a."timestamp" < %(end)s
  AND a.chain_seq <= %(upto)s"""

_ORDER = ' ORDER BY a."timestamp" DESC, a.chain_seq DESC'


def _where(filters: EventFilters) -> str:
    parts = []
    if filters.user_id is not None:
        parts.append("a.user_id = %(user)s")
    if filters.table is not None:
        parts.append("a.tables_accessed ? %(table)s")
    if filters.column is not None:
        if filters.table is not None:
            # Rows with a per-table attribution are matched on that table's columns; older rows written
            # with only a flat column list are matched on it (the table filter already holds).
            parts.append("(coalesce(a.columns_by_table -> %(table)s ? %(column)s, false) OR "
                         "(a.columns_by_table IS NULL AND coalesce(a.columns_accessed ? %(column)s, false)))")
        else:
            parts.append("coalesce(a.columns_accessed ? %(column)s, false)")
    if filters.success is not None:
        parts.append("a.success = %(success)s")
    if filters.source is not None:
        parts.append("(a.source_id = %(source)s OR a.source_type = %(source)s)")
    if filters.q is not None:
        parts.append("strpos(lower(a.sql), lower(%(q)s)) > 0")
    return "".join(f"\n  AND {p}" for p in parts)


def _params(org_id: str, window: ReportWindow, filters: EventFilters, upto: int) -> dict[str, Any]:
    return {"org": org_id, "start": window.start, "end": window.end, "upto": upto, "user": filters.user_id,
            "table": filters.table, "column": filters.column, "success": filters.success,
            "source": filters.source, "q": filters.q}


async def chain_position(conn: AsyncConnection, org_id: str) -> int:
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute("SELECT last_seq FROM audit_chain_head WHERE chain_key = %s", (org_id,))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def pii_columns(conn: AsyncConnection, org_id: str) -> dict[str, set[str]]:
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute("SELECT table_name, column_name FROM pii_column_classifications "
                      "WHERE org_id = %s AND NOT dismissed", (org_id,))
    out: dict[str, set[str]] = {}
    for table, column in await cur.fetchall():
        out.setdefault(table, set()).add(column)
    return out


def to_event(row: dict[str, Any], pii: dict[str, set[str]]) -> dict[str, Any]:
    """The API shape of one recorded event."""
    tables = row["tables_accessed"] or []
    by_table = row["columns_by_table"]
    flat = row["columns_accessed"] or []
    pii_out: dict[str, list[str]] = {}
    for table in tables:
        classified = pii.get(table)
        if not classified:
            continue
        cols = by_table.get(table, []) if by_table is not None else flat
        hit = sorted(classified) if "*" in cols else sorted(classified.intersection(cols))
        if hit:
            pii_out[table] = hit
    return {
        "auditId": str(row["id"]), "eventId": row["event_id"], "timestamp": row["timestamp"],
        "userId": row["user_id"], "userEmail": row["user_email"], "userLabel": row["user_label"],
        "sql": row["sql"], "tables": tables, "columnsByTable": by_table,
        "columns": flat, "piiColumns": pii_out, "success": row["success"], "error": row["error"],
        "transactionOutcome": row["transaction_outcome"], "durationMs": row["duration_ms"],
        "rowCount": row["row_count"], "sourceId": row["source_id"], "sourceType": row["source_type"],
        "targetHost": row["target_host"], "parseError": row["parse_error"], "chainSeq": row["chain_seq"],
    }


async def page(conn: AsyncConnection, org_id: str, window: ReportWindow, filters: EventFilters, *,
               limit: int, cursor: Cursor | None) -> dict[str, Any]:
    """One page, newest first, with ``nextCursor`` (null on the last page)."""
    upto = cursor.upto if cursor else await chain_position(conn, org_id)
    params = _params(org_id, window, filters, upto)
    sql = _SELECT + _where(filters)
    if cursor is not None:
        sql += '\n  AND (a."timestamp", a.chain_seq) < (%(cts)s, %(cseq)s)'
        params.update(cts=cursor.timestamp, cseq=cursor.seq)
    params["limit"] = limit + 1
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql + _ORDER + " LIMIT %(limit)s", params)
    rows = await cur.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    pii = await pii_columns(conn, org_id)
    next_cursor = Cursor(rows[-1]["timestamp"], int(rows[-1]["chain_seq"]), upto).encode() if more else None
    return {"window": window.to_dict(), "filters": filters.to_dict(), "events": [to_event(r, pii) for r in rows],
            "limit": limit, "nextCursor": next_cursor}


async def stream(conn: AsyncConnection, org_id: str, window: ReportWindow, filters: EventFilters,
                 batch: int = 2_000) -> AsyncIterator[list[dict[str, Any]]]:
    """Every matching event, newest first, in batches, read with a server-side cursor (constant memory).
    Must run inside a transaction."""
    upto = await chain_position(conn, org_id)
    pii = await pii_columns(conn, org_id)
    cur = conn.cursor("atlas_events", row_factory=dict_row)
    await cur.execute(_SELECT + _where(filters) + _ORDER, _params(org_id, window, filters, upto))
    while rows := await cur.fetchmany(batch):
        yield [to_event(r, pii) for r in rows]

