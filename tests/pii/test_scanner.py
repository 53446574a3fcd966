"""The datasource scanner against real databases: PostgreSQL, MariaDB (when reachable) and SQLite."""

from __future__ import annotations

import logging
import secrets
import sqlite3
from datetime import date

import psycopg
import pytest

from atlas_compliance.pii import scanner
from atlas_compliance.pii.scan_store import store_scan
from tests.conftest import run_service

FIRST = ["Maria", "James", "Aisha", "Wei", "Olga", "Diego", "Fatima", "Liam", "Noah", "Emma", "Ravi", "Sofia"]
LAST = ["Garcia", "Smith", "Khan", "Zhang", "Petrova", "Lopez", "Haddad", "OBrien", "Johnson", "Brown", "Patel"]
VALID_SSNS = ["123-45-6789", "234-56-7890", "345-67-8901", "456-78-9012", "521-34-5678", "612-43-2109"]
EXPECTED_PG = {("patients", "first_name"): "name", ("patients", "last_name"): "name",
               ("patients", "email"): "email", ("patients", "phone"): "phone", ("patients", "ssn"): "ssn",
               ("patients", "date_of_birth"): "date_of_birth", ("patients", "zip_code"): "address",
               ("payments", "card_number"): "credit_card"}


def patient_rows(n=30):
    for i in range(n):
        first, last = FIRST[i % len(FIRST)], LAST[i % len(LAST)]
        yield (i + 1, first, last, f"{first.lower()}.{last.lower()}{i}@mail.example", f"(555) 201-{1000 + i:04d}",
               VALID_SSNS[i % len(VALID_SSNS)], date(1950 + i, 1 + i % 12, 1 + i % 27), f"{10001 + i:05d}",
               f"visit note {i}: follow up in {i % 5 + 1} weeks")


CARDS = ["4111 1111 1111 1111", "5500-0000-0000-0004", "4012888888881881", "378282246310005", "6011111111111117"]


@pytest.fixture(scope="module")
def pg_source(server_url):
    name = f"atlas_scan_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server_url.rsplit("/", 1)[0] + "/" + name if "?" not in server_url else None
    if url is None:  # embedded server URLs carry the socket directory as a query parameter
        base, query = server_url.split("?", 1)
        url = base.rsplit("/", 1)[0] + "/" + name + "?" + query
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""
            CREATE TABLE patients (id int PRIMARY KEY, first_name text, last_name text, email text, phone text,
                                   ssn text, date_of_birth date, zip_code text, notes text, photo bytea);
            CREATE TABLE orders (id int PRIMARY KEY, status text, total numeric, created_at timestamptz,
                                 order_ref bigint);
            CREATE TABLE hotel_bookings (id int, hotel text, intel text, timespan int, basin text, cancellation text);
            CREATE TABLE payments (id int, card_number text, amount numeric);
            CREATE SCHEMA analytics;
            CREATE TABLE analytics.sessions (id int, client_ip inet, started_at timestamptz);
        """)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO patients VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s, '\\x00ff')", list(patient_rows()))
            cur.executemany("INSERT INTO orders VALUES (%s, 'paid', %s, now() - make_interval(days => %s), %s)",
                            [(i, 10 + i, i, 5551234000 + i) for i in range(30)])
            cur.executemany("INSERT INTO hotel_bookings VALUES (%s, 'Grand', 'yes', 3, 'north', 'none')",
                            [(i,) for i in range(30)])
            cur.executemany("INSERT INTO payments VALUES (%s, %s, 10)", [(i, CARDS[i % 5]) for i in range(30)])
            cur.executemany("INSERT INTO analytics.sessions VALUES (%s, %s, now())",
                            [(i, f"10.0.{i}.7" if i % 2 else f"2001:db8::{i:x}") for i in range(30)])
    yield url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def detected(result):
    return {(c.table, c.column): c.detection.category for c in result.detections}


def test_postgres_scan_finds_pii_and_nothing_else(pg_source):
    result = scanner.scan(pg_source, sample=50)
    assert detected(result) == EXPECTED_PG
    assert result.tables == 4 and len(result.columns) == 10 + 5 + 6 + 3
    email = next(c for c in result.detections if c.column == "email")
    evidence = email.detection.evidence
    assert evidence.sampled == 30 and evidence.matched == 30 and email.detection.method == "regex"
    assert len(evidence.examples) <= 3 and all("***" in e for e in evidence.examples)
    raw = {r[3] for r in patient_rows()}
    assert not raw & set(evidence.examples)
    photo = next(c for c in result.columns if c.column == "photo")
    assert photo.sampled == 0 and photo.detection is None  # binary values are skipped
    other_schema = scanner.scan(pg_source, schemas=["analytics"])
    assert detected(other_schema) == {("analytics.sessions", "client_ip"): "ip_address"}


def test_scan_is_stored_sticky_and_feeds_extraction(client, org, pg_source, sql):
    admin = org.add_user("admin")
    result = scanner.scan(pg_source, sample=50, source_id="clinic-db")
    counts = run_service(client, store_scan, org.id, result, actor="test")
    assert counts.to_dict() == {"created": 8, "updated": 0, "unchanged": 0, "keptReviewed": 0}
    catalog = sql.execute("SELECT count(*) AS n FROM datasource_catalog WHERE org_id = %s AND source_id = 'clinic-db'",
                          (org.id,)).fetchone()["n"]
    assert catalog == 24
    listing = client.get("/api/v1/admin/compliance/classifications", headers=admin.headers).json()
    ssn = next(c for c in listing["classifications"] if c["columnName"] == "ssn")
    client.put(f"/api/v1/admin/compliance/classifications/{ssn['id']}", json={"dismissed": True}, headers=admin.headers)
    again = run_service(client, store_scan, org.id, scanner.scan(pg_source, sample=50, source_id="clinic-db"),
                        actor="test")
    assert again.created == 0 and again.kept_reviewed == 1 and again.unchanged == 7
    assert "ssn" not in {c["columnName"] for c in client.get(
        "/api/v1/admin/compliance/classifications", headers=admin.headers).json()["classifications"]}
    # The stored catalog decides column attribution and expands *.
    key = {"Authorization": f"Bearer {org.ingest_key()}"}
    client.post("/api/v1/audit/events", headers=key, json=[
        {"sql": "SELECT email, status FROM patients p JOIN orders o ON o.id = p.id", "sourceType": "postgres",
         "eventId": "cat1", "timestamp": "2026-05-01T00:00:00Z"},
        {"sql": "SELECT * FROM payments", "sourceType": "postgres", "eventId": "cat2",
         "timestamp": "2026-05-01T00:00:00Z"}])
    rows = {r["event_id"]: r["columns_by_table"] for r in sql.execute(
        "SELECT event_id, columns_by_table FROM audit_log WHERE org_id = %s", (org.id,)).fetchall()}
    assert rows["cat1"] == {"patients": ["email", "id"], "orders": ["id", "status"]}
    assert rows["cat2"] == {"payments": ["amount", "card_number", "id"]}
    report = client.get("/api/v1/admin/compliance/reports/data-access",
                        params={"startDate": "2026-05-01", "endDate": "2026-05-01", "table": "payments"},
                        headers=admin.headers).json()
    assert report["rows"][0]["piiColumns"] == ["card_number"]


def test_credentials_are_never_stored_or_logged(client, org, pg_source, sql, caplog):
    secret = "s3cr3t-" + secrets.token_hex(4)
    url = pg_source.replace("postgresql://postgres@", f"postgresql://postgres:{secret}@", 1).replace(
        "postgresql://postgres:@", f"postgresql://postgres:{secret}@", 1)
    if secret not in url:
        pytest.skip("the embedded server's URL has no user part to add a password to")
    caplog.set_level(logging.DEBUG)
    result = scanner.scan(url, sample=5)
    run_service(client, store_scan, org.id, result, actor="test")
    for table in ("datasource_catalog", "pii_column_classifications", "admin_action_log"):
        dump = sql.execute(f"SELECT coalesce(string_agg(t::text, ' '), '') AS d FROM {table} t").fetchone()["d"]
        assert secret not in dump
    assert secret not in caplog.text
    with pytest.raises(scanner.BadRequest) as err:
        scanner.scan(url.rsplit("/", 1)[0] + "/no_such_database_here", sample=5)
    assert secret not in str(err.value) and "***" in str(err.value)


def test_sqlite_scan(tmp_path):
    path = tmp_path / "crm.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER, customer_email TEXT, name TEXT, city TEXT, ip_address TEXT)")
        conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?)",
                         [(i, f"c{i}@shop.example", f"Product {i}", "Lyon", f"192.168.1.{i}") for i in range(20)])
    result = scanner.scan(f"sqlite:///{path}")
    assert detected(result) == {("customers", "customer_email"): "email", ("customers", "ip_address"): "ip_address"}


def test_mariadb_scan():
    pymysql = pytest.importorskip("pymysql")
    try:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=2,
                               autocommit=True)
    except Exception as exc:  # the local MariaDB is part of this machine's services, not of every machine
        pytest.skip(f"no MariaDB on 127.0.0.1:3306: {exc}")
    name = f"atlas_scan_{secrets.token_hex(4)}"
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
            cur.execute(f"CREATE TABLE {name}.members (id INT, email VARCHAR(200), phone VARCHAR(40), "
                        "notes TEXT, hotel VARCHAR(50))")
            cur.executemany(f"INSERT INTO {name}.members VALUES (%s, %s, %s, %s, %s)",
                            [(i, f"m{i}@club.example", f"+1 555 301 {2000 + i}", f"note {i}", "Ritz")
                             for i in range(25)])
        result = scanner.scan(f"mysql+pymysql://root@127.0.0.1:3306/{name}")
        assert detected(result) == {("members", "email"): "email", ("members", "phone"): "phone"}
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.close()


def test_bad_urls_are_clear_errors():
    for url, message in (("not a url", "not a valid SQLAlchemy URL"), ("oracle://u@h/db", "unsupported datasource")):
        with pytest.raises(scanner.BadRequest) as err:
            scanner.scan(url)
        assert message in str(err.value)
