"""Schema catalog rules: storing a source's facts, learning from the trail, listing."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Collection, Sequence

from psycopg import AsyncConnection

from ..audit import admin_actions
from ..audit.admin_actions import Actor
from ..audit.extraction import Catalog
from ..db.pool import Database
from ..errors import BadRequest
from . import repository as repo
from .facts import LEARNED_SOURCE, Fact

log = logging.getLogger(__name__)
MAX_SOURCE_NAME = 200


def check_source_name(name: str) -> str:
    value = name.strip()
    if not value or len(value) > MAX_SOURCE_NAME or any(ord(ch) < 32 for ch in value):
        raise BadRequest(f"--name must be 1 to {MAX_SOURCE_NAME} printable characters", code="invalid_name")
    return value


async def store_source(conn: AsyncConnection, org_id: str, source: str, origin: str, facts: Sequence[Fact], *,
                       actor: str, request_id: str = "cli") -> None:
    """Replace one datasource's facts (``origin`` introspected or ddl) and log the admin action. The caller
    commits."""
    source = check_source_name(source)
    await repo.replace_source(conn, org_id, source, origin, facts)
    who = Actor(user_id=actor, email=actor, request_id=request_id,
                scope="platform" if actor.startswith("system:") else "workspace")
    await admin_actions.record(
        conn, who, org_id=org_id, action_type=f"compliance.catalog_{origin}", target_type="datasource",
        target_id=source, details={"tables": len({f.table for f in facts}), "columns": len(facts)})


class _Seen:
    """(org, table, column) pairs already recorded as learned by this process (bounded), so a busy
    ingest sends only pairs it has not sent before."""

    def __init__(self, maxsize: int = 100_000) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def new(self, org_id: str, pairs: Collection[tuple[str, str]]) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(p for p in pairs if (org_id, *p) not in self._data)

    def add(self, org_id: str, pairs: Collection[tuple[str, str]]) -> None:
        with self._lock:
            for p in pairs:
                self._data[(org_id, *p)] = None
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)


_seen = _Seen()


def unknown_pairs(org_id: str, pairs: Collection[tuple[str, str]], catalog: Catalog | None) -> list[tuple[str, str]]:
    """The pairs neither the catalog nor this process has recorded, sorted (so that concurrent
    upserts take their row locks in one order and never deadlock)."""
    if catalog is not None:
        pairs = [p for p in pairs if p[1] not in (catalog.tables.get(p[0]) or ())]
    return _seen.new(org_id, pairs)


async def repo_learn_sorted(db: Database, org_id: str, pairs: Collection[tuple[str, str]]) -> int:
    """Upsert ``pairs`` as learned facts in one short transaction, sorted (the lock order every
    writer shares). Raises on failure."""
    async with db.transaction() as conn:
        return await repo.learn(conn, org_id, sorted(set(pairs)))


async def learn(db: Database, org_id: str, pairs: Collection[tuple[str, str]], catalog: Catalog | None) -> int:
    """Record learned facts after an ingest committed: one set-based upsert in its own short transaction,
    outside the org's chain lock. Never raises (the events are stored; a fact can be learned again
    from a later batch): a failure is logged. Returns how many facts were new."""
    todo = unknown_pairs(org_id, pairs, catalog)
    if not todo:
        return 0
    try:
        added = await repo_learn_sorted(db, org_id, todo)
    except Exception as exc:  # learning is best effort: the ingest already succeeded
        log.warning("could not record %d learned catalog facts: %s", len(todo), exc)
        return 0
    _seen.add(org_id, todo)
    return added


__all__ = ["LEARNED_SOURCE", "check_source_name", "learn", "store_source", "unknown_pairs"]


# The catalog's facts as the repository lists them; named here so that the edges reach the repository
# only through this service.
list_facts = repo.list_facts
load_rows = repo.load_rows
