"""Bulk import of audit events (the `ingest` command): worker processes turn records into COPY
lines, and one writer streams them into audit_log while the workers go on.

Each transaction holds the organization's chain lock and one COPY of up to ``commit_every``
events, written chunk by chunk as the workers finish them, so PostgreSQL inserts and chains rows
while later chunks are parsed; the rollup triggers run once per COPY. A transaction goes on only
while the next chunk is already prepared: when the workers are behind it commits, so that the lock
is never held while SQL is being parsed. Event ids already stored are
looked up on a second connection (the writer's is busy with the COPY); the chain lock, taken
before the first lookup of a transaction, keeps other writers of the organization out until it
commits.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..db.pool import Database
from ..errors import BadRequest
from . import analysis, files
from . import repository as repo
from .extraction import Catalog
from .schemas import EventIdentity
from .service import event_identity, prepare_event, skip_stored

_NUL_ESCAPE = b"\\u0000"
_PR_SET_PDEATHSIG = 1


def worker_pool(processes: int, budget: analysis.ParseBudget = analysis.DEFAULT_BUDGET) -> ProcessPoolExecutor | None:
    """``processes`` worker processes (None for one: the work then runs in this process), started
    now: before any database connection exists, so that none inherits one (a worker left holding
    the socket of a killed import would keep its transaction, and the org's chain lock, open).
    On Linux each worker also dies with this process. Each analyses SQL within ``budget``, its own
    timer stopping a statement over the time budget (:class:`~.analysis.AnalysisPool` also replaces
    a worker stuck where the timer cannot reach)."""
    if processes <= 1:
        return None
    pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"),
                               initializer=_worker_start, initargs=(os.getpid(), budget))
    for started in [pool.submit(os.getpid) for _ in range(processes)]:
        started.result()
    return pool


def _worker_start(parent: int, budget: analysis.ParseBudget) -> None:
    _die_with_parent(parent)
    analysis.configure(budget)
    analysis.use_timer()


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


@dataclass(frozen=True)
class ChunkJob:
    """What a worker needs besides the records: where they come from and for which org."""

    file_name: str
    org_id: str
    now: datetime
    catalog: Catalog | None


@dataclass
class PreparedChunk:
    """A worker's answer for one chunk of records: the valid events' ids, identities, record numbers
    and COPY lines (same order), the rejected records, or the fatal error that stops the import; how
    many ids were derived (records without eventId) and the content digest after the chunk's last
    record (see :func:`files.chained`), for the import ledger."""

    records: int
    event_ids: list[str | None] = field(default_factory=list)
    identities: list[EventIdentity] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    fatal: str | None = None
    derived: int = 0
    digest: str | None = None


def prepare_chunk(job: ChunkJob, numbers: Sequence[int], records: Sequence[tuple[Any, str]]) -> PreparedChunk:
    """Decode, validate and extract one chunk of (record, content digest) pairs (pure CPU; runs in
    worker processes)."""
    out = PreparedChunk(records=len(records))
    for done, (number, (record, digest)) in enumerate(zip(numbers, records, strict=True)):
        forced = analysis.begin_item(done)
        try:
            raw, derived = files.decode_record(job.file_name, number, record, digest)
        except BadRequest as exc:
            out.fatal, out.records = exc.message, done  # the records before this one count
            return out
        out.digest = digest
        try:
            row = prepare_event(raw, job.now, job.catalog, over_budget=forced,
                                may_hold_nul=not isinstance(record, bytes) or _NUL_ESCAPE in record)
            line = repo.copy_line((*row, job.org_id))
        except ValueError as exc:  # UnicodeEncodeError (a lone surrogate) is a ValueError too
            out.rejected.append((number, str(exc) if not isinstance(exc, UnicodeError) else
                                 "text is not valid Unicode (lone surrogate)"))
            continue
        out.derived += derived  # a valid event with a derived id
        out.event_ids.append(row[0])
        out.identities.append(event_identity(raw, row))
        out.numbers.append(number)
        out.lines.append(line)
    return out


@dataclass
class ImportTotals:
    inserted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    conflicts: list[tuple[int, str]] = field(default_factory=list)  # (record number, event id)
    records: int = 0  # records written or refused, in file order
    derived: int = 0
    digest: str | None = None  # content digest after the last of those records


async def write_chunks(db: Database, org_id: str, chunks: AsyncIterator[PreparedChunk], *, commit_every: int,
                       on_written: Callable[[int], None] = lambda n: None,
                       ledger_id: int | None = None) -> ImportTotals:
    """Store the chunks in order, skipping event ids already stored or repeated (the same event) and
    refusing ids reused by another event (``conflicts``); returns the totals. With ``ledger_id``, the
    import ledger's row is brought up to date in each transaction, with its events.

    A chunk with ``fatal`` set (a record that is not JSON) raises :class:`BadRequest` once the events
    before that record are committed.
    """
    totals = ImportTotals()
    fatal: str | None = None
    chunk = await anext(chunks, None)
    async with db.connection() as writer, db.connection() as checker:
        while chunk is not None:
            async with writer.transaction():
                await writer.execute("SET LOCAL statement_timeout = 0")  # one COPY of up to commit_every events
                await repo.lock_org_chain(writer, org_id)
                seen: dict[str, EventIdentity] = {}
                events = 0
                async with writer.cursor() as cur, cur.copy(repo.COPY_SQL) as copy:
                    while chunk is not None and events < commit_every:
                        ids = [i for i in chunk.event_ids if i is not None]
                        async with checker.transaction():
                            existing = await repo.stored_identities(checker, org_id, ids)
                        items = zip(chunk.event_ids, chunk.identities,
                                    zip(chunk.numbers, chunk.event_ids, chunk.lines, strict=True), strict=True)
                        result = skip_stored(items, existing, seen)
                        totals.duplicates += result.duplicates
                        if result.kept:
                            await copy.write(b"".join(line for _, _, line in result.kept))
                        totals.inserted += len(result.kept)
                        totals.conflicts.extend((n, i or "") for n, i, _ in result.conflicts)
                        totals.rejected.extend(chunk.rejected)
                        totals.records += chunk.records
                        totals.derived += chunk.derived
                        totals.digest = chunk.digest or totals.digest
                        events += chunk.records
                        on_written(chunk.records)
                        if chunk.fatal is not None:
                            fatal, chunk = chunk.fatal, None  # the records before it are written and committed
                        else:
                            ready, chunk = await next_chunk_if_ready(chunks)
                            if not ready:
                                break  # commit: the lock is not held while the workers parse
                if ledger_id is not None:
                    await repo.update_file_import(writer, ledger_id, totals)
            if fatal is not None:
                raise BadRequest(fatal)
            if chunk is None:
                chunk = await anext(chunks, None)  # None again at the end
    return totals


class PreparedInOrder:
    """The answers to ``batches`` in order (an async iterator); see :func:`prepared_in_order`."""

    def __init__(self, executor: Executor | None, job: Any, batches: Iterable[tuple[Any, list[Any]]], *,
                 inflight: int, ahead: int, prepare: Callable[[Any, Any, Any], Any]) -> None:
        self._executor, self._job, self._batches, self._prepare = executor, job, batches, prepare
        self._inflight = inflight
        self._ready: asyncio.Queue[Any] = asyncio.Queue(maxsize=ahead)
        self._task: asyncio.Future[None] | None = None
        self._done = False

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        pending: deque[asyncio.Future[Any]] = deque()
        try:
            for numbers, records in self._batches:
                pending.append(loop.run_in_executor(self._executor, self._prepare, self._job, numbers, records))
                while len(pending) >= self._inflight or (pending and pending[0].done()):
                    await self._ready.put(await pending.popleft())
            while pending:
                await self._ready.put(await pending.popleft())
            await self._ready.put(None)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the consumer, which raises it
            await self._ready.put(exc)

    def __aiter__(self) -> PreparedInOrder:
        return self

    async def __anext__(self) -> Any:
        if self._done:
            raise StopAsyncIteration
        if self._task is None:
            self._task = asyncio.ensure_future(self._produce())
        item = await self._ready.get()
        if item is None:
            self._done = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return item

    def ready(self) -> bool:
        """Whether the next answer (or the end) is already here: the next ``anext`` will not wait."""
        return self._done or not self._ready.empty()

    async def aclose(self) -> None:
        self._done = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


def prepared_in_order(executor: Executor | None, job: Any, batches: Iterable[tuple[Any, list[Any]]], *,
                      inflight: int, ahead: int, prepare: Callable[[Any, Any, Any], Any] = prepare_chunk,
                      ) -> PreparedInOrder:
    """Hand each (numbers, records) batch to ``executor`` (None: a thread of this process; else a process
    pool or :class:`~.analysis.AnalysisPool`) and yield the answers in order. A producer task keeps
    ``inflight`` batches with the workers and up to ``ahead`` answers ready, so the workers go on
    while the writer waits for PostgreSQL (a COPY's rollup, a commit); memory stays bounded by the
    two. ``prepare(job, numbers, records)`` makes an answer (:func:`prepare_chunk` for the ``ingest``
    command). ``ready()`` tells a writer whether the next answer is already there, so that it holds
    its transaction (and the org's lock) only while it has something to write."""
    return PreparedInOrder(executor, job, batches, inflight=inflight, ahead=ahead, prepare=prepare)


async def next_chunk_if_ready(chunks: AsyncIterator[Any]) -> tuple[bool, Any]:
    """(True, the next chunk or None at the end) when it is already prepared; (False, None) when the
    workers are still on it (a writer then commits rather than wait with its lock held)."""
    ready = getattr(chunks, "ready", None)
    if ready is not None and not ready():
        return False, None
    return True, await anext(chunks, None)


def batched_records(records: Iterable[tuple[int, Any]], size: int) -> Iterator[tuple[list[int], list[Any]]]:
    """(numbers, records) lists of ``size`` records, the first ones smaller (500, 1,000, 2,000 …) so
    that PostgreSQL starts writing while the workers parse the rest."""
    numbers: list[int] = []
    batch: list[Any] = []
    limit = min(size, 500)
    for number, record in records:
        numbers.append(number)
        batch.append(record)
        if len(batch) >= limit:
            yield numbers, batch
            numbers, batch = [], []
            limit = min(size, limit * 2)
    if batch:
        yield numbers, batch
