"""`transactionOutcome`: stored per statement, validated, covered by upgrades, counted by reports.

The rule the reports follow (docs/audit-trail.md): a statement of a rolled-back transaction still
accessed the data it read, so reports count it like any other successful statement; the outcome is
kept on the row so that an auditor can tell undone writes from kept ones.
"""

from __future__ import annotations

import secrets
import uuid

import psycopg
import pytest

from atlas_compliance.db import migrate
from tests.conftest import _with_dbname

URL = "/api/v1/audit/events"


def outcomes(sql, org) -> dict[str, str | None]:
    rows = sql.execute("SELECT event_id, transaction_outcome FROM audit_log WHERE org_id = %s", (org.id,))
    return {r["event_id"]: r["transaction_outcome"] for r in rows}


def test_the_outcome_is_stored_as_sent_and_absent_stays_null(client, org, sql):
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    events = [{"eventId": "c", "sql": "UPDATE orders SET total = 0", "transactionOutcome": "committed"},
              {"eventId": "r", "sql": "UPDATE orders SET total = 0", "transactionOutcome": "rolled_back"},
              {"eventId": "u", "sql": "UPDATE orders SET total = 0", "transactionOutcome": "unknown"},
              {"eventId": "n", "sql": "SELECT id FROM orders"},
              {"eventId": "x", "sql": "SELECT id FROM orders", "transactionOutcome": None}]
    answer = client.post(URL, json=events, headers=key).json()
    assert answer == {"inserted": 5, "duplicates": 0, "rejected": []}
    assert outcomes(sql, org) == {"c": "committed", "r": "rolled_back", "u": "unknown", "n": None, "x": None}


def test_an_unknown_outcome_rejects_only_that_event(client, org, sql):
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    events = [{"eventId": "ok", "sql": "SELECT 1", "transactionOutcome": "committed"},
              {"eventId": "bad", "sql": "SELECT 1", "transactionOutcome": "aborted"},
              {"eventId": "typed", "sql": "SELECT 1", "transactionOutcome": True},
              {"eventId": "cased", "sql": "SELECT 1", "transactionOutcome": "Committed"}]
    answer = client.post(URL, json=events, headers=key).json()
    assert answer["inserted"] == 1 and [r["index"] for r in answer["rejected"]] == [1, 2, 3]
    assert all("transactionOutcome" in r["error"] for r in answer["rejected"])
    assert outcomes(sql, org) == {"ok": "committed"}


def test_the_database_refuses_an_outcome_it_does_not_know(org, sql):
    with pytest.raises(psycopg.errors.CheckViolation):
        sql.execute("INSERT INTO audit_log (org_id, auth_mode, sql, duration_ms, success, transaction_outcome) "
                    "VALUES (%s, 'none', 'SELECT 1', 0, true, 'maybe')", (org.id,))


def test_rolled_back_statements_count_in_the_data_access_report(client, org, sql):
    """Reads happened whatever the outcome: every successful statement is counted, as documented."""
    admin = org.add_user("admin")
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    stamp = "2026-03-02T10:00:00Z"
    events = [{"sql": "SELECT email FROM patients", "userId": "u1", "timestamp": stamp,
               "transactionOutcome": outcome} for outcome in ("committed", "rolled_back", "unknown", None)]
    events.append({"sql": "UPDATE patients SET email = NULL", "userId": "u1", "timestamp": stamp,
                   "transactionOutcome": "rolled_back"})
    assert client.post(URL, json=events, headers=key).json()["inserted"] == 5
    report = client.get("/api/v1/admin/compliance/reports/data-access",
                        params={"startDate": "2026-03-01", "endDate": "2026-03-03"}, headers=admin.headers).json()
    rows = {(r["tableName"], r["userId"]): r["queryCount"] for r in report["rows"]}
    assert rows == {("patients", "u1"): 5}
    assert report["summary"]["totalQueries"] == 5


@pytest.fixture()
def database_before_outcomes(server_url):
    name = f"atlas_outcome_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_dbname(server_url, name)
    migrate.upgrade(url, "0008")
    yield url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_upgrading_keeps_existing_chains_verifiable(database_before_outcomes):
    """Rows written before 0009 keep their hashes (the column is added empty) and later rows chain on."""
    org_id = str(uuid.uuid4())
    insert = ("INSERT INTO audit_log (org_id, auth_mode, sql, duration_ms, success, event_id) "
              "VALUES (%s, 'none', %s, 1, true, %s)")
    with psycopg.connect(database_before_outcomes, autocommit=True) as conn:
        for i in range(3):
            conn.execute(insert, (org_id, f"SELECT {i}", f"before-{i}"))
        before = conn.execute("SELECT chain_seq, row_hash FROM audit_log ORDER BY chain_seq").fetchall()
    assert migrate.upgrade(database_before_outcomes)[0] == "0009"
    with psycopg.connect(database_before_outcomes, autocommit=True) as conn:
        conn.execute(insert.replace("event_id)", "event_id, transaction_outcome)").replace("%s)", "%s, %s)"),
                     (org_id, "SELECT 3", "after-3", "rolled_back"))
        after = conn.execute("SELECT chain_seq, row_hash, transaction_outcome FROM audit_log "
                             "ORDER BY chain_seq").fetchall()
        broken = conn.execute(
            "SELECT count(*) FROM (SELECT row_hash, atlas_audit_hash(a, prev_hash) AS calc, prev_hash, "
            "lag(row_hash) OVER (ORDER BY chain_seq) AS previous FROM audit_log a) c "
            "WHERE row_hash IS DISTINCT FROM calc OR (previous IS NOT NULL AND prev_hash IS DISTINCT FROM previous)"
        ).fetchone()[0]
    assert [(seq, digest) for seq, digest, _ in after[:3]] == before
    assert [outcome for *_, outcome in after] == [None, None, None, "rolled_back"]
    assert broken == 0
