"""Routes: GET /api/v1/admin/audit/failed-access and /api/v1/admin/audit/privileged-actions (issue 19, part 3)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from ..audit import admin_actions
from ..auth.schemas import Principal
from ..db.pool import Database
from ..reports import activity
from ..reports.service import begin_snapshot
from ..reports.window import ReportWindow, parse_window
from ..reports.writers import (
    FAILED_ACCESS_CSV_HEADER,
    PRIVILEGED_ACTIONS_CSV_HEADER,
    csv_chunk,
    failed_access_csv_rows,
    json_bytes,
    privileged_action_csv_row,
)
from .deps import DB, AdminPrincipal, request_actor
from .errors import responses
from .reports import EndDate, StartDate, Tz
from .routing import api_router

router = api_router(tags=["audit"])

FormatQ = Annotated[Literal["json", "csv"], Query(description="json (default) or csv (streamed, every row).")]


class FailedQueryRow(BaseModel):
    tableName: str | None = Field(description="Null for failures that named no table (shown as `(no table)`).")
    userId: str | None
    userEmail: str | None = Field(description="As of the window's end; only for members of the organization.")
    userRole: str | None = Field(description="Role at the window's end.")
    userLabel: str | None = Field(description="The label of the user's latest failure in the window.")
    failures: int
    byClass: dict[str, int] = Field(description="Failures per error class: permission_denied, syntax, timeout, other.")
    firstFailure: str
    lastFailure: str


class FailedLoginRow(BaseModel):
    email: str
    userId: str
    ipAddress: str | None
    failures: int
    firstFailure: str
    lastFailure: str


class FailedAccess(BaseModel):
    window: dict[str, str | None]
    errorClasses: list[dict[str, str]]
    summary: dict[str, Any] = Field(description="failedQueries (each failed query once), byClass, failedLogins, "
                                                "loginAddresses.")
    queries: list[FailedQueryRow]
    logins: list[FailedLoginRow]


class PrivilegedAction(BaseModel):
    id: str
    timestamp: str
    actorId: str | None
    actorEmail: str | None
    scope: str
    actionType: str
    targetType: str
    targetId: str
    status: str
    details: dict[str, Any] | None = Field(description="What the action recorded: old and new values where the "
                                                       "action records them.")
    ipAddress: str | None
    requestId: str
    chainSeq: int | None = Field(description="Position in the organization's chain of admin actions.")


class PrivilegedActionPage(BaseModel):
    window: dict[str, str | None]
    filters: dict[str, Any]
    actions: list[PrivilegedAction]
    limit: int
    nextCursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


FAILED_DESCRIPTION = """
Admin or owner of the credential's organization only; only that organization's rows. For the window:

- `queries`: failed and refused queries (audit rows with `success = false`; purged rows are not counted)
  per (table, user), with a count per error class: `permission_denied`, `syntax` (syntax / parse, including
  names that do not exist), `timeout` (timeout / cancelled) and `other`. The class is read from the
  SQLSTATE when the error text carries one, else from the error text (docs/reports.md lists the rules).
  Failures that named no table are one row with `tableName` null; a failure naming several tables counts
  in each of their rows (`summary.failedQueries` counts it once).
- `logins`: failed sign-ins per (email, client address) of emails that belonged to a member of the
  organization at the moment of the attempt. Failures for unknown emails belong to no organization and
  are shown to none.

`format=csv` streams both as one file (a `kind` column: `query` or `login`). Every look is recorded in the
admin action log.
"""

PRIVILEGED_DESCRIPTION = f"""
Admin or owner of the credential's organization only. The organization's admin action log in the window,
newest first: who generated or exported which report, changed classifications, retention, members, tokens
or role mappings, with the details each action recorded (old and new values where recorded), status,
client address and request id.

JSON pages hold `limit` actions (default {activity.DEFAULT_PAGE}, at most {activity.MAX_PAGE:,}); follow
`nextCursor` (stable: actions recorded meanwhile never shift later pages). `format=csv` streams every
matching action. Every look is itself recorded as an admin action (and so appears in later views).
"""

ActionTypeQ = Annotated[str | None, Query(description="Only this action type (`member.remove`), or a prefix "
                                          "ending in `*` (`member.*`).", max_length=200)]
ActorQ = Annotated[str | None, Query(description="Only actions by this actor id or email.", max_length=500)]
CursorQ = Annotated[str | None, Query(description="The previous page's `nextCursor`.", max_length=500)]
LimitQ = Annotated[int | None, Query(description=f"Actions per page, 1 to {activity.MAX_PAGE:,}.")]


async def _record(db: Database, principal: Principal, request: Request, *, action: str, target_type: str,
                  details: dict[str, Any], status: str = "success") -> None:
    async with db.transaction() as conn:
        await admin_actions.record(conn, request_actor(request, principal), org_id=principal.org_id,
                                   action_type=action, target_type=target_type, target_id=principal.org_id,
                                   status=status, details=details)


def _filename(kind: str, slug: str, window: ReportWindow) -> str:
    safe = "".join(ch for ch in slug if ch.isalnum() or ch in "-_") or "org"
    return f"{kind}-{safe}-{window.start:%Y%m%dT%H%M%SZ}_{window.end:%Y%m%dT%H%M%SZ}.csv"


def _csv_response(body: AsyncIterator[bytes], name: str) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/api/v1/admin/audit/failed-access", summary="Failed access: failed queries by error class, failed logins",
            description=FAILED_DESCRIPTION, responses={200: {"model": FailedAccess, "content": {"text/csv": {}}},
                                                       **responses(400, 401, 403, 422)})
async def failed_access(request: Request, principal: AdminPrincipal, db: DB, startDate: StartDate,
                        endDate: EndDate, tz: Tz = "UTC", format: FormatQ = "json") -> Response:
    window = parse_window(startDate, endDate, tz)
    async with db.transaction() as conn:
        await begin_snapshot(conn)
        view = await activity.failed_access(conn, principal.org_id, window)
    details = {"window": window.to_dict(), "failedQueries": view["summary"]["failedQueries"],
               "failedLogins": view["summary"]["failedLogins"], "rowCount": len(view["queries"]) + len(view["logins"])}
    if format == "csv":
        async def body() -> AsyncIterator[bytes]:
            status = "failure"  # recorded even when the download is cut off
            try:
                yield csv_chunk([FAILED_ACCESS_CSV_HEADER]).encode()
                yield csv_chunk(failed_access_csv_rows(view)).encode()
                status = "success"
            finally:
                await _record(db, principal, request, action="failed_access.export", target_type="failed_access",
                              details=details, status=status)

        return _csv_response(body(), _filename("failed-access", principal.org_slug, window))
    await _record(db, principal, request, action="failed_access.view", target_type="failed_access", details=details)
    return Response(json_bytes(view), media_type="application/json")


@router.get("/api/v1/admin/audit/privileged-actions", summary="Privileged actions: the admin action log read back",
            description=PRIVILEGED_DESCRIPTION,
            responses={200: {"model": PrivilegedActionPage, "content": {"text/csv": {}}},
                       **responses(400, 401, 403, 422)})
async def privileged_actions(request: Request, principal: AdminPrincipal, db: DB, startDate: StartDate,
                             endDate: EndDate, tz: Tz = "UTC", actionType: ActionTypeQ = None, actor: ActorQ = None,
                             cursor: CursorQ = None, limit: LimitQ = None, format: FormatQ = "json") -> Response:
    window = parse_window(startDate, endDate, tz)
    filters = activity.parse_action_filters(actionType, actor)
    if format == "csv":
        counter = [0]

        async def body() -> AsyncIterator[bytes]:
            status = "failure"
            try:
                yield csv_chunk([PRIVILEGED_ACTIONS_CSV_HEADER]).encode()
                async with db.transaction() as conn:
                    async for batch in activity.stream_privileged_actions(conn, principal.org_id, window, filters):
                        counter[0] += len(batch)
                        yield csv_chunk(privileged_action_csv_row(a) for a in batch).encode()
                status = "success"
            finally:
                await _record(db, principal, request, action="privileged_actions.export", target_type="admin_actions",
                              details={"window": window.to_dict(), "filters": filters.to_dict(),
                                       "rowCount": counter[0]}, status=status)

        return _csv_response(body(), _filename("privileged-actions", principal.org_slug, window))
    lim = activity.parse_limit(limit)
    position = activity.decode_cursor(cursor) if cursor else None
    async with db.transaction() as conn:
        page = await activity.privileged_actions_page(conn, principal.org_id, window, filters, limit=lim,
                                                      cursor=position)
    await _record(db, principal, request, action="privileged_actions.view", target_type="admin_actions",
                  details={"window": window.to_dict(), "filters": filters.to_dict(), "rowCount": len(page["actions"])})
    return Response(json_bytes(page), media_type="application/json")
