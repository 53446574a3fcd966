"""Retention: per-org policy, soft delete after N days, hard delete after a further delay.

The installation sets a floor under every policy (`ATLAS_MIN_RETENTION_DAYS`,
`ATLAS_MIN_HARD_DELETE_DELAY_DAYS`, kept in `atlas_retention_floor` by `db upgrade`): a policy below it
is refused here with a 400, and the purge itself (`atlas_retention_purge`, run as the schema owner)
never touches rows newer than it, whatever the policy row says.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import AsyncConnection

from ..errors import BadRequest
from . import repository as repo
from .admin_actions import Actor
from .schemas import MAX_RETENTION_DAYS

MIN_RETENTION_DAYS = 7
# MAX_RETENTION_DAYS (audit/schemas.py, beside the API schema that documents it): beyond it the purge's
# `now() - N days` leaves PostgreSQL's timestamp range and every purge would fail.

DEFAULT_RETENTION_DAYS = 365
DEFAULT_HARD_DELETE_DELAY_DAYS = 30


def policy_dict(row: dict | None, org_id: str) -> dict:
    if row is None:
        return {"orgId": org_id, "retentionDays": DEFAULT_RETENTION_DAYS,
                "hardDeleteDelayDays": DEFAULT_HARD_DELETE_DELAY_DAYS, "updatedAt": None, "updatedBy": None,
                "lastPurgeAt": None, "lastPurgeCount": None}
    return {"orgId": row["org_id"], "retentionDays": row["retention_days"],
            "hardDeleteDelayDays": row["hard_delete_delay_days"], "updatedAt": row["updated_at"],
            "updatedBy": row["updated_by"], "lastPurgeAt": row["last_purge_at"],
            "lastPurgeCount": row["last_purge_count"]}


async def get_policy(conn: AsyncConnection, org_id: str) -> dict:
    return policy_dict(await repo.get_retention(conn, org_id), org_id)


async def floor(conn: AsyncConnection) -> tuple[int, int]:
    """The installation floor: (minimum retention days, minimum hard-delete delay days)."""
    row = await repo.retention_floor(conn)
    return int(row["min_retention_days"]), int(row["min_hard_delete_delay_days"])


async def set_policy(conn: AsyncConnection, org_id: str, retention_days: int | None,
                     hard_delete_delay_days: int | None, actor: Actor) -> tuple[dict, dict]:
    """Validate and store a policy; the database function that stores it records the change (previous
    and new values) in the admin action log. Return (previous, new)."""
    min_days, min_delay = await floor(conn)
    lowest = max(MIN_RETENTION_DAYS, min_days)
    if retention_days is not None and retention_days < lowest:
        raise BadRequest(f"retentionDays must be at least {lowest} (this installation's minimum, "
                         f"ATLAS_MIN_RETENTION_DAYS) or null (unlimited); got {retention_days}",
                         code="invalid_retention")
    if hard_delete_delay_days is not None and hard_delete_delay_days < min_delay:
        raise BadRequest(f"hardDeleteDelayDays must be at least {min_delay} (this installation's minimum, "
                         f"ATLAS_MIN_HARD_DELETE_DELAY_DAYS); got {hard_delete_delay_days}",
                         code="invalid_retention")
    for name, value in (("retentionDays", retention_days), ("hardDeleteDelayDays", hard_delete_delay_days)):
        if value is not None and value > MAX_RETENTION_DAYS:
            raise BadRequest(f"{name} must be at most {MAX_RETENTION_DAYS:,} days (100 years); got {value}",
                             code="invalid_retention")
    previous = await get_policy(conn, org_id)
    delay = hard_delete_delay_days if hard_delete_delay_days is not None else previous["hardDeleteDelayDays"]
    if delay < min_delay:
        raise BadRequest(f"hardDeleteDelayDays must be at least {min_delay} (this installation's minimum); "
                         f"the stored value is {delay}: set it too", code="invalid_retention")
    row = await repo.set_retention(conn, org_id, retention_days, delay, actor_id=actor.user_id,
                                   actor_email=actor.email, scope=actor.scope, request_id=actor.request_id,
                                   ip_address=actor.ip)
    return previous, policy_dict(row, org_id)


@dataclass(frozen=True)
class PurgeResult:
    org_id: str
    soft_deleted: int
    hard_deleted: int


async def purge_org(conn: AsyncConnection, org_id: str, actor: Actor) -> PurgeResult:
    """Soft-delete rows older than the policy (and the floor), hard-delete rows soft-deleted longer than
    the delay. Runs as the schema owner's `atlas_retention_purge`, which also records the purge in the
    admin action log; hard-deleted rows leave a chained tombstone with their hash, so chain
    verification stays valid."""
    row = await repo.purge(conn, org_id, actor_id=actor.user_id, actor_email=actor.email, scope=actor.scope,
                           request_id=actor.request_id, ip_address=actor.ip)
    return PurgeResult(org_id=org_id, soft_deleted=int(row["soft_deleted"]), hard_deleted=int(row["hard_deleted"]))
