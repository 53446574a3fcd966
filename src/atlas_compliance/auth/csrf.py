"""CSRF protection for the console.

Key: the installation secret (``atlas_installation.hmac_secret``, created by the first migration and
shared by every server process on the same database), read once per process and database. A
per-process random key would break as soon as two workers serve the same users, and would make
every open page fail after a restart.

- Signed in: every unsafe request authenticated by the ``atlas_session`` cookie carries
  ``X-CSRF-Token`` (JavaScript) or a ``csrf`` form field (the logout form) equal to
  ``HMAC-SHA256(secret, "csrf:" + session token)``. A cross-site page can make the browser send the
  cookie, but it cannot read the page, so it cannot know the token.
- The login form (no session yet): a signed double-submit cookie. ``atlas_login_csrf`` holds a
  random nonce; the form holds ``HMAC(secret, "login:" + nonce)``. Forging a login therefore needs
  both the victim's cookie and the secret.

The ``"csrf:"``/``"login:"`` prefixes keep these MACs apart from the PII masking MACs that use the
same secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from psycopg import AsyncConnection

from . import repository

LOGIN_COOKIE = "atlas_login_csrf"
HEADER = "x-csrf-token"
FORM_FIELD = "csrf"

_secret_cache: dict[str, bytes] = {}


async def installation_secret(conn: AsyncConnection) -> bytes:
    """The installation's HMAC secret (cached per database: it never changes)."""
    key = f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"
    secret = _secret_cache.get(key)
    if secret is None:
        secret = _secret_cache[key] = await repository.installation_secret(conn)
    return secret


def _mac(secret: bytes, purpose: str, value: str) -> str:
    return hmac.new(secret, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def _equal(expected: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(expected.encode(), (presented or "").encode())


def session_token(secret: bytes, session: str) -> str:
    """The CSRF token of a signed-in session (what the page puts in ``<meta name="csrf-token">``)."""
    return _mac(secret, "csrf", session)


def session_token_valid(secret: bytes, session: str, presented: str | None) -> bool:
    return _equal(session_token(secret, session), presented)


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def login_token(secret: bytes, nonce: str) -> str:
    """The login form's token for the nonce held in the ``atlas_login_csrf`` cookie."""
    return _mac(secret, "login", nonce)


def login_token_valid(secret: bytes, nonce: str | None, presented: str | None) -> bool:
    return bool(nonce) and len(nonce or "") <= 100 and _equal(login_token(secret, nonce or ""), presented)
