"""Where recorded events wait for the server: in memory, or in a spool of files that outlives the process.

Both backlogs hold encoded events (one JSON object each) in recording order and hand them to the
sender as batches from the front: ``peek`` reads the next batch, ``settle`` drops it once the server
answered for it. Only one batch is in flight at a time. The caller (``AuditClient``) serializes
every call with its lock.

A spool is a directory. Each live client writes its own subdirectory (``<host>-<pid>-<random>``)
holding ``lock`` (``flock``-ed while the writer lives), numbered segment files of newline-separated
events, and ``acked``, the position of the first event the server has not answered for. A process
that dies, however it dies, releases its lock; any client using the same spool directory then
adopts the subdirectory and sends what is left (a retried event carries its ``eventId``, so the
server stores it once).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
from collections import deque
from pathlib import Path

import orjson

try:
    import fcntl
except ImportError:  # Windows: no spool
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("atlas_compliance.client")

SEGMENT_BYTES = 64 * 1024 * 1024
_ACKED = "acked"
_LOCK = "lock"
_SUFFIX = ".ndjson"


class MemoryBacklog:
    """Events held in memory; lost with the process."""

    def __init__(self) -> None:
        self._items: deque[bytes] = deque()
        self.pending_bytes = 0
        self._peeked = 0

    @property
    def pending(self) -> int:
        return len(self._items)

    def append(self, payload: bytes) -> None:
        self._items.append(payload)
        self.pending_bytes += len(payload)

    def peek(self, max_events: int, max_bytes: int) -> list[bytes]:
        batch: list[bytes] = []
        size = 2
        for payload in self._items:
            if len(batch) == max_events or (batch and size + len(payload) + 1 > max_bytes):
                break
            batch.append(payload)
            size += len(payload) + 1
        self._peeked = len(batch)
        return batch

    def settle(self) -> None:
        """Drop the batch the last ``peek`` returned."""
        for _ in range(self._peeked):
            self.pending_bytes -= len(self._items.popleft())
        self._peeked = 0

    def take_all(self) -> list[bytes]:
        """Remove and return every pending event (the client gives up on them)."""
        items = list(self._items)
        self._items.clear()
        self.pending_bytes = 0
        return items

    def forget(self) -> None:
        """In a forked child: the parent sends these; drop the copies."""
        self._items.clear()
        self.pending_bytes = 0


def spool_supported() -> bool:
    return fcntl is not None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class SpoolReader:
    """Reads one writer directory's events from its acknowledged position onward."""

    def __init__(self, directory: Path, lock_fd: int) -> None:
        self.directory = directory
        self._lock_fd = lock_fd
        self._segment, self._offset = self._read_acked()
        self._peeked: tuple[int, int] | None = None
        self.pending_bytes = 0

    # --- positions ----------------------------------------------------------------------------

    def _segment_path(self, number: int) -> Path:
        return self.directory / f"{number:06d}{_SUFFIX}"

    def _segments(self) -> list[int]:
        numbers = []
        for path in self.directory.glob(f"*{_SUFFIX}"):
            with contextlib.suppress(ValueError):
                numbers.append(int(path.name[: -len(_SUFFIX)]))
        return sorted(numbers)

    def _read_acked(self) -> tuple[int, int]:
        segments = self._segments()
        first = segments[0] if segments else 1
        try:
            segment, offset = (int(part) for part in (self.directory / _ACKED).read_text().split())
        except (OSError, ValueError):  # missing or torn: start at the oldest segment; resent events are duplicates
            return first, 0
        return (segment, offset) if segment >= first else (first, 0)

    def _write_acked(self) -> None:
        temporary = self.directory / f".{_ACKED}.tmp"
        temporary.write_text(f"{self._segment} {self._offset}\n")
        os.replace(temporary, self.directory / _ACKED)

    # --- reading ------------------------------------------------------------------------------

    def _limit(self, segment: int) -> int | None:
        """Bytes of ``segment`` that hold complete events (None: read to the end of the file)."""
        return None

    def _is_last(self, segment: int) -> bool:
        return not any(n > segment for n in self._segments())

    def peek(self, max_events: int, max_bytes: int) -> list[bytes]:
        """The next batch after the acknowledged position (empty when there is none)."""
        segment, offset = self._segment, self._offset
        while True:
            path = self._segment_path(segment)
            try:
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    limit = self._limit(segment)
                    chunk = handle.read(max_bytes if limit is None else max(0, min(max_bytes, limit - offset)))
            except FileNotFoundError:
                chunk = b""
            batch, used = self._split(chunk, max_events, max_bytes, path, offset, segment)
            if batch:
                self._peeked = (segment, offset + used)
                return batch
            if used:  # only blank, unreadable or torn lines: step over them
                offset += used
                self._segment, self._offset = segment, offset
                self._write_acked()
                continue
            if self._is_last(segment):
                self._peeked = None
                return []
            segment, offset = segment + 1, 0  # this segment is finished: go on with the next one
            self._segment, self._offset = segment, offset

    def _split(self, chunk: bytes, max_events: int, max_bytes: int, path: Path, offset: int,
               segment: int) -> tuple[list[bytes], int]:
        batch: list[bytes] = []
        used = 0
        size = 2
        while len(batch) < max_events:
            end = chunk.find(b"\n", used)
            if end < 0:
                if used == 0 and chunk and len(chunk) < max_bytes and self._torn_tail(segment):
                    # Only the dead writer's last, interrupted write ends without a newline.
                    _warn("atlas audit: dropped %d byte(s) at the end of %s: the process that wrote them "
                          "died while writing", len(chunk), path)
                    return [], len(chunk)
                break
            line = chunk[used:end]
            if batch and size + len(line) + 1 > max_bytes:
                break
            used = end + 1
            if not line.strip():
                continue
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError:
                _warn("atlas audit: skipped an unreadable event at byte %d of %s", offset + used - len(line) - 1,
                      path)
                continue
            batch.append(line)
            size += len(line) + 1
        return batch, used

    def _torn_tail(self, segment: int) -> bool:
        return self._is_last(segment)

    def settle(self) -> int:
        """Mark the batch the last ``peek`` returned as answered; returns its size in bytes."""
        if self._peeked is None:
            return 0
        segment, offset = self._peeked
        before = self._segment, self._offset
        done = offset - before[1] if segment == before[0] else offset
        self._segment, self._offset = segment, offset
        self._peeked = None
        self._write_acked()
        for number in self._segments():
            if number < segment:
                with contextlib.suppress(FileNotFoundError):
                    self._segment_path(number).unlink()
        return done

    def remove(self) -> None:
        """Delete the directory (everything in it was delivered) and release its lock."""
        for path in self.directory.iterdir():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        with contextlib.suppress(OSError):
            self.directory.rmdir()
        self.release()

    def release(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing the last descriptor releases the flock
            self._lock_fd = -1

    def forget(self) -> None:
        """In a forked child: close the inherited descriptor without unlocking (the parent holds the
        lock through the same open file)."""
        if self._lock_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = -1


class SpoolWriter(SpoolReader):
    """This client's own spool directory: events are appended as they are recorded."""

    def __init__(self, root: Path, *, fsync: bool = False, segment_bytes: int = SEGMENT_BYTES) -> None:
        if fcntl is None:
            raise ValueError("spool_dir needs a POSIX system (fcntl.flock)")
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        building = root / f".new-{name}"  # scanners skip it until it is locked and renamed
        building.mkdir(mode=0o700)
        lock_fd = os.open(building / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(building, root / name)
        super().__init__(root / name, lock_fd)
        self.root = root
        self._fsync, self._segment_bytes = fsync, segment_bytes
        self.pending = 0
        self._peeked_count = 0
        self._write_segment = 1
        self._write_fd = self._open_segment(1)
        self._written = 0  # bytes of the current segment holding complete events

    def _open_segment(self, number: int) -> int:
        return os.open(self._segment_path(number), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _limit(self, segment: int) -> int | None:
        # Never read past what append() finished writing, even while another thread appends.
        return self._written if segment == self._write_segment else None

    def _is_last(self, segment: int) -> bool:
        return segment >= self._write_segment

    def _torn_tail(self, segment: int) -> bool:
        return False  # our own writes are whole lines

    def append(self, payload: bytes) -> None:
        """Write one event; raises OSError (nothing half-written is left) when the disk refuses."""
        try:
            _write_all(self._write_fd, payload + b"\n")
            if self._fsync:
                os.fsync(self._write_fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._write_fd, self._written)
            raise
        self._written += len(payload) + 1
        self.pending += 1
        self.pending_bytes += len(payload)
        if self._written >= self._segment_bytes:
            os.close(self._write_fd)
            self._write_segment += 1
            self._write_fd = self._open_segment(self._write_segment)
            self._written = 0

    def peek(self, max_events: int, max_bytes: int) -> list[bytes]:
        batch = super().peek(max_events, max_bytes)
        self._peeked_count = len(batch)
        return batch

    def settle(self) -> int:
        done = super().settle()
        self.pending -= self._peeked_count
        self.pending_bytes -= done - self._peeked_count  # payload bytes, without the newlines
        self._peeked_count = 0
        return done

    def close(self) -> bool:
        """Release the spool; returns True when it was empty (and is removed)."""
        with contextlib.suppress(OSError):
            os.close(self._write_fd)
        self._write_fd = -1
        if self.pending == 0:
            self.remove()
            return True
        self.release()
        return False

    def forget(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._write_fd)
        self._write_fd = -1
        super().forget()


def adopt_orphans(root: Path, own: Path | None) -> list[SpoolReader]:
    """Lock and return the writer directories under ``root`` whose writer is gone."""
    if fcntl is None or not root.is_dir():
        return []
    adopted = []
    for directory in sorted(root.iterdir()):
        if directory.name.startswith(".") or directory == own or not directory.is_dir():
            continue
        try:
            fd = os.open(directory / _LOCK, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its writer is alive (or another client is draining it)
            os.close(fd)
            continue
        if not directory.exists():  # drained and removed between our listing and our lock
            os.close(fd)
            continue
        adopted.append(SpoolReader(directory, fd))
    return adopted


def _warn(message: str, *args: object) -> None:
    try:
        log.warning(message, *args)
    except Exception:  # noqa: S110 - a closed stderr must not stop delivery
        pass
