"""Record every statement a SQLAlchemy engine executes, through an :class:`AuditClient`.

The SQL text is recorded as executed *with its placeholders*; parameter values are never sent
(they often hold the very personal data being protected).

>>> handle = instrument_engine(engine, client, user=lambda: current_user_id())   # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from .audit_client import AuditClient

log = logging.getLogger(__name__)

_DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite", "mssql": "tsql",
             "oracle": "oracle", "snowflake": "snowflake", "bigquery": "bigquery", "duckdb": "duckdb"}


@dataclass
class InstrumentationHandle:
    engine: Engine
    listeners: list[tuple[str, Callable[..., Any]]]

    def remove(self) -> None:
        """Stop recording this engine's statements."""
        for name, fn in self.listeners:
            if event.contains(self.engine, name, fn):
                event.remove(self.engine, name, fn)


def instrument_engine(engine: Engine, client: AuditClient, *, user: Callable[[], str | None] | str | None = None,
                      source_id: str | None = None, source_type: str | None = None, target_host: str | None = None,
                      actor_kind: str | None = "human", user_label: Callable[[], str | None] | str | None = None
                      ) -> InstrumentationHandle:
    """Record each statement with its duration, row count, success or error."""
    dialect = source_type or _DIALECTS.get(engine.dialect.name, engine.dialect.name)
    host = target_host if target_host is not None else engine.url.host
    source = source_id or f"{engine.dialect.name}:{engine.url.host or 'local'}/{engine.url.database or ''}"

    def resolve(value: Callable[[], str | None] | str | None) -> str | None:
        return value() if callable(value) else value

    def fields() -> dict[str, Any]:
        found = {"sourceId": source, "sourceType": dialect, "targetHost": host, "actorKind": actor_kind}
        try:
            found["userId"] = resolve(user)
            found["userLabel"] = resolve(user_label)
        except Exception:  # never break the application's query because of auditing
            log.exception("could not resolve the audit user")
        return {k: v for k, v in found.items() if v is not None}

    def before(conn, cursor, statement, parameters, context, executemany):
        context._atlas_started = time.perf_counter()  # type: ignore[attr-defined]

    def after(conn, cursor, statement, parameters, context, executemany):
        started = getattr(context, "_atlas_started", None)
        duration = int((time.perf_counter() - started) * 1000) if started else 0
        rowcount = getattr(cursor, "rowcount", -1)
        _send(client, {"sql": statement, "durationMs": duration, "success": True,
                       "rowCount": rowcount if isinstance(rowcount, int) and rowcount >= 0 else None, **fields()})

    def failed(context):
        exec_ctx = context.execution_context
        started = getattr(exec_ctx, "_atlas_started", None) if exec_ctx is not None else None
        duration = int((time.perf_counter() - started) * 1000) if started else 0
        message = str(context.original_exception).strip().splitlines()
        _send(client, {"sql": context.statement or "", "durationMs": duration, "success": False,
                       "error": (message[0] if message else type(context.original_exception).__name__)[:2000],
                       **fields()})

    listeners = [("before_cursor_execute", before), ("after_cursor_execute", after), ("handle_error", failed)]
    for name, fn in listeners:
        event.listen(engine, name, fn)
    return InstrumentationHandle(engine, listeners)


def _send(client: AuditClient, event_fields: dict[str, Any]) -> None:
    if not event_fields.get("sql"):
        return
    try:
        client.record_event(event_fields)
    except Exception:
        log.exception("could not record an audit event")
