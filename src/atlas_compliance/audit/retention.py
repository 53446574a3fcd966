"""Retention: per-org policy, soft delete after N days, hard delete after a further delay."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import AsyncConnection

from ..errors import BadRequest
from . import repository as repo

MIN_RETENTION_DAYS = 7
# Beyond this the purge's `now() - N days` leaves PostgreSQL's timestamp range and every purge would fail.
MAX_RETENTION_DAYS = 36_500
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


async def set_policy(conn: AsyncConnection, org_id: str, retention_days: int | None,
                     hard_delete_delay_days: int | None, updated_by: str | None) -> tuple[dict, dict]:
    """Validate and store a policy; return (previous, new)."""
    if retention_days is not None and retention_days < MIN_RETENTION_DAYS:
        raise BadRequest(f"retentionDays must be at least {MIN_RETENTION_DAYS} or null (unlimited); "
                         f"got {retention_days}", code="invalid_retention")
    if hard_delete_delay_days is not None and hard_delete_delay_days < 0:
        raise BadRequest("hardDeleteDelayDays must be 0 or more, e.g. 30", code="invalid_retention")
    for name, value in (("retentionDays", retention_days), ("hardDeleteDelayDays", hard_delete_delay_days)):
        if value is not None and value > MAX_RETENTION_DAYS:
            raise BadRequest(f"{name} must be at most {MAX_RETENTION_DAYS:,} days (100 years); got {value}",
                             code="invalid_retention")
    previous = await get_policy(conn, org_id)
    delay = hard_delete_delay_days if hard_delete_delay_days is not None else previous["hardDeleteDelayDays"]
    row = await repo.upsert_retention(conn, org_id, retention_days, delay, updated_by)
    return previous, policy_dict(row, org_id)


@dataclass(frozen=True)
class PurgeResult:
    org_id: str
    soft_deleted: int
    hard_deleted: int


async def purge_org(conn: AsyncConnection, org_id: str) -> PurgeResult:
    """Soft-delete rows older than the policy, hard-delete rows soft-deleted longer than the delay.

    Hard-deleted rows leave a tombstone with their hash, so chain verification stays valid.
    """
    policy = await get_policy(conn, org_id)
    await repo.enable_purge(conn)
    soft = 0
    if policy["retentionDays"] is not None:
        soft = await repo.soft_delete_older_than(conn, org_id, policy["retentionDays"])
    hard = await repo.hard_delete_soft_deleted(conn, org_id, policy["hardDeleteDelayDays"])
    await repo.record_purge(conn, org_id, soft + hard)
    return PurgeResult(org_id=org_id, soft_deleted=soft, hard_deleted=hard)
