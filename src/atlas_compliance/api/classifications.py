"""Routes: /api/v1/admin/compliance/classifications (PII review workflow)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request

from ..audit import admin_actions
from ..auth.schemas import Principal
from ..pii import service
from ..pii.schemas import (
    Category,
    Classification,
    ClassificationList,
    ClassificationUpdate,
    DeleteResult,
    ManualClassificationIn,
    ReviewRequest,
    ReviewResult,
    UpsertRequest,
    UpsertResult,
)
from .deps import DB, AdminPrincipal, request_actor
from .errors import responses
from .routing import api_router

router = api_router(prefix="/api/v1/admin/compliance/classifications", tags=["pii"])


async def _record(conn, request: Request, principal: Principal, action: str, target: str, metadata: dict) -> None:
    await admin_actions.record(conn, request_actor(request, principal), org_id=principal.org_id,
                               action_type=action, target_type="compliance", target_id=target, details=metadata)


@router.get("", response_model=ClassificationList, responses=responses(400, 401, 403, 422),
            summary="List PII classifications")
async def list_classifications(
    principal: AdminPrincipal, db: DB,
    table: Annotated[str | None, Query(max_length=500, description="Only this table (normalized).")] = None,
    category: Annotated[Category | None, Query(description="Only this category.")] = None,
    reviewed: Annotated[bool | None, Query(description="Only reviewed (true) or pending (false).")] = None,
    includeDismissed: Annotated[bool, Query(description="Also list dismissed classifications.")] = False,
) -> ClassificationList:
    """The organization's classified columns with their method, reason and (masked) evidence."""
    async with db.transaction() as conn:
        rows = await service.list_for_org(conn, principal.org_id, table=table, category=category, reviewed=reviewed,
                                          include_dismissed=includeDismissed)
    return ClassificationList(classifications=[service.to_out(r) for r in rows], summary=service.summarize(rows))


@router.put("/{cid}", response_model=Classification, responses=responses(400, 401, 403, 404, 422),
            summary="Edit a classification")
async def update_classification(cid: str, body: ClassificationUpdate, request: Request, principal: AdminPrincipal,
                                db: DB) -> Classification:
    """Change `category`, `maskingStrategy`, `reviewed` or `dismissed` (only the fields sent). Unknown values
    answer 422, an unknown id 404. Recorded in the admin action log with exactly the fields sent."""
    changes = body.model_dump(exclude_unset=True)
    async with db.transaction() as conn:
        row = await service.update(conn, principal.org_id, cid, changes)
        await _record(conn, request, principal, "compliance.pii_config_update", cid, changes)
    return service.to_out(row)


@router.delete("/{cid}", response_model=DeleteResult, responses=responses(400, 401, 403, 404),
               summary="Delete a classification")
async def delete_classification(cid: str, request: Request, principal: AdminPrincipal, db: DB) -> DeleteResult:
    """Remove a classification (a later scan may detect the column again, unreviewed)."""
    async with db.transaction() as conn:
        await service.delete(conn, principal.org_id, cid)
        await _record(conn, request, principal, "compliance.pii_config_delete", cid, {})
    return DeleteResult(deleted=True)


@router.post("/review", response_model=ReviewResult, responses=responses(400, 401, 403, 422),
             summary="Mark classifications reviewed")
async def review(request: Request, principal: AdminPrincipal, db: DB, body: ReviewRequest | None = None
                 ) -> ReviewResult:
    """Mark the given ids reviewed, or every pending (unreviewed, not dismissed) one when `ids` is omitted."""
    ids = body.ids if body else None
    async with db.transaction() as conn:
        done = await service.review(conn, principal.org_id, ids)
        await _record(conn, request, principal, "compliance.pii_review", "bulk",
                      {"ids": done, "requested": "all pending" if ids is None else len(ids)})
    return ReviewResult(reviewed=len(done))


@router.post("/manual", response_model=Classification, status_code=201,
             responses=responses(400, 401, 403, 409, 422), summary="Add a column the scanner missed")
async def add_manual(body: ManualClassificationIn, request: Request, principal: AdminPrincipal, db: DB
                     ) -> Classification:
    """Classify one column by hand: stored reviewed, with method `manual`, confidence `high`, the category's
    default masking unless `maskingStrategy` is given, and the admin and `note` in its reason. A column that
    is already classified (dismissed included) answers 409 `classification_exists` with its id in `details`:
    edit or restore that one. Recorded in the admin action log."""
    async with db.transaction() as conn:
        row = await service.add_manual(conn, principal.org_id, body, actor=principal.email or principal.user_id)
        await _record(conn, request, principal, "compliance.pii_manual_add", row["id"],
                      body.model_dump(exclude_unset=True))
    return service.to_out(row)


@router.post("", response_model=UpsertResult, responses=responses(400, 401, 403, 422),
             summary="Upload detections from an external profiler")
async def upsert(body: UpsertRequest, request: Request, principal: AdminPrincipal, db: DB) -> UpsertResult:
    """Add or refresh detections with the scanner's stickiness: reviewed or dismissed classifications are
    never overwritten; new ones arrive unreviewed."""
    async with db.transaction() as conn:
        counts = await service.upsert_detections(conn, principal.org_id, service.detection_records(body.detections))
        await _record(conn, request, principal, "compliance.pii_upsert", "bulk", counts.to_dict())
    return UpsertResult(**counts.to_dict())
