"""Password hashes: Argon2id for ours, and Better Auth's scrypt for the users of an Atlas database.

Ours: Argon2id, RFC 9106's second recommended profile (t=3, m=64 MiB, p=4). Hashing costs about 0.1 s
of CPU and 64 MiB: the server runs it in a small thread pool of its own (argon2's C code releases the
GIL), so logins never stall the event loop, and at most ``HASH_WORKERS`` hashes (each 64 MiB) are in
memory at once however many logins arrive together.

Atlas's users (an adopted Atlas database, docs/atlas.md) keep the hash Better Auth wrote in
``account.password``: ``<salt>:<key>``, both hex, the key being scrypt(N=16384, r=16, p=1, 64 bytes) of
the NFKC-normalized password with the salt's hex *text* as salt. It is verified as it is and never
rewritten, so the same password keeps working in Atlas too; a password set here for such an account is
written in that same format (see :func:`hash_like`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import secrets
import unicodedata
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


_BETTER_AUTH_HASH = re.compile(r"^[0-9a-fA-F]{32}:[0-9a-fA-F]{128}$")


def is_better_auth_hash(stored_hash: str | None) -> bool:
    return bool(stored_hash) and _BETTER_AUTH_HASH.match(stored_hash or "") is not None


def _better_auth_key(password: str, salt: str) -> bytes:
    return hashlib.scrypt(unicodedata.normalize("NFKC", password).encode("utf-8"), salt=salt.encode("ascii"),
                          n=16384, r=16, p=1, dklen=64, maxmem=64 * 1024 * 1024)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def hash_better_auth(password: str) -> str:
    """A hash in Better Auth's format, which Atlas verifies too."""
    salt = secrets.token_hex(16)
    return f"{salt}:{_better_auth_key(password, salt).hex()}"


def hash_like(stored_hash: str | None, password: str) -> str:
    """A new hash of ``password`` in the format of the account's current one: an Atlas user's stays
    Better Auth's (so Atlas still signs them in), every other is Argon2id."""
    return hash_better_auth(password) if is_better_auth_hash(stored_hash) else hash_password(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    if stored_hash is not None and is_better_auth_hash(stored_hash):
        salt, key = stored_hash.split(":")
        return hmac.compare_digest(_better_auth_key(password, salt), bytes.fromhex(key))
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def hash_password_async(password: str) -> str:
    """:func:`hash_password` off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_executor(), hash_password, password)


async def hash_like_async(stored_hash: str | None, password: str) -> str:
    """:func:`hash_like` off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_executor(), hash_like, stored_hash, password)


async def verify_password_async(stored_hash: str | None, password: str) -> bool:
    """:func:`verify_password` off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_executor(), verify_password, stored_hash, password)
