"""Argon2id password hashing (RFC 9106 second recommended profile: t=3, m=64 MiB, p=4)."""

from __future__ import annotations

import os
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# ATLAS_ARGON2_MEMORY_KIB exists for test suites only; production keeps the default.
_hasher = PasswordHasher(
    time_cost=3,
    memory_cost=int(os.environ.get("ATLAS_ARGON2_MEMORY_KIB", 64 * 1024)),
    parallelism=4,
    hash_len=32,
    salt_len=16,
)


@cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so unknown emails cost the same time (made on
    first use: hashing costs about 0.1 s, which every CLI command would otherwise pay at start)."""
    return _hasher.hash("atlas-compliance-dummy-password")


MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
