"""What every audit-log reader produces: one :class:`SourceStatement` per executed statement, and the
bookkeeping that tells a follower where it may safely resume (pure, no I/O)."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from .pglog import Where


class SourceStatement(NamedTuple):
    """One executed (or refused) statement as a database's own log shows it. (A named tuple: batches of
    them are pickled to the worker processes, and tuples travel at half the cost of dataclasses.)

    ``tables`` are the relations the server itself named (pgAudit's object names, MariaDB's TABLE
    events), or None when it named none and the SQL must be read. With ``tables_complete`` False the
    names are only some of them (object auditing of chosen relations): the SQL is read too.
    ``system_tables`` are server bookkeeping tables (MariaDB's ``mysql.*`` statistics) kept only when
    the SQL itself names them.
    """

    event_id: str
    timestamp: datetime
    role: str | None
    sql: str
    start: Where
    end: Where
    dialect: str
    tables: list[str] | None = None
    tables_complete: bool = True
    system_tables: tuple[str, ...] = ()
    success: bool = True
    error: str | None = None
    client: str | None = None
    application: str | None = None
    database: str | None = None
    row_count: int | None = None
    duration_ms: int = 0
    parameters: str | None = None
    prepared_body: bool = False  # sql is `PREPARE name AS body` but what ran was the body


class PositionTracker:
    """Where a follower may resume so that every statement is read whole.

    A statement still open (its session may yet log its outcome) starts at or after the resume point,
    and so does every line of a statement already stored whose lines straddle it: on a restart, each
    statement is then read again entirely (and skipped as already stored) or not at all. Reading an
    ERROR line again without the statement it belonged to would store a second, different event.
    """

    def __init__(self) -> None:
        self.recent: list[tuple[Where, Where]] = []  # (first line, last line) of statements already emitted

    def emitted(self, start: Where, end: Where) -> None:
        self.recent.append((start, end))

    def safe(self, read_to: Where, open_starts: list[Where]) -> Where:
        """The earliest point at or before ``read_to`` that no statement straddles."""
        point = min([read_to, *open_starts])
        moved = True
        while moved:
            moved = False
            for start, end in self.recent:
                if start < point <= end:
                    point, moved = start, True
        return point

    def committed(self, point: Where) -> None:
        """Forget statements wholly before ``point`` (stored, and never read again)."""
        self.recent = [(s, e) for s, e in self.recent if e >= point]
