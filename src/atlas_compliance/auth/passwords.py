"""Argon2id password hashing (RFC 9106 second recommended profile: t=3, m=64 MiB, p=4).

Hashing costs about 0.1 s of CPU and 64 MiB: the server runs it in a small thread pool of its own
(argon2's C code releases the GIL), so logins never stall the event loop, and at most
``HASH_WORKERS`` hashes (each 64 MiB) are in memory at once however many logins arrive together.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
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
HASH_WORKERS = max(1, min(4, os.cpu_count() or 1))


@cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=HASH_WORKERS, thread_name_prefix="atlas-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def hash_password_async(password: str) -> str:
    """:func:`hash_password` off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_executor(), hash_password, password)


async def verify_password_async(stored_hash: str | None, password: str) -> bool:
    """:func:`verify_password` off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_executor(), verify_password, stored_hash, password)
