"""A workload of reads, writes, joins, CTEs, failed statements and several roles, run on a real server
whose audit logging is on. Each statement the workload runs is listed with what a correct import must
record for it (role, success), so tests can check the import against what was run as well as against
the log lines themselves."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psycopg
import pymysql

PG_SETUP = [
    "CREATE TABLE IF NOT EXISTS patients (id int PRIMARY KEY, name text, ssn text, dob date)",
    'CREATE TABLE IF NOT EXISTS visits (id int, patient_id int, note text, "Weird, Col" text)',
    "CREATE SCHEMA IF NOT EXISTS billing",
    "CREATE TABLE IF NOT EXISTS billing.invoices (id int, patient_id int, amount numeric)",
    "CREATE TABLE IF NOT EXISTS secrets (id int, v text)",
    "CREATE OR REPLACE FUNCTION touch_visits() RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
    "PERFORM 1 FROM visits; UPDATE patients SET dob = dob WHERE false; RETURN 1; END $$",
    "INSERT INTO patients VALUES (1, 'Ann', '123-45-6789', '1980-01-01'), (2, 'Bo, \"B\"', '987', '1990-02-02') "
    "ON CONFLICT DO NOTHING",
    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'alice') THEN CREATE ROLE alice LOGIN; END IF;"
    " IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bob') THEN CREATE ROLE bob LOGIN; END IF;"
    " IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'carol') THEN CREATE ROLE carol LOGIN; END IF; END $$",
    "GRANT USAGE ON SCHEMA billing TO alice",
    "GRANT SELECT ON billing.invoices TO alice",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON patients, visits TO alice, bob, carol",
    "GRANT EXECUTE ON FUNCTION touch_visits() TO bob",
]


@dataclass(frozen=True)
class Ran:
    """One statement the workload ran: who, its text (with a marker), and whether it succeeded."""

    role: str
    sql: str
    success: bool
    tables: frozenset[str]


def _pg_statements(marker: int) -> list[tuple[str, str, bool, frozenset[str]]]:
    m = marker
    return [
        ("alice", f"SELECT p.name, v.note FROM patients p JOIN visits v ON v.patient_id = p.id WHERE p.id > {m} - {m}",
         True, frozenset({"patients", "visits"})),
        ("alice", f"WITH recent AS (SELECT patient_id FROM visits WHERE note <> 'x{m}') "
                  "SELECT count(*) FROM patients WHERE id IN (SELECT patient_id FROM recent)",
         True, frozenset({"patients", "visits"})),
        ("alice", f"SELECT name,\n   ssn -- a comment, with a comma\n   FROM patients WHERE name = 'a,b\nc{m}'",
         True, frozenset({"patients"})),
        ("alice", f"SELECT amount FROM billing.invoices WHERE id = {m}", True, frozenset({"billing.invoices"})),
        ("bob", f"SELECT amount FROM billing.invoices WHERE id = {m}", False, frozenset()),  # permission denied
        ("bob", f"SELECT v FROM secrets WHERE id = {m}", False, frozenset()),  # permission denied, no AUDIT line
        ("bob", f"INSERT INTO visits (id, patient_id, note) SELECT {m}, id, name FROM patients",
         True, frozenset({"patients", "visits"})),
        ("bob", f"UPDATE visits SET note = 'seen {m}' WHERE id = {m}", True, frozenset({"visits"})),
        ("bob", "SELECT touch_visits()", True, frozenset({"patients", "visits"})),
        ("carol", f"SELECT 1/0 FROM patients WHERE id = {m}", False, frozenset()),  # fails while planned
        ("carol", f"SELECT 1/(id - id) FROM patients WHERE id = 1 AND {m} > 0", False, frozenset({"patients"})),
        ("carol", f"SELEC name FROM patients WHERE id = {m}", False, frozenset()),  # syntax error
        ("carol", f"DELETE FROM visits WHERE id = {m}", True, frozenset({"visits"})),
        ("carol", f"SELECT {m}", True, frozenset()),
    ]


def run_pg_workload(cluster, rounds: int = 1, start: int = 1000) -> list[Ran]:
    """Run the workload ``rounds`` times (markers ``start``…); the statements in the order they ran."""
    ran: list[Ran] = []
    connections = {role: psycopg.connect(cluster.url(role, application=f"{role}-app"), autocommit=True)
                   for role in ("alice", "bob", "carol")}
    try:
        for r in range(rounds):
            for role, sql, success, tables in _pg_statements(start + r):
                try:
                    connections[role].execute(sql)
                    assert success, f"expected to fail: {sql}"
                except psycopg.Error:
                    assert not success, f"failed: {sql}"
                ran.append(Ran(role, sql, success, tables))
            # The extended protocol, with parameters (pgaudit.log_parameter is on).
            connections["alice"].execute("SELECT name FROM patients WHERE id = %s AND name <> %s", (start + r, "x'y"))
            ran.append(Ran("alice", "SELECT name FROM patients WHERE id = $1 AND name <> $2", True,
                           frozenset({"patients"})))
            ran.extend(_interleaved(connections, start + r))
    finally:
        for conn in connections.values():
            conn.close()
    return ran


def _interleaved(connections, marker: int) -> list[Ran]:
    """Carol's statement is logged, runs for a while and fails; bob runs one meanwhile: the log then has
    bob's statement between carol's AUDIT line and her ERROR."""
    slow = f"SELECT 1/(id - id) FROM patients WHERE id = 1 AND pg_sleep(0.4) IS NOT NULL AND {marker} > 0"
    failure: list[BaseException] = []

    def run_slow() -> None:
        try:
            connections["carol"].execute(slow)
        except psycopg.Error as exc:
            failure.append(exc)

    thread = threading.Thread(target=run_slow)
    thread.start()
    time.sleep(0.15)
    meanwhile = f"SELECT note FROM visits WHERE id = {marker}"
    connections["bob"].execute(meanwhile)
    thread.join()
    assert failure, "the slow statement must fail"
    return [Ran("carol", slow, False, frozenset({"patients"})), Ran("bob", meanwhile, True, frozenset({"visits"}))]


MARIADB_SETUP = [
    "CREATE DATABASE IF NOT EXISTS clinic",
    "CREATE TABLE IF NOT EXISTS clinic.patients (id int PRIMARY KEY, name text, ssn text)",
    "CREATE TABLE IF NOT EXISTS clinic.visits (id int, patient_id int, note text)",
    "CREATE DATABASE IF NOT EXISTS billing",
    "CREATE TABLE IF NOT EXISTS billing.invoices (id int, patient_id int, amount decimal(10,2))",
    "INSERT IGNORE INTO clinic.patients VALUES (1, 'Ann, \"A\"', '1\\'2'), (2, 'Bo', 'x\\ny')",
    "CREATE USER IF NOT EXISTS alice@'%' IDENTIFIED BY 'alice-pw'",
    "CREATE USER IF NOT EXISTS bob@'%' IDENTIFIED BY 'bob-pw'",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON clinic.* TO alice@'%', bob@'%'",
    "GRANT SELECT ON billing.* TO alice@'%'",
]


def _mariadb_statements(marker: int) -> list[tuple[str, str, bool, frozenset[str]]]:
    m = marker
    return [
        ("alice", f"SELECT p.name, v.note FROM patients p JOIN visits v ON v.patient_id = p.id WHERE p.id > {m} - {m}",
         True, frozenset({"patients", "visits"})),
        ("alice", f"WITH r AS (SELECT patient_id FROM visits WHERE note <> 'x{m}') "
                  "SELECT count(*) FROM patients WHERE id IN (SELECT patient_id FROM r)",
         True, frozenset({"patients", "visits"})),
        ("alice", f"SELECT name,\n  ssn FROM patients WHERE name = 'a,b\\nc{m}'", True, frozenset({"patients"})),
        ("alice", f"SELECT amount FROM billing.invoices WHERE id = {m}", True, frozenset({"billing.invoices"})),
        ("bob", f"SELECT amount FROM billing.invoices WHERE id = {m}", False, frozenset()),  # access denied
        ("bob", f"INSERT INTO visits (id, patient_id, note) SELECT {m}, id, name FROM patients",
         True, frozenset({"patients", "visits"})),
        ("bob", f"UPDATE visits SET note = 'seen {m}' WHERE id = {m}", True, frozenset({"visits"})),
        ("bob", f"SELECT nosuch FROM patients WHERE id = {m}", False, frozenset({"patients"})),
        ("bob", f"SELEC name FROM patients WHERE id = {m}", False, frozenset()),
        ("alice", f"DELETE FROM visits WHERE id = {m}", True, frozenset({"visits"})),
    ]


def run_mariadb_workload(server, rounds: int = 1, start: int = 1000) -> list[Ran]:
    ran: list[Ran] = []
    connections = {role: server.connect(role, f"{role}-pw", "clinic") for role in ("alice", "bob")}
    try:
        for r in range(rounds):
            for role, sql, success, tables in _mariadb_statements(start + r):
                try:
                    with connections[role].cursor() as cur:
                        cur.execute(sql)
                    assert success, f"expected to fail: {sql}"
                except pymysql.Error:
                    assert not success, f"failed: {sql}"
                ran.append(Ran(role, sql, success, tables))
    finally:
        for conn in connections.values():
            conn.close()
    return ran
