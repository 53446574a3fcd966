"""Opaque bearer tokens: 256 random bits, stored only as their SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

PREFIXES = {"session": "atls_", "personal": "atlp_", "ingest": "atli_"}


@dataclass(frozen=True)
class NewToken:
    token: str  # shown once, never stored
    hash: str  # SHA-256 hex: what the database keeps
    prefix: str  # first characters, to recognise a token in lists


def new_token(kind: str) -> NewToken:
    """Return a fresh token of ``kind`` (session, personal or ingest).

    >>> t = new_token("ingest"); t.token.startswith("atli_") and len(t.hash) == 64
    True
    """
    token = PREFIXES[kind] + secrets.token_urlsafe(32)
    return NewToken(token=token, hash=hash_token(token), prefix=token[:12])


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
