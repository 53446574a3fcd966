"""The command line against the test database: bootstrap, ingest, reports, verify, retention, errors."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from atlas_compliance.cli.main import app
from atlas_compliance.config import get_settings


@pytest.fixture()
def cli(database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str, input: str | None = None, ok: bool = True):
        result = runner.invoke(app, list(args), input=input)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    yield run
    get_settings.cache_clear()


def test_bootstrap_and_login(cli, client):
    slug = f"cli-{uuid.uuid4().hex[:8]}"
    assert f"created organization {slug}" in cli("orgs", "create", slug, "--name", "CLI Org").output
    email = f"admin-{slug}@example.com"
    out = cli("users", "create", email, "--org", slug, "--role", "admin", "--password-stdin",
              input="a-long-password\n").output
    assert f"created user {email} as admin of {slug}" in out
    member = f"member-{slug}@example.com"
    cli("users", "create", member, "--org", slug, "--role", "member", input="other-password\nother-password\n")
    login = client.post("/api/v1/auth/login", json={"email": email, "password": "a-long-password"})
    assert login.status_code == 200 and login.json()["role"] == "admin"
    token = cli("tokens", "create", "--org", slug, "--user", email, "--expires-in", "30d").stdout.strip().splitlines()[-1]
    assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).json()["credential"] == "personal"
    ingest = cli("tokens", "create", "--org", slug, "--ingest", "--name", "proxy").stdout.strip().splitlines()[-1]
    assert ingest.startswith("atli_")
    listing = cli("tokens", "list", "--org", slug).output
    token_id = next(line.split("\t")[0] for line in listing.splitlines() if "\tpersonal\t" in line)
    assert token not in listing and ingest not in listing
    cli("tokens", "revoke", token_id)
    assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert f"{member} is now admin of {slug}" in cli("members", "add", member, "--org", slug, "--role", "admin").output


@pytest.mark.parametrize(("args", "message"), [
    (("orgs", "create", "Bad Slug!", "--name", "x"), "invalid organization slug"),
    (("users", "create", "x@y.example", "--org", "no-such-org", "--role", "admin", "--password-stdin"),
     "no organization with slug"),
    (("users", "create", "x@y.example", "--org", "no-such-org", "--role", "root", "--password-stdin"), "invalid role"),
    (("tokens", "create", "--org", "x"), "exactly one of --user"),
    (("tokens", "revoke", "not-a-token-id"), "no token with id"),
    (("report", "data-access", "--org", "no-such-org", "--start", "2026-01-01", "--end", "2026-02-01"),
     "no organization"),
    (("report", "data-access", "--org", "x", "--start", "2026", "--end", "2026-02-01"), "invalid --start"),
    (("retention", "set", "--org", "x", "--days", "soon"), "--days must be"),
])
def test_errors_are_one_line_without_traceback(cli, args, message):
    result = cli(*args, input="a-long-password\n", ok=False)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) <= 3


@pytest.mark.parametrize("workers", ["1", "2"])
def test_bulk_import_in_worker_processes_stores_every_event_once_in_file_order(cli, tmp_path, make_org, sql, workers):
    """Three chunks (5,000 events each) parsed by worker processes and written in three transactions
    (4,000 events each, the last one shorter): every event stored once with the tables and columns its
    SQL names, rejections numbered by file line, the chain in file order."""
    org = make_org()
    lines = []
    for i in range(11_000):
        if i == 10_500:
            lines.append(json.dumps({"sql": None}))
        else:
            table = ("patients", "invoices", "staff")[i % 3]
            lines.append(json.dumps({"eventId": f"e{i}", "sql": f"SELECT p.email FROM {table} p WHERE p.id = {i}",
                                     "timestamp": f"2026-02-{i % 28 + 1:02d}T08:00:00Z", "userId": f"u{i % 7}"}))
    path = tmp_path / "big.ndjson"
    path.write_text("\n".join(lines) + "\n")
    out = cli("ingest", str(path), "--org", org.slug, "--workers", workers, "--commit-every", "4000").output
    assert "big.ndjson: 10999 inserted, 0 already stored, 1 rejected" in out
    assert "record 10501" in out
    rows = sql.execute("SELECT event_id, tables_accessed, columns_by_table FROM audit_log WHERE org_id = %s "
                       "ORDER BY chain_seq", (org.id,)).fetchall()
    expected_ids = [f"e{i}" for i in range(11_000) if i != 10_500]
    assert [r["event_id"] for r in rows] == expected_ids
    assert rows[4]["tables_accessed"] == ["invoices"] and rows[4]["columns_by_table"] == {"invoices": ["email", "id"]}
    assert "10999 rows checked" in cli("audit", "verify", "--org", org.slug).output.replace(",", "")
    again = cli("ingest", str(path), "--org", org.slug, "--workers", workers).output
    assert "0 inserted, 10999 already stored, 1 rejected" in again


# Text that COPY's text format must escape, or that looks like its markers, stored exactly as sent.
AWKWARD_TEXTS = ["tab\there", "line\nbreak", "carriage\rreturn", "back\\slash", "\\N", "\\.", "\\\\N",
                 "ends with a backslash \\", "ünïcödé 名前 🙂", "quote ' and \" both", "\\t is not a tab"]


def test_bulk_import_and_api_store_awkward_text_exactly(cli, tmp_path, make_org, sql):
    """Both writers build COPY's text format themselves: every string comes back byte for byte."""
    org = make_org()
    events = [{"eventId": f"awk-{i}", "sql": f"SELECT 1 -- {text}", "userLabel": text, "error": text,
               "success": False, "timestamp": "2026-03-01T10:00:00+02:00"} for i, text in enumerate(AWKWARD_TEXTS)]
    path = tmp_path / "awkward.ndjson"
    path.write_bytes(b"\n".join(json.dumps(e).encode() for e in events) + b"\n")
    assert f"{len(events)} inserted" in cli("ingest", str(path), "--org", org.slug).output
    api_events = [{**e, "eventId": "api-" + e["eventId"]} for e in events]
    resp = org.client.post("/api/v1/audit/events", json=api_events,
                           headers={"Authorization": f"Bearer {org.ingest_key()}"})
    assert resp.status_code == 200 and resp.json()["inserted"] == len(events), resp.text
    rows = sql.execute("SELECT event_id, sql, user_label, error, timestamp FROM audit_log WHERE org_id = %s",
                       (org.id,)).fetchall()
    by_id = {r["event_id"]: r for r in rows}
    for i, text in enumerate(AWKWARD_TEXTS):
        for event_id in (f"awk-{i}", f"api-awk-{i}"):
            row = by_id[event_id]
            assert (row["sql"], row["user_label"], row["error"]) == (f"SELECT 1 -- {text}", text, text)
            assert row["timestamp"].isoformat() == "2026-03-01T08:00:00+00:00"
    assert "OK" in cli("audit", "verify", "--org", org.slug).output


def test_bulk_import_nul_escapes_and_repeated_ids(cli, tmp_path, make_org, sql):
    """A JSON NUL escape rejects its event; an escaped backslash before u0000 is plain text. An id repeated
    later in the file (another chunk, another transaction) is stored once."""
    org = make_org()
    lines = [json.dumps({"eventId": f"n{i}", "sql": f"SELECT {i}"}) for i in range(7_000)]
    lines[10] = json.dumps({"eventId": "nul", "sql": "SELECT 1", "userLabel": "a\u0000b"})
    lines[11] = json.dumps({"eventId": "not-nul", "sql": "SELECT 1", "userLabel": "a\\u0000b"})
    lines[6_500] = json.dumps({"eventId": "n3", "sql": "SELECT 3"})
    path = tmp_path / "mixed.ndjson"
    path.write_text("\n".join(lines) + "\n")
    out = cli("ingest", str(path), "--org", org.slug, "--commit-every", "2000").output
    assert "6998 inserted, 1 already stored, 1 rejected" in out
    assert "record 11: NUL characters are not allowed" in out
    label = sql.execute("SELECT user_label FROM audit_log WHERE org_id = %s AND event_id = 'not-nul'",
                        (org.id,)).fetchone()["user_label"]
    assert label == "a\\u0000b"


def test_bulk_import_stops_at_invalid_json_keeping_what_came_before(cli, tmp_path, make_org, sql):
    """A line that is not JSON stops the import with one line naming it; the events before it are stored,
    and once the line is fixed a second run stores only the rest."""
    org = make_org()
    lines = [json.dumps({"eventId": f"j{i}", "sql": f"SELECT {i}"}) for i in range(3_000)]
    broken = [*lines[:2_400], "{not json", *lines[2_400:]]
    path = tmp_path / "broken.ndjson"
    path.write_text("\n".join(broken) + "\n")
    result = cli("ingest", str(path), "--org", org.slug, "--commit-every", "1000", ok=False)
    assert result.exit_code == 1 and "broken.ndjson, line 2401: not valid JSON" in result.output
    assert "Traceback" not in result.output
    stored = sql.execute("SELECT count(*) AS n FROM audit_log WHERE org_id = %s", (org.id,)).fetchone()["n"]
    assert stored == 2_400
    path.write_text("\n".join(lines) + "\n")
    assert "600 inserted, 2400 already stored, 0 rejected" in cli("ingest", str(path), "--org", org.slug).output
    assert "3000 rows checked" in cli("audit", "verify", "--org", org.slug).output.replace(",", "")


def test_bulk_import_killed_mid_way_then_rerun_stores_every_event_exactly_once(database_url, tmp_path, make_org, sql):
    """SIGKILL the import once it has committed a transaction: what it committed stays, the open
    transaction is gone, and a second run stores exactly the rest with the chain intact."""
    org = make_org()
    total = 40_000
    path = tmp_path / "kill.ndjson"
    path.write_text("".join(json.dumps({"eventId": f"k{i}", "sql": f"SELECT a, b FROM t{i % 50} WHERE id = {i}",
                                        "timestamp": "2026-03-01T10:00:00Z", "userId": f"u{i % 9}"}) + "\n"
                            for i in range(total)))
    command = [str(Path(sys.executable).with_name("atlas-compliance")), "ingest", str(path), "--org", org.slug,
               "--commit-every", "3000"]
    env = {**os.environ, "DATABASE_URL": database_url}

    def stored() -> int:
        return sql.execute("SELECT count(*) AS n FROM audit_log WHERE org_id = %s", (org.id,)).fetchone()["n"]

    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300  # a ceiling for a loaded machine, not a speed requirement
        while stored() == 0 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    killed_at = stored()
    assert 0 < killed_at < total, "the import must be killed part-way"
    if sys.platform.startswith("linux"):  # its worker processes die with it
        deadline = time.monotonic() + 10
        while _processes_naming(str(path)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _processes_naming(str(path)) == []
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{total - killed_at} inserted, {killed_at} already stored, 0 rejected" in rerun.stdout
    ids = sql.execute("SELECT count(DISTINCT event_id) AS ids, count(*) AS n FROM audit_log WHERE org_id = %s",
                      (org.id,)).fetchone()
    assert ids == {"ids": total, "n": total}
    verify = subprocess.run([command[0], "audit", "verify", "--org", org.slug], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert f"OK, {total} rows checked" in verify.stdout


def _processes_naming(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_ingest_report_verify_retention(cli, tmp_path, make_org, sql, retention_floor):
    org = make_org()
    admin = org.add_user("admin")
    events = [{"sql": f"SELECT id, email FROM patients WHERE id = {i}", "userId": admin.id,
               "timestamp": f"2026-01-{i % 28 + 1:02d}T10:00:00Z", "sourceType": "postgres",
               "tablesAccessed": ["patients"], "columnsByTable": {"patients": ["email", "id"]}} for i in range(40)]
    ndjson = tmp_path / "events.ndjson"
    ndjson.write_text("\n".join(json.dumps(e) for e in events[:30]) + "\n" + "{\"userId\": \"no sql\"}\n")
    out = cli("ingest", str(ndjson), "--org", org.slug).output
    assert "events.ndjson: 30 inserted, 0 already stored, 1 rejected" in out and "record 31" in out
    assert "0 inserted, 30 already stored, 1 rejected" in cli("ingest", str(ndjson), "--org", org.slug,
                                                              "--rerun").output
    as_csv = tmp_path / "more.csv"
    with open(as_csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["sql", "userId", "timestamp", "tablesAccessed", "success"])
        writer.writeheader()
        for e in events[30:]:
            writer.writerow({"sql": e["sql"], "userId": e["userId"], "timestamp": e["timestamp"],
                             "tablesAccessed": "patients", "success": "true"})
    assert "10 inserted" in cli("ingest", str(as_csv), "--org", org.slug).output
    as_json = tmp_path / "one.json"
    as_json.write_text(json.dumps([{"sql": "SELECT 1", "timestamp": "2026-01-02T00:00:00Z"}]))
    assert "1 inserted" in cli("ingest", str(as_json), "--org", org.slug).output
    count = sql.execute("SELECT count(*) AS n FROM audit_log WHERE org_id = %s", (org.id,)).fetchone()["n"]
    assert count == 41

    table = cli("report", "data-access", "--org", org.slug, "--start", "2026-01-01", "--end", "2026-01-31").output
    assert "totalQueries: 40" in table and "patients" in table
    doc = json.loads(cli("report", "user-activity", "--org", org.slug, "--start", "2026-01-01", "--end",
                         "2026-01-31", "--format", "json").stdout)
    # 40 queries by the admin and the JSON file's one query with no user (which touched no table).
    assert doc["summary"] == {"totalUsers": 1, "activeUsers": 1, "totalQueries": 41, "tableQueries": 40}
    assert [(r["userEmail"], r["totalQueries"]) for r in doc["rows"]] == [(admin.email, 40), (None, 1)]
    target = tmp_path / "da.csv"
    cli("report", "data-access", "--org", org.slug, "--start", "2026-01-01", "--end", "2026-01-31", "--format",
        "csv", "-o", str(target))
    rows = list(csv.DictReader(io.StringIO(target.read_text(), newline="")))
    assert [(r["table_name"], r["query_count"], r["unique_columns"]) for r in rows] == [("patients", "40", "email; id")]
    logged = sql.execute("SELECT count(*) AS n FROM admin_action_log WHERE org_id = %s AND actor_id = 'system:cli'",
                         (org.id,)).fetchone()["n"]
    assert logged == 3

    assert f"{org.slug}: OK, 41 rows checked" in cli("audit", "verify", "--org", org.slug).output
    below = cli("retention", "set", "--org", org.slug, "--days", "30", ok=False)
    assert below.exit_code == 1 and "at least 365 (this installation's minimum" in below.output
    retention_floor(30, 0)
    cli("retention", "set", "--org", org.slug, "--days", "30", "--hard-delete-delay", "0")
    assert f"{org.slug}: 41 soft-deleted, 41 hard-deleted" in cli("retention", "purge", "--org", org.slug).output
    assert "OK, 41 rows checked (41 purged" in cli("audit", "verify", "--org", org.slug).output
    assert "unlimited" in cli("retention", "set", "--org", org.slug, "--days", "unlimited").output
    # Past 100 years the purge's cutoff leaves PostgreSQL's date range: refused, the policy unchanged.
    refused = cli("retention", "set", "--org", org.slug, "--days", "40000", ok=False)
    assert refused.exit_code == 1 and "at most 36,500 days" in refused.output
    assert "unlimited" in cli("retention", "show", "--org", org.slug).output
