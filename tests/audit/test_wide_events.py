"""Any SQL a database accepts is storable: very wide statements, many tables, long names (issue 13.1).

PostgreSQL refuses an index row over 2,704 bytes (SQLSTATE 54000). Before the fix, the rollups' covering
indexes carried the names of a table's columns past the 64th, so one statement reading 600 columns made
its whole batch fail with a misleading "database unavailable", on every retry.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys

import orjson

from atlas_compliance.audit.extraction import MAX_NAME_BYTES, normalize_column_name, normalize_table_name

URL = "/api/v1/audit/events"
REPORT = "/api/v1/admin/compliance/reports/data-access"
WINDOW = {"startDate": "2026-03-01", "endDate": "2026-03-31"}


def _names(prefix: str, n: int) -> list[str]:
    """Column names as varied as real ones (they compress badly, as real wide tables' names do)."""
    return [f"{prefix}{hashlib.sha1(f'{prefix}{i}'.encode()).hexdigest()[:12]}" for i in range(n)]


def _select(table: str, columns: list[str]) -> str:
    return f"SELECT {', '.join(columns)} FROM {table}"


def _rows(client, admin, **params) -> dict:
    resp = client.get(REPORT, params={**WINDOW, **params}, headers=admin.headers)
    assert resp.status_code == 200, resp.text
    return {(r["tableName"], r["userId"]): r for r in resp.json()["rows"]}


def test_one_wide_query_does_not_poison_its_batch(client, org, sql):
    admin = org.add_user("admin")
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    wide = _names("col_", 600)
    batch = [{"sql": "SELECT id FROM patients", "userId": "u1", "timestamp": "2026-03-02T10:00:00Z"},
             {"sql": _select("warehouse.wide", wide), "userId": "u1", "timestamp": "2026-03-02T10:00:01Z"}]
    resp = client.post(URL, json=batch, headers=key)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"inserted": 2, "duplicates": 0, "rejected": []}
    rows = _rows(client, admin)
    assert rows[("warehouse.wide", "u1")]["uniqueColumns"] == sorted(wide)
    assert rows[("patients", "u1")]["uniqueColumns"] == ["id"]
    assert client.get("/api/v1/admin/audit/verify", headers=admin.headers).json()["ok"] is True


def test_five_thousand_columns_in_one_statement(client, org):
    admin = org.add_user("admin")
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    wide = _names("c", 5_000)
    resp = client.post(URL, json=[{"sql": _select("wide", wide), "userId": "u", "timestamp": "2026-03-03T01:00:00Z"}],
                       headers=key)
    assert resp.status_code == 200, resp.text
    assert resp.json()["inserted"] == 1
    assert _rows(client, admin)[("wide", "u")]["uniqueColumns"] == sorted(wide)


def test_sixteen_hundred_distinct_columns_of_one_table_across_a_day(client, org, sql):
    """Four statements of 400 new columns each on one (table, user, day): the rollup row grows to 1,600."""
    admin = org.add_user("admin")
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    everything: list[str] = []
    for part in range(4):
        cols = _names(f"p{part}_", 400)
        everything += cols
        resp = client.post(URL, json=[{"sql": _select("events", cols), "userId": "u",
                                       "timestamp": f"2026-03-04T0{part}:00:00Z"}], headers=key)
        assert resp.status_code == 200, resp.text
        assert resp.json()["inserted"] == 1
    # A window with whole days (rollups) and one with partial days (raw rows) give the same columns.
    whole = _rows(client, admin)[("events", "u")]
    partial = _rows(client, admin, startDate="2026-03-04T00:30:00Z", endDate="2026-03-04T23:00:00Z")[("events", "u")]
    assert whole["uniqueColumns"] == sorted(everything) and whole["queryCount"] == 4
    assert partial["uniqueColumns"] == sorted(c for c in everything if not c.startswith("p0_"))
    assert sql.execute("SELECT count(*) AS n FROM audit_access_weekly WHERE org_id = %s", (org.id,)).fetchone()["n"] == 1


def test_thousands_of_tables_in_one_statement(client, org):
    admin = org.add_user("admin")
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    tables = [f"t{i:04d}" for i in range(3_000)]
    event = {"sql": "SELECT /* a generated report over every shard */ 1", "userId": "u",
             "timestamp": "2026-03-05T01:00:00Z", "columnsByTable": {t: ["id", "v"] for t in tables}}
    resp = client.post(URL, json=[event], headers=key)
    assert resp.status_code == 200, resp.text
    assert resp.json()["inserted"] == 1
    report = client.get(REPORT, params=WINDOW, headers=admin.headers).json()
    assert report["totalRows"] == 3_000 and report["summary"]["totalQueries"] == 1
    assert {r["tableName"] for r in report["rows"]} == set(tables)


def test_very_long_names_are_folded_the_same_way_everywhere(client, org, sql):
    """Identifiers longer than an index can hold keep a readable prefix and a digest of the whole name."""
    admin = org.add_user("admin")
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    long_table = "d" * 1_500 + ".t"
    long_column = "Ä" * 2_000
    resp = client.post(URL, json=[
        {"sql": f'SELECT "{long_column}" FROM "{long_table}"', "userId": "u", "timestamp": "2026-03-06T01:00:00Z",
         "sourceType": "postgres"},
        {"sql": "SELECT 1", "userId": "u", "timestamp": "2026-03-06T01:00:01Z",
         "columnsByTable": {long_table.upper(): [long_column]}}], headers=key)
    assert resp.status_code == 200, resp.text
    assert resp.json()["inserted"] == 2
    folded_table = normalize_table_name(long_table)
    folded_column = normalize_column_name(long_column)
    assert len(folded_table.encode()) <= MAX_NAME_BYTES and len(folded_column.encode()) <= MAX_NAME_BYTES
    assert folded_table != normalize_table_name(long_table + "x")  # the digest keeps names apart
    row = _rows(client, admin)[(folded_table, "u")]
    assert row["queryCount"] == 2 and row["uniqueColumns"] == [folded_column]
    # Another writer's plain INSERT of the same long name lands in the same report row.
    sql.execute("INSERT INTO audit_log (org_id, user_id, auth_mode, sql, duration_ms, success, tables_accessed, "
                "columns_accessed, \"timestamp\") VALUES (%s, 'u', 'managed', 'select', 1, true, %s, %s, "
                "'2026-03-06T02:00:00Z')", (org.id, orjson.dumps([long_table]).decode(),
                                            orjson.dumps([long_column.lower()]).decode()))
    row = _rows(client, admin)[(folded_table, "u")]
    assert row["queryCount"] == 3 and row["uniqueColumns"] == [folded_column]
    folded_sql = sql.execute("SELECT atlas_normalize_table(%s) AS t", (long_table,)).fetchone()["t"]
    assert folded_sql == folded_table


def test_cli_import_of_a_file_holding_a_wide_query(client, org, sql, settings, tmp_path):
    """2,001 records, one of them 600 columns wide: every record is stored (before: 0 stored, exit 1)."""
    path = tmp_path / "wide.ndjson"
    lines = [orjson.dumps({"sql": f"SELECT id FROM t{i % 7}", "userId": "u", "eventId": f"w{i}",
                           "timestamp": "2026-03-07T01:00:00Z"}) for i in range(2_000)]
    lines.insert(1_000, orjson.dumps({"sql": _select("wide", _names("k", 600)), "eventId": "wide",
                                      "userId": "u", "timestamp": "2026-03-07T01:00:00Z"}))
    path.write_bytes(b"\n".join(lines) + b"\n")
    env = {"DATABASE_URL": settings.database_url, "PATH": "/usr/bin:/bin", "ATLAS_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "atlas_compliance.cli.main", "ingest", str(path), "--org", org.slug],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "2001 inserted" in done.stdout
    n = sql.execute("SELECT count(*) AS n FROM audit_log WHERE org_id = %s", (org.id,)).fetchone()["n"]
    assert n == 2_001


def test_python_and_sql_fold_names_alike(sql):
    """`audit/names.py` and the SQL functions other writers' rows go through agree byte for byte."""
    from atlas_compliance.audit.names import fold_name

    # (Names of three or more dotted parts still differ between the two: issue 16 unifies them.)
    names = ["orders", "x" * 512, "x" * 513, "é" * 256, "é" * 257, "日本" * 100, "s." + "b" * 600, "🙂" * 129]
    for name in names:
        got = sql.execute("SELECT atlas_fold_name(%s) AS f, atlas_normalize_table(%s) AS t", (name, name)).fetchone()
        assert got["f"] == fold_name(name), name[:20]
        assert got["t"] == normalize_table_name(name), name[:20]
        assert len(got["f"].encode()) <= MAX_NAME_BYTES


def test_a_user_id_too_large_to_index_is_refused_alone(client, org, sql):
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    resp = client.post(URL, json=[{"sql": "SELECT 1 FROM t", "userId": "🙂" * 1_000},
                                  {"sql": "SELECT 2 FROM t", "userId": "é" * 500}], headers=key)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["inserted"] == 1 and [r["index"] for r in body["rejected"]] == [0]
    assert "1,000 bytes" in body["rejected"][0]["error"]


def test_a_value_beyond_a_database_limit_is_not_called_an_outage(database_url):
    """SQLSTATE class 54 answers 413 with its own code: retrying later would fail the same way."""
    import secrets

    import psycopg

    from atlas_compliance.db.pool import database_error
    from atlas_compliance.errors import PayloadTooLarge

    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TEMP TABLE wide_key (k TEXT)")
        conn.execute("CREATE INDEX ON wide_key (k)")
        try:
            conn.execute("INSERT INTO wide_key VALUES (%s)", (secrets.token_hex(4_000),))
        except psycopg.Error as exc:
            mapped = database_error(exc)
        else:
            raise AssertionError("PostgreSQL accepted an 8 KB index key")
    assert isinstance(mapped, PayloadTooLarge) and mapped.code == "database_limit_exceeded"
    assert "fail the same way" in mapped.message
