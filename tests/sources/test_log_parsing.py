"""Reading real audit logs (tests/sources/fixtures, written by real servers: make_fixtures.py) into
statements, without a database: every destination, grouping, outcomes, identities, and resuming."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from atlas_compliance.audit.service import prepare_event
from atlas_compliance.errors import BadRequest
from atlas_compliance.sources.events import StatementJob, event_of
from atlas_compliance.sources.logfiles import FilePosition
from atlas_compliance.sources.pgaudit import redact_passwords
from atlas_compliance.sources.prefix import LinePrefix
from atlas_compliance.sources.service import ReadOptions, StatementReader
from atlas_compliance.sources.statements import PositionTracker

from .servers import PREFIX

FIXTURES = Path(__file__).parent / "fixtures"
PG_LOGS = ("pgaudit", "statements", "mixed")


def options(kind: str = "pgaudit", **kw) -> ReadOptions:
    return ReadOptions(kind=kind, source="fx", prefix=LinePrefix.compile(PREFIX), **kw)


def read_all(paths: list[Path], kind: str = "pgaudit", **kw):
    reader = StatementReader(options(kind, **kw))
    out = []
    for path in paths:
        rank = reader.add_file(path)
        out += list(reader.read(path, rank, FilePosition(), to_end=True))
        out += list(reader.end_of_file(rank))
    out += list(reader.finish())
    return out, reader


def event_row(statement, keep_parameters: bool = False) -> dict:
    job = StatementJob(kind="pgaudit", source="fx", org_id="org", catalog=None, keep_parameters=keep_parameters,
                       file_names=())
    row = prepare_event(event_of(statement, job), datetime.now(UTC), None)
    return {"id": row[0], "user": row[2], "sql": row[5], "success": row[8], "error": row[9],
            "tables": json.loads(row[16]) if row[16] else [], "by_table": json.loads(row[18]) if row[18] else None,
            "client": row[14], "tool": row[15], "target": row[12], "rows": row[7]}


def spec(statements) -> list[tuple[str, ...]]:
    """The statements as the expected_*.txt files write them (line numbers of line-identified ones left out:
    stderr numbers every printed line, csvlog and jsonlog every message)."""
    lines = []
    for s in statements:
        event = event_row(s)
        ident = s.event_id.split(":", 2)[2]
        session, _, number = ident.rpartition(":")
        ident = f"{session}:L" if number.startswith("L") else ident
        first = s.sql.splitlines()[0][:60].rstrip()
        lines.append((ident, s.role, "ok" if s.success else "failed", ",".join(event["tables"]) or "-", first))
    return sorted(lines)


def expected(name: str) -> list[tuple[str, ...]]:
    rows = []
    for line in (FIXTURES / f"expected_{name}.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split(None, 4)
        rows.append(tuple(parts))
    return sorted(rows)


@pytest.mark.parametrize("suffix", [".log", ".csv", ".json"])
@pytest.mark.parametrize("name", PG_LOGS)
def test_every_destination_gives_the_statements_the_log_shows(name, suffix):
    statements, reader = read_all([FIXTURES / f"{name}{suffix}"])
    assert reader.counts.skipped == []
    assert spec(statements) == expected(name)


@pytest.mark.parametrize("name", PG_LOGS)
def test_csvlog_and_jsonlog_give_the_same_events_and_stderr_the_same_pgaudit_ones(name):
    by_format = {suffix: {s.event_id: event_row(s) for s in read_all([FIXTURES / f"{name}{suffix}"])[0]}
                 for suffix in (".log", ".csv", ".json")}
    assert by_format[".csv"] == by_format[".json"]
    audited = {k: v for k, v in by_format[".json"].items() if ":L" not in k}
    assert audited == {k: v for k, v in by_format[".log"].items() if ":L" not in k}


def test_mariadb_server_audit_log():
    statements, reader = read_all([FIXTURES / "server_audit.log"], kind="mariadb-audit")
    assert reader.counts.skipped == []
    assert spec(statements) == expected("server_audit")
    by_sql = {s.sql: event_row(s) for s in statements if s.role != "bob"}
    join = by_sql["SELECT p.name, v.note FROM patients p JOIN visits v ON v.patient_id = p.id WHERE p.id > 1000 - 1000"]
    # The server's own statistics reads (mysql.table_stats…) are not the user's.
    assert join["tables"] == ["patients", "visits"] and join["by_table"] == {"patients": ["id", "name"],
                                                                             "visits": ["note", "patient_id"]}
    assert join["user"] == "db:alice" and join["client"] == "127.0.0.1" and join["target"] == "clinic"
    assert by_sql["SELECT amount FROM billing.invoices WHERE id = 1000"]["success"] is True  # alice may; bob not:
    refused = [event_row(s) for s in statements if s.role == "bob" and "billing" in s.sql][0]
    assert refused["success"] is False and refused["error"] == "MariaDB error 1142"
    assert "SELECT name,\n  ssn FROM patients WHERE name = 'a,b\\nc1000'" in by_sql


def test_events_record_who_where_and_the_columns_of_the_tables_pgaudit_named():
    statements, _ = read_all([FIXTURES / "pgaudit.json"])
    events = {e["sql"].splitlines()[0]: e for e in map(event_row, statements)}
    join = events["SELECT p.name, v.note FROM patients p JOIN visits v ON v.patient_id = p.id WHERE p.id > 1000 - 1000"]
    assert join["user"] == "db:alice" and join["client"] == "127.0.0.1" and join["tool"] == "alice-app"
    assert join["target"] == "postgres" and join["success"] is True
    assert join["by_table"] == {"patients": ["id", "name"], "visits": ["note", "patient_id"]}
    function = events["SELECT touch_visits()"]  # its sub-statements' relations, one event
    assert function["tables"] == ["patients", "visits"]
    late_failure = events["SELECT 1/(id - id) FROM patients WHERE id = 1 AND 1000 > 0"]
    assert late_failure["success"] is False and late_failure["error"] == "division by zero (SQLSTATE 22012)"
    refused = events["SELECT v FROM secrets WHERE id = 1000"]
    assert refused["success"] is False and refused["error"] == "permission denied for table secrets (SQLSTATE 42501)"
    assert refused["tables"] == ["secrets"]  # nothing from pgAudit: read from the SQL


def test_parameters_are_dropped_unless_asked_for():
    statements, _ = read_all([FIXTURES / "pgaudit.json"], keep_parameters=True)
    extended = [s for s in statements if "$1" in s.sql][0]
    assert event_row(extended)["sql"] == "SELECT name FROM patients WHERE id = $1 AND name <> $2"
    assert event_row(extended, keep_parameters=True)["sql"] == (
        "SELECT name FROM patients WHERE id = $1 AND name <> $2\n/* parameters: 1000,x'y */")
    plain, _ = read_all([FIXTURES / "pgaudit.json"])
    assert [s.parameters for s in plain if "$1" in s.sql] == [None]


def _record_starts(path: Path) -> list[int]:
    """Line indexes where a whole record begins (a rotation never splits one)."""
    lines = path.read_bytes().split(b"\n")[:-1]
    starts, quotes = [], 0
    for i, line in enumerate(lines):
        if path.suffix == ".log" and (line.startswith(b"\t") or b" STATEMENT:  " in line or b" DETAIL:  " in line
                                      or b" CONTEXT:  " in line):
            continue  # the rest of a message: PostgreSQL writes a message whole, rotating between messages
        if path.suffix == ".csv" and quotes % 2:
            quotes += line.count(b'"')
            continue
        quotes = line.count(b'"')
        starts.append(i)
    return starts


@pytest.mark.parametrize("fixture", ["pgaudit.log", "pgaudit.csv", "pgaudit.json", "mixed.json", "server_audit.log"])
def test_a_log_rotated_anywhere_gives_the_same_events(fixture, tmp_path):
    path = FIXTURES / fixture
    kind = "mariadb-audit" if fixture == "server_audit.log" else "pgaudit"
    whole = {s.event_id: event_row(s) for s in read_all([path], kind)[0]}
    lines = path.read_bytes().split(b"\n")[:-1]
    for cut in _record_starts(path)[1:]:
        first, second = tmp_path / f"a{path.suffix}", tmp_path / f"b{path.suffix}"
        first.write_bytes(b"\n".join(lines[:cut]) + b"\n")
        second.write_bytes(b"\n".join(lines[cut:]) + b"\n")
        rotated = {s.event_id: event_row(s) for s in read_all([first, second], kind)[0]}
        assert rotated == whole, f"rotated after line {cut}"


@pytest.mark.parametrize("fixture", ["pgaudit.log", "pgaudit.csv", "pgaudit.json", "statements.log", "mixed.json",
                                     "server_audit.log"])
def test_a_follower_stopped_after_any_line_resumes_without_losing_or_repeating_a_statement(fixture):
    """Read k lines (the follower commits what it completed and where to resume), then start afresh
    from that point: together the two runs store every statement of the log exactly as a single pass
    does, for every k. Ids read again are skipped by the database; a statement first stored by the
    second run must be complete."""
    path = FIXTURES / fixture
    kind = "mariadb-audit" if fixture == "server_audit.log" else "pgaudit"
    whole = {s.event_id: event_row(s) for s in read_all([path], kind)[0]}
    total = len(path.read_bytes().split(b"\n")) - 1
    for cut in range(total + 1):
        tracker = PositionTracker()
        first = StatementReader(options(kind), tracker)
        first.add_file(path)
        position = FilePosition()
        stored = {s.event_id: event_row(s) for s in first.read(path, 0, position, to_end=False, max_lines=cut)}
        point = tracker.safe((0, position.offset, position.line), first.open_starts())
        second, _ = StatementReader(options(kind)), None
        second.add_file(path)
        again = list(second.read(path, 0, FilePosition(point[1], point[2]), to_end=True))
        again += list(second.end_of_file(0)) + list(second.finish())
        for statement in again:
            if statement.event_id not in stored:
                stored[statement.event_id] = event_row(statement)
        assert stored == whole, f"stopped after {cut} lines, resumed at line {point[2]}"


def test_lines_that_cannot_be_read_are_reported_with_file_and_line(tmp_path):
    json_lines = (FIXTURES / "pgaudit.json").read_text().splitlines(keepends=True)
    broken_json = tmp_path / "broken.json"
    broken_json.write_text("".join([*json_lines[:5], "not json at all\n", '{"no": "fields"}\n', *json_lines[5:]]))
    statements, reader = read_all([broken_json])
    assert [(s.file, s.line) for s in reader.counts.skipped] == [("broken.json", 6), ("broken.json", 7)]
    assert len(statements) == len(expected("pgaudit"))  # the rest is read

    csv_text = (FIXTURES / "pgaudit.csv").read_text()
    truncated = tmp_path / "truncated.csv"
    truncated.write_text(csv_text + '2026-12-04 16:53:10.100 UTC,"alice","postgres",1,"127.0.0.1:1",6b12eff5.1,9,'
                                    '"SELECT",2026-12-04 16:53:09 UTC,3/1,0,LOG,00000,"AUDIT: SESSION,9,1,READ,SELECT,,,""SELECT\n')
    _, reader = read_all([truncated])
    assert [(s.file, s.line, s.reason) for s in reader.counts.skipped] == [
        ("truncated.csv", len(csv_text.splitlines()) + 1, "a truncated CSV record (a quoted field never ends)")]

    short = tmp_path / "short.csv"
    short.write_text('2026-12-04 16:53:10.100 UTC,"alice",x\n')
    assert "at least 23 fields" in read_all([short])[1].counts.skipped[0].reason

    other_prefix = tmp_path / "other.log"
    shutil.copy(FIXTURES / "pgaudit.log", other_prefix)
    reader = StatementReader(ReadOptions(kind="pgaudit", source="fx", prefix=LinePrefix.compile("%t %c %l %u ")))
    reader.add_file(other_prefix)
    assert list(reader.read(other_prefix, 0, FilePosition(), to_end=True)) + list(reader.finish()) == []
    assert reader.counts.skipped[0].reason == "not a log line written with log_line_prefix '%t %c %l %u '"
    not_continued = [n for n, line in enumerate(other_prefix.read_text().splitlines(), 1) if not line.startswith("\t")]
    assert [s.line for s in reader.counts.skipped] == not_continued  # each line but a skipped one's continuation

    garbage = tmp_path / "server_audit.log"
    garbage.write_text((FIXTURES / "server_audit.log").read_text() + "hello\n20261304 99:00:00,h,u,h,1,2,QUERY,,'x',0\n")
    _, reader = read_all([garbage], kind="mariadb-audit")
    assert [(s.line, s.reason[:30]) for s in reader.counts.skipped] == [
        (39, "not a server_audit line (10 co"), (40, "not a server_audit timestamp: ")]


def test_a_huge_statement_is_read_and_one_over_1_mb_is_reported(tmp_path):
    big = "SELECT " + ", ".join(f"c{i}" for i in range(200_000)) + " FROM patients"  # about 1.5 MB
    record = {"timestamp": "2026-12-04 16:53:09.939 UTC", "user": "alice", "dbname": "postgres",
              "session_id": "6b12eff5.1", "line_num": 3, "error_severity": "LOG",
              "message": f"AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.patients,\"{big}\",<none>"}
    path = tmp_path / "big.json"
    path.write_text(json.dumps(record) + "\n")
    statements, reader = read_all([path])
    assert reader.counts.skipped == [] and len(statements) == 1 and statements[0].sql == big
    with pytest.raises(ValueError, match="larger than 1 MB"):
        event_row(statements[0])


@pytest.mark.parametrize(("prefix", "accepted"), [
    ("%m [%p] %c %l %q%u@%d %h %a ", True),
    ("%t %c %l %u ", True),
    ("%n [%p] %s %l %u ", True),  # %p with the session's start identifies the session
    ("%m [%p] %q%u@%d ", False),  # the example: a process id alone is reused
    ("%m [%p] ", False),  # PostgreSQL 15's default
    ("%m %c %u ", False),  # no line number
    ("%c %l %u ", False),  # no time
    ("%m %c %l ", False),  # no role
])
def test_which_log_line_prefixes_identify_a_statement(prefix, accepted):
    if accepted:
        assert LinePrefix.compile(prefix).text == prefix
    else:
        with pytest.raises(BadRequest, match="cannot identify a statement"):
            LinePrefix.compile(prefix)


def test_padded_escapes_and_lines_of_server_processes():
    prefix = LinePrefix.compile("%m %-8c %5l %q%-10u %a ")
    line = "2026-12-04 16:53:09.939 UTC 6b12eff5.62c3     3 alice      psql app LOG:  hello"
    fields = prefix.match(line)
    assert (fields["c"], fields["l"], fields["u"], fields["a"], fields["message"]) == (
        "6b12eff5.62c3", "3", "alice", "psql app", "hello")
    background = prefix.match("2026-12-04 16:53:09.939 UTC 6b12eff5.1     1 LOG:  checkpoint starting: time")
    assert background["u"] is None and background["message"] == "checkpoint starting: time"


def test_role_passwords_are_hidden():
    assert redact_passwords("CREATE ROLE app LOGIN PASSWORD 'hunter2'") == "CREATE ROLE app LOGIN PASSWORD '*****'"
    assert redact_passwords("SELECT 'PASSWORD ''x''' AS note") == "SELECT 'PASSWORD ''x''' AS note"


def test_lines_longer_than_a_read_block_and_a_last_line_without_newline(tmp_path):
    from atlas_compliance.sources.logfiles import read_lines

    path = tmp_path / "long.log"
    long = b"x" * (9 * 1024 * 1024 + 7)  # over two 4 MB blocks
    path.write_bytes(b"a\n" + long + b"\r\nb\nc")
    position = FilePosition()
    assert [(n, o, len(t)) for n, o, t in read_lines(path, position, to_end=False)] == [
        (1, 0, 1), (2, 2, len(long)), (3, len(long) + 4, 1)]
    assert (position.offset, position.line) == (len(long) + 6, 4)  # "c" may still be written to
    assert [(n, t) for n, _, t in read_lines(path, position, to_end=True)] == [(4, b"c")]
    assert (position.offset, position.line) == (len(long) + 7, 5)
