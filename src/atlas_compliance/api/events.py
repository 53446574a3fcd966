"""Route: GET /api/v1/admin/audit/events, the audit-log explorer (the queries behind a report row)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from ..audit import admin_actions
from ..auth.schemas import Principal
from ..db.pool import Database
from ..reports import explorer
from ..reports.window import parse_window
from ..reports.writers import EVENTS_CSV_HEADER, csv_chunk, event_csv_row, json_bytes
from .deps import DB, AdminPrincipal, request_actor
from .errors import responses
from .reports import EndDate, StartDate, TableQ, Tz, UserId
from .routing import api_router

router = api_router(tags=["audit"])


class ExplorerEvent(BaseModel):
    auditId: str
    eventId: str | None
    timestamp: str
    userId: str | None
    userEmail: str | None = Field(description="Only for members of the organization.")
    userLabel: str | None
    sql: str
    tables: list[str]
    columnsByTable: dict[str, list[str]] | None = Field(description="Null on rows written with a flat column list.")
    columns: list[str]
    piiColumns: dict[str, list[str]] = Field(description="Accessed columns classified as PII, per table.")
    success: bool
    error: str | None
    transactionOutcome: str | None
    durationMs: int
    rowCount: int | None
    sourceId: str | None
    sourceType: str | None
    targetHost: str | None
    parseError: str | None
    chainSeq: int | None = Field(description="Position in the organization's hash chain.")


class EventPage(BaseModel):
    window: dict[str, str | None]
    filters: dict[str, Any]
    events: list[ExplorerEvent]
    limit: int
    nextCursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


DESCRIPTION = f"""
Admin or owner of the credential's organization only; only that organization's events. Lists the
recorded events (failed ones too, unless `success` says otherwise; purged rows are not listed) in the
window, newest first, with their SQL, tables, columns per table, PII columns, outcome, duration, row
count, source and chain position.

JSON pages hold `limit` events (default {explorer.DEFAULT_PAGE}, at most {explorer.MAX_PAGE:,}); follow
`nextCursor`. Paging is stable under concurrent ingest: a listing's later pages read only the rows that
existed when its first page was read. `format=csv` streams every matching event (RFC 4180, formula-guarded)
regardless of `limit` and `cursor`. Every look is recorded in the admin action log (who viewed which slice).
"""

ColumnQ = Annotated[str | None, Query(description="Only events that read or wrote this column (with `table`: "
                                      "of that table).", max_length=500)]
SuccessQ = Annotated[bool | None, Query(description="true: successful events only; false: failed only.")]
SourceQ = Annotated[str | None, Query(description="Only events from this source id or source type (e.g. a "
                                      "`sources` name, `postgres`).", max_length=500)]
TextQ = Annotated[str | None, Query(description="Only events whose SQL contains this text (case-insensitive).",
                                    max_length=explorer.MAX_QUERY_TEXT)]
CursorQ = Annotated[str | None, Query(description="The previous page's `nextCursor`.", max_length=500)]
LimitQ = Annotated[int | None, Query(description=f"Events per page, 1 to {explorer.MAX_PAGE:,}.")]
FormatQ = Annotated[Literal["json", "csv"], Query(description="json (default, paged) or csv (every event).")]


async def _record(db: Database, principal: Principal, request: Request, *, action: str, window, filters,
                  count: int, status: str = "success") -> None:
    async with db.transaction() as conn:
        await admin_actions.record(
            conn, request_actor(request, principal), org_id=principal.org_id, action_type=action,
            target_type="audit_events", target_id=principal.org_id, status=status,
            details={"window": window.to_dict(), "filters": filters.to_dict(), "rowCount": count})


def _filename(slug: str, window) -> str:
    safe = "".join(ch for ch in slug if ch.isalnum() or ch in "-_") or "org"
    start = window.start.strftime("%Y%m%dT%H%M%SZ")
    end = window.end.strftime("%Y%m%dT%H%M%SZ")
    return f"audit-events-{safe}-{start}_{end}.csv"


@router.get("/api/v1/admin/audit/events", summary="Audit-log explorer: the recorded events behind a report",
            description=DESCRIPTION, responses={200: {"model": EventPage, "content": {"text/csv": {}}},
                                                **responses(400, 401, 403, 422)})
async def list_events(request: Request, principal: AdminPrincipal, db: DB, startDate: StartDate, endDate: EndDate,
                      tz: Tz = "UTC", userId: UserId = None, table: TableQ = None, column: ColumnQ = None,
                      success: SuccessQ = None, source: SourceQ = None, q: TextQ = None, cursor: CursorQ = None,
                      limit: LimitQ = None, format: FormatQ = "json") -> Response:
    window = parse_window(startDate, endDate, tz)
    filters = explorer.parse_event_filters(userId, table, column, success, source, q)
    if format == "csv":
        counter = [0]

        async def body() -> AsyncIterator[bytes]:
            status = "failure"
            try:
                yield csv_chunk([EVENTS_CSV_HEADER]).encode()
                async with db.transaction() as conn:
                    async for batch in explorer.stream(conn, principal.org_id, window, filters):
                        counter[0] += len(batch)
                        yield csv_chunk(event_csv_row(e) for e in batch).encode()
                status = "success"
            finally:
                await _record(db, principal, request, action="audit_events.export", window=window,
                              filters=filters, count=counter[0], status=status)

        return StreamingResponse(body(), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{_filename(principal.org_slug, window)}"'})
    lim = explorer.parse_limit(limit)
    position = explorer.Cursor.decode(cursor) if cursor else None
    async with db.transaction() as conn:
        document = await explorer.page(conn, principal.org_id, window, filters, limit=lim, cursor=position)
    await _record(db, principal, request, action="audit_events.view", window=window, filters=filters,
                  count=len(document["events"]))
    return Response(json_bytes(document), media_type="application/json")
