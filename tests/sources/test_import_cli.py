"""`atlas-compliance import pgaudit|mariadb-audit` and `sources …` as users run them: summaries, exit codes,
clear refusals, and nothing stored twice."""

from __future__ import annotations

import shutil
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
PREFIX = ["--log-line-prefix", "%m [%p] %c %l %e %q%u@%d %h %a "]


def _said(result) -> str:
    """stderr as one line (the terminal's line wrapping undone)."""
    return " ".join(result.stderr.split())


def _expected_count(name: str) -> int:
    return sum(1 for line in (FIXTURES / f"expected_{name}.txt").read_text().splitlines() if not line.startswith("#"))


def test_import_summarizes_and_a_second_import_of_any_destination_stores_nothing(atlas, org, sql):
    n = _expected_count("pgaudit")
    first = atlas("import", "pgaudit", str(FIXTURES / "pgaudit.json"), "--org", org.slug, "--source", "cli-pg")
    assert first.returncode == 0, first.stderr
    lines = len((FIXTURES / "pgaudit.json").read_text().splitlines())
    assert first.stdout.strip() == f"cli-pg: {lines} lines, {n} statements: {n} stored, 0 already stored, 0 lines skipped"
    again = atlas("import", "pgaudit", str(FIXTURES / "pgaudit.csv"), "--org", org.slug, "--source", "cli-pg")
    assert f"{n} statements: 0 stored, {n} already stored" in again.stdout
    stderr_log = atlas("import", "pgaudit", str(FIXTURES / "pgaudit.log"), *PREFIX, "--org", org.slug,
                       "--source", "cli-pg")
    # pgAudit's statements are the same events, and so are those identified by their session line number,
    # except two: stderr numbers every printed line (an earlier STATEMENT line of their session counted),
    # csvlog and jsonlog every message (see docs/sources.md): import one destination of a server.
    assert f"{n} statements: 2 stored, {n - 2} already stored" in stderr_log.stdout
    count = sql.execute("SELECT count(*) AS n FROM audit_log WHERE org_id = %s", (org.id,)).fetchone()["n"]
    assert count == n + 2
    listed = atlas("sources", "list", "--org", org.slug).stdout
    assert "cli-pg (pgaudit): last import " in listed and f"{n + 2} events stored" in listed


def test_mariadb_import_and_a_source_name_keeps_its_kind(atlas, org):
    n = _expected_count("server_audit")
    result = atlas("import", "mariadb-audit", str(FIXTURES / "server_audit.log"), "--org", org.slug,
                   "--source", "cli-maria")
    assert result.returncode == 0 and f"{n} statements: {n} stored" in result.stdout
    clash = atlas("import", "pgaudit", str(FIXTURES / "pgaudit.json"), "--org", org.slug, "--source", "cli-maria")
    assert clash.returncode == 1
    assert "the source 'cli-maria' of this organization is a mariadb-audit source" in _said(clash)


def test_unreadable_lines_are_listed_and_the_exit_code_is_1(atlas, org, tmp_path):
    lines = (FIXTURES / "pgaudit.json").read_text().splitlines(keepends=True)
    broken = tmp_path / "broken.json"
    broken.write_text("".join([*lines[:5], "not json\n", *lines[5:]]))
    result = atlas("import", "pgaudit", str(broken), "--org", org.slug, "--source", "cli-broken")
    assert result.returncode == 1
    assert "broken.json, line 6: not a JSON log record" in _said(result)
    assert f"{_expected_count('pgaudit')} stored, 0 already stored, 1 lines skipped" in result.stdout


def test_refusals_are_one_clear_line(atlas, org, tmp_path):
    stderr_log = str(FIXTURES / "pgaudit.log")
    no_prefix = atlas("import", "pgaudit", stderr_log, "--org", org.slug)
    assert no_prefix.returncode == 1 and "pass the server's log_line_prefix with --log-line-prefix" in _said(no_prefix)
    weak = atlas("import", "pgaudit", stderr_log, "--org", org.slug, "--log-line-prefix", "%m [%p] %q%u@%d ")
    assert weak.returncode == 1 and "cannot identify a statement: it lacks a session id" in _said(weak)
    both = atlas("import", "pgaudit", stderr_log, "--follow", str(tmp_path), "--org", org.slug)
    assert both.returncode == 1 and "give either log FILES" in _said(both)
    neither = atlas("import", "mariadb-audit", "--org", org.slug)
    assert neither.returncode == 1 and "give either log FILES" in _said(neither)
    zone = atlas("import", "mariadb-audit", str(FIXTURES / "server_audit.log"), "--org", org.slug,
                 "--log-timezone", "Mars/Olympus")
    assert zone.returncode == 1 and "unknown time zone 'Mars/Olympus'" in _said(zone)
    unknown_org = atlas("import", "mariadb-audit", str(FIXTURES / "server_audit.log"), "--org", "no-such-org")
    assert unknown_org.returncode == 1 and "no organization with slug 'no-such-org'" in _said(unknown_org)
    assert "Traceback" not in "".join(r.stderr for r in (no_prefix, weak, both, neither, zone, unknown_org))


def test_keep_parameters(atlas, org, sql):
    atlas("import", "pgaudit", str(FIXTURES / "pgaudit.json"), "--org", org.slug, "--keep-parameters")
    kept = sql.execute("SELECT sql FROM audit_log WHERE org_id = %s AND sql LIKE %s", (org.id, "%$1%")).fetchone()
    assert kept["sql"].endswith("\n/* parameters: 1000,x'y */")


def test_sources_commands_map_and_unmap_roles(atlas, org):
    member = org.add_user("member", login=False)
    mapped = atlas("sources", "map-role", "alice", "--org", org.slug, "--user", member.email)
    assert mapped.returncode == 0 and mapped.stdout.strip() == f"db:alice → {member.email}"
    assert f"role alice → {member.email}" in atlas("sources", "list", "--org", org.slug).stdout
    again = atlas("sources", "map-role", "alice", "--org", org.slug, "--user", member.email)
    assert f"(was {member.id})" in again.stdout
    unknown = atlas("sources", "map-role", "bob", "--org", org.slug, "--user", "nobody@example.invalid")
    assert unknown.returncode == 1 and "no member of this organization has the email" in _said(unknown)
    assert atlas("sources", "unmap-role", "alice", "--org", org.slug).stdout.strip() == "db:alice is no longer mapped"
    missing = atlas("sources", "unmap-role", "alice", "--org", org.slug)
    assert missing.returncode == 1 and "is not mapped" in _said(missing)


def test_follow_a_directory_of_rotated_files_once_then_stop(atlas, org, tmp_path, sql):
    """A follower started on a directory that already holds rotated files reads them oldest first."""
    import signal
    import subprocess
    import time

    from .conftest import CLI

    logs = tmp_path / "logs"
    logs.mkdir()
    lines = (FIXTURES / "pgaudit.json").read_text().splitlines(keepends=True)
    for number, part in enumerate((lines[:20], lines[20:])):
        path = logs / f"postgresql-{number}.json"
        path.write_text("".join(part))
        time.sleep(0.05)  # distinct modification times: the order of rotation
    shutil.copy(FIXTURES / "pgaudit.csv", logs / "ignored.csv")  # the richest destination present is followed
    process = subprocess.Popen([CLI, "import", "pgaudit", "--follow", str(logs), "--org", org.slug, "--settle", "0.5",
                                "--workers", "1"], env=atlas.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    n = _expected_count("pgaudit")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        stored = sql.execute("SELECT count(*) AS n FROM audit_log WHERE org_id = %s", (org.id,)).fetchone()["n"]
        if stored == n:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert f"{n} statements: {n} stored" in out
    positions = sql.execute("SELECT path, byte_offset FROM audit_source_position WHERE org_id = %s ORDER BY path",
                            (org.id,)).fetchall()
    assert [(Path(p["path"]).name, p["byte_offset"]) for p in positions] == [
        (f"postgresql-{i}.json", (logs / f"postgresql-{i}.json").stat().st_size) for i in range(2)]


def test_two_imports_of_the_same_log_at_once_store_each_statement_once(atlas, org, sql):
    import subprocess

    from .conftest import CLI

    command = [CLI, "import", "pgaudit", str(FIXTURES / "mixed.json"), str(FIXTURES / "pgaudit.json"), "--org",
               org.slug, "--source", "twice", "--workers", "1"]
    runs = [subprocess.Popen(command, env=atlas.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    n = _expected_count("mixed") + _expected_count("pgaudit")
    stored = [int(out.split("statements: ")[1].split(" stored")[0]) for out, _ in outputs]
    assert sum(stored) == n
    count = sql.execute("SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM audit_log WHERE org_id = %s",
                        (org.id,)).fetchone()
    assert count == {"n": n, "ids": n}
