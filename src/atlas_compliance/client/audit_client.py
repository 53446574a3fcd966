"""`AuditClient`: send audit events to Atlas Compliance from any Python program.

Events are encoded when they are recorded, wait in a bounded in-memory queue, and a background
thread POSTs them in batches to ``/api/v1/audit/events``. Every event gets its ``eventId`` at
record time and a retried batch carries the same ids, so at-least-once delivery plus the server's
idempotency on ``eventId`` store each event exactly once.

>>> with AuditClient("http://127.0.0.1:8000", "atli_...") as audit:  # doctest: +SKIP
...     audit.record("SELECT email FROM patients WHERE id = %s", userId="u-42", durationMs=12)
"""

from __future__ import annotations

import atexit
import itertools
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
import orjson

from .. import __version__

log = logging.getLogger(__name__)

INGEST_PATH = "/api/v1/audit/events"
MAX_BATCH_EVENTS = 10_000  # the server's limit per request
MAX_REQUEST_BYTES = 8 * 1024 * 1024  # the server refuses bodies over 10 MB; keep a margin
MAX_RETRY_AFTER = 300.0  # seconds; a longer Retry-After is capped
EVENT_FIELDS = frozenset({
    "eventId", "timestamp", "userId", "userLabel", "authMode", "sql", "durationMs", "rowCount", "success",
    "error", "sourceId", "sourceType", "targetHost", "actorKind", "clientId", "toolName", "tablesAccessed",
    "columnsAccessed", "columnsByTable",
})


class AuditClientError(Exception):
    """Events could not be delivered: a flush or close timed out, or the server refused a batch."""


class AuditQueueFull(AuditClientError):
    """The queue holds ``max_queue`` events and no space freed in time (or ``on_full="raise"``)."""


class _Aborted(Exception):
    """close() ran out of time: the sender stops and reports what is left."""


@dataclass(frozen=True)
class FailedEvent:
    """An event the server did not store, and why. ``status`` is None when no answer was received."""

    event: dict[str, Any]
    reason: str
    status: int | None = None


@dataclass(frozen=True)
class ClientStats:
    """Counts since the client was created; ``queued`` is a snapshot."""

    sent: int  # events in requests the server acknowledged (once per event, not per attempt)
    inserted: int  # newly stored by the server
    duplicates: int  # already stored (a retry after a lost answer, or a re-sent eventId)
    rejected: int  # refused one by one by the server (invalid fields), reported to on_error
    failed: int  # in batches refused with a 4xx, given up after max_retries, or left at close
    retries: int  # requests re-sent after a connection error, timeout, 408, 429 or 5xx
    queued: int  # recorded but not yet acknowledged


def new_event_id() -> str:
    """A fresh idempotency key: ``ac-`` and a uuid4 in hex.

    >>> event_id = new_event_id()
    >>> event_id.startswith("ac-"), len(event_id)
    (True, 35)
    """
    return "ac-" + uuid.uuid4().hex


def log_failures(failed: list[FailedEvent]) -> None:
    """The default ``on_error``: one warning per report, with the count and the first reason."""
    log.warning("atlas audit: %d event(s) were not stored: %s", len(failed), failed[0].reason)


class AuditClient:
    """Batch, retry and deliver audit events; thread-safe.

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:8000``.
        ingest_key: an ingest key (``atli_…``).
        batch_size: events per request (at most 10,000; requests also stay under 8 MB).
        flush_interval: seconds a partial batch may wait before it is sent.
        max_queue: events held in memory at most (recorded and not yet acknowledged).
        on_full: ``"block"`` waits for space (``record(..., timeout=)`` bounds the wait),
            ``"raise"`` raises :class:`AuditQueueFull` at once.
        max_retries: re-sends of one batch before it is reported as failed; None retries forever.
        backoff_base, backoff_max: exponential backoff with jitter between retries, in seconds.
        timeout: seconds per HTTP request.
        on_error: called from the sender thread with a list of :class:`FailedEvent`.
        exit_timeout: seconds the interpreter-exit flush may take before reporting what is left.
        transport: an ``httpx`` transport (custom TLS, proxies, …).
    """

    def __init__(self, url: str, ingest_key: str, *, batch_size: int = 500, flush_interval: float = 1.0,
                 max_queue: int = 100_000, on_full: Literal["block", "raise"] = "block",
                 max_retries: int | None = 8, backoff_base: float = 0.25, backoff_max: float = 10.0,
                 timeout: float = 10.0, on_error: Callable[[list[FailedEvent]], None] | None = None,
                 exit_timeout: float | None = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, not {url[:40]!r}")
        if on_full not in ("block", "raise"):
            raise ValueError("on_full must be 'block' or 'raise'")
        if not 1 <= batch_size <= MAX_BATCH_EVENTS:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_EVENTS:,}")
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.endpoint = url.rstrip("/") + INGEST_PATH
        self._batch_size, self._flush_interval = batch_size, flush_interval
        self._max_queue, self._on_full = max_queue, on_full
        self._max_retries, self._backoff_base, self._backoff_max = max_retries, backoff_base, backoff_max
        self._on_error = on_error or log_failures
        self._exit_timeout = exit_timeout
        self._http = httpx.Client(timeout=timeout, transport=transport, headers={
            "Authorization": f"Bearer {ingest_key}", "Content-Type": "application/json",
            "User-Agent": f"atlas-compliance-client/{__version__}"})
        # Encoded events wait here until the server answered for them: the sender reads a batch from
        # the front and removes it only once acknowledged (or reported), so memory stays bounded.
        self._queue: deque[bytes] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._settled = threading.Condition(self._lock)
        self._abort = threading.Event()
        self._recorded = 0  # events ever enqueued
        self._done = 0  # events acknowledged or reported as failed (always a prefix of the recorded ones)
        self._flush_waiters = 0
        self._last_send = 0.0
        self._closed = self._closing = False
        self._running = True
        self._undelivered: list[str] = []  # batch-level failures not yet raised by flush()
        self._counts = dict.fromkeys(("sent", "inserted", "duplicates", "rejected", "failed", "retries"), 0)
        self._thread = threading.Thread(target=self._run, name="atlas-audit-client", daemon=True)
        self._thread.start()
        atexit.register(self._close_at_exit)

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
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                if self._closed:
                    raise AuditClientError("the audit client is closed")
                if not self._running:
                    raise AuditClientError("the audit client's sender thread stopped; see the log")
                if len(self._queue) < self._max_queue:
                    break
                if self._on_full == "raise":
                    raise AuditQueueFull(f"{len(self._queue):,} events are waiting for the server "
                                         f"(max_queue={self._max_queue:,})")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise AuditQueueFull(f"the queue stayed full ({self._max_queue:,} events) for {timeout} s")
                self._not_full.wait(remaining)
            self._queue.append(payload)
            self._recorded += 1
            if len(self._queue) in (1, self._batch_size):  # the sender waits for these two moments only
                self._not_empty.notify()
        return item["eventId"]

    # --- lifecycle ------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Block until every event recorded so far is acknowledged by the server.

        Raises AuditClientError when ``timeout`` passes first, or when events were given up since the
        last flush (batch refused with a 4xx, retries exhausted). Events the server rejected one by
        one went to ``on_error`` and do not raise here.
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
                                               "events are not acknowledged yet")
                    self._settled.wait(remaining)
            finally:
                self._flush_waiters -= 1
            failures, self._undelivered = self._undelivered, []
        if failures:
            raise AuditClientError("; ".join(failures))

    def close(self, timeout: float | None = None) -> None:
        """Flush, stop the sender thread and release the connection. Idempotent.

        When ``timeout`` passes first, the events still queued are reported to ``on_error`` and
        AuditClientError is raised: nothing is dropped silently.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._not_full.notify_all()  # blocked producers raise: the client is closed
        atexit.unregister(self._close_at_exit)
        error: AuditClientError | None = None
        try:
            self.flush(timeout)
        except AuditClientError as exc:
            error = exc
        with self._lock:
            self._closing = True
            if self._queue:
                self._abort.set()
            self._not_empty.notify()
        self._thread.join()
        if self._queue:  # only after a sender crash: what it left is reported, not dropped
            self._settle_failed(len(self._queue), "the sender thread stopped before they were delivered", None)
        self._http.close()
        if error is not None:
            raise error

    def _close_at_exit(self) -> None:
        try:
            self.close(self._exit_timeout)
        except AuditClientError as exc:
            log.warning("atlas audit: at exit: %s", exc)

    def __enter__(self) -> AuditClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def stats(self) -> ClientStats:
        with self._lock:
            return ClientStats(**self._counts, queued=len(self._queue))

    # --- sending (the background thread) --------------------------------------------------------

    def _run(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                self._deliver(batch)
        except _Aborted:
            self._settle_failed(len(self._queue), "the client closed before they were delivered", None)
        except Exception:  # a bug here must neither hang flush() nor lose events silently
            log.exception("atlas audit: the sender thread failed")
            self._settle_failed(len(self._queue), "the sender thread failed", None)
        finally:
            with self._lock:
                self._running = False
                self._settled.notify_all()
                self._not_full.notify_all()

    def _next_batch(self) -> list[bytes] | None:
        """Wait for a full batch, a due partial one, a flush or close; None when closed and empty."""
        with self._lock:
            while True:
                if self._abort.is_set():
                    raise _Aborted
                pending = len(self._queue)
                if pending >= self._batch_size or (pending and (self._flush_waiters or self._closing)):
                    break
                if pending:
                    remaining = self._last_send + self._flush_interval - time.monotonic()
                    if remaining <= 0:
                        break
                    self._not_empty.wait(remaining)
                elif self._closing:
                    return None
                else:
                    self._not_empty.wait()
            batch: list[bytes] = []
            size = 2
            for payload in itertools.islice(self._queue, self._batch_size):
                if batch and size + len(payload) + 1 > MAX_REQUEST_BYTES:
                    break
                batch.append(payload)
                size += len(payload) + 1
            self._last_send = time.monotonic()
            return batch

    def _deliver(self, batch: list[bytes]) -> None:
        """Send one batch until the server answers for it; a 413 splits it in two."""
        body = b"[" + b",".join(batch) + b"]"
        attempt = 0
        while True:
            try:
                response = self._http.post(self.endpoint, content=body)
            except httpx.TransportError as exc:  # refused, reset, timed out: the server may have stored it
                reason, status, wait = f"{type(exc).__name__}: {exc or 'no detail'}", None, None
            else:
                status = response.status_code
                if 200 <= status < 300:
                    self._acknowledge(batch, response)
                    return
                reason = f"HTTP {status}: {_server_message(response)}"
                if status == 413 and len(batch) > 1:
                    half = len(batch) // 2
                    self._deliver(batch[:half])
                    self._deliver(batch[half:])
                    return
                if status < 500 and status not in (408, 429):
                    self._settle_failed(len(batch), f"the server refused the batch ({reason})", status)
                    return
                wait = _retry_after(response) if status in (429, 503) else None
            attempt += 1
            if self._max_retries is not None and attempt > self._max_retries:
                self._settle_failed(len(batch), f"gave up after {self._max_retries} retries ({reason})", status)
                return
            delay = wait if wait is not None else self._backoff(attempt)
            with self._lock:
                self._counts["retries"] += 1
            log.debug("atlas audit: %s; retry %d in %.2f s", reason, attempt, delay)
            if self._abort.wait(delay):
                raise _Aborted

    def _backoff(self, attempt: int) -> float:
        cap = min(self._backoff_max, self._backoff_base * 2 ** (attempt - 1))
        return cap / 2 + random.uniform(0, cap / 2)  # jitter spreads clients that failed together

    def _acknowledge(self, batch: list[bytes], response: httpx.Response) -> None:
        try:
            answer = response.json()
            inserted, duplicates = int(answer["inserted"]), int(answer["duplicates"])
            rejected = [(int(r["index"]), str(r["error"])) for r in answer["rejected"]]
        except (ValueError, KeyError, TypeError):
            self._settle_failed(len(batch), f"unexpected answer from {self.endpoint}: "
                                            f"{response.text[:200]!r}", response.status_code)
            return
        failed = [FailedEvent(orjson.loads(batch[i]), reason, response.status_code)
                  for i, reason in rejected if 0 <= i < len(batch)]
        with self._lock:
            counts = self._counts
            counts["sent"] += len(batch)
            counts["inserted"] += inserted
            counts["duplicates"] += duplicates
            counts["rejected"] += len(failed)
            self._settle(len(batch))
        self._report(failed)

    def _settle_failed(self, count: int, reason: str, status: int | None) -> None:
        """Report the first ``count`` queued events as not stored, then drop them from the queue."""
        with self._lock:
            payloads = list(itertools.islice(self._queue, count))
        if not payloads:
            return
        failed = [FailedEvent(orjson.loads(p), reason, status) for p in payloads]
        with self._lock:
            self._counts["failed"] += len(payloads)
            if len(self._undelivered) < 10:  # flush() names the first few; on_error saw them all
                self._undelivered.append(f"{len(payloads):,} event(s) not stored: {reason}")
            self._settle(len(payloads))
        self._report(failed)

    def _settle(self, count: int) -> None:
        """Drop ``count`` answered events from the front of the queue; the lock is held."""
        for _ in range(count):
            self._queue.popleft()
        self._done += count
        self._not_full.notify_all()
        self._settled.notify_all()

    def _report(self, failed: list[FailedEvent]) -> None:
        if not failed:
            return
        try:
            self._on_error(failed)
        except Exception:  # a user callback must not stop delivery
            log.exception("atlas audit: the on_error callback failed")


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{body['error']}: {body['message']}"
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
