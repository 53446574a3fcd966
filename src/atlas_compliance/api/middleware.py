"""ASGI middleware: request ids, access logs, request body limits, and the NUL-byte guard."""

from __future__ import annotations

import logging
import re
import time
import uuid
from urllib.parse import unquote_to_bytes

import orjson

from ..audit.schemas import MAX_BODY_BYTES
from ..errors import PayloadTooLarge
from ..logging import request_id_var

log = logging.getLogger("atlas_compliance.access")

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Bodies these paths accept may carry NUL bytes inside single events: the ingest API rejects those
# events one by one instead of refusing the whole batch.
NUL_EXEMPT_BODY_PATHS = ("/api/v1/audit/events",)
LOGIN_PATHS = ("/api/v1/auth/login", "/login")
UPLOAD_PATH_PREFIX = "/api/v1/admin/compliance/classifications"
DEFAULT_LIMITS = {"login": 8 * 1024, "upload": 16 * 1024 * 1024, "default": 64 * 1024}
CSP = (b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY")]
# Over HTTPS (or when the installation says it is behind TLS): browsers stay on HTTPS for a year.
HSTS = (b"strict-transport-security", b"max-age=31536000")
# API answers carry tokens (login), audit data and reports: no browser or proxy may keep a copy.
NO_STORE = (b"cache-control", b"no-store")


def _error_body(code: str, message: str, request_id: str) -> bytes:
    return orjson.dumps({"error": code, "message": message, "requestId": request_id})


def body_limit(path: str, settings) -> int:
    """The most bytes a request body to ``path`` may have: each route gets what its purpose needs."""
    if path in LOGIN_PATHS:
        return getattr(settings, "max_login_body_bytes", DEFAULT_LIMITS["login"])
    if path.startswith(NUL_EXEMPT_BODY_PATHS):
        return MAX_BODY_BYTES
    if path == UPLOAD_PATH_PREFIX or path.startswith(UPLOAD_PATH_PREFIX + "/"):
        return getattr(settings, "max_upload_body_bytes", DEFAULT_LIMITS["upload"])
    return getattr(settings, "max_body_bytes", DEFAULT_LIMITS["default"])


def _size_text(limit: int) -> str:
    if limit >= 1024 * 1024 and limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024):,} MiB"
    if limit >= 1024 and limit % 1024 == 0:
        return f"{limit // 1024:,} KiB"
    return f"{limit:,} bytes"


def too_large_message(limit: int, path: str = "") -> str:
    hint = "; split it into several batches" if path.startswith(NUL_EXEMPT_BODY_PATHS) else ""
    return f"the request body is larger than this route accepts ({_size_text(limit)}){hint}"


def _declared_length(scope) -> int | None:
    for key, value in scope.get("headers") or []:
        if key.lower() == b"content-length":
            text = value.strip()
            return int(text) if text.isdigit() and len(text) <= 20 else None
    return None


def _limited(receive, limit: int, path: str):
    """``receive`` that counts body bytes as they arrive and refuses the request past ``limit``, so a
    handler reading the body stops at the limit instead of holding a body of any size in memory."""
    size = 0

    async def limited_receive():
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise PayloadTooLarge(too_large_message(limit, path))
        return message

    return limited_receive


class RequestContextMiddleware:
    """Assigns a request id (or accepts a safe `X-Request-Id`), logs each request, refuses NUL input."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status_holder = {"status": 500}

        path_for_headers = scope.get("path", "")
        settings = getattr(getattr(scope.get("app"), "state", None), "settings", None)
        over_tls = scope.get("scheme") == "https" or bool(getattr(settings, "secure_cookies", False))

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers") or [])
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(SECURITY_HEADERS)
                headers.append((b"content-security-policy", CSP))
                if path_for_headers.startswith("/api/") and not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append(NO_STORE)
                if over_tls:
                    headers.append(HSTS)
                message["headers"] = headers
            await send(message)

        try:
            if _has_nul(scope):
                await _reply(send_wrapper, 400, _error_body(
                    "bad_request", "NUL characters are not allowed in the URL", request_id))
                return
            method = scope.get("method", "GET")
            path = scope.get("path", "")
            limit = body_limit(path, settings)
            declared = _declared_length(scope)
            if declared is not None and declared > limit:
                # Refused before reading a byte of it.
                await _reply(send_wrapper, 413, _error_body("payload_too_large", too_large_message(limit, path), request_id))
                return
            if method in ("POST", "PUT", "PATCH") and not path.startswith(NUL_EXEMPT_BODY_PATHS):
                body, complete = await _read_body(receive, limit)
                if not complete:
                    await _reply(send_wrapper, 413, _error_body(
                        "payload_too_large", too_large_message(limit, path), request_id))
                    return
                if b"\x00" in body or b"\\u0000" in body:
                    await _reply(send_wrapper, 400, _error_body(
                        "bad_request", "NUL characters are not allowed in the request body", request_id))
                    return
                receive = _replay(body, receive)
            else:
                receive = _limited(receive, limit, path)
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = (time.perf_counter() - start) * 1000
            log.info("%s %s %s", scope.get("method"), scope.get("path"), status_holder["status"],
                     extra={"status": status_holder["status"], "durationMs": round(elapsed, 1)})
            request_id_var.reset(token)


def _has_nul(scope) -> bool:
    if "\x00" in scope.get("path", ""):
        return True
    qs = scope.get("query_string", b"")
    return b"%00" in qs or b"\x00" in unquote_to_bytes(qs)


async def _read_body(receive, limit: int) -> tuple[bytes, bool]:
    """Read the whole body, or stop as soon as it passes ``limit`` (then ``complete`` is False and the
    rest is never read: chunked bodies without a Content-Length stop here too)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", False
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), True


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _reply(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
