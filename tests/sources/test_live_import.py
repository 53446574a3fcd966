"""A real pgAudit PostgreSQL 15 and a real MariaDB with server_audit run a workload of reads, writes,
joins, CTEs, failed statements and several roles; after `atlas-compliance import`, both reports equal
what the logs show. The expected figures are counted from the log lines here, with code of this test
(not the importer's), and checked against what the workload ran."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .workload import run_mariadb_workload, run_pg_workload


def _pg_log_statements(paths: list[Path]) -> dict[tuple[str, str], dict]:
    """pgAudit statements of a jsonlog: (session, statement id) -> role, relations, failed. A statement
    failed when the next record of its session is an ERROR for the same statement text."""
    statements: dict[tuple[str, str], dict] = {}
    last: dict[str, tuple[str, str]] = {}
    for line in "".join(p.read_text() for p in paths).splitlines():
        record = json.loads(line)
        session, message = record.get("session_id"), record.get("message", "")
        if message.startswith("AUDIT: SESSION,"):
            fields = next(csv.reader([message[len("AUDIT: "):]]))
            key = (session, fields[1])
            found = statements.setdefault(key, {"role": record["user"], "tables": set(), "failed": False,
                                                "text": fields[7]})
            if fields[5] in ("TABLE", "VIEW"):
                found["tables"].add(fields[6].removeprefix("public."))
            last[session] = key
        elif session in last:
            key = last.pop(session)
            if record["error_severity"] == "ERROR" and record.get("statement") == statements[key]["text"]:
                statements[key]["failed"] = True
    return statements


def _report(client, headers, kind: str, start: str, end: str) -> dict:
    response = client.get(f"/api/v1/admin/compliance/reports/{kind}", headers=headers,
                          params={"startDate": start, "endDate": end})
    assert response.status_code == 200, response.text
    return response.json()


def _windows() -> list[tuple[str, str]]:
    """Whole UTC days (read from the rollups) and a window inside them (read from the raw rows)."""
    now = datetime.now(UTC)
    return [((now - timedelta(days=1)).date().isoformat(), (now + timedelta(days=1)).date().isoformat()),
            ((now - timedelta(hours=2)).isoformat(), (now + timedelta(hours=2)).isoformat())]


def _assert_reports(client, admin, per_pair: Counter, per_user: Counter) -> None:
    for start, end in _windows():
        access = _report(client, admin.headers, "data-access", start, end)
        assert {(r["tableName"], r["userId"]): r["queryCount"] for r in access["rows"]} == dict(per_pair)
        activity = _report(client, admin.headers, "user-activity", start, end)
        users = {r["userId"]: r["totalQueries"] for r in activity["rows"] if r["totalQueries"]}
        assert users == dict(per_user)
        assert activity["summary"]["totalQueries"] == sum(per_user.values())


def test_pgaudit_reports_equal_what_the_log_shows_and_a_second_import_stores_nothing(
        pgaudit_cluster, tmp_path, make_org, client, atlas, sql):
    logs = pgaudit_cluster.new_log_dir(f"import-{tmp_path.name}")
    ran = run_pg_workload(pgaudit_cluster, rounds=3, start=5000)
    pgaudit_cluster.settle_logs()
    org = make_org()
    admin = org.add_user("admin")
    jsonlogs = sorted(logs.glob("*.json"))  # a file per rotation, in order
    result = atlas("import", "pgaudit", *map(str, jsonlogs), "--org", org.slug, "--source", "lab-pg")
    assert result.returncode == 0, result.stderr
    logged = _pg_log_statements(jsonlogs)
    failed_before_audit = sum(1 for r in ran if not r.success) - sum(1 for s in logged.values() if s["failed"])
    stored = len(logged) + failed_before_audit
    assert f"{stored:,} stored, 0 already stored, 0 lines skipped" in result.stdout

    per_pair: Counter = Counter()
    per_user: Counter = Counter()
    for statement in logged.values():
        if not statement["failed"]:
            per_user[f"db:{statement['role']}"] += 1
            for table in statement["tables"]:
                per_pair[(table, f"db:{statement['role']}")] += 1
    # What the log shows is what the workload ran: every statement, once, with its outcome.
    workload = Counter((f"db:{r.role}", t) for r in ran if r.success for t in r.tables)
    assert {k: v for k, v in per_pair.items() if k[1] != "db:postgres"} == \
           {(t, u): n for (u, t), n in workload.items()}
    _assert_reports(client, admin, per_pair, per_user)

    rows = sql.execute("SELECT sql, success, error, user_id, client_id, tool_name, target_host FROM audit_log "
                       "WHERE org_id = %s", (org.id,)).fetchall()
    times = Counter((r.sql, f"db:{r.role}", r.success) for r in ran)
    for (text, user, success), n in times.items():
        assert [(row["user_id"], row["success"]) for row in rows if row["sql"] == text and row["user_id"] == user] \
            == [(user, success)] * n, text
    refused = next(row for row in rows if row["sql"].startswith("SELECT v FROM secrets"))
    assert refused["error"] == "permission denied for table secrets (SQLSTATE 42501)"
    assert (refused["client_id"], refused["tool_name"], refused["target_host"]) == ("127.0.0.1", "bob-app", "postgres")

    again = atlas("import", "pgaudit", *map(str, sorted(logs.glob("*.csv"))), "--org", org.slug, "--source", "lab-pg")
    assert again.returncode == 0, again.stderr
    assert f"0 stored, {stored:,} already stored, 0 lines skipped" in again.stdout
    _assert_reports(client, admin, per_pair, per_user)
    verify = atlas("audit", "verify", "--org", org.slug)
    assert f"OK, {stored} rows checked" in verify.stdout


def _mariadb_log_statements(path: Path) -> list[dict]:
    """Statements of a server_audit log: each QUERY line, with the tables of its query id's TABLE lines."""
    tables: dict[tuple[str, str], set[str]] = defaultdict(set)
    statements = []
    for line in path.read_text().splitlines():
        fields = line.split(",", 8)
        connection, query, operation, database = fields[4], fields[5], fields[6], fields[7]
        obj, _, code = fields[8].rpartition(",")
        if operation in ("READ", "WRITE") and database != "mysql":
            tables[(connection, query)].add((database, obj))
        elif operation == "QUERY":
            named = {t if d == database else f"{d}.{t}" for d, t in tables.pop((connection, query), set())}
            statements.append({"role": fields[2], "tables": named, "failed": code != "0", "sql": obj})
    return statements


def test_mariadb_reports_equal_what_the_log_shows_and_a_second_import_stores_nothing(
        mariadb_server, tmp_path, make_org, client, atlas, sql):
    audit = mariadb_server.new_audit_file(f"import-{tmp_path.name}")
    ran = run_mariadb_workload(mariadb_server, rounds=3, start=7000)
    mariadb_server.execute("SELECT 1")  # written after the workload's last statement
    org = make_org()
    admin = org.add_user("admin")
    result = atlas("import", "mariadb-audit", str(audit), "--org", org.slug, "--source", "lab-maria")
    assert result.returncode == 0, result.stderr
    logged = _mariadb_log_statements(audit)
    assert f"{len(logged):,} stored, 0 already stored, 0 lines skipped" in result.stdout
    per_pair: Counter = Counter()
    per_user: Counter = Counter()
    for statement in logged:
        if not statement["failed"] and statement["role"]:
            per_user[f"db:{statement['role']}"] += 1
            for table in statement["tables"]:
                per_pair[(table, f"db:{statement['role']}")] += 1
    workload = Counter((f"db:{r.role}", t) for r in ran if r.success for t in r.tables)
    assert {k: v for k, v in per_pair.items() if k[1] != "db:root"} == {(t, u): n for (u, t), n in workload.items()}
    _assert_reports(client, admin, per_pair, per_user)
    failed = sql.execute("SELECT count(*) AS n FROM audit_log WHERE org_id = %s AND NOT success",
                         (org.id,)).fetchone()["n"]
    assert failed == sum(1 for r in ran if not r.success)

    again = atlas("import", "mariadb-audit", str(audit), "--org", org.slug, "--source", "lab-maria")
    assert f"0 stored, {len(logged):,} already stored, 0 lines skipped" in again.stdout
    _assert_reports(client, admin, per_pair, per_user)
