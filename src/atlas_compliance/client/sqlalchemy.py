"""Record every statement a SQLAlchemy engine executes, through an :class:`AuditClient`.

The SQL is recorded as sent to the driver, **with its placeholders** (``%(email)s``, ``?``):
parameter values are never recorded, because they often hold the very personal data the audit
trail protects. Each event says how its transaction ended (``transactionOutcome``; see
:mod:`.transactions`).

>>> handle = instrument_engine(engine, audit, user=lambda: current_user_id())  # doctest: +SKIP
>>> handle.remove()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from .audit_client import AuditClient
from .transactions import ROLLED_BACK, OutcomeTracker, attach, detach, transaction_control

log = logging.getLogger(__name__)

ACTOR_KINDS = ("human", "agent", "mcp", "scheduler", "api_key")
_SOURCE_TYPES = {"postgresql": "postgres"}  # other SQLAlchemy dialect names are the server's names already
# Per-statement state lives on the statement's execution context (or, for the few statements
# SQLAlchemy runs without one, in a dict keyed by connection): statements that overlap on one
# connection (asyncio.gather on one AsyncSession, a Session shared by threads) each keep their own.
_STARTED = "_atlas_audit_started"
_MAX_INT = 2_147_483_647
MAX_HELD_STATEMENTS = 10_000
WARNING_INTERVAL = 60.0  # seconds between two warnings of the same kind

UserValue = str | Callable[[], str | None] | None


class EngineInstrumentation:
    """The listeners :func:`instrument_engine` attached; ``remove()`` detaches them."""

    def __init__(self, engine: Engine, listeners: list[tuple[Any, str, Callable[..., Any]]],
                 tracker: OutcomeTracker) -> None:
        self.engine = engine
        self._listeners = listeners
        self._tracker: OutcomeTracker | None = tracker

    @property
    def active(self) -> bool:
        return bool(self._listeners)

    def remove(self) -> None:
        """Stop recording this engine's statements; events held for open transactions are recorded
        with the outcome ``unknown``. Idempotent."""
        for target, name, listener in self._listeners:
            if event.contains(target, name, listener):
                event.remove(target, name, listener)
        self._listeners = []
        if self._tracker is not None:
            detach(self.engine.dialect, self._tracker)
            self._tracker.close()
            self._tracker = None


class _RateLimitedWarnings:
    """One warning per kind per minute, with the number of occurrences in between: a misconfigured
    ``user`` callable must not write a line per statement into the application's log."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}

    def warn(self, kind: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._last.get(kind, (float("-inf"), 0))
            if now - last < WARNING_INTERVAL:
                self._last[kind] = (last, suppressed + 1)
                return
            self._last[kind] = (now, 0)
        more = f" ({suppressed:,} more since the last warning)" if suppressed else ""
        try:
            log.warning("atlas audit: %s%s", message, more)
        except Exception:  # noqa: S110 - a closed stderr must not break the application's query
            pass


def instrument_engine(engine: Engine, client: AuditClient, *, user: UserValue = None,
                      source_id: str | None = None, source_type: str | None = None,
                      target_host: str | None = None, actor_kind: str | None = "human",
                      user_label: UserValue = None, transaction_outcomes: bool = True,
                      max_held_statements: int = MAX_HELD_STATEMENTS) -> EngineInstrumentation:
    """Record each statement ``engine`` executes as an audit event sent through ``client``.

    Each event carries the statement text with placeholders, ``durationMs``, ``rowCount`` (the
    cursor's rowcount when the driver reports one), ``success`` and, on failure, the first line of
    the error. ``user`` and ``user_label`` are strings or callables evaluated per statement (e.g. the
    web request's user); a callable that raises leaves the event without that value and says so in
    ``userLabel``. ``source_type`` defaults to the dialect (``postgresql`` → ``postgres``),
    ``target_host`` to the URL's host. For an ``AsyncEngine`` pass ``async_engine.sync_engine``.

    With ``transaction_outcomes`` (the default) the events of a transaction are held until it ends
    and carry ``transactionOutcome``; transaction-control statements (``SAVEPOINT``, ``RELEASE``,
    ``ROLLBACK TO``, ``COMMIT``, …) are not recorded, they mark outcomes. A transaction holding
    more than ``max_held_statements`` sends its statements at once, as ``unknown``. With
    ``transaction_outcomes=False`` every statement is sent when it finishes, without an outcome.

    Recording never breaks the application: failures to record are logged. With an ``AuditClient``
    whose ``on_full="block"``, a full backlog makes statements wait for space (bounded memory).
    """
    if actor_kind is not None and actor_kind not in ACTOR_KINDS:
        raise ValueError(f"actor_kind must be one of {', '.join(ACTOR_KINDS)}")
    if max_held_statements < 1:
        raise ValueError("max_held_statements must be at least 1")
    fixed = {
        "sourceId": source_id,
        "sourceType": source_type or _SOURCE_TYPES.get(engine.dialect.name, engine.dialect.name),
        "targetHost": target_host if target_host is not None else engine.url.host,
        "actorKind": actor_kind,
    }
    fixed = {k: v for k, v in fixed.items() if v is not None}
    warnings = _RateLimitedWarnings()
    started_without_context: dict[int, float] = {}

    def emit(events: list[dict[str, Any]], outcome: str | None) -> None:
        for fields in events:
            if outcome is not None:
                fields.setdefault("transactionOutcome", outcome)  # statements undone by ROLLBACK TO keep theirs
            try:
                client.record_event(fields)
            except Exception as exc:  # auditing must not fail the application's query
                warnings.warn("record", f"could not record a statement: {type(exc).__name__}: {exc}")

    tracker = OutcomeTracker(emit, hold=transaction_outcomes, max_held=max_held_statements,
                             errors_abort=engine.dialect.name == "postgresql")

    def build(statement: str, started: float, row_count: Any, error: str | None) -> dict[str, Any]:
        fields: dict[str, Any] = {
            **fixed, "sql": statement, "success": error is None,
            "durationMs": min(_MAX_INT, max(0, round((time.perf_counter() - started) * 1000))),
            "timestamp": datetime.now(UTC).isoformat(),  # when it ran, not when its transaction ended
        }
        if isinstance(row_count, int) and 0 <= row_count <= _MAX_INT:
            fields["rowCount"] = row_count
        if error is not None:
            fields["error"] = error
        for name, value in (("userId", user), ("userLabel", user_label)):
            try:
                resolved = value() if callable(value) else value
            except Exception as exc:
                what = "user" if name == "userId" else "user_label"
                note = f"{what} unknown: the {what} callable raised {type(exc).__name__}: {exc}"
                fields["userLabel"] = f"{fields['userLabel']}; {note}" if "userLabel" in fields else note
                warnings.warn(name, f"{note} (the statement is recorded without it)")
                continue
            if resolved is not None:
                fields[name] = str(resolved)
        if len(fields.get("userLabel", "")) > 1000:
            fields["userLabel"] = fields["userLabel"][:1000]
        return fields

    def take_started(context: Any, conn: Any) -> float | None:
        if context is not None:
            started = context.__dict__.pop(_STARTED, None)
            if started is not None:
                return started
        return started_without_context.pop(id(conn), None) if started_without_context else None

    def before_cursor_execute(conn, cursor, statement, parameters, context, executemany) -> None:
        if context is not None:
            context.__dict__[_STARTED] = time.perf_counter()
        else:
            started_without_context[id(conn)] = time.perf_counter()

    def after_cursor_execute(conn, cursor, statement, parameters, context, executemany) -> None:
        started = take_started(context, conn)
        if started is None or not statement:
            return
        try:
            control = transaction_control(statement) if transaction_outcomes else None
            if control is not None:
                tracker.control(conn, *control)
                return
            tracker.add(conn, build(statement, started, getattr(cursor, "rowcount", None), None), failed=False)
        except Exception as exc:  # auditing must not fail the application's query
            warnings.warn("record", f"could not record a statement: {type(exc).__name__}: {exc}")

    def handle_error(ctx) -> None:
        # Only a statement in flight counts: connect and pre-ping errors, or errors after the
        # statement succeeded (while fetching), are not a failed execution.
        started = take_started(ctx.execution_context, ctx.connection)
        if started is None or ctx.is_pre_ping or not ctx.statement:
            return
        try:
            if transaction_outcomes and transaction_control(ctx.statement) is not None:
                return
            fields = build(ctx.statement, started, None, _first_line(ctx.original_exception))
            if ctx.connection is None:
                emit([fields], ROLLED_BACK if transaction_outcomes else None)
            else:
                tracker.add(ctx.connection, fields, failed=True)
        except Exception as exc:
            warnings.warn("record", f"could not record a statement: {type(exc).__name__}: {exc}")

    def connection_gone(dbapi_connection, *_: Any) -> None:
        # Closed or invalidated with its transaction open: the server rolls that transaction back.
        tracker.ended(dbapi_connection, ROLLED_BACK)

    listeners: list[tuple[Any, str, Callable[..., Any]]] = [
        (engine, "before_cursor_execute", before_cursor_execute),
        (engine, "after_cursor_execute", after_cursor_execute),
        (engine, "handle_error", handle_error),
    ]
    if transaction_outcomes:
        listeners += [(engine, name, connection_gone) for name in ("close", "invalidate", "close_detached")]
        attach(engine.dialect, tracker)
    for target, name, listener in listeners:
        event.listen(target, name, listener)
    return EngineInstrumentation(engine, listeners, tracker)


def _first_line(exc: BaseException | None) -> str:
    text = str(exc).strip() if exc is not None else ""
    return text.splitlines()[0][:2000] if text else type(exc).__name__
