"""Verify what reports read: recompute an org's rollups from its raw rows and name every difference.

The expected content is defined once, in SQL (`db/sql/rollups.sql`); the same functions rebuild the
rollups after a purge, so the only path this can catch disagreeing is the insert trigger — or someone
who changed a rollup row behind the product's back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from psycopg import AsyncConnection

LISTED = 100  # differences listed in full; the rest are counted


@dataclass(frozen=True)
class RollupDifference:
    rollup: str  # user_daily | access_daily | access_weekly
    period: date  # the day, or the Monday of the week
    table: str | None  # None for user_daily
    user_id: str | None
    field: str  # row | query_count | table_query_count | first_ts | last_ts | columns
    stored: str | None  # for `row`: None = the stored row is missing
    expected: str | None  # for `row`: None = the stored row should not exist

    def describe(self) -> str:
        where = f"{self.rollup} {self.period.isoformat()}"
        if self.table is not None:
            where += f" table {self.table}"
        where += f" user {self.user_id if self.user_id is not None else '(none)'}"
        if self.field == "row":
            what = "row missing" if self.stored is None else "row that the raw rows do not support"
            return f"{where}: {what}"
        return f"{where}: {self.field} is {self.stored}, the raw rows give {self.expected}"

    def to_dict(self) -> dict:
        return {"rollup": self.rollup, "period": self.period.isoformat(), "table": self.table,
                "userId": self.user_id, "field": self.field, "stored": self.stored, "expected": self.expected}


@dataclass(frozen=True)
class RollupResult:
    ok: bool
    since: date | None
    differences: tuple[RollupDifference, ...]  # the first LISTED
    difference_count: int

    def to_dict(self) -> dict:
        return {"ok": self.ok, "since": self.since.isoformat() if self.since else None,
                "differenceCount": self.difference_count,
                "differences": [d.to_dict() for d in self.differences]}


async def verify_rollups(conn: AsyncConnection, org_id: str, since: date | None = None) -> RollupResult:
    """Compare the org's user-daily, access-daily and access-weekly rollups with the raw rows, from
    `since` (whole history when None; weekly rows from the Monday of that week)."""
    cur = await conn.execute(
        "SELECT rollup, period, table_name, user_id, field, stored, expected "
        "FROM atlas_rollup_differences(%s, %s)", (org_id, since))
    rows = await cur.fetchall()
    found = [RollupDifference(r["rollup"], r["period"], r["table_name"], r["user_id"], r["field"], r["stored"],
                              r["expected"]) for r in rows]
    return RollupResult(ok=not found, since=since, differences=tuple(found[:LISTED]), difference_count=len(found))
