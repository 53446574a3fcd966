"""The one error envelope, its handlers, and the OpenAPI description of error responses."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..db.pool import database_error
from ..errors import AtlasError, RateLimited

log = logging.getLogger(__name__)


class FastJSONResponse(JSONResponse):
    """JSON rendered by orjson (datetimes as ISO 8601)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class ErrorEnvelope(BaseModel):
    error: str
    message: str
    requestId: str
    details: Any | None = None


_DESCRIPTIONS = {
    400: "Bad value (the message names the parameter and an accepted form)",
    401: "Missing, malformed, expired or revoked credential",
    403: "Wrong role or scope for this credential",
    404: "Unknown resource",
    409: "Conflict",
    413: "Request too large (`database_limit_exceeded`: a value beyond one of PostgreSQL's own limits; "
         "sending it again fails the same way)",
    422: "Malformed request (missing or mistyped field); `details` lists the problems",
    429: "Too many attempts; see Retry-After",
    503: "The database cannot serve the request right now; retry later. `error` says why: "
         "`database_unavailable` (unreachable or restarting), `database_read_only` (refuses writes), "
         "`database_disk_full`, `database_out_of_resources`, `database_timeout` or `database_conflict`. "
         "The request's transaction was rolled back: nothing was half-written",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorEnvelope, "description": _DESCRIPTIONS[s]} for s in (*statuses, 503)}


def _request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id", "-")


def error_response(request: Request, status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> FastJSONResponse:
    body: dict[str, Any] = {"error": code, "message": message, "requestId": _request_id(request)}
    if details is not None:
        body["details"] = details
    return FastJSONResponse(body, status_code=status, headers=headers)


def _clean_validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cleaned = []
    for err in errors:
        item = {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        cleaned.append(item)
    return cleaned


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AtlasError)
    async def atlas_error(request: Request, exc: AtlasError):
        headers = dict(exc.headers)
        if isinstance(exc, RateLimited):  # the service says how long; HTTP says it with Retry-After
            headers["Retry-After"] = str(exc.retry_after)
        return error_response(request, exc.status, exc.code, exc.message, exc.details, headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        details = _clean_validation_errors(exc.errors())
        where = ", ".join(".".join(str(p) for p in d["loc"]) + ": " + d["msg"] for d in details[:5])
        return error_response(request, 422, "validation_error", f"invalid request: {where}", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(request, exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(psycopg.Error)
    async def db_error(request: Request, exc: psycopg.Error):
        """Database failures that escaped ``Database.connection()`` (which maps the same way)."""
        mapped = database_error(exc)
        if mapped is None:
            log.error("unhandled database error", exc_info=exc)
            return error_response(request, 500, "internal_error", "internal error; quote the request id to support")
        log.warning("database error %s: %s", exc.sqlstate or type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return error_response(request, mapped.status, mapped.code, mapped.message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unhandled error")
        return error_response(request, 500, "internal_error", "internal error; quote the request id to support")
