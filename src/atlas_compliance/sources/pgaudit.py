"""Executed statements from PostgreSQL log records: pgAudit's AUDIT lines and plain statement logging
(pure functions over :class:`~.pglog.LogRecord`).

pgAudit writes one line per relation (``pgaudit.log_relation``, object auditing) and per
sub-statement (a function's statements), all with the session's statement id: they are grouped into
one statement. Its identity comes from the log itself, so that reading the same lines again (a file
imported twice, overlapping files, a restarted follower) gives the same event ids:

- a pgAudit statement: ``<source>:pg:<session id>:<statement id>``;
- a statement logged only by ``log_statement`` / ``log_min_duration_statement``, or one that failed
  before pgAudit logged it: ``<source>:pg:<session id>:L<session line number>``.

Outcome: pgAudit logs a statement before running it (unless ``pgaudit.log_rows`` is on: then after,
and only if it succeeded), so an ERROR of the same session, for the same statement text and
transaction, marks it failed. An ERROR that belongs to no open statement (a statement refused while
being parsed or planned, e.g. ``permission denied``) is a failed statement of its own.

A statement stays open until its session logs another statement or disconnects, or until the log's
clock has moved ``settle`` past its last line (a statement still running then is stored as run: if
it fails later, its ERROR is stored as a failed statement of its own).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .pglog import LogRecord, Skipped, Where
from .statements import PositionTracker, SourceStatement

RELATIONS = frozenset({"TABLE", "VIEW", "MATERIALIZED VIEW", "FOREIGN TABLE", "PARTITIONED TABLE"})
_NOT_TEXT = frozenset({"<not logged>", "<previously logged>", "<none>"})
_STATEMENT = re.compile(r"^(?:duration: (?P<ms>[\d.]+) ms  )?(?:statement|execute (?!fetch from )[^:]*): ",
                        re.DOTALL)
_DURATION = re.compile(r"^duration: (?P<ms>[\d.]+) ms$")
_PASSWORD = re.compile(r"(?i)\b(PASSWORD\s+)'(?:[^']|'')*'")
_ROLE_DDL = re.compile(r"(?is)^\s*(?:CREATE|ALTER)\s+(?:ROLE|USER|GROUP)\b")
_PREPARE = re.compile(r"(?is)^\s*PREPARE\s+\S+?(?:\s*\([^)]*\))?\s+AS\s+")
_FAILED = frozenset({"ERROR", "FATAL", "PANIC"})
csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # a statement may be far longer than 128 KB


def redact_passwords(sql: str) -> str:
    """``CREATE/ALTER ROLE … PASSWORD '…'`` with the password hidden, as MariaDB's audit log does.

    >>> redact_passwords("ALTER ROLE app PASSWORD 'it''s secret' VALID UNTIL 'infinity'")
    "ALTER ROLE app PASSWORD '*****' VALID UNTIL 'infinity'"
    """
    if sql[:8].lstrip()[:1] in ("C", "c", "A", "a") and _ROLE_DDL.match(sql):
        return _PASSWORD.sub(r"\1'*****'", sql)
    return sql


@dataclass
class AuditLine:
    """The fields of one pgAudit line (``AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.t,<sql>,<params>``)."""

    audit_type: str
    statement_id: int
    substatement_id: int
    audit_class: str
    command: str
    object_type: str
    object_name: str
    text: str
    parameters: str
    rows: int | None


def parse_audit(message: str) -> AuditLine | None:
    """The pgAudit fields of a log message, or None when it is not an AUDIT line.

    >>> line = parse_audit('AUDIT: SESSION,3,1,READ,SELECT,TABLE,public.t,"SELECT a, b FROM t",<none>,2')
    >>> line.statement_id, line.object_name, line.text, line.rows
    (3, 'public.t', 'SELECT a, b FROM t', 2)
    """
    if not message.startswith("AUDIT: "):
        return None
    row = message[7:].split(",", 7)
    if len(row) != 8 or '"' in row[7] or row[6].startswith('"'):  # quoted fields: read them as CSV
        try:
            row = next(csv.reader((message[7:],)))
        except (csv.Error, StopIteration):
            return None
    else:
        row[7:] = row[7].split(",")
    if len(row) not in (9, 10) or not row[1].isdigit() or not row[2].isdigit():
        return None
    rows = int(row[9]) if len(row) == 10 and row[9].lstrip("-").isdigit() else None
    return AuditLine(row[0], int(row[1]), int(row[2]), row[3], row[4], row[5], row[6], row[7], row[8], rows)


@dataclass
class _Open:
    """A statement of one session whose lines may not all be read yet."""

    event_id: str
    record: LogRecord  # its first line
    start: Where
    end: Where
    last_seen: datetime
    statement_id: int | None = None
    texts: dict[int, str] = field(default_factory=dict)  # sub-statement id (0: a plain statement) -> text
    commands: dict[int, str] = field(default_factory=dict)
    parameters: dict[int, str] = field(default_factory=dict)
    rows: dict[int, int] = field(default_factory=dict)
    objects: list[str] = field(default_factory=list)
    object_types_only: bool = True  # only OBJECT-audit lines named relations (session lines named none)
    session_lines: int = 0
    logged_after_run: bool = False  # pgaudit.log_rows: lines written after a successful run
    announced: _Open | None = None  # the log_statement line that preceded its AUDIT lines
    executed: bool = False  # the extended protocol's `execute` line that followed its AUDIT lines
    success: bool = True
    error: str | None = None
    duration_ms: float = 0.0

    def all_texts(self) -> set[str]:
        found = set(self.texts.values())
        if self.announced is not None:
            found |= self.announced.all_texts()
        return found

    def top_text(self) -> str | None:
        """The statement the client ran: the outermost sub-statement (logged first, or last with log_rows)."""
        real = {k: v for k, v in self.texts.items() if v not in _NOT_TEXT}
        if not real:
            return None
        return real[max(real) if self.logged_after_run else min(real)]


class PgStatements:
    """Turns log records into statements. Feed records in file order; emitted statements come back from
    :meth:`feed`, :meth:`settle` and :meth:`finish`."""

    def __init__(self, source: str, *, settle: timedelta = timedelta(seconds=30), keep_parameters: bool = False,
                 on_emit: PositionTracker | None = None, file_names: list[str] | None = None) -> None:
        self.source = source
        self.file_names = file_names if file_names is not None else []  # by rank, to name skipped lines
        self.settle_after = settle
        self.keep_parameters = keep_parameters
        self.open: dict[str, _Open] = {}
        self.clock: datetime | None = None
        self._next_settle: datetime | None = None
        self.on_emit = on_emit  # told of every emitted statement's extent

    def open_starts(self) -> list[Where]:
        found = []
        for group in self.open.values():
            found.append(group.announced.start if group.announced else group.start)
        return found

    def feed(self, item: LogRecord | Skipped) -> Iterator[SourceStatement | Skipped]:
        if isinstance(item, Skipped):
            yield item
            return
        record = item
        if self.clock is None or record.timestamp > self.clock:
            self.clock = record.timestamp
            if self._next_settle is None or self.clock >= self._next_settle:
                self._next_settle = self.clock + timedelta(seconds=1)
                yield from self.settle(self.clock)
        session = record.session
        if session is None or record.user is None:
            return  # a server process (checkpointer, postmaster…) or a connection not yet authenticated
        audit = None
        if record.message.startswith("AUDIT: "):
            audit = parse_audit(record.message)
            if audit is None:
                rank, _, line = record.where
                name = self.file_names[rank] if rank < len(self.file_names) else "?"
                yield Skipped(name, line, "an AUDIT line that is not pgAudit's (9 or 10 CSV fields)")
                return
        current = self.open.get(session)
        if audit is not None:
            yield from self._audit(record, audit, current)
        elif record.level in _FAILED:
            yield from self._failure(record, current)
        elif record.level == "LOG":
            yield from self._log(record, current)
        elif current is not None:
            current.end = max(current.end, record.where)

    def _audit(self, record: LogRecord, audit: AuditLine, current: _Open | None) -> Iterator[SourceStatement]:
        session = record.session
        assert session is not None
        if current is None or current.statement_id != audit.statement_id:
            announced = None
            if current is not None and current.statement_id is None and current.success:
                announced, current = current, None  # a statement line: maybe this statement's announcement
            if current is not None:
                yield from self._close(session)
            current = self.open[session] = _Open(
                event_id=f"{self.source}:pg:{session}:{audit.statement_id}", record=record, start=record.where,
                end=record.where, last_seen=record.timestamp, statement_id=audit.statement_id, announced=announced)
        current.end = max(current.end, record.where)
        current.last_seen = record.timestamp
        sub = audit.substatement_id
        if current.texts.get(sub, "<none>") in _NOT_TEXT:  # the first line of a sub-statement that has its text
            current.texts[sub] = audit.text
        current.commands.setdefault(sub, f"{audit.audit_class} {audit.command}")
        if audit.parameters not in _NOT_TEXT:
            current.parameters.setdefault(sub, audit.parameters)
        if audit.rows is not None:
            current.logged_after_run = True
            current.rows[sub] = audit.rows
        if audit.audit_type == "SESSION":
            current.session_lines += 1
        if audit.object_name and audit.object_type in RELATIONS:
            if audit.audit_type == "SESSION":
                current.object_types_only = False
            if audit.object_name not in current.objects:
                current.objects.append(audit.object_name)

    def _failure(self, record: LogRecord, current: _Open | None) -> Iterator[SourceStatement]:
        session = record.session
        assert session is not None
        error = record.message if not record.sqlstate else f"{record.message} (SQLSTATE {record.sqlstate})"
        if current is not None and _belongs(current, record):
            current.success, current.error = False, error
            current.end = max(current.end, record.where)
            yield from self._close(session)
            return
        if record.statement is None:
            return  # a failure of no statement (a lost connection, a login refused…)
        if current is not None:
            yield from self._close(session)
        failed = _Open(event_id=self._line_id(record), record=record, start=record.where, end=record.where,
                       last_seen=record.timestamp, texts={0: record.statement}, success=False, error=error)
        yield self._statement(failed)

    def _log(self, record: LogRecord, current: _Open | None) -> Iterator[SourceStatement]:
        session = record.session
        assert session is not None
        message = record.message
        if message.startswith("disconnection: "):
            if current is not None:
                yield from self._close(session)
            return
        if message.startswith("duration: "):
            plain = _STATEMENT.match(message)
            if plain is None:
                found = _DURATION.match(message)
                # Its statement's duration; with the extended protocol, parse and bind are timed too, before
                # the next statement's `execute` line: those are not the open statement's.
                if found and current is not None and not current.duration_ms:
                    current.duration_ms = float(found.group("ms"))
                    current.end = max(current.end, record.where)
                return
            text = message[plain.end():]
            if current is not None and text in current.all_texts():  # logged again after it ran
                current.duration_ms += float(plain.group("ms"))
                current.end = max(current.end, record.where)
                return
        else:
            plain = _STATEMENT.match(message)
            if plain is None:
                return  # another message of the session (a temporary file, a lock wait…)
            text = message[plain.end():]
            if message.startswith("execute ") and current is not None and current.statement_id is not None \
                    and not current.executed and not current.logged_after_run and text in current.texts.values():
                # The extended protocol: pgAudit logs when the portal starts (at Bind), log_statement at
                # Execute, so this statement's AUDIT lines came first.
                current.executed = True
                current.end = max(current.end, record.where)
                return
        if current is not None:
            yield from self._close(session)
        group = self.open[session] = _Open(event_id=self._line_id(record), record=record, start=record.where,
                                           end=record.where, last_seen=record.timestamp, texts={0: text})
        if plain.group("ms"):
            group.duration_ms = float(plain.group("ms"))
        if record.detail and record.detail.startswith("parameters: "):
            group.parameters[0] = record.detail[len("parameters: "):]

    def _line_id(self, record: LogRecord) -> str:
        return f"{self.source}:pg:{record.session}:L{record.line_num}"

    def settle(self, now: datetime) -> Iterator[SourceStatement]:
        """Close statements whose session has been silent for ``settle`` of log time before ``now``."""
        limit = now - self.settle_after
        for session in [s for s, g in self.open.items() if g.last_seen < limit]:
            yield from self._close(session)

    def finish(self) -> Iterator[SourceStatement]:
        """The end of the input: every open statement is stored as the log shows it."""
        for session in list(self.open):
            yield from self._close(session)

    def _close(self, session: str) -> Iterator[SourceStatement]:
        group = self.open.pop(session)
        announced = group.announced
        if announced is not None:
            if announced.texts[0] in group.texts.values():  # the same statement, announced then audited
                group.start = announced.start
                group.duration_ms += announced.duration_ms
                if not group.parameters:
                    group.parameters = dict(announced.parameters)
            else:
                yield self._statement(announced)
        yield self._statement(group)

    def _statement(self, group: _Open) -> SourceStatement:
        record = group.record
        top = group.top_text()
        audited = group.statement_id is not None
        if top is None:
            command = group.commands.get(min(group.commands)) if group.commands else "statement"
            sql = f"-- statement not logged (pgaudit.log_statement = off): {command}"
        else:
            sql = redact_passwords(top)
        tables: list[str] | None = None
        complete = True
        if audited and group.objects:
            tables = list(group.objects)
            complete = not group.object_types_only  # session lines name every relation (log_relation)
        elif audited and group.session_lines and _is_prepare(group):
            tables = []  # PREPARE reads nothing: its EXECUTEs are logged with their relations
        parameters = None
        if self.keep_parameters and group.parameters:
            parameters = group.parameters.get(min(group.parameters))
        rows = None
        if group.rows:
            rows = group.rows[max(group.rows)]
        statement = SourceStatement(
            group.event_id, record.timestamp, record.user, sql, group.start, group.end, "postgres", tables,
            complete, (), group.success, group.error, record.client, record.application, record.database, rows,
            int(round(group.duration_ms)), parameters,
            audited and sql[:12].lstrip()[:7].upper() == "PREPARE" and bool(_PREPARE.match(sql))
            and not _is_prepare(group))
        if self.on_emit is not None:
            self.on_emit.emitted(statement.start, statement.end)
        return statement


def _is_prepare(group: _Open) -> bool:
    return bool(group.commands) and group.commands[min(group.commands)].endswith(" PREPARE")


def _belongs(group: _Open, record: LogRecord) -> bool:
    """Whether an ERROR of the session is the outcome of its open statement."""
    if group.statement_id is not None and group.logged_after_run:
        return False  # with pgaudit.log_rows, only statements that succeeded are logged
    if group.record.vxid and record.vxid and group.record.vxid != record.vxid:
        return False  # another transaction
    if record.statement is None:
        return True
    texts = group.all_texts()
    if record.statement in texts:
        return True
    # EXECUTE of a statement prepared with SQL: pgAudit logs the PREPARE text, the ERROR the EXECUTE.
    return record.statement.lstrip()[:7].upper() == "EXECUTE" and any(_PREPARE.match(t) for t in texts)


def strip_prepare(sql: str) -> str:
    """The statement a ``PREPARE name (types) AS statement`` prepared.

    >>> strip_prepare("PREPARE q(int) AS SELECT name FROM patients WHERE id = $1")
    'SELECT name FROM patients WHERE id = $1'
    """
    found = _PREPARE.match(sql)
    return sql[found.end():] if found else sql
