"""Following a log directory as the database server writes and rotates its files (``--follow DIR``).

Each round reads what the files gained, stores the statements that became complete, and saves in the
same transaction, per file, where to resume: the earliest point that no unfinished statement (and no
statement whose lines straddle it) has passed. A follower killed at any moment therefore resumes at
its last commit, reads again at most the statements it had not finished, and stores nothing twice
(every event id comes from the log's own coordinates).

Files are told apart by device and inode (a rename keeps the position) and by the hash of their first
bytes (a file truncated and written again, or an inode reused, is read from its start). Files are read
oldest first (by modification time): only the newest one grows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..db.pool import Database
from ..errors import Conflict
from . import repository as repo
from .events import PreparedStatements, StatementJob
from .logfiles import FINGERPRINT_BYTES, FilePosition, fingerprint, identify, same_file
from .pglog import Where
from .service import BATCH, ReadOptions, StatementReader, StoreTotals, store_statements
from .statements import PositionTracker, SourceStatement

ROUND_LINES = 200_000  # lines read per round at most: a follower started on a large backlog stores it bit by bit


@dataclass
class _Followed:
    path: Path
    key: str
    rank: int
    position: FilePosition
    digest: bytes = b""
    digest_bytes: int = 0
    ended: bool = False  # a newer file exists and this one was read to its end


@dataclass
class FollowProgress:
    rounds: int = 0
    statements: int = 0
    totals: StoreTotals = field(default_factory=StoreTotals)


class LogFollower:
    """Follows ``directory`` (files matching ``pattern``) for one source of one organization."""

    def __init__(self, db: Database, options: ReadOptions, job: StatementJob, directory: Path, pattern: str, *,
                 executor: ProcessPoolExecutor | None, workers: int, poll_seconds: float = 0.5,
                 log_format: str | None = None, on_round: Callable[[FollowProgress], None] = lambda p: None) -> None:
        self.db, self.options, self.job = db, options, job
        self.directory, self.pattern = directory, pattern
        self.executor, self.workers, self.poll_seconds = executor, workers, poll_seconds
        self.log_format = log_format
        self.on_round = on_round
        self.tracker = PositionTracker()
        self.reader = StatementReader(options, self.tracker)
        self.files: dict[str, _Followed] = {}
        self.progress = FollowProgress()
        self.last_data = time.monotonic()

    async def run(self, stop: asyncio.Event) -> FollowProgress:
        """Follow until ``stop`` is set; statements still open then are read again by the next run."""
        async with self.db.connection() as lock:
            if not await repo.try_follow_lock(lock, self.job.org_id, self.options.source):
                raise Conflict(f"another follower of source {self.options.source!r} is running for this "
                               "organization", code="already_following")
            async with self.db.connection() as conn:
                stored = await repo.load_positions(conn, self.job.org_id, self.options.source)
            self._discover(stored)
            while not stop.is_set():
                statements, read = self._read_round()
                if statements or read:
                    await self._store(statements)
                else:
                    try:
                        await asyncio.wait_for(stop.wait(), self.poll_seconds)
                    except TimeoutError:
                        pass
        return self.progress

    def _listing(self) -> list[tuple[float, str, Path]]:
        found = []
        for path in self.directory.glob(self.pattern):
            try:
                ident = identify(path)
            except OSError:  # removed meanwhile
                continue
            if path.is_file():
                found.append((ident.mtime, path.name, path))
        found.sort()
        return found

    def _discover(self, stored: dict[str, repo.StoredPosition] | None = None) -> None:
        """New files get the next rank (oldest first); renamed ones keep their position; truncated ones
        (shorter than read, or not beginning with the bytes read) start again as new files."""
        seen: set[str] = set()
        for _, _, path in self._listing():
            try:
                ident = identify(path)
            except OSError:
                continue
            seen.add(ident.key)
            known = self.files.get(ident.key)
            if known is not None:
                known.path = path
                if ident.size < known.position.offset or (
                        known.digest_bytes and not same_file(path, known.digest, known.digest_bytes)):
                    self._add(path, ident.key, FilePosition())
                continue
            start = FilePosition()
            if stored and ident.key in stored:
                saved = stored[ident.key]
                if saved.offset <= ident.size and same_file(path, saved.fingerprint, saved.fingerprint_bytes):
                    start = FilePosition(saved.offset, saved.line)
            self._add(path, ident.key, start)
        for key in [k for k in self.files if k not in seen]:
            del self.files[key]  # deleted by the server's log cleanup

    def _add(self, path: Path, key: str, start: FilePosition) -> None:
        rank = self.reader.add_file(path, self.log_format)
        followed = _Followed(path=path, key=key, rank=rank, position=start)
        self.files[key] = followed
        self._fingerprint(followed)

    def _fingerprint(self, followed: _Followed) -> None:
        if followed.digest_bytes < FINGERPRINT_BYTES:
            try:
                followed.digest, followed.digest_bytes = fingerprint(followed.path)
            except OSError:
                pass

    def _read_round(self) -> tuple[list[SourceStatement], bool]:
        """The statements completed by what the files gained (at most ``ROUND_LINES`` lines), and whether
        anything was read."""
        self._discover()
        out: list[SourceStatement] = []
        budget = ROUND_LINES
        ordered = sorted(self.files.values(), key=lambda f: f.rank)
        newest = ordered[-1].rank if ordered else -1
        got_data = False
        for followed in ordered:
            try:
                size = identify(followed.path).size
            except OSError:
                continue
            if size > followed.position.offset and budget > 0:
                before, lines = followed.position.offset, self.reader.counts.lines
                out.extend(self.reader.read(followed.path, followed.rank, followed.position, to_end=False,
                                            max_lines=budget))
                budget -= self.reader.counts.lines - lines
                got_data = got_data or followed.position.offset > before
            if followed.rank < newest and not followed.ended and followed.position.offset >= size:
                followed.ended = True  # rotated away: its last record is complete
                out.extend(self.reader.end_of_file(followed.rank))
        now = time.monotonic()
        if got_data:
            self.last_data = now
        elif now - self.last_data >= self.options.settle.total_seconds():
            # The server wrote nothing for a while: what is open is complete (as far as the log can tell).
            out.extend(self.reader.finish())
            self.last_data = now
        return out, got_data

    def _checkpoint(self) -> tuple[list[repo.StoredPosition], Where]:
        """Per file, where to resume: files before the safe point were read whole, files after it not at all."""
        ordered = sorted(self.files.values(), key=lambda f: f.rank)
        if not ordered:
            return [], (0, 0, 1)
        frontier = ordered[-1]
        point = self.tracker.safe((frontier.rank, frontier.position.offset, frontier.position.line),
                                  self.reader.open_starts())
        positions = []
        for followed in ordered:
            self._fingerprint(followed)
            if followed.rank < point[0]:
                offset, line = followed.position.offset, followed.position.line
            elif followed.rank == point[0]:
                offset, line = point[1], point[2]
            else:
                offset, line = 0, 1
            positions.append(repo.StoredPosition(followed.key, str(followed.path), offset, line, followed.digest,
                                                 followed.digest_bytes))
        return positions, point

    async def _store(self, statements: list[SourceStatement]) -> None:
        checkpoint, point = self._checkpoint()
        batches: list[tuple[object, list[SourceStatement]]] = [
            (None, statements[i:i + BATCH]) for i in range(0, len(statements), BATCH)] or [(None, [])]
        batches[-1] = (checkpoint, batches[-1][1])
        job = StatementJob(kind=self.job.kind, source=self.job.source, org_id=self.job.org_id,
                           catalog=self.job.catalog, keep_parameters=self.job.keep_parameters,
                           file_names=tuple(self.reader.file_names))

        def stored(chunk: PreparedStatements) -> None:
            self.progress.statements += chunk.statements

        await store_statements(self.db, self.executor, job, batches, workers=self.workers,
                               commit_every=len(statements) + 1, on_stored=stored, totals=self.progress.totals)
        self.tracker.committed(point)
        self.progress.rounds += 1
        self.on_round(self.progress)

