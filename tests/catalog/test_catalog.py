"""The schema catalog (issue 16): DDL import, introspection of PostgreSQL, MariaDB and SQLite, facts
learned at ingest, the catalog deciding attribution at ingest, `catalog show`, `sql extract` and
`GET /api/v1/admin/catalog`."""

from __future__ import annotations

import json
import secrets
import sqlite3

import psycopg
import pytest
from typer.testing import CliRunner

from atlas_compliance.cli.main import app
from atlas_compliance.config import get_settings
from tests.conftest import assert_error

CATALOG = "/api/v1/admin/catalog"
DDL = """
-- pg_dump --schema-only style
SET statement_timeout = 0;
CREATE TABLE public.patients (
    id integer NOT NULL,
    "SSN" character varying(11),
    name text
);
COPY public.patients (id, "SSN", name) FROM stdin;
1	123-45-6789	Maria
\\.
CREATE TABLE billing.invoices (id int, patient_id int, amount numeric(10,2));
ALTER TABLE ONLY public.patients ADD COLUMN dob date;
CREATE VIEW recent AS SELECT p.id, p.name AS who FROM patients p;
CREATE INDEX patients_name ON patients (name);
"""
JOIN = "SELECT name, amount FROM patients p JOIN billing.invoices i ON i.patient_id = p.id"


@pytest.fixture()
def cli(database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str, input: str | None = None, code: int = 0):
        result = runner.invoke(app, list(args), input=input)
        assert result.exit_code == code, result.output
        return result

    yield run
    get_settings.cache_clear()


def _facts(client, headers, **params) -> dict[tuple[str, str], tuple[str, str]]:
    resp = client.get(CATALOG, params=params, headers=headers)
    assert resp.status_code == 200, resp.text
    return {(c["tableName"], c["columnName"]): (c["datasource"], c["origin"]) for c in resp.json()["columns"]}


def _ingest(client, org, *sqls: str, prefix: str = "e") -> dict[str, dict]:
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    events = [{"sql": s, "sourceType": "postgres", "eventId": f"{prefix}{i}", "timestamp": "2026-05-01T00:00:00Z"}
              for i, s in enumerate(sqls)]
    resp = client.post("/api/v1/audit/events", headers=key, json=events)
    assert resp.status_code == 200 and resp.json()["inserted"] == len(sqls), resp.text
    return {e["eventId"]: e for e in events}


def _stored(sql, org) -> dict[str, dict]:
    return {r["event_id"]: r["columns_by_table"] for r in sql.execute(
        "SELECT event_id, columns_by_table FROM audit_log WHERE org_id = %s", (org.id,)).fetchall()}


def test_ddl_import_show_extract_and_ingest(cli, client, org, sql, tmp_path):
    admin = org.add_user("admin")
    path = tmp_path / "schema.sql"
    path.write_text(DDL)
    done = cli("catalog", "import", str(path), "--org", org.slug, "--dialect", "postgres")
    assert "ddl:schema.sql: 3 tables, 9 columns" in done.output
    assert _facts(client, admin.headers) == {
        ("patients", "id"): ("ddl:schema.sql", "ddl"), ("patients", "ssn"): ("ddl:schema.sql", "ddl"),
        ("patients", "name"): ("ddl:schema.sql", "ddl"), ("patients", "dob"): ("ddl:schema.sql", "ddl"),
        ("billing.invoices", "id"): ("ddl:schema.sql", "ddl"),
        ("billing.invoices", "patient_id"): ("ddl:schema.sql", "ddl"),
        ("billing.invoices", "amount"): ("ddl:schema.sql", "ddl"),
        ("recent", "id"): ("ddl:schema.sql", "ddl"), ("recent", "who"): ("ddl:schema.sql", "ddl")}
    shown = cli("catalog", "show", "--org", org.slug, "--table", "Billing.Invoices")
    assert shown.output.rstrip().endswith("3 columns in 1 table")
    # `sql extract` with the org's catalog, with the file, and without either.
    with_org = json.loads(cli("sql", "extract", "--org", org.slug, input=JOIN).output)
    expected = {"patients": ["id", "name"], "billing.invoices": ["amount", "patient_id"]}
    assert with_org == {"tables": ["billing.invoices", "patients"], "columnsByTable": expected, "ambiguous": {},
                        "parseError": None}
    with_file = json.loads(cli("sql", "extract", "--catalog", str(path), "--dialect", "postgres", input=JOIN).output)
    assert with_file["columnsByTable"] == expected
    bare = json.loads(cli("sql", "extract", input=JOIN).output)
    assert bare["columnsByTable"] == {"patients": ["amount", "id", "name"],
                                      "billing.invoices": ["amount", "name", "patient_id"]}
    # Ingest credits columns with the catalog.
    _ingest(client, org, JOIN, "SELECT * FROM patients")
    assert _stored(sql, org) == {"e0": expected, "e1": {"patients": ["dob", "id", "name", "ssn"]}}
    # Importing again under the same name replaces that datasource's facts.
    path.write_text("CREATE TABLE patients (id int, mrn text);")
    cli("catalog", "import", str(path), "--org", org.slug)
    assert set(_facts(client, admin.headers)) == {("patients", "id"), ("patients", "mrn")}


def test_cli_refusals_change_nothing(cli, org, tmp_path, sql):
    empty = tmp_path / "empty.sql"
    empty.write_text("SELECT 1; INSERT INTO t VALUES (1);")
    assert "no CREATE TABLE" in cli("catalog", "import", str(empty), "--org", org.slug, code=1).output
    ddl = tmp_path / "ok.sql"
    ddl.write_text("CREATE TABLE t (a int);")
    assert "unknown SQL dialect" in cli("catalog", "import", str(ddl), "--org", org.slug, "--dialect", "nope",
                                        code=2).output
    assert "--name" in cli("catalog", "import", str(ddl), "--org", org.slug, "--name", " ", code=2).output
    assert "no organization with slug" in cli("catalog", "import", str(ddl), "--org", "no-such-org", code=1).output
    assert "--origin" in cli("catalog", "show", "--org", org.slug, "--origin", "guessed", code=2).output
    assert "not both" in cli("sql", "extract", "--org", org.slug, "--catalog", str(ddl), input="SELECT 1",
                             code=2).output
    assert "1 MB" in cli("sql", "extract", input="SELECT " + "x," * 600_000 + "y", code=2).output
    assert "unsupported datasource" in cli("catalog", "sync", "oracle://u@h/db", "--org", org.slug, code=1).output
    assert sql.execute("SELECT count(*) AS n FROM datasource_catalog WHERE org_id = %s",
                       (org.id,)).fetchone()["n"] == 0
    parse_error = json.loads(cli("sql", "extract", input="SELEC x FROM").output)
    assert parse_error["parseError"] and parse_error["tables"] == []


@pytest.fixture()
def pg_datasource(server_url):
    name = f"atlas_catalog_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, query = server_url.partition("?")
    url = base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""
            CREATE TABLE patients (id int PRIMARY KEY, name text, ssn text);
            CREATE TABLE visits (id int, patient_id int, reason text);
            CREATE VIEW named AS SELECT id, name FROM patients;
            CREATE SCHEMA lab;
            CREATE TABLE lab.results (id int, visit_id int, value numeric);
        """)
    yield url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_sync_postgres_and_ingest_uses_it(cli, client, org, sql, pg_datasource, make_org):
    admin = org.add_user("admin")
    done = cli("catalog", "sync", pg_datasource, "--org", org.slug, "--name", "clinic")
    assert "clinic: 3 tables, 8 columns (postgresql, introspected)" in done.output
    cli("catalog", "sync", pg_datasource, "--org", org.slug, "--name", "clinic-lab", "--schema", "lab")
    facts = _facts(client, admin.headers)
    assert facts[("patients", "ssn")] == ("clinic", "introspected")
    assert facts[("named", "name")] == ("clinic", "introspected")
    assert facts[("lab.results", "value")] == ("clinic-lab", "introspected")
    assert len(facts) == 11
    rows = client.get(CATALOG, params={"table": "public.Patients"}, headers=admin.headers).json()["columns"]
    assert [(r["schemaName"], r["columnName"], r["dataType"], r["ordinal"]) for r in rows] == [
        ("public", "id", "integer", 1), ("public", "name", "text", 2), ("public", "ssn", "text", 3)]
    _ingest(client, org, "SELECT name, reason, value FROM patients p JOIN visits v ON v.patient_id = p.id "
                         "JOIN lab.results r ON r.visit_id = v.id")
    assert _stored(sql, org)["e0"] == {"patients": ["id", "name"], "visits": ["id", "patient_id", "reason"],
                                       "lab.results": ["value", "visit_id"]}
    # Another organization sees none of it.
    other = make_org()
    assert _facts(client, other.add_user("admin").headers) == {}
    # A later sync replaces what the datasource's previous sync said.
    with psycopg.connect(pg_datasource, autocommit=True) as conn:
        conn.execute("DROP VIEW named; ALTER TABLE patients ADD COLUMN email text")
    cli("catalog", "sync", pg_datasource, "--org", org.slug, "--name", "clinic")
    facts = _facts(client, admin.headers, datasource="clinic")
    assert ("named", "name") not in facts and facts[("patients", "email")] == ("clinic", "introspected")


def test_sync_sqlite(cli, client, org, tmp_path):
    admin = org.add_user("admin")
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.executescript("CREATE TABLE Orders (id INTEGER PRIMARY KEY, total REAL, customer_id INT);"
                           "CREATE TABLE customers (id INTEGER, email TEXT);")
    done = cli("catalog", "sync", f"sqlite:///{path}", "--org", org.slug)
    assert "sqlite:shop.db: 2 tables, 5 columns (sqlite, introspected)" in done.output
    assert _facts(client, admin.headers)[("orders", "total")] == ("sqlite:shop.db", "introspected")


def test_sync_mariadb(cli, client, org):
    pymysql = pytest.importorskip("pymysql")
    try:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=2,
                               autocommit=True)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no MariaDB on 127.0.0.1:3306: {exc}")
    name = f"atlas_catalog_{secrets.token_hex(4)}"
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
            cur.execute(f"CREATE TABLE `{name}`.`Members` (id INT, email VARCHAR(200), joined DATE)")
            cur.execute(f"CREATE TABLE `{name}`.fees (id INT, member_id INT, amount DECIMAL(8,2))")
        admin = org.add_user("admin")
        done = cli("catalog", "sync", f"mysql+pymysql://root@127.0.0.1:3306/{name}", "--org", org.slug)
        assert f"mariadb:127.0.0.1/{name}: 2 tables, 6 columns" in done.output or \
            f"mysql:127.0.0.1/{name}: 2 tables, 6 columns" in done.output
        facts = _facts(client, admin.headers)
        assert {t for t, _ in facts} == {"members", "fees"}
        assert {o for _, o in facts.values()} == {"introspected"}
        rows = client.get(CATALOG, params={"table": "members"}, headers=admin.headers).json()["columns"]
        assert [(r["schemaName"], r["columnName"]) for r in rows] == [(name, "id"), (name, "email"), (name, "joined")]
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


def test_learned_at_ingest_and_never_overriding(cli, client, org, sql, tmp_path):
    admin = org.add_user("admin")
    _ingest(client, org, "SELECT o.total, c.email FROM orders o JOIN customers c ON c.id = o.customer_id",
            "INSERT INTO audit_notes (author, body) VALUES ('a', 'b')",
            "UPDATE customers SET tier = 'gold' WHERE id = 1",
            "SELECT x.a FROM t1 x WHERE EXISTS (SELECT 1 FROM t2 x WHERE x.b = 1)",  # x names two tables: nothing
            prefix="l")
    learned = _facts(client, admin.headers, origin="learned")
    assert learned == {(t, c): ("", "learned") for t, c in [
        ("orders", "total"), ("orders", "customer_id"), ("customers", "email"), ("customers", "id"),
        ("customers", "tier"), ("audit_notes", "author"), ("audit_notes", "body")]}
    # Until the ambiguity rule exists, learned facts are recorded, not used: attribution is unchanged.
    join = "SELECT total, email FROM orders JOIN customers ON customers.id = orders.customer_id"
    _ingest(client, org, join, "SELECT * FROM orders", prefix="m")
    stored = _stored(sql, org)
    assert stored["m0"] == {"orders": ["customer_id", "email", "total"], "customers": ["email", "id", "total"]}
    assert stored["m1"] == {"orders": ["*"]}
    # With learned attribution switched on, they place the unqualified columns, and SELECT * of a
    # learned-only table still records * (what the trail showed is not all of the table).
    from atlas_compliance.audit.extraction import extract_access
    from atlas_compliance.catalog import repository as catalog_repo
    from atlas_compliance.catalog.facts import build_catalog
    from tests.conftest import run_service

    learned_catalog = build_catalog(run_service(client, catalog_repo.load_rows, org.id), with_learned=True)
    assert extract_access(join, "postgres", learned_catalog).columns_by_table == {
        "orders": ("customer_id", "total"), "customers": ("email", "id")}
    assert extract_access("SELECT * FROM orders", "postgres", learned_catalog).columns_by_table == {
        "orders": ("*", "customer_id", "total")}
    # A DDL fact for the table wins over everything learned about it (orders.total is learned, the DDL
    # says otherwise); learned rows stay listed.
    path = tmp_path / "orders.sql"
    path.write_text("CREATE TABLE orders (id int, customer_id int, amount numeric, note text);")
    cli("catalog", "import", str(path), "--org", org.slug)
    _ingest(client, org, "SELECT note, email FROM orders JOIN customers ON customers.id = orders.customer_id",
            "SELECT * FROM orders", prefix="n")
    stored = _stored(sql, org)
    assert stored["n0"] == {"orders": ["customer_id", "note"], "customers": ["email", "id"]}
    assert stored["n1"] == {"orders": ["amount", "customer_id", "id", "note"]}
    assert _facts(client, admin.headers, datasource="ddl:orders.sql")[("orders", "note")] == ("ddl:orders.sql", "ddl")
    assert _facts(client, admin.headers, datasource="")[("orders", "total")] == ("", "learned")
    # Learning the same facts again adds nothing.
    before = sql.execute("SELECT count(*) AS n FROM datasource_catalog WHERE org_id = %s", (org.id,)).fetchone()["n"]
    _ingest(client, org, "SELECT o.total FROM orders o", prefix="p")
    after = sql.execute("SELECT count(*) AS n FROM datasource_catalog WHERE org_id = %s", (org.id,)).fetchone()["n"]
    assert after == before


def test_catalog_endpoint_bad_input_is_4xx(client, org):
    admin = org.add_user("admin")
    for params in ({"limit": 0}, {"limit": 10_001}, {"offset": -1}, {"origin": "guessed"}, {"table": "x" * 501},
                   {"datasource": "d" * 201}):
        assert_error(client.get(CATALOG, params=params, headers=admin.headers), 422)
    page = client.get(CATALOG, params={"limit": 1}, headers=admin.headers).json()
    assert page == {"columns": [], "total": 0, "limit": 1, "offset": 0}


def test_concurrent_learning_of_the_same_facts_stores_each_once(client, org, sql):
    """Six batches learning the same 400 facts at once, each listing them in its own order: every
    fact is stored once and no batch fails (a deadlock would make one return 0 and log it)."""
    import asyncio
    import random

    from atlas_compliance.catalog import service

    pairs = [(f"t{i % 20}", f"c{i}") for i in range(400)]
    db = client.app.state.db

    async def all_at_once():
        batches = [random.Random(seed).sample(pairs, len(pairs)) for seed in range(6)]
        return await asyncio.gather(*(service.repo_learn_sorted(db, org.id, b) for b in batches))

    added = client.portal.call(all_at_once)
    assert sum(added) == 400
    assert sql.execute("SELECT count(*) AS n FROM datasource_catalog WHERE org_id = %s AND origin = 'learned'",
                       (org.id,)).fetchone()["n"] == 400


def test_a_pii_scan_fills_the_catalog_as_introspected(client, org, pg_datasource):
    from atlas_compliance.pii import scanner
    from atlas_compliance.pii.scan_store import store_scan
    from tests.conftest import run_service

    admin = org.add_user("admin")
    run_service(client, store_scan, org.id, scanner.scan(pg_datasource, sample=5, source_id="clinic-scan"), actor="t")
    facts = _facts(client, admin.headers)
    assert facts[("patients", "ssn")] == ("clinic-scan", "introspected")
    assert {t for t, _ in facts} == {"patients", "visits"}  # a scan reads tables, not views
