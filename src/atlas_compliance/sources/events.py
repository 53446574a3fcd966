"""Statements read from a database's log become audit events, validated and stored exactly as events of
the ingest API are (:func:`~atlas_compliance.audit.service.prepare_event`). Pure CPU: runs in the bulk
import's worker processes.

- Who: ``userId`` and ``userLabel`` are ``db:<role>``; a role mapped to a user of the organization
  is resolved when reports are made, never written into the event.
- Tables: the ones the server named (pgAudit's object names, MariaDB's TABLE events) are recorded as
  sent; columns come from reading the SQL (with the organization's catalog), per table.
- Where: ``sourceId`` the source's name, ``sourceType`` the dialect, ``targetHost`` the database,
  ``clientId`` the client's address, ``toolName`` the ``application_name``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from ..audit import repository as audit_repo
from ..audit.analysis import analyse
from ..audit.extraction import Catalog, normalize_table_name
from ..audit.schemas import EventIdentity
from ..audit.service import event_identity, prepare_event
from .pgaudit import strip_prepare
from .pglog import Skipped
from .statements import SourceStatement

ROLE_PREFIX = "db:"
_normalized = lru_cache(maxsize=4096)(normalize_table_name)


def role_identity(role: str) -> str:
    """The identity events of a database role carry (``userId`` and ``userLabel``).

    >>> role_identity("alice")
    'db:alice'
    """
    return ROLE_PREFIX + role


@dataclass(frozen=True)
class StatementJob:
    """What a worker needs besides the statements."""

    kind: str  # pgaudit, mariadb-audit
    source: str
    org_id: str
    catalog: Catalog | None
    keep_parameters: bool
    file_names: tuple[str, ...]  # by rank


@dataclass
class PreparedStatements:
    """A worker's answer: COPY lines of the valid events, and the statements that could not be stored."""

    statements: int
    checkpoint: Any
    event_ids: list[str | None] = field(default_factory=list)
    identities: list[EventIdentity] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    timestamps: list[datetime] = field(default_factory=list)
    starts: list[tuple[str, int]] = field(default_factory=list)  # (file name, line) of each statement
    rejected: list[Skipped] = field(default_factory=list)


def event_of(statement: SourceStatement, job: StatementJob) -> dict[str, Any]:
    """The raw audit event (as the ingest API takes it) of one statement."""
    sql = statement.sql
    if job.keep_parameters and statement.parameters:
        sql = f"{sql}\n/* parameters: {statement.parameters.replace('*/', '* /')} */"
    identity = role_identity(statement.role) if statement.role else None
    event: dict[str, Any] = {
        "eventId": statement.event_id, "timestamp": statement.timestamp.isoformat(), "userId": identity,
        "userLabel": identity, "sql": sql, "success": statement.success, "error": statement.error,
        "durationMs": statement.duration_ms, "rowCount": statement.row_count, "sourceId": job.source,
        "sourceType": statement.dialect, "targetHost": statement.database, "clientId": statement.client,
        "toolName": statement.application,
    }
    if statement.tables is not None or statement.prepared_body or statement.system_tables:
        event.update(_access(statement, job.catalog))
    return event  # every field but `sql` may be null


def _access(statement: SourceStatement, catalog: Catalog | None) -> dict[str, Any]:
    """Tables as the server named them (plus the SQL's own when the server named only some), each with
    the columns the SQL reads of it."""
    body = strip_prepare(statement.sql) if statement.prepared_body else statement.sql
    access = analyse(body, statement.dialect, catalog)  # within the budget: over it, no tables from the SQL
    tables = [_normalized(t) for t in statement.tables or ()]
    if statement.tables is None or not statement.tables_complete:
        tables.extend(access.tables)
    tables.extend(t for t in map(_normalized, statement.system_tables) if t in access.columns_by_table)
    tables = list(dict.fromkeys(tables))
    if not tables:
        return {"tablesAccessed": []}
    by_table: dict[str, list[str]] = {}
    for table in tables:
        columns = access.columns_by_table.get(table)
        if columns is None:  # named differently in the SQL: `patients` that the server resolved to app.patients
            last = table.rsplit(".", 1)[-1]
            matches = [c for t, c in access.columns_by_table.items()
                       if t not in tables and t.rsplit(".", 1)[-1] == last]
            columns = matches[0] if len(matches) == 1 else ()
        by_table[table] = list(columns)
    return {"tablesAccessed": tables, "columnsByTable": by_table}  # columnsAccessed: derived from these


def prepare_statements(job: StatementJob, checkpoint: Any, statements: Sequence[SourceStatement]) -> PreparedStatements:
    """Validate and encode one batch of statements (pure CPU; runs in worker processes)."""
    out = PreparedStatements(statements=len(statements), checkpoint=checkpoint)
    now = datetime.now(UTC)
    for statement in statements:
        try:
            # Only the SQL can hold a NUL (MariaDB writes one as \0): prepare_event need not search the rest.
            event = event_of(statement, job)
            row = prepare_event(event, now, job.catalog, may_hold_nul="\x00" in statement.sql)
            line = audit_repo.copy_line((*row, job.org_id))
        except ValueError as exc:  # UnicodeEncodeError (a lone surrogate) is a ValueError too
            reason = str(exc) if not isinstance(exc, UnicodeError) else "text is not valid Unicode"
            out.rejected.append(Skipped(job.file_names[statement.start[0]], statement.start[2],
                                        f"statement not stored: {reason}"))
            continue
        out.event_ids.append(row[0])
        out.identities.append(event_identity(event, row))
        out.lines.append(line)
        out.timestamps.append(statement.timestamp)
        out.starts.append((job.file_names[statement.start[0]], statement.start[2]))
    return out
