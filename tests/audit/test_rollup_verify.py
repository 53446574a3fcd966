"""`audit verify` recomputes the rollups reports read and names every (rollup, day or week, table, user)
that differs from the raw rows (issue 15, attack 2 as a superuser would carry it out: the guards off).

A non-superuser cannot change a rollup at all (tests/audit/test_evidence_guard.py); these tests are about
what the verifier sees once someone who can has done it anyway.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
from typer.testing import CliRunner

from atlas_compliance.cli.main import app
from atlas_compliance.config import get_settings
from tests.conftest import assert_error

URL = "/api/v1/audit/events"
VERIFY = "/api/v1/admin/audit/verify"
ROLLUPS = ("audit_user_daily", "audit_access_daily", "audit_access_weekly", "audit_column_dict")
WIDE = [f"c{i:03d}" for i in range(70)]  # more columns than a table's 64-bit mask holds


@pytest.fixture()
def cli(database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result.stdout

    yield run
    get_settings.cache_clear()


def varied_events(seed: int, n: int) -> list[dict]:
    """Events with every shape the rollups handle: several users and none, tables named twice, columns per
    table or for the whole query, a table with more than 64 columns, no table at all, failures, over
    three weeks of days."""
    rng = random.Random(seed)
    tables = ["patients", "orders", "billing.invoices", "wide"]
    start = date(2026, 3, 2)
    events = []
    for i in range(n):
        day = start + timedelta(days=rng.randrange(20))
        event: dict = {"eventId": f"v{seed}-{i}", "sql": f"SELECT {i}", "success": rng.random() > 0.15,
                       "userLabel": rng.choice([None, "laptop", "etl job", "notebook"]),
                       "timestamp": f"{day.isoformat()}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z"}
        if rng.random() > 0.1:
            event["userId"] = rng.choice(["u-ann", "u-bob", "u-cy"])
        shape = rng.randrange(5)
        named = rng.sample(tables, rng.randrange(1, 3))
        if shape == 0:
            event["tablesAccessed"] = named + named[:1]  # a table named twice counts once
        elif shape == 1:
            event["tablesAccessed"] = named
            event["columnsAccessed"] = rng.sample(["id", "email", "ssn", "total"], 2)
        elif shape == 2:
            event["tablesAccessed"] = named
            event["columnsByTable"] = {t: rng.sample(WIDE if t == "wide" else ["id", "email", "dob"], 3)
                                       for t in named}
        elif shape == 3:
            event["tablesAccessed"] = ["wide"]
            event["columnsByTable"] = {"wide": rng.sample(WIDE, 20)}
        events.append(event)  # shape 4: no table
    return events


def ingest(client, org, events) -> None:
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    for at in range(0, len(events), 200):  # several statements, so the insert trigger adds to existing rows
        assert client.post(URL, json=events[at:at + 200], headers=key).status_code == 200


def superuser(sql, *statements: tuple[str, tuple]) -> None:
    """What someone holding the database superuser does: switch the rollups' guards off and change rows."""
    with sql.transaction():
        for table in ROLLUPS:
            sql.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        for statement, params in statements:
            sql.execute(statement, params)
        for table in ROLLUPS:
            sql.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


@pytest.fixture()
def varied(client, org):
    ingest(client, org, varied_events(7, 900))
    return org


def test_rollups_written_by_the_insert_trigger_match_the_raw_rows(client, varied, cli, sql):
    admin = varied.add_user("admin")
    body = client.get(VERIFY, headers=admin.headers).json()
    assert body["ok"] is True and body["rollups"] == {"ok": True, "since": None, "differenceCount": 0,
                                                      "differences": []}
    assert "rollups OK (whole history)" in cli("audit", "verify", "--org", varied.slug)
    # The check is not vacuous: the org has rows in each rollup, and columns kept past the mask's 64 bits.
    counts = sql.execute("SELECT (SELECT count(*) FROM audit_access_weekly WHERE org_id = %(o)s) AS weekly, "
                         "(SELECT count(*) FROM audit_access_daily WHERE org_id = %(o)s "
                         " AND extra_columns IS NOT NULL) AS extra, "
                         "(SELECT count(*) FROM audit_user_daily WHERE org_id = %(o)s) AS users",
                         {"o": varied.id}).fetchone()
    assert counts["weekly"] > 10 and counts["extra"] > 0 and counts["users"] > 40


def test_rollups_rebuilt_by_a_purge_match_the_raw_rows(client, org, cli, retention_floor):
    retention_floor(30, 0)
    events = varied_events(11, 300)
    today = date.today()
    for i, e in enumerate(events):  # a third of them old enough to purge, the rest from the last days
        day = date(2020, 1, 1 + i % 9) if i < 100 else today - timedelta(days=i % 5)
        e["timestamp"] = day.isoformat() + e["timestamp"][10:]
    ingest(client, org, events)
    admin = org.add_user("admin")
    client.put("/api/v1/admin/audit/retention", json={"retentionDays": 30}, headers=admin.headers)
    assert client.post("/api/v1/admin/audit/retention/purge", headers=admin.headers).json()["softDeleted"] == 100
    assert client.get(VERIFY, headers=admin.headers).json()["rollups"]["ok"] is True  # soft-deleted: rebuilt
    client.put("/api/v1/admin/audit/retention", json={"retentionDays": 30, "hardDeleteDelayDays": 0},
               headers=admin.headers)
    assert client.post("/api/v1/admin/audit/retention/purge", headers=admin.headers).json()["hardDeleted"] == 100
    out = cli("audit", "verify", "--org", org.slug)
    assert "rollups OK" in out and "(100 purged by retention)" in out, out


def one(sql, query: str, org) -> dict:
    return sql.execute(query, {"o": org.id}).fetchone()


TAMPERING = {
    "weekly count": (
        "UPDATE audit_access_weekly SET query_count = 1 WHERE org_id = %(o)s AND table_name = 'patients' "
        "AND user_id = 'u-ann' AND week = '2026-03-09'",
        "access_weekly 2026-03-09 table patients user u-ann: query_count is 1, the raw rows give"),
    "user daily count": (
        "UPDATE audit_user_daily SET query_count = 1 WHERE org_id = %(o)s AND user_id = 'u-bob' "
        "AND day = '2026-03-10'",
        "user_daily 2026-03-10 user u-bob: query_count is 1, the raw rows give"),
    "daily row deleted": (
        "DELETE FROM audit_access_daily WHERE org_id = %(o)s AND table_name = 'orders' AND user_id = 'u-cy' "
        "AND day = '2026-03-11'",
        "access_daily 2026-03-11 table orders user u-cy: row missing"),
    "forged daily row": (
        "INSERT INTO audit_access_daily (org_id, day, table_name, user_id, query_count, first_ts, last_ts) "
        "VALUES (%(o)s, '2026-03-12', 'salaries', 'u-ann', 3, '2026-03-12T01:00Z', '2026-03-12T02:00Z')",
        "access_daily 2026-03-12 table salaries user u-ann: row that the raw rows do not support"),
    "column hidden from the mask": (
        "UPDATE audit_access_daily SET col_mask = 0 WHERE org_id = %(o)s AND table_name = 'patients' "
        "AND user_id = 'u-ann' AND day = (SELECT min(day) FROM audit_access_daily WHERE org_id = %(o)s "
        "AND table_name = 'patients' AND user_id = 'u-ann' AND col_mask <> 0)",
        "table patients user u-ann: columns is"),
    "dictionary bits swapped": (
        "UPDATE audit_column_dict SET bit = 63 - bit WHERE org_id = %(o)s AND table_name = 'patients' "
        "AND bit IS NOT NULL",
        "table patients user"),
    "label changed": (
        "UPDATE audit_user_daily SET last_label = 'someone else' WHERE org_id = %(o)s AND user_id = 'u-ann' "
        "AND day = '2026-03-10'",
        "user_daily 2026-03-10 user u-ann: last_label is someone else, the raw rows give"),
    "first seen moved": (
        "UPDATE audit_user_daily SET first_ts = first_ts - interval '1 hour' WHERE org_id = %(o)s "
        "AND user_id = 'u-cy' AND day = '2026-03-13'",
        "user_daily 2026-03-13 user u-cy: first_ts is"),
}


@pytest.mark.parametrize("attack", sorted(TAMPERING))
def test_each_changed_rollup_is_named(client, varied, cli, sql, attack):
    statement, named = TAMPERING[attack]
    superuser(sql, (statement, {"o": varied.id}))
    out = cli("audit", "verify", "--org", varied.slug, code=2)
    assert f"{varied.slug}: OK," in out  # the hash chain itself is intact: only the rollups lie
    assert "ROLLUPS DIFFER" in out and named in out, out
    body = client.get(VERIFY, headers=varied.add_user("admin").headers).json()
    assert body["ok"] is False and body["firstBreak"] is None and body["rollups"]["ok"] is False
    assert body["rollups"]["differenceCount"] >= 1
    assert {d["rollup"] for d in body["rollups"]["differences"]} <= {"user_daily", "access_daily", "access_weekly"}


def test_the_named_figures_are_the_stored_and_the_true_ones(client, varied, sql):
    true = one(sql, "SELECT count(*) AS n FROM audit_log WHERE org_id = %(o)s AND user_id = 'u-bob' AND success "
                    "AND \"timestamp\" >= '2026-03-10T00:00Z' AND \"timestamp\" < '2026-03-11T00:00Z'", varied)["n"]
    assert true > 1
    superuser(sql, (TAMPERING["user daily count"][0], {"o": varied.id}))
    body = client.get(VERIFY, headers=varied.add_user("admin").headers).json()
    assert body["rollups"]["differences"] == [{"rollup": "user_daily", "period": "2026-03-10", "table": None,
                                               "userId": "u-bob", "field": "query_count", "stored": "1",
                                               "expected": str(true)}]


def test_since_bounds_the_work_and_weeks_start_on_monday(client, varied, cli, sql):
    superuser(sql, ("UPDATE audit_user_daily SET query_count = 1 WHERE org_id = %(o)s AND user_id = 'u-bob' "
                    "AND day = '2026-03-04'", {"o": varied.id}),
              ("UPDATE audit_access_weekly SET query_count = query_count + 1 WHERE org_id = %(o)s "
               "AND week = '2026-03-16'", {"o": varied.id}))
    out = cli("audit", "verify", "--org", varied.slug, "--since", "2026-03-05", code=2)
    assert "2026-03-04" not in out and "access_weekly 2026-03-16" in out and "(from 2026-03-05)" in out, out
    # A day inside the tampered week still checks that whole week.
    assert "access_weekly 2026-03-16" in cli("audit", "verify", "--org", varied.slug, "--since", "2026-03-20",
                                             code=2)
    admin = varied.add_user("admin")
    assert "user_daily 2026-03-04" in cli("audit", "verify", "--org", varied.slug, code=2)
    body = client.get(VERIFY, params={"since": "2026-03-17"}, headers=admin.headers).json()
    assert body["rollups"]["since"] == "2026-03-17"
    assert [d["period"] for d in body["rollups"]["differences"]] == ["2026-03-16"] * len(
        body["rollups"]["differences"])
    assert "rollups" not in cli("audit", "verify", "--org", varied.slug, "--no-rollups")
    assert_error(client.get(VERIFY, params={"since": "March"}, headers=admin.headers), 422)
    assert_error(client.get(VERIFY, params={"since": "0"}, headers=admin.headers), 422)  # not a Unix time
    assert_error(client.get(VERIFY, params={"since": "2026-02-30"}, headers=admin.headers), 400, "invalid_date")
    cli("audit", "verify", "--org", varied.slug, "--since", "2026-13-01", code=2)  # click's usage error


def test_another_orgs_rollups_are_not_reported(client, varied, make_org, sql):
    other = make_org()
    ingest(client, other, varied_events(3, 200))
    superuser(sql, ("UPDATE audit_user_daily SET query_count = 0 WHERE org_id = %(o)s", {"o": varied.id}))
    assert client.get(VERIFY, headers=other.add_user("admin").headers).json()["rollups"]["ok"] is True
    assert client.get(VERIFY, headers=varied.add_user("admin").headers).json()["rollups"]["differenceCount"] > 40


def test_many_differences_are_counted_and_the_first_hundred_listed(client, varied, cli, sql):
    superuser(sql, ("UPDATE audit_access_daily SET last_ts = last_ts + interval '1 second' WHERE org_id = %(o)s",
                    {"o": varied.id}))
    body = client.get(VERIFY, headers=varied.add_user("admin").headers).json()
    daily = one(sql, "SELECT count(*) AS n FROM audit_access_daily WHERE org_id = %(o)s", varied)["n"]
    assert body["rollups"]["differenceCount"] == daily and daily > 100
    assert len(body["rollups"]["differences"]) == 100
    assert f"… and {daily - 100} more" in cli("audit", "verify", "--org", varied.slug, code=2)
