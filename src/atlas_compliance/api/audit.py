"""Routes: audit event ingest, chain verification, retention policy and purge."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Any

import orjson
from fastapi import Body, Depends, Query, Request

from ..audit import checkpoints, retention, signing, verification
from ..audit import service as audit_service
from ..audit.schemas import (
    MAX_BODY_BYTES,
    MAX_EVENTS_PER_REQUEST,
    AuditEventIn,
    CheckpointList,
    CheckpointOut,
    IngestResult,
    PurgeOut,
    RetentionPolicy,
    RetentionUpdate,
    VerifyOut,
)
from ..auth.schemas import Principal
from ..catalog import service as catalog_service
from ..config import Settings
from ..errors import AtlasError, BadRequest, Forbidden, PayloadTooLarge, Unprocessable
from .deps import DB, AdminPrincipal, CurrentPrincipal, get_settings, request_actor
from .errors import responses
from .routing import api_router

router = api_router(tags=["audit"])

INGEST_DESCRIPTION = f"""
Record executed queries for the credential's organization: a JSON array of events, or NDJSON
(`Content-Type: application/x-ndjson`, one event per line). At most {MAX_EVENTS_PER_REQUEST:,} events and
10 MB per request (413 beyond). Authenticate with an ingest key, or an admin's token.

Each event is validated on its own: invalid ones are listed in `rejected` (code `invalid_event`) with a
reason, valid ones are stored. An event whose `eventId` was already stored (or came earlier in the batch)
counts as a duplicate when it is the same event (same `sql`, `userId`, `timestamp` when given, `sourceId`,
`sourceType`, `targetHost` and `success`), so a retried batch stores nothing twice; another event under
that id is refused in `rejected` with code `event_id_conflict`. A 2xx answer means every inserted event
is committed. Tables and columns are extracted
from `sql` (in the `sourceType` dialect) unless the event carries `tablesAccessed`, `columnsAccessed` or
`columnsByTable`, using the organization's schema catalog; columns the SQL places beyond doubt
(`t.col`, the column list of an insert, the targets of an update's SET) are recorded in the catalog as *learned* after
the batch commits (docs/catalog.md). A statement over the analysis budget (256 KiB or 2 s by default, see
`ATLAS_PARSE_MAX_BYTES` and `ATLAS_PARSE_SECONDS`) is stored with `parse_error` "too complex to
analyse: …" and no tables, never refused.
"""


def _require_writer(principal: Principal) -> Principal:
    if principal.kind == "ingest":
        if not principal.can("audit:write"):
            raise Forbidden("this ingest key lacks the 'audit:write' scope", code="scope_denied")
        return principal
    if not principal.is_admin:
        raise Forbidden("only ingest keys and admins can write audit events", code="forbidden_role")
    return principal


async def _read_limited_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the request body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MB; "
                              "split it into several batches")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"the request body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MB; "
                                  "split it into several batches")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_events_body(body: bytes, content_type: str) -> list[Any]:
    """Decode a JSON array or NDJSON body into raw events; a malformed body raises 422."""
    text = body.strip()
    if not text:
        raise Unprocessable("the body is empty: send a JSON array of events or NDJSON", code="malformed_body")
    ndjson = "ndjson" in content_type or "jsonl" in content_type or not text.startswith(b"[")
    try:
        if not ndjson:
            events = orjson.loads(text)
            if not isinstance(events, list):
                raise Unprocessable("the body must be a JSON array of events", code="malformed_body")
        else:
            events = []
            for number, line in enumerate(text.split(b"\n"), start=1):
                if line.strip():
                    try:
                        events.append(orjson.loads(line))
                    except orjson.JSONDecodeError as exc:
                        raise Unprocessable(f"line {number} is not valid JSON: {exc}", code="malformed_body") from None
    except orjson.JSONDecodeError as exc:
        raise Unprocessable(f"the body is not valid JSON: {exc}", code="malformed_body") from None
    if len(events) > MAX_EVENTS_PER_REQUEST:
        raise PayloadTooLarge(f"{len(events):,} events in one request; the limit is {MAX_EVENTS_PER_REQUEST:,}",
                              code="too_many_events")
    return events


@router.post(
    "/api/v1/audit/events", response_model=IngestResult, summary="Ingest audit events",
    description=INGEST_DESCRIPTION, responses=responses(401, 403, 413, 422),
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "array", "items": AuditEventIn.model_json_schema(
            ref_template="#/components/schemas/{model}")}},
        "application/x-ndjson": {"schema": {"type": "string"}}}}},
)
async def ingest(request: Request, principal: CurrentPrincipal, db: DB) -> IngestResult:
    _require_writer(principal)
    body = await _read_limited_body(request)
    events = parse_events_body(body, request.headers.get("content-type", ""))
    learned: set[tuple[str, str]] = set()
    result = await audit_service.ingest_batch(db, principal.org_id, events, request.app.state.analysis, learned)
    if learned:  # after the commit, outside the org's chain lock: one set-based upsert
        await catalog_service.learn(db, principal.org_id, learned, audit_service.cached_catalog(principal.org_id))
    return result


@router.get("/api/v1/admin/audit/verify", response_model=VerifyOut, responses=responses(400, 401, 403, 422),
            summary="Verify the audit log's hash chains and the rollups reports read")
async def verify(principal: AdminPrincipal, db: DB,
                 since: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$",
                                                    description="Check the rollups from this UTC day on "
                                                    "(YYYY-MM-DD); default: the whole history.")] = None,
                 ) -> VerifyOut:
    """Recompute the organization's hash chain: OK with the number of rows checked, or the first broken
    link (which row, and whether it was changed, removed or inserted out of order). The chains of purge
    tombstones and admin actions are checked too (`chains`). The user-daily, access-daily and
    access-weekly rollups are recomputed from the raw rows and every difference is named (`rollups`).
    `ok` is false if any chain is broken or any rollup differs."""
    try:
        first_day = date.fromisoformat(since) if since else None
    except ValueError:
        raise BadRequest(f"since: {since!r} is not a calendar date (YYYY-MM-DD)", code="invalid_date") from None
    [found] = await verification.verify_orgs(db, [{"id": principal.org_id, "slug": principal.org_slug}],
                                             since=first_day, workers=2)  # chain and rollups side by side
    result, checked = found.chain, found.rollups
    assert checked is not None
    body = result.to_dict() | {"ok": found.ok, "rollups": checked.to_dict()}
    return VerifyOut.model_validate(body)


@router.get("/api/v1/admin/audit/retention", response_model=RetentionPolicy, responses=responses(401, 403),
            summary="Get the retention policy")
async def get_retention(principal: AdminPrincipal, db: DB) -> RetentionPolicy:
    """The organization's audit retention policy (365 days by default)."""
    async with db.transaction() as conn:
        return RetentionPolicy.model_validate(await retention.get_policy(conn, principal.org_id))


@router.put("/api/v1/admin/audit/retention", response_model=RetentionPolicy,
            responses=responses(400, 401, 403, 422), summary="Set the retention policy")
async def put_retention(request: Request, principal: AdminPrincipal, db: DB,
                        body: RetentionUpdate = Body(...)) -> RetentionPolicy:
    """Set `retentionDays` (the installation's minimum, 365 days by default, to 36,500, or null for
    unlimited) and optionally `hardDeleteDelayDays` (the installation's minimum, 30 by default, to 36,500).
    A value below the minimum is refused with 400 `invalid_retention`. Recorded in the admin action log
    with the previous and new values."""
    async with db.transaction() as conn:
        _, new = await retention.set_policy(conn, principal.org_id, body.retentionDays, body.hardDeleteDelayDays,
                                            request_actor(request, principal))
    return RetentionPolicy.model_validate(new)


@router.post("/api/v1/admin/audit/retention/purge", response_model=PurgeOut, responses=responses(401, 403),
             summary="Run the retention purge now")
async def purge(request: Request, principal: AdminPrincipal, db: DB) -> PurgeOut:
    """Soft-delete rows older than the policy and hard-delete rows soft-deleted longer than the delay;
    never rows newer than the installation's minimum retention. Runs as the database function
    `atlas_retention_purge`, which records the purge in the admin action log in the same statement."""
    async with db.transaction() as conn:
        result = await retention.purge_org(conn, principal.org_id, request_actor(request, principal))
    return PurgeOut(orgId=result.org_id, softDeleted=result.soft_deleted, hardDeleted=result.hard_deleted)


@router.get("/api/v1/admin/audit/checkpoints", response_model=CheckpointList, responses=responses(400, 401, 403, 422),
            summary="List the signed checkpoints of the organization's chains")
async def list_checkpoints(principal: AdminPrincipal, settings: Annotated[Settings, Depends(get_settings)],
                           limit: Annotated[int, Query(ge=1, le=1000, description="At most this many, newest "
                                                       "first.")] = 100) -> CheckpointList:
    """The checkpoint files that `serve` (every ATLAS_CHECKPOINT_INTERVAL) or `atlas-compliance audit
    checkpoint` wrote for the caller's organization into ATLAS_CHECKPOINT_DIR, newest first: each chain's
    last position, head hash and counts, with the signature. A copy kept off this host lets
    `atlas-compliance audit verify --checkpoint` prove that the database still extends it."""
    directory = settings.checkpoints_path

    def read() -> list[dict]:
        try:
            key = signing.load_signing_key(settings, create=False).verifying()
        except AtlasError:
            key = None
        return checkpoints.list_for_org(directory, principal.org_id, key, limit)

    items = await asyncio.to_thread(read)
    return CheckpointList(checkpoints=[CheckpointOut.model_validate(i) for i in items])
