"""Routes: /api/v1/admin/reviews (access reviews: open, decide, sign off, export; see docs/reviews.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from ..reports.writers import json_bytes
from ..reviews import service
from .deps import DB, AdminPrincipal, request_actor
from .errors import responses
from .routing import api_router

router = api_router(prefix="/api/v1/admin/reviews", tags=["reviews"])
settings_router = api_router(prefix="/api/v1/admin/review-settings", tags=["reviews"])

ADMIN = ("Admin or owner of the credential's organization only; a campaign of another organization "
         "answers 404. ")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenIn(_In):
    startDate: str = Field(max_length=64, description="First day of the period, YYYY-MM-DD (in `tz`).",
                           examples=["2026-01-01"])
    endDate: str = Field(max_length=64, description="Last day of the period, YYYY-MM-DD, included.",
                         examples=["2026-03-31"])
    tz: str = Field("UTC", max_length=64, description="IANA time zone of the period's days.")
    userId: str | None = Field(None, max_length=1000, description="Scope: only this user.")
    role: str | None = Field(None, max_length=32, description="Scope: only users with this role at the "
                             "period's end (owner, admin, member).")
    table: str | None = Field(None, max_length=500, description="Scope: only accesses of this table (as the "
                              "reports' `table` filter).")
    title: str | None = Field(None, max_length=200)
    dueDate: str | None = Field(None, max_length=64, description="YYYY-MM-DD; default: 30 days after the "
                                "period's end. An open campaign past it is overdue.")


class DecideIn(_In):
    items: list[StrictInt] = Field(min_length=1, max_length=1000, description="Item numbers (`item` of the campaign's "
                             "items); several at once for a bulk decision.")
    decision: Literal["keep", "revoke", "flag"]
    note: str | None = Field(None, max_length=2000, description="Required for revoke and flag.")


class SignOffIn(_In):
    statement: str = Field(max_length=5000, description="The reviewer's statement, e.g. what was reviewed and "
                           "the conclusion.")


class FollowUpIn(_In):
    item: StrictInt = Field(description="A revoked item's number.")
    note: str = Field(max_length=2000, description="What was done (e.g. the ticket that removed the access).")


class SettingsIn(_In):
    piiSecondReviewer: StrictBool = Field(description="Require a second reviewer, who agrees, on every PII access item "
                                    "before sign-off (campaigns opened from now on).")


class SettingsOut(BaseModel):
    piiSecondReviewer: bool
    updatedBy: str | None
    updatedAt: str | None


class Person(BaseModel):
    userId: str | None
    email: str | None


class SignOff(BaseModel):
    by: Person
    at: str
    statement: str
    contentSha256: str = Field(description="SHA-256 over the frozen population and every decision.")
    signature: str | None = Field(description="Base64 Ed25519 signature by the installation key (null when no "
                                  "key existed at sign-off); see docs/reviews.md for the signed bytes.")
    signatureKeyId: str | None


class Campaign(BaseModel):
    id: str
    orgId: str
    title: str
    periodStart: str
    periodEnd: str
    tz: str
    window: dict[str, str]
    scope: dict[str, str | None]
    dueDate: str
    scheduleId: str | None
    status: Literal["open", "signed_off"]
    piiSecondReviewer: bool = Field(description="PII access items need two reviewers who agree (the organization's "
                                    "setting when the campaign opened).")
    overdue: bool = Field(description="Open and past its due date (in its time zone).")
    openedBy: Person | None
    openedAt: str
    progress: dict[str, int]
    signOff: SignOff | None


class Decision(BaseModel):
    decision: Literal["keep", "revoke", "flag"]
    note: str | None
    decidedBy: Person
    decidedAt: str


class Item(BaseModel):
    item: int
    kind: Literal["user", "access"] = Field(description="`user`: a person of the User Activity Report (must be "
                                            "decided before sign-off); `access`: a (table, user) row of the "
                                            "Data Access Report (optional).")
    userId: str | None
    userEmail: str | None
    userRole: str | None
    tableName: str | None
    hasPII: bool
    figures: dict[str, Any] = Field(description="The report row as frozen when the campaign opened.")
    decision: Decision | None = Field(description="The latest decision.")
    confirmedByTwo: bool = Field(description="The two latest decisions are by different reviewers and agree.")
    followUp: dict[str, Any] | None


class CampaignList(BaseModel):
    campaigns: list[Campaign]


class CampaignDocument(BaseModel):
    campaign: Campaign
    items: list[Item]


class ExportDocument(CampaignDocument):
    decisions: list[dict[str, Any]] = Field(description="Every decision, earlier ones included, oldest first.")
    reviewers: list[dict[str, Any]]
    exportedAt: str


def _json(document: Any, status: int = 200) -> Response:
    return Response(json_bytes(document), status_code=status, media_type="application/json")


@router.get("", summary="List access reviews", description=ADMIN + "Newest first, with progress and whether "
            "each is overdue. `overdue=true` lists only open campaigns past their due date.",
            responses={200: {"model": CampaignList}, **responses(400, 401, 403, 422)})
async def list_reviews(principal: AdminPrincipal, db: DB,
                       overdue: Annotated[bool, Query(description="Only overdue campaigns.")] = False) -> Response:
    async with db.transaction() as conn:
        found = await service.list_campaigns(conn, principal.org_id, overdue_only=overdue)
    return _json({"campaigns": found})


@router.post("", status_code=201, summary="Open an access review (freezes its population)",
             description=ADMIN + "Reads the User Activity and Data Access reports of the period and scope in one "
             "snapshot and stores their rows with the campaign: one `user` item per person (members without "
             "activity included) and one `access` item per (table, user). Later ingest or offboarding changes "
             "nothing in it. Recorded in the admin action log (`review.open`).",
             responses={201: {"model": CampaignDocument}, **responses(400, 401, 403, 413, 422)})
async def open_review(body: OpenIn, request: Request, principal: AdminPrincipal, db: DB) -> Response:
    ask = service.OpenRequest(org_id=principal.org_id, start=body.startDate, end=body.endDate, tz=body.tz,
                              user_id=body.userId, role=body.role, table=body.table, title=body.title,
                              due_date=body.dueDate)
    return _json(await service.open_campaign(db, ask, request_actor(request, principal)), 201)


@router.get("/{rid}", summary="One access review with its items",
            description=ADMIN + "The campaign, its frozen items with their current decision and follow-up.",
            responses={200: {"model": CampaignDocument}, **responses(400, 401, 403, 404)})
async def get_review(rid: str, principal: AdminPrincipal, db: DB) -> Response:
    async with db.transaction() as conn:
        return _json(await service.get(conn, principal.org_id, rid))


@router.post("/{rid}/decisions", summary="Decide items: keep, revoke or flag",
             description=ADMIN + "Records one decision on each listed item (all or none). `revoke` and `flag` "
             "need a note. A reviewer cannot decide on their own access (403 `self_review`). A signed-off "
             "campaign refuses decisions (409 `review_signed_off`); an unknown item answers 404. A later "
             "decision on the same item replaces it as current; the earlier one stays in the history. Recorded "
             "in the admin action log (`review.decide`).",
             responses={200: {"description": "The decision recorded"}, **responses(400, 401, 403, 404, 409, 413, 422)})
async def decide(rid: str, body: DecideIn, request: Request, principal: AdminPrincipal, db: DB) -> Response:
    async with db.transaction() as conn:
        return _json(await service.decide(conn, principal.org_id, rid, body.items, body.decision, body.note,
                                          request_actor(request, principal)))


@router.post("/{rid}/signoff", summary="Sign an access review off",
             description=ADMIN + "Only when every `user` item has a decision (409 `review_incomplete`), with a "
             "statement (400 `statement_required`). Stores a SHA-256 over the population and decisions, signed "
             "with the installation key when it exists. The campaign is read-only afterwards. Recorded in the "
             "admin action log (`review.signoff`).",
             responses={200: {"model": CampaignDocument}, **responses(400, 401, 403, 404, 409, 413, 422)})
async def sign_off(rid: str, body: SignOffIn, request: Request, principal: AdminPrincipal, db: DB) -> Response:
    key = service.installation_key(request.app.state.settings)
    async with db.transaction() as conn:
        return _json(await service.sign_off(conn, principal.org_id, rid, body.statement,
                                            request_actor(request, principal), key))


@router.post("/{rid}/followups", summary="Mark a revocation's follow-up done",
             description=ADMIN + "After sign-off only (409 `review_open`), for a revoked item (409 "
             "`not_a_revocation`), once (409 `followup_done`), with a note. Recorded in the admin action log "
             "(`review.followup_done`).",
             responses={200: {"description": "The follow-up recorded"}, **responses(400, 401, 403, 404, 409, 413, 422)})
async def followup(rid: str, body: FollowUpIn, request: Request, principal: AdminPrincipal, db: DB) -> Response:
    async with db.transaction() as conn:
        return _json(await service.followup_done(conn, principal.org_id, rid, body.item, body.note,
                                                 request_actor(request, principal)))


@router.get("/{rid}/export", summary="Export an access review (CSV or JSON)",
            description=ADMIN + "The evidence: campaign, sign-off (statement, signer, time, digest, signature), "
            "frozen population, current decisions and follow-ups; JSON also lists every decision and the "
            "reviewers. `followups=true` (CSV or JSON) keeps only revoked items: who must lose which access. "
            "Sent as an attachment. Recorded in the admin action log (`review.export`).",
            responses={200: {"model": ExportDocument, "content": {"text/csv": {}}}, **responses(400, 401, 403, 404, 422)})
async def export(rid: str, request: Request, principal: AdminPrincipal, db: DB,
                 format: Annotated[Literal["json", "csv"], Query(description="json (default) or csv.")] = "json",
                 followups: Annotated[bool, Query(description="Only revoked items (the follow-up list).")] = False
                 ) -> Response:
    async with db.transaction() as conn:
        document = await service.export(conn, principal.org_id, rid, followups_only=followups)
        await service.record_export(conn, principal.org_id, rid, request_actor(request, principal), format,
                                    len(document["items"]))
    name = service.export_filename(document, principal.org_slug, format, followups_only=followups)
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "csv":
        return Response(service.csv_text(document).encode("utf-8"), media_type="text/csv; charset=utf-8",
                        headers=headers)
    return Response(json_bytes(document), media_type="application/json", headers=headers)


@settings_router.get("", summary="The organization's review rules", description=ADMIN,
                     responses={200: {"model": SettingsOut}, **responses(400, 401, 403)})
async def get_settings(principal: AdminPrincipal, db: DB) -> Response:
    async with db.transaction() as conn:
        return _json(await service.get_setting(conn, principal.org_id))


@settings_router.put("", summary="Set the organization's review rules",
                     description=ADMIN + "`piiSecondReviewer`: campaigns opened from now on need, before sign-off, "
                     "every PII access item decided by two different reviewers who agree. Open campaigns keep the "
                     "rule they opened with. Recorded in the admin action log (`review.settings_update`).",
                     responses={200: {"model": SettingsOut}, **responses(400, 401, 403, 413, 422)})
async def put_settings(body: SettingsIn, request: Request, principal: AdminPrincipal, db: DB) -> Response:
    async with db.transaction() as conn:
        return _json(await service.set_setting(conn, principal.org_id, pii_second_reviewer=body.piiSecondReviewer,
                                               actor=request_actor(request, principal)))
