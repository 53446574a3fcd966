"""Routes: /api/v1/admin/flags (unusual-access flags and their dispositions; see docs/flags.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ..errors import NotFound
from ..flags import service
from ..reports.writers import csv_chunk, json_bytes
from .deps import DB, AdminPrincipal, request_actor
from .errors import responses
from .routing import api_router

router = api_router(prefix="/api/v1/admin/flags", tags=["flags"])

ADMIN = "Admin or owner of the credential's organization only; a flag of another organization answers 404. "
MAX_LIMIT = 10_000
CSV_LIMIT = 100_000


class DispositionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    disposition: Literal["expected", "investigating", "incident"]
    note: str = Field(max_length=service.MAX_NOTE, description="Why (required, not blank).")


class Person(BaseModel):
    id: str | None
    email: str | None


class Disposition(BaseModel):
    disposition: Literal["expected", "investigating", "incident"]
    note: str
    by: Person
    at: str


class Flag(BaseModel):
    id: int
    rule: Literal["volume", "first_access", "new_actor", "bulk_export", "off_hours"]
    userId: str
    tableName: str
    columns: list[str] = Field(description="The PII columns the flag is about.")
    day: str = Field(description="The UTC day of the reads (the rollups' day).")
    window: dict[str, str] = Field(description="The day as a UTC [start, end) window.")
    observed: float = Field(description="Queries of the table by the user that day (bulk_export: the most rows "
                            "one query returned).")
    baseline: float | None = Field(description="volume: the median of the same weekday over the baseline days.")
    threshold: float | None = Field(description="volume: max(floor, k x baseline); bulk_export: the rows; above "
                                    "it the rule fires.")
    explanation: str
    open: bool = Field(description="Nobody has acknowledged it yet (and it still holds).")
    retractedAt: str | None = Field(description="When later data showed it no longer holds (kept because it had "
                                    "a disposition).")
    latestDisposition: Disposition | None
    dispositionCount: int
    createdAt: str


class FlagList(BaseModel):
    flags: list[Flag]


class DispositionOut(BaseModel):
    id: int
    flagId: int
    disposition: str
    note: str
    by: Person
    at: str


def _json(document: object, status: int = 200) -> Response:
    return Response(json_bytes(document), status_code=status, media_type="application/json")


@router.get("", summary="List unusual-access flags (JSON or CSV)",
            description=ADMIN + "Newest day first, each with its rule, user, table, PII columns, figures, "
            "explanation and latest disposition. Filters: `open=true` (not acknowledged yet), `rule`, `userId`, "
            "`startDate`/`endDate` (UTC days, included). A bad day or rule answers 400. `format=csv` sends every "
            "matching flag (up to 100,000) as RFC 4180 CSV, formula-guarded.",
            responses={200: {"model": FlagList, "content": {"text/csv": {}}}, **responses(400, 401, 403, 422)})
async def list_flags(principal: AdminPrincipal, db: DB,
                     open: Annotated[bool, Query(description="Only flags nobody has acknowledged.")] = False,
                     rule: Annotated[str | None, Query(max_length=32,
                                                       description="volume, first_access, new_actor, bulk_export or off_hours.")] = None,
                     userId: Annotated[str | None, Query(max_length=1000)] = None,
                     startDate: Annotated[str | None, Query(max_length=64, description="YYYY-MM-DD")] = None,
                     endDate: Annotated[str | None, Query(max_length=64, description="YYYY-MM-DD")] = None,
                     limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 1000,
                     offset: Annotated[int, Query(ge=0)] = 0,
                     format: Annotated[Literal["json", "csv"], Query(description="json (default) or csv.")] = "json"
                     ) -> Response:
    first = service.parse_day("startDate", startDate) if startDate else None
    last = service.parse_day("endDate", endDate) if endDate else None
    async with db.transaction() as conn:
        flags = await service.list_flags(conn, principal.org_id, open_only=open, rule=rule, user_id=userId,
                                         first=first, last=last, limit=CSV_LIMIT if format == "csv" else limit,
                                         offset=0 if format == "csv" else offset)
    if format == "csv":
        name = f"access-flags-{principal.org_slug}.csv"
        return Response(csv_chunk(service.csv_rows(flags)).encode(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return _json({"flags": flags})


@router.post("/{fid}/disposition", status_code=201, summary="Acknowledge a flag",
             description=ADMIN + "Appends a disposition (`expected`, `investigating` or `incident`) with a note "
             "(400 `note_required` when blank). The flagged user cannot acknowledge their own flag (403 "
             "`self_disposition`); an unknown flag answers 404 `flag_not_found`. Several dispositions may follow "
             "one another; the latest is the flag's. Recorded in the chained admin action log (`flag.dispose`).",
             responses={201: {"model": DispositionOut}, **responses(400, 401, 403, 404, 413, 422)})
async def dispose(fid: str, body: DispositionIn, request: Request, principal: AdminPrincipal, db: DB) -> Response:
    if not fid.isdigit() or len(fid) > 18:
        raise NotFound(f"no flag {fid!r} in this organization", code="flag_not_found")
    async with db.transaction() as conn:
        return _json(await service.dispose(conn, principal.org_id, int(fid), body.disposition, body.note,
                                           request_actor(request, principal)), 201)
