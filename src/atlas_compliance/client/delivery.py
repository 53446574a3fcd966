"""Delivering one batch to ``POST /api/v1/audit/events``: retries, backoff, splitting, the answer.

The :class:`Sender` is used by the client's background thread only. It never drops anything
itself: it returns a :class:`BatchAnswer` saying, per event, whether the server stored it (or
already had it), rejected it, or refused the whole request, and the client settles its backlog
from that.
"""

from __future__ import annotations

# Resolving a host name imports the "idna" codec the first time. If the application forks while the
# sender thread is in that import, the child inherits the half-held import lock and every lookup there
# fails with "unknown encoding: idna". Importing it now, before any sender thread exists, closes that gap.
import encodings.idna  # noqa: F401
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

log = logging.getLogger("atlas_compliance.client")

MAX_BATCH_EVENTS = 10_000  # the server's limit per request
MAX_REQUEST_BYTES = 8 * 1024 * 1024  # the server refuses bodies over 10 MB; keep a margin
MAX_RETRY_AFTER = 300.0  # seconds; a longer Retry-After is capped


class AuditClientError(Exception):
    """Events could not be delivered: a flush or close timed out, or the server refused a batch.

    ``undelivered`` is the number of events the message is about (0 when it does not count them).
    """

    def __init__(self, message: str, *, undelivered: int = 0) -> None:
        super().__init__(message)
        self.undelivered = undelivered


class AuditQueueFull(AuditClientError):
    """The backlog is at its ceiling and no space freed in time (or ``on_full="raise"``)."""


class Aborted(Exception):
    """close() ran out of time: the sender stops where it is."""


@dataclass(frozen=True)
class FailedEvent:
    """An event the server did not store, and why. ``status`` is None when no answer was received."""

    event: dict[str, Any]
    reason: str
    status: int | None = None


@dataclass(frozen=True)
class ClientStats:
    """Counts since the client was created (in this process); ``queued`` is a snapshot."""

    sent: int  # events in requests the server acknowledged (once per event, not per attempt)
    inserted: int  # newly stored by the server
    duplicates: int  # already stored (a retry after a lost answer, or a re-sent eventId)
    rejected: int  # refused one by one by the server (invalid fields), reported to on_error
    failed: int  # in batches refused with a 4xx, given up after max_retries, or left at close
    retries: int  # requests re-sent after a connection error, timeout, 408, 429 or 5xx
    recovered: int  # events sent from the spools of processes that died before sending them
    queued: int  # recorded by this process but not yet acknowledged


@dataclass
class BatchAnswer:
    """What became of one batch: counts from the server, and ``failures`` as (index in the batch,
    reason, HTTP status or None, True when the server rejected that event on its own)."""

    acknowledged: int = 0
    inserted: int = 0
    duplicates: int = 0
    failures: list[tuple[int, str, int | None, bool]] = field(default_factory=list)

    def extend(self, other: BatchAnswer, offset: int) -> None:
        self.acknowledged += other.acknowledged
        self.inserted += other.inserted
        self.duplicates += other.duplicates
        self.failures.extend((i + offset, reason, status, one) for i, reason, status, one in other.failures)


def safe_log(level: int, message: str, *args: object, exc_info: bool = False) -> None:
    """Log through ``logging`` only, and never fail: a host that closed stderr makes logging's own
    fallback raise, and that must not stop delivery or break interpreter exit."""
    try:
        log.log(level, message, *args, exc_info=exc_info)
    except Exception:  # noqa: S110 - there is nowhere left to report it
        pass


def log_failures(failed: list[FailedEvent]) -> None:
    """The default ``on_error``: one warning per report, with the count and the first reason."""
    safe_log(logging.WARNING, "atlas audit: %d event(s) were not stored: %s", len(failed), failed[0].reason)


class Sender:
    """POSTs batches until the server answers for them (or ``max_retries`` runs out)."""

    def __init__(self, http: httpx.Client, endpoint: str, *, abort: threading.Event, on_retry: Callable[[], None],
                 max_retries: int | None, backoff_base: float, backoff_max: float) -> None:
        self._http, self.endpoint, self._abort, self._on_retry = http, endpoint, abort, on_retry
        self._max_retries, self._backoff_base, self._backoff_max = max_retries, backoff_base, backoff_max
        self.last_error: str | None = None  # the latest failed attempt, cleared by the next success

    def pause(self, seconds: float) -> bool:
        """Wait between retries; True when close() aborted the wait. (Tests replace it to move a clock.)"""
        return self._abort.wait(seconds)

    def close(self) -> None:
        try:
            self._http.close()
        except Exception:  # noqa: S110 - a request still in flight after close() gave up on it
            pass

    def deliver(self, batch: list[bytes]) -> BatchAnswer:
        """Send ``batch`` until the server answers for it; a 413 splits it in two."""
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
                    self.last_error = None
                    return self._answer(batch, response)
                reason = f"HTTP {status}: {_server_message(response)}"
                if status == 413 and len(batch) > 1:
                    half = len(batch) // 2
                    answer = self.deliver(batch[:half])
                    answer.extend(self.deliver(batch[half:]), half)
                    return answer
                if status < 500 and status not in (408, 429):
                    self.last_error = reason
                    return _all_failed(batch, f"the server refused the batch ({reason})", status)
                wait = _retry_after(response) if status in (429, 503) else None
            self.last_error = reason
            attempt += 1
            if self._max_retries is not None and attempt > self._max_retries:
                return _all_failed(batch, f"gave up after {self._max_retries} retries ({reason})", status)
            delay = wait if wait is not None else self._backoff(attempt)
            self._on_retry()
            safe_log(logging.DEBUG, "atlas audit: %s; retry %d in %.2f s", reason, attempt, delay)
            if self.pause(delay):
                raise Aborted

    def _backoff(self, attempt: int) -> float:
        cap = min(self._backoff_max, self._backoff_base * 2 ** min(attempt - 1, 60))
        return cap / 2 + random.uniform(0, cap / 2)  # noqa: S311 - jitter spreads clients that failed together

    def _answer(self, batch: list[bytes], response: httpx.Response) -> BatchAnswer:
        try:
            answer = response.json()
            inserted, duplicates = int(answer["inserted"]), int(answer["duplicates"])
            rejected = [(int(r["index"]), str(r["error"])) for r in answer["rejected"]]
        except (ValueError, KeyError, TypeError):
            self.last_error = f"unexpected answer: {response.text[:200]!r}"
            return _all_failed(batch, f"unexpected answer from {self.endpoint}: {response.text[:200]!r}",
                               response.status_code)
        failures = [(i, reason, response.status_code, True) for i, reason in rejected if 0 <= i < len(batch)]
        return BatchAnswer(len(batch), inserted, duplicates, failures)


def _all_failed(batch: list[bytes], reason: str, status: int | None) -> BatchAnswer:
    return BatchAnswer(failures=[(i, reason, status, False) for i in range(len(batch))])


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
