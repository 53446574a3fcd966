"""Routes: /healthz and /readyz."""

from __future__ import annotations

from fastapi import APIRouter, Request

from .errors import FastJSONResponse, error_response

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Process is up")
async def healthz() -> dict[str, str]:
    """Answers 200 as long as the process serves requests, whatever the database does."""
    return {"status": "ok"}


@router.get("/readyz", summary="Database reachable", responses={503: {"description": "Database unreachable"}})
async def readyz(request: Request):
    """200 when the database answers a query, 503 while it does not (recovers by itself)."""
    if await request.app.state.db.ping():
        return FastJSONResponse({"status": "ready", "database": "ok"})
    return error_response(request, 503, "database_unavailable", "the database is unreachable")
