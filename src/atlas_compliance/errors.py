"""One error hierarchy for the whole product.

Every expected failure is an :class:`AtlasError` with an HTTP status and a stable code. The API
turns it into the JSON envelope ``{error, message, requestId}``; the CLI prints ``message``.
"""

from __future__ import annotations

from typing import Any


class AtlasError(Exception):
    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details
        self.headers = headers or {}


class BadRequest(AtlasError):
    status, code = 400, "bad_request"


class Unauthorized(AtlasError):
    status, code = 401, "unauthorized"


class Forbidden(AtlasError):
    status, code = 403, "forbidden"


class NotFound(AtlasError):
    status, code = 404, "not_found"


class Conflict(AtlasError):
    status, code = 409, "conflict"


class PayloadTooLarge(AtlasError):
    status, code = 413, "payload_too_large"


class Unprocessable(AtlasError):
    status, code = 422, "validation_error"


class RateLimited(AtlasError):
    """Too many attempts; ``retry_after`` seconds until the next may succeed (the API's ``Retry-After``)."""

    status, code = 429, "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None, details: Any = None) -> None:
        super().__init__(message, code=code, details=details)
        self.retry_after = retry_after


class ServiceUnavailable(AtlasError):
    status, code = 503, "service_unavailable"
