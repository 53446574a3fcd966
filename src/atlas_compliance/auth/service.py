"""Auth rules: organizations, users, memberships, login sessions, API tokens, role checks.

Services take a connection inside a transaction owned by the caller (request, CLI command).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import psycopg
from psycopg import AsyncConnection

from ..errors import AtlasError, BadRequest, Conflict, Forbidden, NotFound, RateLimited, Unauthorized
from . import repository as repo
from .passwords import (
    MIN_PASSWORD_LENGTH,
    hash_like_async,
    hash_password_async,
    is_better_auth_hash,
    verify_password_async,
)
from .schemas import ROLES, Principal
from .tokens import PREFIXES, hash_token, new_token

if TYPE_CHECKING:
    from ..db.pool import Database

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")
INVALID_CREDENTIALS = "invalid email or password"
log = logging.getLogger(__name__)


def validate_slug(slug: str) -> str:
    if not SLUG_RE.match(slug):
        raise BadRequest(f"invalid organization slug {slug!r}: use lowercase letters, digits and '-', "
                         "e.g. 'acme-health'", code="invalid_slug")
    return slug


def validate_email(email: str) -> str:
    email = email.strip()
    if not EMAIL_RE.match(email):
        raise BadRequest(f"invalid email address {email!r}, e.g. 'jane@example.com'", code="invalid_email")
    return email


def validate_role(role: str) -> str:
    if role not in ROLES:
        raise BadRequest(f"invalid role {role!r}: use one of owner, admin, member", code="invalid_role")
    return role


async def create_organization(conn: AsyncConnection, slug: str, name: str) -> dict:
    validate_slug(slug)
    if not name.strip():
        raise BadRequest("the organization name must not be empty", code="invalid_name")
    try:
        async with conn.transaction():
            return await repo.insert_organization(conn, slug, name.strip())
    except psycopg.errors.UniqueViolation:
        raise Conflict(f"an organization with slug {slug!r} already exists", code="org_exists") from None


async def get_organization(conn: AsyncConnection, slug: str) -> dict:
    org = await repo.get_organization_by_slug(conn, slug)
    if org is None:
        raise NotFound(f"no organization with slug {slug!r}", code="org_not_found")
    return org


async def create_user(conn: AsyncConnection, *, email: str, password: str, org_slug: str, role: str,
                      name: str | None = None) -> dict:
    """Create a user with a password and make them a member of ``org_slug`` with ``role``."""
    email = validate_email(email)
    validate_role(role)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadRequest(f"the password must have at least {MIN_PASSWORD_LENGTH} characters",
                         code="weak_password")
    org = await get_organization(conn, org_slug)
    try:
        async with conn.transaction():
            user = await repo.insert_user(conn, email, name or email.split("@")[0])
    except psycopg.errors.UniqueViolation:
        raise Conflict(f"a user with email {email!r} already exists; use 'members add' to add them to "
                       "another organization", code="user_exists") from None
    await repo.set_password(conn, user["id"], await hash_password_async(password))
    await repo.upsert_member(conn, org["id"], user["id"], role)
    return {**user, "role": role, "org": org}


async def set_user_password(conn: AsyncConnection, *, email: str, password: str) -> dict:
    """Set a user's password. An account whose hash is Better Auth's (an Atlas user) gets the new one in
    that format, so Atlas keeps signing them in; every other gets Argon2id."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadRequest(f"the password must have at least {MIN_PASSWORD_LENGTH} characters",
                         code="weak_password")
    user = await repo.get_user_by_email(conn, email)
    if user is None:
        raise NotFound(f"no user with email {email!r}", code="user_not_found")
    new_hash = await hash_like_async(user["password"], password)
    await repo.set_password(conn, user["id"], new_hash)
    return {"userId": user["id"], "email": user["email"],
            "format": "better-auth-scrypt" if is_better_auth_hash(new_hash) else "argon2id"}


async def list_members(conn: AsyncConnection, org_id: str) -> list[dict]:
    """The organization's members (id, email, name, role), as the admin API lists them."""
    return [dict(r) for r in await repo.list_members(conn, org_id)]


async def add_member(conn: AsyncConnection, *, email: str, org_slug: str, role: str) -> dict:
    validate_role(role)
    org = await get_organization(conn, org_slug)
    user = await repo.get_user_by_email(conn, email)
    if user is None:
        raise NotFound(f"no user with email {email!r}", code="user_not_found")
    member = await repo.upsert_member(conn, org["id"], user["id"], role)
    return {"user_id": user["id"], "email": user["email"], "org": org, "role": member["role"]}


@dataclass(frozen=True)
class LoginResult:
    token: str
    expires_at: datetime
    user: dict
    organization: dict
    role: str


def _rate_limited(oldest: datetime, window_seconds: int) -> RateLimited:
    retry = oldest + timedelta(seconds=window_seconds) - datetime.now(UTC)
    seconds = max(1, int(retry.total_seconds()) + 1)
    return RateLimited(f"too many failed login attempts; try again in {seconds} seconds", retry_after=seconds)


async def reserve_login_attempt(conn: AsyncConnection, *, email: str, ip: str | None, max_failures: int,
                                window_seconds: int) -> int:
    """Check the rate limits and record the attempt as failed, atomically; return the attempt's id.

    Limits (the window is ``window_seconds``): ``max_failures`` failures per (email, client address) pair
    and ``3 × max_failures`` per client address, whatever the emails. There is deliberately no limit per
    email alone: it would let anyone lock any user out by guessing wrong from elsewhere, while the real
    user, from their own address, still signs in. The attempt counts as a failure from the moment it is
    recorded (before the password is checked), so parallel attempts cannot overtake the limit; a correct
    password then marks it succeeded. The caller commits right away: the lock is held only for this.
    """
    await repo.lock_login_address(conn, ip)
    checks = ((email, max_failures), (None, max_failures * 3))
    for by_email, limit in checks:
        count, oldest = await repo.count_recent_failures(conn, ip=ip, email=by_email, window_seconds=window_seconds)
        if count >= limit and oldest is not None:
            raise _rate_limited(oldest, window_seconds)
    return await repo.record_login_attempt(conn, email, ip, False)


def _choose_organization(memberships: list, org_slug: str | None):
    """The membership to open the session in, or the error to answer."""
    if org_slug:
        chosen = [m for m in memberships if m["slug"] == org_slug]
        if not chosen:
            return Forbidden(f"you are not a member of organization {org_slug!r}", code="not_a_member")
        return chosen[0]
    if len(memberships) > 1:
        slugs = [m["slug"] for m in memberships]
        return BadRequest("you belong to several organizations; choose one with 'org': " + ", ".join(slugs),
                          code="org_required", details={"organizations": slugs})
    if not memberships:
        return Forbidden("you are not a member of any organization", code="not_a_member")
    return memberships[0]


async def login(db: Database, *, email: str, password: str, org_slug: str | None, ip: str | None,
                user_agent: str | None, ttl_seconds: int, max_failures: int, window_seconds: int,
                origin: str = "api") -> LoginResult:
    """Verify the password and open a session in one organization.

    Unknown users and wrong passwords get the same 401 (and cost the same time); repeated failures
    per (email, client address) or per client address get 429 with ``Retry-After``. Three short
    transactions: reserve the attempt (rate limit), then the password check off the event loop with no
    database connection held, then the session.
    """
    email_key = email.strip().lower()
    async with db.transaction() as conn:
        attempt_id = await reserve_login_attempt(conn, email=email_key, ip=ip, max_failures=max_failures,
                                                 window_seconds=window_seconds)
        user = await repo.get_user_by_email(conn, email_key)
    ok = await verify_password_async(user["password"] if user else None, password)
    if not ok or user is None:
        raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")
    async with db.transaction() as conn:
        await repo.mark_login_succeeded(conn, attempt_id)
        org = _choose_organization(await repo.list_memberships(conn, user["id"]), org_slug)
        if not isinstance(org, AtlasError):  # an error is raised after the commit: the attempt stays succeeded
            token = new_token("session")
            session = await repo.insert_session(conn, user_id=user["id"], org_id=org["id"], token_hash=token.hash,
                                                ttl_seconds=ttl_seconds, ip=ip, user_agent=user_agent, origin=origin)
    if isinstance(org, AtlasError):
        raise org
    return LoginResult(
        token=token.token,
        expires_at=session["expires_at"],
        user={"id": user["id"], "email": user["email"], "name": user["name"]},
        organization={"id": org["id"], "slug": org["slug"], "name": org["name"]},
        role=org["role"],
    )


async def authenticate(conn: AsyncConnection, token: str) -> Principal:
    """Resolve a bearer token (session, personal access token or ingest key) to a principal."""
    kind = next((k for k, prefix in PREFIXES.items() if token.startswith(prefix)), None)
    if kind is None or len(token) > 200:
        raise Unauthorized("invalid credential", code="invalid_token")
    token_hash = hash_token(token)
    if kind == "session":
        row = await repo.find_session(conn, token_hash)
    else:
        row = await repo.find_api_token(conn, token_hash)
        if row is not None and row["kind"] != kind:
            row = None
    if row is None:
        raise Unauthorized("invalid credential", code="invalid_token")
    if row["revoked"]:
        raise Unauthorized("this credential has been revoked", code="token_revoked")
    if row["expired"]:
        raise Unauthorized("this credential has expired", code="token_expired")
    if kind == "ingest":
        scopes = frozenset(row["scopes"])
        return Principal(kind="ingest", credential_id=row["credential_id"], org_id=row["org_id"],
                         org_slug=row["org_slug"], org_name=row["org_name"], scopes=scopes)
    if row["role"] is None:
        raise Unauthorized("this user is no longer a member of the organization", code="not_a_member")
    if kind == "personal" and row["use_stale"]:
        await _note_use(conn, row["credential_id"])
    scopes = frozenset({"audit:write", "reports:read", "classifications:write"}) if row["role"] in (
        "owner", "admin") else frozenset()
    return Principal(kind=kind, credential_id=row["credential_id"], org_id=row["org_id"],
                     org_slug=row["org_slug"], org_name=row["org_name"], user_id=row["user_id"],
                     email=row["email"], role=row["role"], scopes=scopes)


async def _note_use(conn: AsyncConnection, token_id: str) -> None:
    """Record when a personal token was last used (at most once a minute).

    Bookkeeping only: a database that refuses writes (read-only mode, hot standby) must not turn every
    read made with the token into an error, so the UPDATE runs in a savepoint and a refusal is ignored.
    """
    try:
        async with conn.transaction():
            await repo.touch_api_token(conn, token_id)
    except psycopg.errors.ReadOnlySqlTransaction:
        log.info("personal token %s: last use not recorded, the database is read-only", token_id)


async def logout(conn: AsyncConnection, principal: Principal) -> bool:
    if principal.kind != "session":
        raise BadRequest("only login sessions can be logged out; revoke tokens with 'tokens revoke'",
                         code="not_a_session")
    return await repo.revoke_session(conn, principal.credential_id)


def parse_duration(text: str) -> int:
    """Parse ``30d``, ``12h``, ``90m`` or ``3600s`` into seconds.

    >>> parse_duration("30d")
    2592000
    """
    match = re.fullmatch(r"\s*(\d{1,6})\s*([smhdw])\s*", text or "")
    if not match:
        raise BadRequest(f"invalid duration {text!r}: use a number and a unit s/m/h/d/w, e.g. '30d'",
                         code="invalid_duration")
    value, unit = int(match.group(1)), match.group(2)
    seconds = value * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    if seconds <= 0:
        raise BadRequest("the duration must be positive", code="invalid_duration")
    return seconds


async def create_personal_token(conn: AsyncConnection, *, org_slug: str, email: str, name: str | None = None,
                                expires_in_seconds: int | None = None, created_by: str | None = None) -> dict:
    org = await get_organization(conn, org_slug)
    user = await repo.get_user_by_email(conn, email)
    if user is None:
        raise NotFound(f"no user with email {email!r}", code="user_not_found")
    if await repo.get_membership(conn, org["id"], user["id"]) is None:
        raise BadRequest(f"{email} is not a member of {org_slug}", code="not_a_member")
    token = new_token("personal")
    row = await repo.insert_api_token(conn, org_id=org["id"], user_id=user["id"], kind="personal",
                                      name=name or f"personal token for {email}", token_hash=token.hash,
                                      prefix=token.prefix, scopes=["act-as-user"],
                                      expires_in_seconds=expires_in_seconds, created_by=created_by)
    return {"id": row["id"], "token": token.token, "kind": "personal", "name": name or email,
            "expiresAt": row["expires_at"]}


async def create_ingest_key(conn: AsyncConnection, *, org_slug: str, name: str,
                            expires_in_seconds: int | None = None, created_by: str | None = None) -> dict:
    org = await get_organization(conn, org_slug)
    if not name.strip():
        raise BadRequest("an ingest key needs a name, e.g. --name warehouse-proxy", code="invalid_name")
    token = new_token("ingest")
    row = await repo.insert_api_token(conn, org_id=org["id"], user_id=None, kind="ingest", name=name.strip(),
                                      token_hash=token.hash, prefix=token.prefix, scopes=["audit:write"],
                                      expires_in_seconds=expires_in_seconds, created_by=created_by)
    return {"id": row["id"], "token": token.token, "kind": "ingest", "name": name.strip(),
            "expiresAt": row["expires_at"]}


async def revoke_token(conn: AsyncConnection, token_id: str) -> dict:
    try:
        row = await repo.revoke_api_token(conn, token_id)
    except psycopg.errors.DataError:
        row = None
    if row is None:
        raise NotFound(f"no token with id {token_id!r}", code="token_not_found")
    return row


def require_admin(principal: Principal) -> Principal:
    """Admit only an admin or owner of the credential's organization (never an ingest key)."""
    if principal.kind == "ingest":
        raise Forbidden("ingest keys can only write audit events", code="scope_denied")
    if not principal.is_admin:
        raise Forbidden("admin role required", code="forbidden_role")
    return principal


def require_scope(principal: Principal, scope: str) -> Principal:
    if not principal.can(scope):
        raise Forbidden(f"this credential lacks the {scope!r} scope", code="scope_denied")
    return principal


# Look-ups the edges (API, CLI, console) use exactly as the repository answers them; named here so that
# only services reach the repository.
list_organizations = repo.list_organizations
list_memberships = repo.list_memberships
list_api_tokens = repo.list_api_tokens
