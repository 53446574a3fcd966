"""`AuditClient`: send audit events to Atlas Compliance from any Python program.

Events are encoded when they are recorded and wait in a backlog (bounded memory, or a spool of
files that survives the process) until a background thread has POSTed them, in batches, to
``/api/v1/audit/events`` and the server answered. Every event gets its ``eventId`` at record time
and a retried batch carries the same ids, so at-least-once delivery plus the server's idempotency
on ``eventId`` store each event exactly once. The client keeps working in a forked child (its
sender is re-created there).

>>> with AuditClient("http://127.0.0.1:8000", "atli_...") as audit:  # doctest: +SKIP
...     audit.record("SELECT email FROM patients WHERE id = %s", userId="u-42", durationMs=12)
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson

from .. import __version__
from .backlog import MemoryBacklog, SpoolReader, SpoolWriter, adopt_orphans, spool_supported
from .delivery import (
    MAX_BATCH_EVENTS,
    MAX_REQUEST_BYTES,
    Aborted,
    AuditClientError,
    AuditQueueFull,
    BatchAnswer,
    ClientStats,
    FailedEvent,
    Sender,
    log_failures,
    safe_log,
)

__all__ = ["AuditClient", "AuditClientError", "AuditQueueFull", "ClientStats", "FailedEvent", "new_event_id"]

log = logging.getLogger(__name__)

SENDER_THREAD = "atlas-audit-client"
ORPHAN_SCAN_SECONDS = 30.0
EVENT_FIELDS = frozenset({
    "eventId", "timestamp", "userId", "userLabel", "authMode", "sql", "durationMs", "rowCount", "success",
    "error", "sourceId", "sourceType", "targetHost", "actorKind", "clientId", "toolName", "tablesAccessed",
    "columnsAccessed", "columnsByTable", "transactionOutcome",
})


def new_event_id() -> str:
    """A fresh idempotency key: ``ac-`` and a uuid4 in hex.

    >>> event_id = new_event_id()
    >>> event_id.startswith("ac-"), len(event_id)
    (True, 35)
    """
    return "ac-" + uuid.uuid4().hex


class _QuietSenderRequests(logging.Filter):
    """httpx logs every request at INFO; the sender's requests would land in the application's logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not record.threadName.startswith(SENDER_THREAD)


logging.getLogger("httpx").addFilter(_QuietSenderRequests())


class AuditClient:
    """Batch, retry and deliver audit events; thread-safe and fork-safe.

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:8000``.
        ingest_key: an ingest key (``atli_…``).
        batch_size: events per request (at most 10,000; requests also stay under 8 MB).
        flush_interval: seconds a partial batch may wait before it is sent.
        max_queue, max_queue_bytes: events (and their encoded bytes) held in memory at most, recorded
            and not yet acknowledged; without a spool this is what an outage can absorb.
        on_full: ``"block"`` waits for space (``record(..., timeout=)`` bounds the wait),
            ``"raise"`` raises :class:`AuditQueueFull` at once.
        max_retries: re-sends of one batch before it is reported as failed; None (the default)
            retries until the server answers, for as long as the backlog has room.
        backoff_base, backoff_max: exponential backoff with jitter between retries, in seconds.
        timeout: seconds per HTTP request.
        on_error: called from the sender thread with a list of :class:`FailedEvent`.
        exit_timeout: the most seconds the interpreter-exit flush may take.
        exit_seconds_per_event: the exit flush waits 0.5 s plus this per pending event (capped at
            ``exit_timeout``); nothing pending, no wait.
        spool_dir: keep the backlog in files under this directory instead of memory: events survive
            the process (a crash, ``kill -9``, a restart) and any client started with the same
            directory sends what a dead process left.
        spool_max_bytes: the spool's ceiling (encoded events not yet acknowledged).
        spool_fsync: fsync every event (survives power loss too, at the cost of a disk flush each).
        transport: an ``httpx`` transport (custom TLS, proxies, …).
    """

    def __init__(self, url: str, ingest_key: str, *, batch_size: int = 500, flush_interval: float = 1.0,
                 max_queue: int = 100_000, max_queue_bytes: int = 64 * 1024 * 1024,
                 on_full: Literal["block", "raise"] = "block", max_retries: int | None = None,
                 backoff_base: float = 0.25, backoff_max: float = 10.0, timeout: float = 10.0,
                 on_error: Callable[[list[FailedEvent]], None] | None = None, exit_timeout: float | None = 10.0,
                 exit_seconds_per_event: float = 0.002, spool_dir: str | os.PathLike[str] | None = None,
                 spool_max_bytes: int = 1024 * 1024 * 1024, spool_fsync: bool = False,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, not {url[:40]!r}")
        if on_full not in ("block", "raise"):
            raise ValueError("on_full must be 'block' or 'raise'")
        if not 1 <= batch_size <= MAX_BATCH_EVENTS:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_EVENTS:,}")
        if max_queue < 1 or max_queue_bytes < 1 or spool_max_bytes < 1:
            raise ValueError("max_queue, max_queue_bytes and spool_max_bytes must be at least 1")
        if spool_dir is not None and not spool_supported():
            raise ValueError("spool_dir needs a POSIX system (fcntl.flock)")
        self._batch_size, self._flush_interval = batch_size, flush_interval
        self._max_queue, self._max_queue_bytes, self._on_full = max_queue, max_queue_bytes, on_full
        self._on_error = on_error or log_failures
        self._exit_timeout, self._exit_seconds_per_event = exit_timeout, exit_seconds_per_event
        self._spool_root = None if spool_dir is None else Path(spool_dir)
        self._spool_max_bytes, self._spool_fsync = spool_max_bytes, spool_fsync
        self._http_options = {"timeout": timeout, "transport": transport, "headers": {
            "Authorization": f"Bearer {ingest_key}", "Content-Type": "application/json",
            "User-Agent": f"atlas-compliance-client/{__version__}"}}
        self._retry_options = {"max_retries": max_retries, "backoff_base": backoff_base,
                               "backoff_max": backoff_max}
        self.endpoint = url.rstrip("/") + "/api/v1/audit/events"
        self._closed = False
        self._start()
        _clients.add(self)
        atexit.register(self._close_at_exit)
        self._register_exit_finalizer()
        multiprocessing.util.register_after_fork(self, AuditClient._register_exit_finalizer)

    def _start(self) -> None:
        """(Re)build the per-process state: locks, backlog, HTTP connection, sender thread."""
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._settled = threading.Condition(self._lock)
        self._abort = threading.Event()
        self._backlog: MemoryBacklog | SpoolWriter = (
            MemoryBacklog() if self._spool_root is None or self._closed  # (closed: a fork of a closed client)
            else SpoolWriter(self._spool_root, fsync=self._spool_fsync))
        self._orphans: list[SpoolReader] = []
        self._last_scan = float("-inf")
        self._recorded = 0  # events ever recorded by this process
        self._done = 0  # of those, answered for or given up (always the oldest ones)
        self._flush_waiters = 0
        self._last_send = 0.0
        self._closing = False
        self._running = not self._closed
        self._undelivered: list[str] = []  # batch-level failures not yet raised by flush()
        self._counts = dict.fromkeys(
            ("sent", "inserted", "duplicates", "rejected", "failed", "retries", "recovered"), 0)
        self._sender = Sender(httpx.Client(**self._http_options), self.endpoint, abort=self._abort,
                              on_retry=self._count_retry, **self._retry_options)
        self._thread = threading.Thread(target=self._run, name=SENDER_THREAD, daemon=True)
        if self._running:
            self._thread.start()

    def _after_fork_in_child(self) -> None:
        # The parent keeps sending what it recorded; the child starts empty, with its own spool file,
        # connection and thread (threads do not survive a fork, and sharing the parent's socket or
        # file would corrupt both). The parent's objects are dropped, never closed, from here.
        self._backlog.forget()
        for orphan in self._orphans:
            orphan.forget()
        self._start()

    def _register_exit_finalizer(self) -> None:
        # multiprocessing children end with os._exit, which skips atexit; they run these finalizers.
        multiprocessing.util.Finalize(self, self._close_at_exit, exitpriority=0)

    # --- recording ------------------------------------------------------------------------------

    def record(self, sql: str, *, timeout: float | None = None, **fields: Any) -> str:
        """Queue one executed query; returns its ``eventId``. Fields use the API's names (camelCase).

        An unknown field name raises TypeError here rather than a rejection later.
        """
        unknown = set(fields) - EVENT_FIELDS
        if unknown:
            raise TypeError(f"unknown audit event field(s): {', '.join(sorted(unknown))}")
        return self.record_event({**fields, "sql": sql}, timeout=timeout)

    def record_event(self, event: Mapping[str, Any], *, timeout: float | None = None) -> str:
        """Queue one event (the API's JSON object); returns its ``eventId``.

        ``eventId`` (``ac-`` + uuid4) and ``timestamp`` (now, UTC) are filled in when absent; an
        aware ``datetime`` timestamp is accepted. With ``on_full="block"`` the call waits for
        space, at most ``timeout`` seconds (then :class:`AuditQueueFull`).
        """
        if not isinstance(event.get("sql"), str):
            raise ValueError("an audit event needs 'sql' (a string)")
        item = dict(event)
        if item.get("eventId") is None:
            item["eventId"] = new_event_id()
        stamp = item.get("timestamp")
        if stamp is None:
            item["timestamp"] = datetime.now(UTC).isoformat()
        elif isinstance(stamp, datetime):
            if stamp.tzinfo is None:
                raise ValueError("timestamp needs a UTC offset (an aware datetime)")
            item["timestamp"] = stamp.isoformat()
        payload = orjson.dumps(item)
        if len(payload) > MAX_REQUEST_BYTES - 2:
            raise ValueError(f"the event is {len(payload):,} bytes; one request carries at most "
                             f"{MAX_REQUEST_BYTES:,}")
        self._enqueue(payload, timeout)
        return item["eventId"]

    def _has_room(self, size: int) -> bool:
        backlog = self._backlog
        if isinstance(backlog, SpoolWriter):
            return backlog.pending == 0 or backlog.pending_bytes + size <= self._spool_max_bytes
        return backlog.pending == 0 or (backlog.pending < self._max_queue
                                        and backlog.pending_bytes + size <= self._max_queue_bytes)

    def _enqueue(self, payload: bytes, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                if self._closed:
                    raise AuditClientError("the audit client is closed")
                if not self._running:
                    raise AuditClientError("the audit client's sender thread stopped; see the log")
                if self._has_room(len(payload)):
                    break
                if self._spool_root is not None:
                    where, ceiling = "in the spool", f"spool_max_bytes={self._spool_max_bytes:,}"
                else:
                    where = "in memory"
                    ceiling = f"max_queue={self._max_queue:,}, max_queue_bytes={self._max_queue_bytes:,}"
                if self._on_full == "raise":
                    raise AuditQueueFull(f"{self._backlog.pending:,} events are waiting for the server {where} "
                                         f"({ceiling})")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise AuditQueueFull(f"the backlog stayed full ({self._backlog.pending:,} events {where}) "
                                         f"for {timeout} s")
                self._not_full.wait(remaining)
            try:
                self._backlog.append(payload)
            except OSError as exc:
                raise AuditClientError(f"could not write the event to the spool: {exc}") from exc
            self._recorded += 1
            if self._backlog.pending in (1, self._batch_size):  # the sender waits for these two moments only
                self._not_empty.notify()

    # --- lifecycle ------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Block until every event recorded so far is acknowledged by the server.

        Raises AuditClientError when ``timeout`` passes first, or when events were given up since the
        last flush (batch refused with a 4xx, or ``max_retries`` exhausted). Events the server
        rejected one by one went to ``on_error`` and do not raise here.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._recorded
            self._flush_waiters += 1
            self._not_empty.notify()
            try:
                while self._done < target:
                    if not self._running:
                        raise AuditClientError("the sender thread stopped; see the log")
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise AuditClientError(f"flush timed out after {timeout} s: {target - self._done:,} "
                                               f"events are not acknowledged yet{self._last_error()}",
                                               undelivered=target - self._done)
                    self._settled.wait(remaining)
            finally:
                self._flush_waiters -= 1
            failures, self._undelivered = self._undelivered, []
        if failures:
            raise AuditClientError("; ".join(failures))

    def close(self, timeout: float | None = None) -> None:
        """Flush, stop the sender thread and release the connection. Idempotent.

        When ``timeout`` passes first, AuditClientError says exactly what was not delivered (its
        ``undelivered`` is the count): without a spool those events go to ``on_error``; with one
        they stay in the spool for the next client that uses it.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._not_full.notify_all()  # blocked producers raise: the client is closed
        atexit.unregister(self._close_at_exit)
        deadline = None if timeout is None else time.monotonic() + timeout
        error: AuditClientError | None = None
        try:
            self.flush(timeout)
        except AuditClientError as exc:
            error = exc
        with self._lock:
            self._closing = True
            if self._backlog.pending:
                self._abort.set()
            self._not_empty.notify()
        # A request in flight ends within the HTTP timeout; past our deadline we stop waiting for it.
        self._thread.join(None if deadline is None else max(0.05, deadline - time.monotonic()))
        left = self._abandon()
        self._sender.close()
        if left:
            error = AuditClientError(left[0], undelivered=left[1])
        if error is not None:
            raise error

    def _abandon(self) -> tuple[str, int] | None:
        """Stop for good; returns what was left undelivered (message, count), or None."""
        with self._lock:
            self._running = False
            backlog = self._backlog
            if isinstance(backlog, SpoolWriter):
                pending = backlog.pending
                kept = not backlog.close()
                for orphan in self._orphans:
                    orphan.release()
                self._orphans = []
                self._settled.notify_all()
                if kept:
                    return (f"{pending:,} event(s) were not delivered{self._last_error()}; they stay in the spool "
                            f"{backlog.directory} and the next AuditClient started with spool_dir="
                            f"{str(self._spool_root)!r} sends them", pending)
                return None
            payloads = backlog.take_all()
            self._done += len(payloads)
            self._counts["failed"] += len(payloads)
            self._settled.notify_all()
        if not payloads:
            return None
        reason = f"the client closed before they were delivered{self._last_error()}"
        self._report([FailedEvent(orjson.loads(p), reason, None) for p in payloads])
        return f"{len(payloads):,} event(s) were not delivered: {reason}; on_error received them", len(payloads)

    def _last_error(self) -> str:
        return f" (last error: {self._sender.last_error})" if self._sender.last_error else ""

    def _close_at_exit(self) -> None:
        if os.getpid() != self._pid:  # a forked child whose at-fork hook did not run
            return
        pending = self._backlog.pending
        wait = 0.0 if pending == 0 else 0.5 + pending * self._exit_seconds_per_event
        if self._exit_timeout is not None:
            wait = min(wait, self._exit_timeout)
        try:
            self.close(wait)
        except AuditClientError as exc:
            safe_log(logging.WARNING, "atlas audit: at exit: %s", exc)

    def __enter__(self) -> AuditClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def stats(self) -> ClientStats:
        with self._lock:
            return ClientStats(**self._counts, queued=self._backlog.pending)

    # --- sending (the background thread) --------------------------------------------------------

    def _count_retry(self) -> None:
        with self._lock:
            self._counts["retries"] += 1

    def _run(self) -> None:
        try:
            while (work := self._next_batch()) is not None:
                source, batch = work
                answer = self._sender.deliver(batch)
                self._settle(source, batch, answer)
        except Aborted:
            pass  # close() ran out of time; it reports what is left
        except Exception:  # a bug here must neither hang flush() nor lose events silently
            safe_log(logging.ERROR, "atlas audit: the sender thread failed", exc_info=True)
        finally:
            with self._lock:
                self._running = False
                self._settled.notify_all()
                self._not_full.notify_all()

    def _scan_orphans(self) -> None:
        """Adopt the spools of dead processes (the lock is held)."""
        self._last_scan = time.monotonic()
        if self._spool_root is not None and not self._closing:
            own = self._backlog.directory if isinstance(self._backlog, SpoolWriter) else None
            self._orphans.extend(adopt_orphans(self._spool_root, own))

    def _next_batch(self) -> tuple[MemoryBacklog | SpoolReader, list[bytes]] | None:
        """Wait for a full batch, a due partial one, a flush or close; None when closed and empty."""
        with self._lock:
            while True:
                if self._abort.is_set():
                    raise Aborted
                if self._spool_root is not None and time.monotonic() - self._last_scan >= ORPHAN_SCAN_SECONDS:
                    self._scan_orphans()
                while self._orphans:  # what dead processes left goes first: it is older
                    batch = self._orphans[0].peek(self._batch_size, MAX_REQUEST_BYTES)
                    if batch:
                        return self._orphans[0], batch
                    self._orphans.pop(0).remove()
                pending = self._backlog.pending
                due = pending >= self._batch_size or (pending and (self._flush_waiters or self._closing))
                if pending and not due:
                    remaining = self._last_send + self._flush_interval - time.monotonic()
                    due = remaining <= 0
                    if not due:
                        self._not_empty.wait(remaining)
                        continue
                if due:
                    self._last_send = time.monotonic()
                    batch = self._backlog.peek(self._batch_size, MAX_REQUEST_BYTES)
                    if batch:
                        return self._backlog, batch
                    self._lose_missing()
                elif self._closing:
                    return None
                else:
                    self._not_empty.wait(ORPHAN_SCAN_SECONDS if self._spool_root is not None else None)

    def _lose_missing(self) -> None:
        """Events counted in the spool whose files went away (removed by hand): say so, do not spin."""
        backlog = self._backlog
        lost = backlog.pending
        if not isinstance(backlog, SpoolWriter):  # a memory backlog always has what it counts
            raise RuntimeError("the in-memory backlog lost track of its events")
        safe_log(logging.ERROR, "atlas audit: %d event(s) are missing from the spool %s", lost, backlog.directory)
        backlog.pending = backlog.pending_bytes = 0
        self._done += lost
        self._counts["failed"] += lost
        self._not_full.notify_all()
        self._settled.notify_all()

    def _settle(self, source: MemoryBacklog | SpoolReader, batch: list[bytes], answer: BatchAnswer) -> None:
        failed = [FailedEvent(orjson.loads(batch[i]), reason, status) for i, reason, status, _ in answer.failures]
        refused = [f for f, (*_, one_by_one) in zip(failed, answer.failures, strict=True) if not one_by_one]
        with self._lock:
            if not self._running and source is self._backlog:
                return  # close() gave up on these already
            source.settle()
            counts = self._counts
            counts["sent"] += answer.acknowledged
            counts["inserted"] += answer.inserted
            counts["duplicates"] += answer.duplicates
            counts["rejected"] += len(failed) - len(refused)
            counts["failed"] += len(refused)
            if source is self._backlog:
                self._done += len(batch)
            else:
                counts["recovered"] += len(batch)
            if refused and len(self._undelivered) < 10:  # flush() names the first few; on_error saw them all
                self._undelivered.append(f"{len(refused):,} event(s) not stored: {refused[0].reason}")
            self._not_full.notify_all()
            self._settled.notify_all()
        self._report(failed)

    def _report(self, failed: list[FailedEvent]) -> None:
        if not failed:
            return
        try:
            self._on_error(failed)
        except Exception:  # a user callback must not stop delivery
            safe_log(logging.ERROR, "atlas audit: the on_error callback failed", exc_info=True)


_clients: weakref.WeakSet[AuditClient] = weakref.WeakSet()


def _reinit_clients_in_child() -> None:
    for client in list(_clients):
        try:
            client._after_fork_in_child()
        except Exception:
            safe_log(logging.ERROR, "atlas audit: could not restart the client after fork", exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_clients_in_child)
