"""Verify many organizations at once: their hash chains and their rollups, on a few connections in parallel.

Each organization's chain verification and rollup comparison are independent read-only jobs. They are run
largest organization first (by chain length), at most ``workers`` at a time, each in its own transaction,
so that a machine's cores are used and the longest jobs do not start last. Results come back in the order
the organizations were given.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import date

from ..db.pool import Database
from . import chain, rollups


@dataclass(frozen=True)
class OrgVerification:
    org_id: str
    slug: str
    chain: chain.VerifyResult
    rollups: rollups.RollupResult | None  # None when rollups were not asked for

    @property
    def ok(self) -> bool:
        return self.chain.ok and (self.rollups is None or self.rollups.ok)


def default_workers() -> int:
    """Parallel jobs: one per core, at most four (each job keeps one PostgreSQL backend busy)."""
    return max(1, min(4, os.cpu_count() or 1))


async def verify_orgs(db: Database, orgs: list[dict], *, since: date | None = None, with_rollups: bool = True,
                      workers: int | None = None) -> list[OrgVerification]:
    """Verify every org of ``orgs`` (dicts with ``id`` and ``slug``); see the module's docstring."""
    async with db.connection() as conn:
        cur = await conn.execute("SELECT chain_key, last_seq FROM audit_chain_head WHERE chain_key = ANY(%s)",
                                 ([o["id"] for o in orgs],))
        sizes = {r["chain_key"]: int(r["last_seq"]) for r in await cur.fetchall()}
    kinds = ("chain", "rollups") if with_rollups else ("chain",)
    jobs = sorted(((o["id"], kind) for o in orgs for kind in kinds), key=lambda job: -sizes.get(job[0], 0))
    gate = asyncio.Semaphore(workers or default_workers())
    found: dict[tuple[str, str], object] = {}

    async def run(org_id: str, kind: str) -> None:
        async with gate, db.transaction() as conn:
            if kind == "chain":
                found[(org_id, kind)] = await chain.verify_chain(conn, org_id)
            else:
                found[(org_id, kind)] = await rollups.verify_rollups(conn, org_id, since)

    await asyncio.gather(*(run(org_id, kind) for org_id, kind in jobs))
    return [OrgVerification(o["id"], o["slug"], found[(o["id"], "chain")],  # type: ignore[arg-type]
                            found.get((o["id"], "rollups")))  # type: ignore[arg-type]
            for o in orgs]
