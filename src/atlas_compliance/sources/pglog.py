"""PostgreSQL server logs as records: the three destinations PostgreSQL 15 writes (pure functions).

Each reader turns the physical lines of one file into :class:`LogRecord` values (one per log
message, with its DETAIL, STATEMENT… parts) or :class:`Skipped` notes (a line that is not a log line,
a truncated CSV record…). Readers are incremental: :meth:`feed` takes one line at a time and
:meth:`flush` ends the input, so the same code reads whole files and files that are still growing.

- ``stderr``: ``<log_line_prefix><LEVEL>:  <message>``; a message's own newlines are followed by a
  tab; the DETAIL / HINT / CONTEXT / STATEMENT lines of a message follow it, each with the prefix.
- ``csvlog``: RFC 4180 records (a statement's newlines stay inside quotes), fields in PostgreSQL's
  order (23 to 26 of them, depending on the version).
- ``jsonlog`` (PostgreSQL 15+): one JSON object per line.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import orjson

from ..errors import BadRequest
from .prefix import LinePrefix

# (file rank in this run, byte offset, line number) of a record's first line.
Where = tuple[int, int, int]

SECONDARY = frozenset({"DETAIL", "HINT", "QUERY", "CONTEXT", "LOCATION", "STATEMENT"})
_CSV_FIELDS = 23  # PostgreSQL 9.0 to 12 write 23 fields; 13 adds backend_type, 14 leader_pid and query_id


@dataclass(slots=True)
class LogRecord:
    """One log message of a session (or of a server process: ``session`` None)."""

    where: Where
    timestamp: datetime
    session: str | None
    line_num: int | None
    user: str | None
    database: str | None
    client: str | None
    application: str | None
    level: str
    message: str
    sqlstate: str | None = None
    detail: str | None = None
    statement: str | None = None
    vxid: str | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    """A line (or record) that could not be read, and why."""

    file: str
    line: int
    reason: str


class LogClock:
    """Parses PostgreSQL's log timestamps (``2026-12-04 16:32:38.849 UTC``) in ``log_timezone``.

    UTC, GMT and numeric offsets (``+03``, ``-0530``) are read as they are; a named zone abbreviation
    (``CET``) needs the server's ``log_timezone`` as an IANA name.

    >>> LogClock().parse("2026-12-04 16:32:38.849 +01").isoformat()
    '2026-12-04T15:32:38.849000+00:00'
    >>> LogClock("Europe/Berlin").parse("2026-07-01 12:00:00 CEST").isoformat()
    '2026-07-01T10:00:00+00:00'
    """

    def __init__(self, zone: str | None = None) -> None:
        try:
            self.zone = ZoneInfo(zone) if zone else None
        except (KeyError, ValueError):
            raise BadRequest(f"unknown time zone {zone!r}: use an IANA name such as 'Europe/Berlin'",
                             code="invalid_tz") from None
        self._zones: dict[str, tzinfo | None] = {}
        self._seconds: dict[tuple[str, str], datetime] = {}  # the last few seconds seen (logs run in order)

    def parse(self, text: str) -> datetime:
        """A timestamp as UTC; raises ValueError for text that is not one."""
        if len(text) < 19 or text[4] != "-" or text[10] != " ":
            raise ValueError(f"not a timestamp: {text[:40]!r}")
        micro = 0
        rest = text[19:]
        if rest.startswith("."):
            digits = rest[1:].split(" ", 1)[0]
            micro = int(digits.ljust(6, "0")[:6])
            rest = rest[1 + len(digits):]
        key = (text[:19], rest)
        second = self._seconds.get(key)
        if second is None:
            if len(self._seconds) > 64:
                self._seconds.clear()
            second = self._seconds[key] = self._second(text, rest.strip())
        return second.replace(microsecond=micro) if micro else second

    def _second(self, text: str, name: str) -> datetime:
        naive = datetime(int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), int(text[14:16]),
                         int(text[17:19]))
        zone = self._zones.get(name, False)
        if zone is False:
            zone = self._zones[name] = _fixed_zone(name)
        if zone is not None:
            return naive.replace(tzinfo=zone).astimezone(UTC)
        if self.zone is None:
            raise ValueError(f"the time zone {name!r} is not UTC or a numeric offset: pass the server's "
                             "log_timezone (--log-timezone, e.g. Europe/Berlin) or set log_timezone = 'UTC'")
        local = naive.replace(tzinfo=self.zone)
        if name and local.tzname() != name:  # the repeated hour when clocks go back: the other one
            local = local.replace(fold=1 - local.fold)
        return local.astimezone(UTC)


_OFFSET = re.compile(r"^([+-])(\d\d):?(\d\d)?$")


def _fixed_zone(name: str) -> tzinfo | None:
    if name in ("", "UTC", "GMT", "Z", "UCT", "Etc/UTC"):
        return UTC
    found = _OFFSET.match(name)
    if not found:
        return None
    minutes = int(found.group(2)) * 60 + int(found.group(3) or 0)
    return timezone(timedelta(minutes=-minutes if found.group(1) == "-" else minutes))


def decode_line(data: bytes) -> tuple[str, bool]:
    """The text of a line and whether it had bytes that are not UTF-8 (replaced by U+FFFD)."""
    try:
        return data.decode(), False
    except UnicodeDecodeError:
        return data.decode(errors="replace"), True


def client_host(address: str | None) -> str | None:
    """The client's address without its port: ``10.0.0.7:5432`` and ``10.0.0.7(5432)`` give ``10.0.0.7``.

    >>> client_host("10.0.0.7(40114)"), client_host("::1:40114"), client_host("[local]")
    ('10.0.0.7', '::1', '[local]')
    """
    if not address:
        return None
    if address.endswith(")") and "(" in address:
        return address[:address.rindex("(")]
    head, sep, port = address.rpartition(":")
    return head if sep and port.isdigit() and head else address


def _none(value: str | None) -> str | None:
    return value if value else None


def _unknown(value: str | None) -> str | None:
    return None if not value or value == "[unknown]" else value


@dataclass
class _Held:
    where: Where
    lines: list[str]
    fields: dict[str, str] | None
    parts: list[tuple[str, str]] = field(default_factory=list)  # (level, text) of DETAIL, STATEMENT…


class StderrReader:
    """Records of a ``stderr`` log written with ``prefix`` (the server's ``log_line_prefix``)."""

    def __init__(self, file_name: str, rank: int, prefix: LinePrefix, clock: LogClock) -> None:
        self.file_name, self.rank, self.prefix, self.clock = file_name, rank, prefix, clock
        self.held: _Held | None = None
        self.pending: _Held | None = None  # the last line of `held`, until its continuation lines are known

    def holding(self) -> Where | None:
        """Where the record still held back (it may go on in lines not written yet) starts."""
        return self.held.where if self.held else (self.pending.where if self.pending else None)

    def feed(self, line_no: int, offset: int, text: str) -> Iterator[LogRecord | Skipped]:
        if text.startswith("\t"):
            if self.pending is not None:
                self.pending.lines.append(text[1:])
            else:
                yield Skipped(self.file_name, line_no, "a continuation line with no log line before it")
            return
        yield from self._settle_pending()
        self.pending = _Held((self.rank, offset, line_no), [text], None)

    def flush(self) -> Iterator[LogRecord | Skipped]:
        yield from self._settle_pending()
        if self.held is not None:
            held, self.held = self.held, None
            yield from self._record(held)

    def _settle_pending(self) -> Iterator[LogRecord | Skipped]:
        line = self.pending
        if line is None:
            return
        self.pending = None
        fields = self.prefix.match(line.lines[0])
        if fields is None:
            yield from self.flush()
            yield Skipped(self.file_name, line.where[2],
                          f"not a log line written with log_line_prefix {self.prefix.text!r}")
            return
        text = fields["message"] if len(line.lines) == 1 else "\n".join([fields["message"], *line.lines[1:]])
        held = self.held
        if fields["level"] in SECONDARY and held is not None and held.fields is not None and \
                _same_process(held.fields, fields):
            held.parts.append((fields["level"], text))
            return
        if held is not None:
            yield from self._record(held)
        fields["message"] = text
        self.held = _Held(line.where, [], fields)

    def _record(self, held: _Held) -> Iterator[LogRecord | Skipped]:
        fields = held.fields
        assert fields is not None
        if fields["level"] in SECONDARY:  # e.g. the STATEMENT of a message in the previous file
            return
        try:
            timestamp = self._timestamp(fields)
        except ValueError as exc:
            yield Skipped(self.file_name, held.where[2], str(exc))
            return
        record = LogRecord(
            where=held.where, timestamp=timestamp, session=self._session(fields), line_num=_int(fields.get("l")),
            user=_unknown(fields.get("u")), database=_unknown(fields.get("d")),
            client=client_host(_unknown(fields.get("h")) or _unknown(fields.get("r"))),
            application=_none(fields.get("a")), level=fields["level"], message=fields["message"],
            sqlstate=_none(fields.get("e")), vxid=_none(fields.get("v")))
        for level, text in held.parts:
            if level == "STATEMENT":
                record.statement = text
            elif level == "DETAIL":
                record.detail = text
        yield record

    def _timestamp(self, fields: dict[str, str]) -> datetime:
        if fields.get("m"):
            return self.clock.parse(fields["m"])
        if fields.get("n"):
            return datetime.fromtimestamp(float(fields["n"]), UTC)
        return self.clock.parse(fields["t"])

    def _session(self, fields: dict[str, str]) -> str | None:
        if fields.get("c"):
            return fields["c"]
        if fields.get("s") and fields.get("p"):  # the same text as %c: start time and pid in hex
            try:
                started = self.clock.parse(fields["s"])
            except ValueError:
                return None
            return f"{int(started.timestamp()):x}.{int(fields['p']):x}"
        return None


def _same_process(a: dict[str, str], b: dict[str, str]) -> bool:
    return a.get("c") == b.get("c") and a.get("p") == b.get("p")


def _int(value: str | int | None) -> int | None:
    if value is None or value == "":
        return None
    return int(value)


class CsvReader:
    """Records of a ``csvlog`` file."""

    def __init__(self, file_name: str, rank: int, clock: LogClock) -> None:
        self.file_name, self.rank, self.clock = file_name, rank, clock
        self.parts: list[str] = []
        self.quotes = 0
        self.start: Where | None = None

    def holding(self) -> Where | None:
        return self.start

    def feed(self, line_no: int, offset: int, text: str) -> Iterator[LogRecord | Skipped]:
        if not self.parts:
            self.start = (self.rank, offset, line_no)
        self.parts.append(text)
        self.quotes += text.count('"')
        if self.quotes % 2:  # inside a quoted field: the record goes on in the next line
            return
        yield from self._record()

    def flush(self) -> Iterator[LogRecord | Skipped]:
        if self.parts:
            assert self.start is not None
            line = self.start[2]
            self.parts, self.quotes, self.start = [], 0, None
            yield Skipped(self.file_name, line, "a truncated CSV record (a quoted field never ends)")

    def _record(self) -> Iterator[LogRecord | Skipped]:
        where = self.start
        assert where is not None
        text = "\n".join(self.parts)
        self.parts, self.quotes, self.start = [], 0, None
        try:
            row = next(csv.reader((text,)))
        except (csv.Error, StopIteration) as exc:
            yield Skipped(self.file_name, where[2], f"not a CSV record: {exc}")
            return
        if len(row) < _CSV_FIELDS:
            yield Skipped(self.file_name, where[2],
                          f"a csvlog record has at least {_CSV_FIELDS} fields, this line has {len(row)}")
            return
        try:
            timestamp = self.clock.parse(row[0])
            line_num = _int(row[6])
        except ValueError as exc:
            yield Skipped(self.file_name, where[2], str(exc))
            return
        yield LogRecord(
            where=where, timestamp=timestamp, session=_none(row[5]), line_num=line_num, user=_none(row[1]),
            database=_none(row[2]), client=client_host(_none(row[4])), application=_none(row[22]),
            level=row[11], message=row[13], sqlstate=_none(row[12]), detail=_none(row[14]),
            statement=_none(row[19]), vxid=_none(row[9]))


class JsonReader:
    """Records of a ``jsonlog`` file."""

    def __init__(self, file_name: str, rank: int, clock: LogClock) -> None:
        self.file_name, self.rank, self.clock = file_name, rank, clock

    def holding(self) -> Where | None:
        return None

    def feed(self, line_no: int, offset: int, text: str) -> Iterator[LogRecord | Skipped]:
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield Skipped(self.file_name, line_no, f"not a JSON log record: {exc}")
            return
        if not isinstance(obj, dict) or "timestamp" not in obj or "error_severity" not in obj:
            yield Skipped(self.file_name, line_no, "a JSON object without the jsonlog fields "
                                                   "'timestamp' and 'error_severity'")
            return
        try:
            timestamp = self.clock.parse(str(obj["timestamp"]))
            line_num = _int(obj.get("line_num"))
        except (ValueError, TypeError) as exc:
            yield Skipped(self.file_name, line_no, str(exc))
            return
        get = obj.get
        host = get("remote_host")  # an address without its port here
        # PostgreSQL writes these fields as JSON strings (or leaves them out): `or None` is all they need.
        yield LogRecord((self.rank, offset, line_no), timestamp, get("session_id") or None, line_num,
                        get("user") or None, get("dbname") or None, host if host != "[local]" else host,
                        get("application_name") or None, str(obj["error_severity"]), str(get("message") or ""),
                        get("state_code") or None, get("detail") or None, get("statement") or None,
                        get("vxid") or None)

    def flush(self) -> Iterator[LogRecord | Skipped]:
        return iter(())


RecordReader = StderrReader | CsvReader | JsonReader
