"""Record every statement a SQLAlchemy engine executes, through an :class:`AuditClient`.

The SQL is recorded as sent to the driver, **with its placeholders** (``%(email)s``, ``?``):
parameter values are never recorded, because they often hold the very personal data the audit
trail protects.

>>> handle = instrument_engine(engine, audit, user=lambda: current_user_id())  # doctest: +SKIP
>>> handle.remove()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from .audit_client import AuditClient

log = logging.getLogger(__name__)

ACTOR_KINDS = ("human", "agent", "mcp", "scheduler", "api_key")
_SOURCE_TYPES = {"postgresql": "postgres"}  # other SQLAlchemy dialect names are the server's names already
_STARTED = "atlas_audit_started"  # key in Connection.info: perf_counter() of the statement in flight
_MAX_INT = 2_147_483_647

UserValue = str | Callable[[], str | None] | None


class EngineInstrumentation:
    """The listeners :func:`instrument_engine` attached; ``remove()`` detaches them."""

    def __init__(self, engine: Engine, listeners: list[tuple[str, Callable[..., Any]]]) -> None:
        self.engine = engine
        self._listeners = listeners

    @property
    def active(self) -> bool:
        return bool(self._listeners)

    def remove(self) -> None:
        """Stop recording this engine's statements. Idempotent."""
        for name, listener in self._listeners:
            if event.contains(self.engine, name, listener):
                event.remove(self.engine, name, listener)
        self._listeners = []


def instrument_engine(engine: Engine, client: AuditClient, *, user: UserValue = None,
                      source_id: str | None = None, source_type: str | None = None,
                      target_host: str | None = None, actor_kind: str | None = "human",
                      user_label: UserValue = None) -> EngineInstrumentation:
    """Record each statement ``engine`` executes as an audit event sent through ``client``.

    Each event carries the statement text with placeholders, ``durationMs``, ``rowCount`` (the
    cursor's rowcount when the driver reports one), ``success`` and, on failure, the first line of
    the error. ``user`` and ``user_label`` are strings or callables evaluated per statement (e.g. the
    web request's user); ``source_type`` defaults to the dialect (``postgresql`` → ``postgres``),
    ``target_host`` to the URL's host. For an ``AsyncEngine`` pass ``async_engine.sync_engine``.

    Recording never breaks the application: failures to record are logged. With an ``AuditClient``
    whose ``on_full="block"``, a full queue makes statements wait for space (bounded memory).
    """
    if actor_kind is not None and actor_kind not in ACTOR_KINDS:
        raise ValueError(f"actor_kind must be one of {', '.join(ACTOR_KINDS)}")
    fixed = {
        "sourceId": source_id,
        "sourceType": source_type or _SOURCE_TYPES.get(engine.dialect.name, engine.dialect.name),
        "targetHost": target_host if target_host is not None else engine.url.host,
        "actorKind": actor_kind,
    }
    fixed = {k: v for k, v in fixed.items() if v is not None}

    def record(statement: str | None, started: float, *, row_count: Any = None, error: str | None = None) -> None:
        try:
            if not statement:
                return
            event_fields: dict[str, Any] = {
                **fixed, "sql": statement, "success": error is None,
                "durationMs": min(_MAX_INT, max(0, round((time.perf_counter() - started) * 1000))),
            }
            if isinstance(row_count, int) and 0 <= row_count <= _MAX_INT:
                event_fields["rowCount"] = row_count
            if error is not None:
                event_fields["error"] = error
            for name, value in (("userId", user), ("userLabel", user_label)):
                resolved = value() if callable(value) else value
                if resolved is not None:
                    event_fields[name] = str(resolved)
            client.record_event(event_fields)
        except Exception as exc:  # auditing must not fail the application's query
            log.warning("atlas audit: could not record a statement: %s: %s", type(exc).__name__, exc)

    def before_cursor_execute(conn, cursor, statement, parameters, context, executemany) -> None:
        conn.info[_STARTED] = time.perf_counter()

    def after_cursor_execute(conn, cursor, statement, parameters, context, executemany) -> None:
        started = conn.info.pop(_STARTED, None)
        if started is not None:
            record(statement, started, row_count=getattr(cursor, "rowcount", None))

    def handle_error(ctx) -> None:
        # Only a statement in flight counts: connect and pre-ping errors, or errors after the
        # statement succeeded (while fetching), are not a failed execution.
        started = _pop_started(ctx.connection)
        if started is not None and not ctx.is_pre_ping:
            record(ctx.statement, started, error=_first_line(ctx.original_exception))

    listeners: list[tuple[str, Callable[..., Any]]] = [
        ("before_cursor_execute", before_cursor_execute),
        ("after_cursor_execute", after_cursor_execute),
        ("handle_error", handle_error),
    ]
    for name, listener in listeners:
        event.listen(engine, name, listener)
    return EngineInstrumentation(engine, listeners)


def _pop_started(conn: Any) -> float | None:
    if conn is None:
        return None
    try:
        return conn.info.pop(_STARTED, None)
    except Exception:  # an invalidated connection has no info left to read
        return None


def _first_line(exc: BaseException | None) -> str:
    text = str(exc).strip() if exc is not None else ""
    return text.splitlines()[0][:2000] if text else type(exc).__name__
