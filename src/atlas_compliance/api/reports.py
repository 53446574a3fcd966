"""Routes: /api/v1/admin/compliance/reports (Data Access and User Activity)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from ..auth.schemas import Principal
from ..reports import service
from ..reports.schemas import DailyVolumeOut, DataAccessReport, UserActivityReport
from ..reports.window import parse_paging, parse_window
from ..reports.writers import json_bytes
from .deps import DB, AdminPrincipal, client_ip
from .errors import responses
from .routing import api_router

router = api_router(prefix="/api/v1/admin/compliance/reports", tags=["reports"])

StartDate = Annotated[str, Query(description="Start of the period: YYYY-MM-DD (start of that day in `tz`) or "
                                 "an ISO 8601 timestamp.", examples=["2026-01-01"], max_length=64)]
EndDate = Annotated[str, Query(description="End of the period: YYYY-MM-DD includes that whole day; a timestamp "
                               "is inclusive.", examples=["2026-03-01"], max_length=64)]
UserId = Annotated[str | None, Query(description="Only this user (exact id).", max_length=1000)]
RoleQ = Annotated[str | None, Query(description="Only users whose role at the window's end is owner, admin or "
                                    "member.",
                                    max_length=32)]
TableQ = Annotated[str | None, Query(description="Only accesses of this table (normalized: case-insensitive, "
                                     "`public.` optional). A name of one or two parts also matches it "
                                     "qualified by a database (`patients` finds `prod.public.patients`); "
                                     "three or more parts match exactly.", max_length=500)]
Format = Annotated[Literal["json", "csv"], Query(description="json (default) or csv (streamed download).")]
Tz = Annotated[str, Query(description="IANA time zone for date-only and offset-less values, in any case "
                          "(`europe/paris`; `window.tz` gives the canonical name). Server-dependent names "
                          "(`localtime`, `posixrules`, `Factory`, `posix/…`, `right/…`) answer 400 `invalid_tz`.",
                          max_length=64)]
Limit = Annotated[int | None, Query(description="Rows per page (JSON); default and maximum: the cap "
                                    "(10,000 data access, 5,000 user activity).")]
Offset = Annotated[int, Query(description="Rows to skip (JSON paging).")]
Download = Annotated[bool, Query(description="With format=json: send the whole report (every row, no paging) "
                                   "as an attachment, streamed.")]

DESCRIPTION = """
Admin or owner of the credential's organization only. Counts only successful, not deleted audit rows
of the organization; a query is one audit row. JSON carries at most {cap:,} rows per page with
`totalRows`, `truncated`, `limit` and `offset`; the summary always covers the full result. The exports
carry every row, streamed, whatever `limit` and `offset` say: `format=csv` (RFC 4180, CRLF,
formula-guarded) and `format=json&download=1` (one JSON document of the same shape as a page, with
`truncated: false`). Both are sent with a `Content-Disposition` filename naming the organization and
window. Every generation and export is recorded in the admin action log.
"""


async def _utf8(texts: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async for text in texts:
        yield text.encode("utf-8")


@dataclass
class ReportQuery:
    """The query parameters both reports take (FastAPI reads each field as a query parameter)."""

    startDate: StartDate
    endDate: EndDate
    userId: UserId = None
    role: RoleQ = None
    table: TableQ = None
    format: Format = "json"
    tz: Tz = "UTC"
    limit: Limit = None
    offset: Offset = 0
    download: Download = False


async def _run(report: service.ReportType, request: Request, principal: Principal, db, q: ReportQuery) -> Response:
    req = service.ReportRequest.parse(report, principal.org_id, start=q.startDate, end=q.endDate, tz=q.tz,
                                      user_id=q.userId, role=q.role, table=q.table)
    lim, off = parse_paging(q.limit, q.offset, service.ROW_CAPS[report])
    format, download = q.format, q.download
    request_id = request.state.request_id
    ip = client_ip(request)
    slug = principal.org_slug
    if format == "csv" or download:
        # An export: every row, streamed in constant memory, recorded once the stream ends (or fails).
        counter = [0]
        if format == "csv":
            fmt, ext, media_type = "csv", "csv", "text/csv; charset=utf-8"
            chunks = _utf8(service.csv_stream(db, req, counter))
        else:
            fmt, ext, media_type = "json-download", "json", "application/json"
            chunks = service.json_stream(db, req, counter)

        async def body():
            status = "failure"
            try:
                async for chunk in chunks:
                    yield chunk
                status = "success"
            finally:
                await service.record_report_action(db, principal, req, fmt=fmt, row_count=counter[0],
                                                   request_id=request_id, ip=ip, status=status)

        return StreamingResponse(body(), media_type=media_type, headers={
            "Content-Disposition": f'attachment; filename="{service.filename(req, slug, ext)}"'})
    document = await service.generate(db, req, limit=lim, offset=off)
    await service.record_report_action(db, principal, req, fmt="json", row_count=len(document["rows"]),
                                       request_id=request_id, ip=ip)
    return Response(json_bytes(document), media_type="application/json")


@router.get("/data-access", summary="Data Access Report: who queried which tables, when, how often",
            description=DESCRIPTION.format(cap=10_000),
            responses={200: {"model": DataAccessReport, "content": {"text/csv": {}}},
                       **responses(400, 401, 403, 422)})
async def data_access(request: Request, principal: AdminPrincipal, db: DB,
                      q: Annotated[ReportQuery, Depends()]) -> Response:
    return await _run("data-access", request, principal, db, q)


@router.get("/user-activity", summary="User Activity Report: what each user has been doing",
            description=DESCRIPTION.format(cap=5_000),
            responses={200: {"model": UserActivityReport, "content": {"text/csv": {}}},
                       **responses(400, 401, 403, 422)})
async def user_activity(request: Request, principal: AdminPrincipal, db: DB,
                        q: Annotated[ReportQuery, Depends()]) -> Response:
    return await _run("user-activity", request, principal, db, q)


volume_router = api_router(prefix="/api/v1/admin/compliance", tags=["reports"])


@volume_router.get("/volume", response_model=DailyVolumeOut, responses=responses(400, 401, 403, 422),
                   summary="Queries per day of a window (the console's chart)")
async def daily_volume(principal: AdminPrincipal, db: DB, startDate: StartDate, endDate: EndDate,
                       tz: Tz = "UTC") -> Response:
    """Successful, not deleted queries per calendar day of the window's time zone, for the caller's
    organization: what the Reports tab draws. At most 732 days (`window_too_long`)."""
    window = parse_window(startDate, endDate, tz)
    return Response(json_bytes(await service.daily_volume(db, principal.org_id, window)),
                    media_type="application/json")
