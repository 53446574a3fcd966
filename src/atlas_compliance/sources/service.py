"""Importing a database's audit log: files are read into statements (:class:`StatementReader`), worker
processes turn batches of statements into COPY lines, and one writer stores them through the ingest
path (the org's chain lock, duplicate ids skipped, the chain and rollup triggers), noting the source
and, for a follower, its position in the same transaction."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from ..audit import bulk
from ..audit import repository as audit_repo
from ..audit.schemas import EventIdentity
from ..audit.service import skip_stored
from ..db.pool import Database
from ..errors import BadRequest, Conflict
from . import repository as repo
from .events import PreparedStatements, StatementJob, prepare_statements
from .logfiles import FilePosition, read_lines
from .mariadb import MariaDbAuditReader
from .pgaudit import PgStatements
from .pglog import CsvReader, JsonReader, LogClock, RecordReader, Skipped, StderrReader, Where, decode_line
from .prefix import LinePrefix
from .statements import PositionTracker, SourceStatement

SourceKind = Literal["pgaudit", "mariadb-audit"]
PG_FORMATS = ("stderr", "csvlog", "jsonlog")
BATCH = 2_000  # statements per chunk handed to a worker
MAX_SOURCE_NAME = 100


@dataclass(frozen=True)
class ReadOptions:
    """How to read one source's logs."""

    kind: SourceKind
    source: str
    log_format: str = "auto"  # pgaudit: auto, stderr, csvlog, jsonlog
    prefix: LinePrefix | None = None
    timezone: str | None = None
    settle: timedelta = timedelta(seconds=30)
    keep_parameters: bool = False


def validate_source_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_SOURCE_NAME or any(c in name for c in "\x00\n\r\t"):
        raise BadRequest(f"invalid source name {name[:40]!r}: use 1 to {MAX_SOURCE_NAME} characters, "
                         "e.g. 'prod-postgres'", code="invalid_source")
    return name


def pg_format_of(path: Path, requested: str) -> str:
    """The PostgreSQL log destination of ``path``: as requested, or by its name and first bytes."""
    if requested != "auto":
        if requested not in PG_FORMATS:
            raise BadRequest(f"unknown --format {requested!r}: use auto, stderr, csvlog or jsonlog", code="invalid_format")
        return requested
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "jsonlog"
    if suffix == ".csv":
        return "csvlog"
    with open(path, "rb") as handle:
        head = handle.read(64).lstrip()
    if head.startswith(b"{"):
        return "jsonlog"
    return "stderr"


KEPT_SKIPPED = 1_000  # skipped lines kept to list (all are counted): a follower runs for months


@dataclass
class ReadCounts:
    lines: int = 0
    not_utf8: int = 0
    statements: int = 0
    skipped: list[Skipped] = field(default_factory=list)  # the first KEPT_SKIPPED of them
    skipped_total: int = 0

    def skip(self, item: Skipped) -> None:
        self.skipped_total += 1
        if len(self.skipped) < KEPT_SKIPPED:
            self.skipped.append(item)


class StatementReader:
    """Statements of one source's log files, read in order: a statement may go on in the next file."""

    def __init__(self, options: ReadOptions, tracker: PositionTracker | None = None) -> None:
        self.options = options
        self.tracker = tracker
        self.clock = LogClock(options.timezone)
        self.counts = ReadCounts()
        self.file_names: list[str] = []
        self.records: dict[int, RecordReader] = {}
        self.pg: PgStatements | None = None
        self.maria: MariaDbAuditReader | None = None
        if options.kind == "pgaudit":
            self.pg = PgStatements(options.source, settle=options.settle, keep_parameters=options.keep_parameters,
                                   on_emit=tracker, file_names=self.file_names)
        else:
            self.maria = MariaDbAuditReader(options.source, "", rank=0, zone=options.timezone, settle=options.settle,
                                            on_emit=tracker)

    def add_file(self, path: Path, log_format: str | None = None) -> int:
        """Give ``path`` the next rank (its place in the stream); returns the rank."""
        rank = len(self.file_names)
        self.file_names.append(path.name)
        if self.pg is not None:
            fmt = log_format or pg_format_of(path, self.options.log_format)
            if fmt == "stderr":
                if self.options.prefix is None:
                    raise BadRequest(f"{path.name} is a stderr log: pass the server's log_line_prefix with "
                                     "--log-line-prefix (or read its csvlog or jsonlog)", code="prefix_required")
                self.records[rank] = StderrReader(path.name, rank, self.options.prefix, self.clock)
            elif fmt == "csvlog":
                self.records[rank] = CsvReader(path.name, rank, self.clock)
            else:
                self.records[rank] = JsonReader(path.name, rank, self.clock)
        return rank

    def read(self, path: Path, rank: int, position: FilePosition, *, to_end: bool,
             max_lines: int | None = None) -> Iterator[SourceStatement]:
        """Statements completed by the lines of ``path`` from ``position`` on (which advances), at most
        ``max_lines`` of them. Consume it to the end: a line's statements come out together."""
        counts = self.counts
        lines = read_lines(path, position, to_end=to_end, max_lines=max_lines)
        if self.maria is not None:
            self.maria.next_file(self.file_names[rank], rank)
            feed = self.maria.feed
            for number, offset, data in lines:
                counts.lines += 1
                text, bad = decode_line(data)
                counts.not_utf8 += bad
                for item in feed(number, offset, text):
                    yield from self._out(item)
            return
        reader = self.records[rank]
        assembler = self.pg
        assert assembler is not None
        for number, offset, data in lines:
            counts.lines += 1
            text, bad = decode_line(data)
            counts.not_utf8 += bad
            for record in reader.feed(number, offset, text):
                for item in assembler.feed(record):
                    yield from self._out(item)

    def end_of_file(self, rank: int) -> Iterator[SourceStatement]:
        """The file will not grow: the record it ends with is complete."""
        reader = self.records.get(rank)
        if reader is not None and self.pg is not None:
            for record in reader.flush():
                for item in self.pg.feed(record):
                    yield from self._out(item)

    def finish(self) -> Iterator[SourceStatement]:
        """The end of the input: statements still open are stored as the log shows them."""
        for rank in list(self.records):
            yield from self.end_of_file(rank)
        items: Iterable[SourceStatement | Skipped] = (self.pg.finish() if self.pg is not None
                                                      else self.maria.finish() if self.maria else ())
        for item in items:
            yield from self._out(item)

    def open_starts(self) -> list[Where]:
        starts = self.pg.open_starts() if self.pg is not None else self.maria.open_starts() if self.maria else []
        for reader in self.records.values():
            held = reader.holding()
            if held is not None:
                starts.append(held)
        return starts

    def _out(self, item: SourceStatement | Skipped) -> Iterator[SourceStatement]:
        if isinstance(item, Skipped):
            self.counts.skip(item)
            return
        self.counts.statements += 1
        yield item


def statement_batches(statements: Iterable[SourceStatement], size: int = BATCH
                      ) -> Iterator[tuple[None, list[SourceStatement]]]:
    batch: list[SourceStatement] = []
    for statement in statements:
        batch.append(statement)
        if len(batch) >= size:
            yield None, batch
            batch = []
    if batch:
        yield None, batch


@dataclass
class StoreTotals:
    inserted: int = 0
    duplicates: int = 0
    rejected: list[Skipped] = field(default_factory=list)


async def check_source(db: Database, org_id: str, source: str, kind: SourceKind) -> None:
    """A source name stays with one kind of log (its events' ids depend on it)."""
    async with db.connection() as conn:
        found = await repo.source_kind(conn, org_id, source)
    if found is not None and found != kind:
        raise Conflict(f"the source {source!r} of this organization is a {found} source; "
                       f"choose another --source name for this {kind} log", code="source_kind_mismatch")


async def store_chunks(db: Database, org_id: str, source: str, kind: SourceKind,
                       chunks: AsyncIterator[PreparedStatements], *, commit_every: int,
                       on_stored: Callable[[PreparedStatements], None] = lambda c: None,
                       totals: StoreTotals | None = None) -> StoreTotals:
    """Store prepared chunks in order. Each transaction (going on while the next chunk is already
    prepared, so the lock is not held while SQL is parsed) holds the org's chain lock and one COPY, skips
    event ids already stored (or repeated), notes the source, and saves the position of the last chunk
    that carried one: the events and the position a follower resumes from commit together."""
    totals = totals or StoreTotals()
    chunk = await anext(chunks, None)
    async with db.connection() as writer, db.connection() as checker:
        while chunk is not None:
            async with writer.transaction():
                await writer.execute("SET LOCAL statement_timeout = 0")  # one COPY of up to commit_every statements
                await audit_repo.lock_org_chain(writer, org_id)
                seen: dict[str, EventIdentity] = {}
                statements = stored = 0
                latest: datetime | None = None
                checkpoint = None
                async with writer.cursor() as cur, cur.copy(audit_repo.COPY_SQL) as copy:
                    while chunk is not None and statements < commit_every:
                        ids = [i for i in chunk.event_ids if i is not None]
                        async with checker.transaction():
                            existing = await audit_repo.stored_identities(checker, org_id, ids)
                        rows = zip(chunk.event_ids, chunk.identities,
                                   zip(chunk.lines, chunk.timestamps, chunk.starts, strict=True), strict=True)
                        result = skip_stored(rows, existing, seen)
                        kept, duplicates = result.kept, result.duplicates
                        # An id that names another statement is refused and listed with the skipped lines.
                        totals.rejected.extend(
                            Skipped(file, line, "statement not stored: its event id is already stored for "
                                    "another statement (event id conflict)")
                            for _, _, (file, line) in result.conflicts)
                        if kept:
                            await copy.write(b"".join(line for line, _, _ in kept))
                            newest = max(ts for _, ts, _ in kept)
                            latest = newest if latest is None or newest > latest else latest
                        stored += len(kept)
                        totals.duplicates += duplicates
                        totals.rejected.extend(chunk.rejected)
                        statements += chunk.statements
                        checkpoint = chunk.checkpoint if chunk.checkpoint is not None else checkpoint
                        on_stored(chunk)
                        ready, chunk = await bulk.next_chunk_if_ready(chunks)
                        if not ready:
                            break  # commit: the lock is not held while the workers parse
                await repo.record_import(writer, org_id, source, kind, stored, latest)
                if checkpoint is not None:
                    await repo.save_positions(writer, org_id, source, checkpoint)
            totals.inserted += stored
            if chunk is None:
                chunk = await anext(chunks, None)  # None again at the end
    return totals


async def store_statements(db: Database, executor: ProcessPoolExecutor | None, job: StatementJob,
                           batches: Iterable[tuple[object, list[SourceStatement]]], *, workers: int,
                           commit_every: int, on_stored: Callable[[PreparedStatements], None] = lambda c: None,
                           totals: StoreTotals | None = None) -> StoreTotals:
    """Prepare ``batches`` in ``executor`` (None: here) and store them, in order."""
    chunks = bulk.prepared_in_order(executor, job, batches, inflight=workers + 1, ahead=8,
                                    prepare=prepare_statements)
    async with contextlib.aclosing(chunks):
        return await store_chunks(db, job.org_id, job.source, job.kind, chunks, commit_every=commit_every,
                                  on_stored=on_stored, totals=totals)
