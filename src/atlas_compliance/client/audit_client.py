"""`AuditClient`: send audit events to Atlas Compliance from any Python program.

Events are queued in memory (bounded), sent in batches by a background thread, and retried with
exponential backoff on connection errors, timeouts, 429 and 5xx. Every event gets a stable
`eventId` when it is recorded, and the server stores each id once, so retries never duplicate.

>>> with AuditClient("http://127.0.0.1:8000", "atli_...") as audit:   # doctest: +SKIP
...     audit.record("SELECT email FROM patients WHERE id = 7", userId="u-42", durationMs=12)
"""

from __future__ import annotations

import atexit
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 8 * 1024 * 1024
RETRYABLE = {408, 425, 429, 500, 502, 503, 504}


class AuditClientError(Exception):
    """Events could not be delivered (permanent refusal, or flush timed out)."""


class AuditQueueFull(AuditClientError):
    """The in-memory queue is full and the caller chose not to wait."""


@dataclass
class ClientStats:
    queued: int = 0
    sent: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)


class AuditClient:
    def __init__(self, url: str, ingest_key: str, *, batch_size: int = 500, flush_interval: float = 1.0,
                 max_queue: int = 100_000, on_full: str = "block", max_retries: int = 8, backoff_base: float = 0.25,
                 backoff_max: float = 10.0, timeout: float = 10.0,
                 on_error: Callable[[str, list[dict]], None] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        if on_full not in ("block", "raise"):
            raise ValueError("on_full must be 'block' or 'raise'")
        self.endpoint = url.rstrip("/") + "/api/v1/audit/events"
        self.batch_size = max(1, min(batch_size, 10_000))
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.on_full = on_full
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.on_error = on_error or self._log_error
        self._http = httpx.Client(timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Bearer {ingest_key}",
                                           "Content-Type": "application/json"})
        self._queue: deque[dict] = deque()
        self._in_flight = 0
        self._cond = threading.Condition()
        self._closed = False
        self._stats = ClientStats()
        self._thread = threading.Thread(target=self._run, name="atlas-audit-client", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # --- recording -----------------------------------------------------------------------------
    def record(self, sql: str, *, timeout: float | None = None, **fields: Any) -> str:
        """Queue one executed query; returns its eventId. Fields are the ingest API's (camelCase)."""
        return self.record_event({"sql": sql, **fields}, timeout=timeout)

    def record_event(self, event: dict[str, Any], *, timeout: float | None = None) -> str:
        event = dict(event)
        event.setdefault("eventId", "ac-" + uuid.uuid4().hex)
        event.setdefault("timestamp", datetime.now(UTC).isoformat())
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._closed:
                raise AuditClientError("the client is closed")
            while len(self._queue) + self._in_flight >= self.max_queue:
                if self.on_full == "raise":
                    raise AuditQueueFull(f"{self.max_queue} events are waiting to be sent")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise AuditQueueFull(f"the queue stayed full for {timeout} s")
                self._cond.wait(remaining)
            self._queue.append(event)
            self._stats.queued += 1
            if len(self._queue) >= self.batch_size:
                self._cond.notify_all()
        return event["eventId"]

    # --- lifecycle -----------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> None:
        """Block until every event recorded so far is acknowledged by the server."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()
            while self._queue or self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise AuditClientError(f"{len(self._queue) + self._in_flight} events still unsent after "
                                           f"{timeout} s")
                self._cond.wait(remaining if remaining is not None else 0.5)

    def close(self, timeout: float | None = 30.0) -> None:
        if self._closed:
            return
        try:
            self.flush(timeout)
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._thread.join(timeout=5)
            self._http.close()
            atexit.unregister(self.close)

    def __enter__(self) -> AuditClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stats(self) -> ClientStats:
        with self._cond:
            copy = ClientStats(**{k: v for k, v in vars(self._stats).items() if k != "errors"})
            copy.errors = list(self._stats.errors[-20:])
            copy.queued = len(self._queue) + self._in_flight
            return copy

    # --- sending -------------------------------------------------------------------------------
    def _take_batch(self) -> list[dict]:
        batch: list[dict] = []
        size = 2
        while self._queue and len(batch) < self.batch_size:
            encoded = len(orjson.dumps(self._queue[0])) + 1
            if batch and size + encoded > MAX_REQUEST_BYTES:
                break
            batch.append(self._queue.popleft())
            size += encoded
        self._in_flight = len(batch)
        return batch

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._closed:
                    self._cond.wait(self.flush_interval)
                if not self._queue:
                    if self._closed:
                        return
                    continue
                batch = self._take_batch()
            try:
                self._deliver(batch)
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()

    def _deliver(self, batch: list[dict]) -> None:
        body = orjson.dumps(batch)
        attempt = 0
        while True:
            try:
                response = self._http.post(self.endpoint, content=body)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                retry_after = None
            else:
                if response.status_code < 300:
                    result = response.json()
                    with self._cond:
                        self._stats.sent += len(batch)
                        self._stats.inserted += result.get("inserted", 0)
                        self._stats.duplicates += result.get("duplicates", 0)
                        self._stats.rejected += len(result.get("rejected", []))
                    rejected = [batch[r["index"]] for r in result.get("rejected", []) if r["index"] < len(batch)]
                    if rejected:
                        reasons = "; ".join(r["error"] for r in result["rejected"][:3])
                        self._fail(f"{len(rejected)} events rejected: {reasons}", rejected, count=False)
                    return
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code not in RETRYABLE:
                    self._fail(problem, batch)
                    return
                retry_after = _retry_after(response)
            attempt += 1
            if attempt > self.max_retries and self.max_retries >= 0:
                self._fail(f"gave up after {attempt} attempts: {problem}", batch)
                return
            with self._cond:
                self._stats.retries += 1
                if self._closed and self.max_retries < 0:
                    return
            delay = retry_after or min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
            time.sleep(delay * (0.5 + random.random() / 2) if retry_after is None else delay)

    def _fail(self, message: str, events: list[dict], count: bool = True) -> None:
        with self._cond:
            if count:
                self._stats.failed += len(events)
            self._stats.errors.append(message)
        try:
            self.on_error(message, events)
        except Exception:  # a user callback must not kill the sender thread
            log.exception("AuditClient on_error callback failed")

    @staticmethod
    def _log_error(message: str, events: list[dict]) -> None:
        log.warning("atlas audit client: %s (%d events)", message, len(events))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.replace(".", "", 1).isdigit() else None
