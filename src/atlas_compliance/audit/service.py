"""Audit trail rules: validating and storing query events, idempotently and durably."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import orjson
from psycopg import AsyncConnection
from pydantic import ValidationError

from ..db.pool import Database
from . import repository as repo
from .analysis import AnalysisPool, analyse, begin_item
from .extraction import (
    Catalog,
    normalize_column_name,
    normalize_dialect,
    normalize_table_name,
)
from .schemas import (
    MAX_SQL_BYTES,
    MAX_USER_ID_BYTES,
    AuditEventIn,
    EventIdentity,
    IngestResult,
    RejectedEvent,
)

_event_validator = AuditEventIn.model_validate

T = TypeVar("T")


@dataclass
class _CatalogCacheEntry:
    version: Any
    catalog: Catalog | None


_catalog_cache: dict[str, _CatalogCacheEntry] = {}


async def org_catalog(conn: AsyncConnection, org_id: str) -> Catalog | None:
    """The org's schema catalog (introspected, DDL and learned facts: `catalog/facts.py`), rebuilt only
    when a sync, import, scan or newly learned fact changed it."""
    from ..catalog import repository as catalog_repo
    from ..catalog.facts import LEARNED_ATTRIBUTION, build_catalog

    version = await repo.catalog_version(conn, org_id, include_learned=LEARNED_ATTRIBUTION)
    entry = _catalog_cache.get(org_id)
    if entry is not None and entry.version == version:
        return entry.catalog
    catalog = None
    if version[1]:
        catalog = build_catalog(await catalog_repo.load_rows(conn, org_id, include_learned=LEARNED_ATTRIBUTION))
    _catalog_cache[org_id] = _CatalogCacheEntry(version, catalog)
    return catalog


def cached_catalog(org_id: str) -> Catalog | None:
    """The org's catalog as last loaded by :func:`org_catalog` (None when never loaded or empty)."""
    entry = _catalog_cache.get(org_id)
    return entry.catalog if entry is not None else None


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return False


def _parse_timestamp(text: str | None, now: datetime) -> datetime:
    if text is None:
        return now
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"timestamp {text[:60]!r} is not ISO 8601, e.g. '2026-03-01T09:15:00Z'") from None
    if value.tzinfo is None:
        raise ValueError(f"timestamp {text[:60]!r} has no UTC offset; add 'Z' or '+hh:mm'")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        raise ValueError(f"timestamp {text[:60]!r} is outside the years 1 to 9999 in UTC") from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "event"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def _dedupe(values: Sequence[str]) -> list[str]:
    return sorted({v for v in values if v})


def prepare_event(raw: Any, now: datetime, catalog: Catalog | None, *, may_hold_nul: bool = True,
                  learned: set[tuple[str, str]] | None = None, over_budget: str | None = None) -> tuple[Any, ...]:
    """Validate one raw event and return its COPY row (without org_id). Raises ValueError with a reason.
    ``may_hold_nul=False`` skips the NUL search when the caller knows there is none (JSON text
    without a ``\\u0000`` escape). The SQL is analysed within the process's budget
    (:func:`~.analysis.analyse`); ``over_budget`` (a parse_error) stores it unanalysed instead.
    ``learned``, when given, receives the (table, column) pairs the event's SQL places beyond doubt
    (the catalog's learned facts)."""
    if not isinstance(raw, dict):
        raise ValueError("an event must be a JSON object")
    if may_hold_nul and _has_nul(raw):
        raise ValueError("NUL characters are not allowed in event fields")
    sql = raw.get("sql")
    if isinstance(sql, str) and len(sql) > MAX_SQL_BYTES // 4 and len(sql.encode()) > MAX_SQL_BYTES:
        raise ValueError("sql is larger than 1 MB")
    try:
        event = _event_validator(raw)
    except ValidationError as exc:
        raise ValueError(_describe(exc)) from None
    if event.userId is not None and len(event.userId) * 4 > MAX_USER_ID_BYTES \
            and len(event.userId.encode("utf-8", "surrogatepass")) > MAX_USER_ID_BYTES:
        # A user id is part of the rollups' index keys, which PostgreSQL bounds (about 2.7 KB a key).
        raise ValueError(f"userId is longer than {MAX_USER_ID_BYTES:,} bytes of UTF-8")
    timestamp = _parse_timestamp(event.timestamp, now)
    dialect = normalize_dialect(event.sourceType)
    parse_error = None
    if event.tablesAccessed is None and event.columnsAccessed is None and event.columnsByTable is None:
        if over_budget is not None:
            tables = columns = by_table = None
            parse_error = over_budget
        else:
            access = analyse(event.sql, dialect, catalog)
            tables = list(access.tables) or None
            columns = list(access.columns) or None
            by_table = {t: list(c) for t, c in access.columns_by_table.items()} if access.tables else None
            parse_error = access.parse_error
            if learned is not None and access.qualified:
                learned.update(access.qualified)
    else:
        by_table = None
        if event.columnsByTable is not None:
            by_table = {}
            for table, cols in event.columnsByTable.items():
                name = normalize_table_name(table)
                by_table[name] = _dedupe([*by_table.get(name, []), *(normalize_column_name(c) for c in cols)])
        tables_in = event.tablesAccessed if event.tablesAccessed is not None else list(by_table or {})
        tables = _dedupe([normalize_table_name(t) for t in tables_in]) or None
        if event.columnsAccessed is not None:
            columns = _dedupe([normalize_column_name(c) for c in event.columnsAccessed]) or None
        elif by_table:
            columns = _dedupe([c for cols in by_table.values() for c in cols]) or None
        else:
            columns = None
    auth_mode = event.authMode or ("managed" if event.userId else "none")
    return (
        event.eventId, timestamp, event.userId, event.userLabel, auth_mode, event.sql, event.durationMs,
        event.rowCount, event.success, event.error, event.sourceId, event.sourceType, event.targetHost,
        event.actorKind, event.clientId, event.toolName,
        _json(tables), _json(columns), _json(by_table), parse_error, event.transactionOutcome,
    )


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def sql_digest(sql: str) -> bytes:
    """SHA-256 of the SQL's UTF-8 (PostgreSQL computes the same of a stored row: see
    :func:`~atlas_compliance.audit.repository.stored_identities`)."""
    return hashlib.sha256(sql.encode("utf-8", "surrogatepass")).digest()


def event_identity(raw: dict[str, Any], row: Sequence[Any]) -> EventIdentity:
    """The identity of a valid event: its raw form and its row from :func:`prepare_event`."""
    return EventIdentity(sql_digest(row[5]), row[2], row[1], raw.get("timestamp") is not None,
                         row[10], row[11], row[12], row[8])


@dataclass
class PreparedEvent:
    index: int
    row: tuple[Any, ...]
    identity: EventIdentity


def prepare_batch(events: Sequence[Any], now: datetime, catalog: Catalog | None,
                  learned: set[tuple[str, str]] | None = None) -> tuple[list[PreparedEvent], list[RejectedEvent]]:
    """Validate and extract a batch (pure CPU, no database): the valid events with their index and
    COPY row, in order, and the rejected ones with their reasons. ``learned`` receives the (table,
    column) pairs the batch's SQL places beyond doubt (see :func:`atlas_compliance.catalog.service.learn`).
    Runs in worker processes too (see :func:`prepare_batch_off_loop`)."""
    rejected: list[RejectedEvent] = []
    prepared: list[PreparedEvent] = []
    for index, raw in enumerate(events):
        try:
            row = prepare_event(raw, now, catalog, learned=learned, over_budget=begin_item(index))
        except ValueError as exc:
            rejected.append(RejectedEvent(index=index, code="invalid_event", error=str(exc)))
            continue
        prepared.append(PreparedEvent(index, row, event_identity(raw, row)))
    return prepared, rejected


MAX_PART_EVENTS = 1_000


def _prepare_part(events: Sequence[Any], now: datetime, catalog: Catalog | None
                  ) -> tuple[list[PreparedEvent], list[RejectedEvent], set[tuple[str, str]]]:
    """:func:`prepare_batch` in a worker process, returning the learned pairs (a set filled there would
    stay there)."""
    learned: set[tuple[str, str]] = set()
    prepared, rejected = prepare_batch(events, now, catalog, learned)
    return prepared, rejected, learned


async def prepare_batch_off_loop(executor: Executor | None, events: Sequence[Any], now: datetime,
                                 catalog: Catalog | None, learned: set[tuple[str, str]] | None = None
                                 ) -> tuple[list[PreparedEvent], list[RejectedEvent]]:
    """:func:`prepare_batch` in ``executor`` (an :class:`~.analysis.AnalysisPool`; None: here), in
    parts of at most 1,000 events spread over its workers, so the event loop goes on serving while
    a batch is analysed and other batches interleave with a large one."""
    if executor is None or not events:
        return prepare_batch(events, now, catalog, learned)
    if isinstance(executor, AnalysisPool) and not executor.started:
        await asyncio.to_thread(executor.start)  # starting processes blocks: not on the event loop
    workers = getattr(executor, "workers", 1)
    size = min(MAX_PART_EVENTS, -(-len(events) // workers))
    loop = asyncio.get_running_loop()
    parts = await asyncio.gather(*(
        loop.run_in_executor(executor, _prepare_part, list(events[start:start + size]), now, catalog)
        for start in range(0, len(events), size)))
    prepared: list[PreparedEvent] = []
    rejected: list[RejectedEvent] = []
    for number, (done, refused, found) in enumerate(parts):
        offset = number * size
        prepared.extend(PreparedEvent(p.index + offset, p.row, p.identity) for p in done)
        rejected.extend(RejectedEvent(index=r.index + offset, code=r.code, error=r.error) for r in refused)
        if learned is not None:
            learned.update(found)
    return prepared, rejected


@dataclass
class Sorted(Generic[T]):
    """Items sorted by :func:`skip_stored`: to store, duplicates skipped, and conflicts refused."""

    kept: list[T]
    duplicates: int
    conflicts: list[T]


def skip_stored(items: Iterable[tuple[str | None, EventIdentity, T]], existing: Mapping[str, EventIdentity],
                seen: dict[str, EventIdentity]) -> Sorted[T]:
    """Sort (event id, identity, item) triples, in order: an id neither stored (``existing``) nor met
    before (``seen``, which grows) is kept; one met again is a duplicate when it is the same event
    (:meth:`EventIdentity.same_event`), else an ``event_id_conflict``, never stored. Items without an
    id are always kept. One helper for the API, the ``ingest`` command and the log imports."""
    out: Sorted[T] = Sorted([], 0, [])
    for event_id, identity, item in items:
        if event_id is not None:
            before = existing.get(event_id) or seen.get(event_id)
            if before is not None:
                if before.same_event(identity):
                    out.duplicates += 1
                else:
                    out.conflicts.append(item)
                continue
            seen[event_id] = identity
        out.kept.append(item)
    return out


CONFLICT_MESSAGE = ("eventId {event_id!r} is already stored for another event (different sql, user, timestamp, "
                    "source, dialect, database host or success); not stored")


async def store_prepared(conn: AsyncConnection, org_id: str, prepared: Sequence[PreparedEvent],
                         rejected: list[RejectedEvent]) -> IngestResult:
    """Store events made by :func:`prepare_batch`, skipping event ids already stored (or repeated in the
    batch) and refusing reused ids of other events. The caller commits."""
    await repo.lock_org_chain(conn, org_id)
    existing = await repo.stored_identities(conn, org_id, [p.row[0] for p in prepared if p.row[0] is not None])
    result = skip_stored(((p.row[0], p.identity, p) for p in prepared), existing, {})
    inserted = await repo.copy_events(conn, [(*p.row, org_id) for p in result.kept])
    refused = [RejectedEvent(index=p.index, code="event_id_conflict", error=CONFLICT_MESSAGE.format(event_id=p.row[0]))
               for p in result.conflicts]
    return IngestResult(inserted=inserted, duplicates=result.duplicates,
                        rejected=sorted([*rejected, *refused], key=lambda r: r.index))


async def ingest_batch(db: Database, org_id: str, events: Sequence[Any], executor: Executor | None,
                       learned: set[tuple[str, str]] | None = None) -> IngestResult:
    """Store a batch as :func:`ingest_events` does, analysing it in ``executor`` between two
    transactions: one reads the org's catalog, the other (holding the org's write lock) only writes.
    No connection is held while the batch is analysed. Commits."""
    now = datetime.now(UTC)
    async with db.transaction() as conn:
        catalog = await org_catalog(conn, org_id)
    prepared, rejected = await prepare_batch_off_loop(executor, events, now, catalog, learned)
    async with db.transaction() as conn:
        return await store_prepared(conn, org_id, prepared, rejected)


async def ingest_events(conn: AsyncConnection, org_id: str, events: Sequence[Any],
                        learned: set[tuple[str, str]] | None = None) -> IngestResult:
    """Store a batch of raw events for ``org_id``.

    Invalid events are rejected one by one with a reason; valid ones are stored. Events whose
    ``eventId`` is already stored (or repeated within the batch) count as duplicates when they are the
    same event, so re-sending a batch stores nothing twice, and are rejected as ``event_id_conflict``
    when they are not. The caller commits. ``learned`` receives the (table, column) pairs the batch's SQL
    places beyond doubt, for the caller to record after its commit
    (:func:`atlas_compliance.catalog.service.learn`).
    """
    catalog = await org_catalog(conn, org_id)
    prepared, rejected = prepare_batch(events, datetime.now(UTC), catalog, learned)
    return await store_prepared(conn, org_id, prepared, rejected)


# Look-ups and the import ledger, exactly as the repository does them; named here so that the edges (the
# CLI) reach the repository only through this service.
orgs_with_policy = repo.orgs_with_policy
file_imports = repo.file_imports
start_file_import = repo.start_file_import
finish_file_import = repo.finish_file_import
