"""Executed statements from the MariaDB / MySQL ``server_audit`` plugin's log file (pure functions).

Each line is ``timestamp,serverhost,username,host,connectionid,queryid,operation,database,object,retcode``.
A statement's ``TABLE`` events (``READ``, ``WRITE``, ``CREATE``, ``ALTER``, ``RENAME``, ``DROP``: one per
table it opened) come first, then its ``QUERY`` event, written when it ended, with the SQL text and
the return code (0: success; otherwise the server's error number). The statement's identity is
``<source>:mariadb:<serverhost>:<connection id>:<query id>:<time of its QUERY line>``: connection and
query ids restart with the server, the time tells the runs apart.

>>> reader = MariaDbAuditReader("clinic-db", "audit.log", rank=0)
>>> lines = ["20261204 16:34:53,db1,alice,10.0.0.7,4,10,READ,clinic,patients,",
...          "20261204 16:34:53,db1,alice,10.0.0.7,4,10,QUERY,clinic,'SELECT name FROM patients WHERE n = \\\\'a\\\\'',0"]
>>> out = [s for n, line in enumerate(lines, 1) for s in reader.feed(n, n * 100, line)]
>>> out[0].sql, out[0].tables, out[0].role, out[0].success
("SELECT name FROM patients WHERE n = 'a'", ['patients'], 'alice', True)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from .pglog import Skipped, Where
from .statements import PositionTracker, SourceStatement

TABLE_OPERATIONS = frozenset({"READ", "WRITE", "CREATE", "ALTER", "RENAME", "DROP"})
SYSTEM_DATABASES = frozenset({"mysql"})  # the server reads its statistics tables there on its own
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", "0": "\0"}


def unescape_query(quoted: str) -> str | None:
    r"""The SQL text of a QUERY event's object field (``'…'`` with ``\'``, ``\\``, ``\n`` escapes).

    >>> unescape_query(r"'SELECT \'a,b\' AS x,\n  1'")
    "SELECT 'a,b' AS x,\n  1"
    """
    if len(quoted) < 2 or quoted[0] != "'" or quoted[-1] != "'":
        return None
    body = quoted[1:-1]
    if "\\" not in body:
        return body
    return _ESCAPED.sub(lambda m: _UNESCAPE.get(m.group(1), m.group(1)), body)


@dataclass
class _Query:
    start: Where
    end: Where
    first_seen: datetime
    tables: list[tuple[str, str]] = field(default_factory=list)  # (database, table) in order


class MariaDbAuditReader:
    """Reads ``server_audit`` lines of one or more files (fed in order) into statements."""

    def __init__(self, source: str, file_name: str, *, rank: int, zone: str | None = None,
                 settle: timedelta = timedelta(seconds=30), on_emit: PositionTracker | None = None) -> None:
        self.source = source
        self.file_name = file_name
        self.rank = rank
        self.zone = ZoneInfo(zone) if zone else UTC
        self.settle_after = settle
        self.on_emit = on_emit
        self.open: dict[tuple[str, str, str], _Query] = {}
        self.clock: datetime | None = None

    def next_file(self, file_name: str, rank: int) -> None:
        """Go on with the next file (a rotated log goes on in a new file)."""
        self.file_name, self.rank = file_name, rank

    def open_starts(self) -> list[Where]:
        return [q.start for q in self.open.values()]

    def feed(self, line_no: int, offset: int, text: str) -> Iterator[SourceStatement | Skipped]:
        where = (self.rank, offset, line_no)
        parts = text.split(",", 8)
        if len(parts) != 9:
            yield Skipped(self.file_name, line_no, "not a server_audit line (10 comma-separated fields)")
            return
        stamp, server, user, host, connection, query_id, operation, database, rest = parts
        try:
            timestamp = self._time(stamp)
        except ValueError:
            yield Skipped(self.file_name, line_no, f"not a server_audit timestamp: {stamp[:30]!r}")
            return
        if self.clock is None or timestamp > self.clock:
            self.clock = timestamp
            yield from self.settle(timestamp)
        obj, _, retcode = rest.rpartition(",")
        key = (server, connection, query_id)
        if operation in TABLE_OPERATIONS:
            query = self.open.get(key)
            if query is None:
                query = self.open[key] = _Query(start=where, end=where, first_seen=timestamp)
            query.end = where
            if (database, obj) not in query.tables:
                query.tables.append((database, obj))
            return
        if operation != "QUERY":
            return  # CONNECT, DISCONNECT, FAILED_CONNECT, CHANGEUSER: no statement
        sql = unescape_query(obj)
        if sql is None:
            yield Skipped(self.file_name, line_no, "a QUERY event whose SQL text is not quoted")
            return
        query = self.open.pop(key, None) or _Query(start=where, end=where, first_seen=timestamp)
        query.end = where
        success = retcode.strip() in ("", "0")
        tables, system = _table_names(query.tables, database)
        statement = SourceStatement(
            event_id=f"{self.source}:mariadb:{server}:{connection}:{query_id}:{stamp[:8]}T{stamp[9:].replace(':', '')}",
            timestamp=timestamp, role=user or None, sql=sql, start=query.start, end=query.end, dialect="mysql",
            tables=tables if query.tables else None, system_tables=system, success=success,
            error=None if success else f"MariaDB error {retcode.strip()}", client=host or None,
            database=database or None)
        if self.on_emit is not None:
            self.on_emit.emitted(statement.start, statement.end)
        yield statement

    def settle(self, now: datetime) -> Iterator[Skipped]:
        """TABLE events whose QUERY event has not come ``settle`` after them: logged without QUERY events."""
        limit = now - self.settle_after
        for key in [k for k, q in self.open.items() if q.first_seen < limit]:
            yield self._orphan(key)

    def finish(self) -> Iterator[Skipped]:
        for key in list(self.open):
            yield self._orphan(key)

    def _orphan(self, key: tuple[str, str, str]) -> Skipped:
        query = self.open.pop(key)
        if self.on_emit is not None:
            self.on_emit.emitted(query.start, query.end)
        return Skipped(self.file_name, query.start[2], "TABLE events without their QUERY event: add QUERY "
                                                       "to server_audit_events")

    def _time(self, stamp: str) -> datetime:
        if len(stamp) != 17 or stamp[8] != " ":
            raise ValueError(stamp)
        naive = datetime(int(stamp[0:4]), int(stamp[4:6]), int(stamp[6:8]), int(stamp[9:11]), int(stamp[12:14]),
                         int(stamp[15:17]))
        return naive.replace(tzinfo=self.zone).astimezone(UTC)


def _table_names(tables: list[tuple[str, str]], current: str) -> tuple[list[str], tuple[str, ...]]:
    """Table names as the statement's SQL would name them: unqualified in the current database (as a
    PII scan of that database names them), ``db.table`` elsewhere; server bookkeeping tables apart."""
    names: list[str] = []
    system: list[str] = []
    for database, table in tables:
        name = table if database == current or not database else f"{database}.{table}"
        (system if database in SYSTEM_DATABASES else names).append(name)
    return names, tuple(system)
