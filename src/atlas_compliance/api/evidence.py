"""Route: /api/v1/admin/compliance/evidence (a signed evidence bundle, docs/evidence.md)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from typing import IO, Annotated

from fastapi import Depends, Request
from fastapi.responses import StreamingResponse

from ..audit import signing
from ..auth.schemas import Principal
from ..config import Settings
from ..evidence import bundle as evidence
from ..reports.window import parse_filters, parse_window
from .deps import DB, AdminPrincipal, get_settings, request_actor
from .errors import responses
from .reports import EndDate, RoleQ, StartDate, TableQ, Tz, UserId
from .routing import api_router

router = api_router(prefix="/api/v1/admin/compliance/evidence", tags=["reports"])
CHUNK = 1 << 16

DESCRIPTION = """
Admin or owner of the credential's organization only. A zip of: both reports for the window (and filters),
every row, in CSV and JSON (the same bytes as their exports); the PII classifications; the result of
`audit verify` for the organization; its latest signed checkpoint file (else its chain heads); and
`manifest.json` (product version, organization, window, time zone, filters, generation time and author, and
per file its row count, population and SHA-256) with `manifest.sig`, the base64 Ed25519 signature of the
manifest's exact bytes by the installation key (key id in the manifest). Windows, time zones and filters
follow the report rules (400 `invalid_date`, `invalid_range`, `invalid_tz`, `invalid_role`). The file name
(`Content-Disposition`) carries the organization, window, time zone, filters and generation time. Check a
bundle offline with `atlas-compliance evidence verify FILE.zip`. Every export is recorded in the admin
action log (`compliance.evidence_export`).
"""


async def _chunks(handle: IO[bytes]) -> AsyncIterator[bytes]:
    try:
        while block := await asyncio.to_thread(handle.read, CHUNK):
            yield block
    finally:
        handle.close()


@router.get("", summary="Signed evidence bundle: both reports, classifications, chain proofs, signed manifest",
            description=DESCRIPTION, response_class=StreamingResponse,
            responses={200: {"content": {"application/zip": {}}, "description": "The bundle (zip)."},
                       **responses(400, 401, 403, 422)})
async def evidence_bundle(request: Request, principal: AdminPrincipal, db: DB,
                          settings: Annotated[Settings, Depends(get_settings)], startDate: StartDate,
                          endDate: EndDate, tz: Tz = "UTC", userId: UserId = None, role: RoleQ = None,
                          table: TableQ = None) -> StreamingResponse:
    window = parse_window(startDate, endDate, tz)
    filters = parse_filters(userId, role, table)
    req = _request(request, principal, window, filters, startDate, endDate)
    key = await asyncio.to_thread(signing.load_signing_key, settings)
    handle = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the response body, or below)
    try:
        made = await evidence.export(db, settings, req, key, handle)
        handle.seek(0)
    except BaseException:
        handle.close()
        raise
    return StreamingResponse(_chunks(handle), media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{made.name}"'})


def _request(request: Request, principal: Principal, window, filters, start: str, end: str
             ) -> evidence.BundleRequest:
    return evidence.BundleRequest(org_id=principal.org_id, org_slug=principal.org_slug, window=window,
                                  filters=filters, start_input=start, end_input=end,
                                  actor=request_actor(request, principal))
