"""CSRF protection for the console.

Signed-in requests carry `X-CSRF-Token` (JavaScript) or a `csrf` form field equal to an HMAC of the
session token under the installation secret, so a forged cross-site request cannot know it. The login
form (no session yet) uses a double-submit cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from psycopg import AsyncConnection

from ..pii.repository import hmac_secret

LOGIN_COOKIE = "atlas_login_csrf"
_secret_cache: dict[str, bytes] = {}


async def installation_secret(conn: AsyncConnection) -> bytes:
    key = f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"
    if key not in _secret_cache:
        _secret_cache[key] = await hmac_secret(conn)
    return _secret_cache[key]


def token_for(session_token: str, secret: bytes) -> str:
    return hmac.new(secret, b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()


def valid(session_token: str, presented: str | None, secret: bytes) -> bool:
    return bool(presented) and hmac.compare_digest(token_for(session_token, secret), presented or "")


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a or "", b or "")
