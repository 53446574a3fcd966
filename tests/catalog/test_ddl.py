"""DDL read by `catalog import`: the dump formats people have (pg_dump, mysqldump, sqlite3 .schema)."""

from __future__ import annotations

import pytest

from atlas_compliance.catalog.ddl import dialect_of, read_ddl
from atlas_compliance.errors import BadRequest

MYSQLDUMP = """-- MySQL dump 10.13
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
DROP TABLE IF EXISTS `members`;
CREATE TABLE `members` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `Email` varchar(200) DEFAULT NULL,
  `joined` date DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `idx_email` (`Email`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
LOCK TABLES `members` WRITE;
UNLOCK TABLES;
"""
SQLITE_SCHEMA = """CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS "Order Items" (order_id INTEGER REFERENCES orders(id), sku TEXT);
CREATE INDEX ix ON customers(email);
CREATE TRIGGER t AFTER INSERT ON customers BEGIN UPDATE customers SET email = lower(new.email); END;
"""


def _facts(result):
    return [(f.table, f.column, f.data_type, f.ordinal) for f in result.facts]


def test_mysqldump():
    result = read_ddl(MYSQLDUMP, dialect_of("mariadb"))
    assert _facts(result) == [("members", "id", "int(11)", 1), ("members", "email", "varchar(200)", 2),
                              ("members", "joined", "date", 3)]
    assert result.tables == 1


def test_sqlite_schema():
    result = read_ddl(SQLITE_SCHEMA, "sqlite")
    assert [(t, c) for t, c, _, _ in _facts(result)] == [
        ("customers", "id"), ("customers", "email"), ("order items", "order_id"), ("order items", "sku")]


def test_three_part_and_schema_names_follow_the_name_rule():
    result = read_ddl('CREATE TABLE Prod.Public.Patients (id int); CREATE TABLE "Lab"."Results" (v text);'
                      "CREATE TABLE public.visits (id int);")
    assert [(f.table, f.schema) for f in result.facts] == [
        ("prod.public.patients", "public"), ("lab.results", "lab"), ("visits", "public")]


def test_a_statement_that_does_not_parse_is_skipped_not_fatal():
    result = read_ddl("CREATE TABLE a (id int);\nTHIS IS NOT SQL (((;\nCREATE TABLE b (x int);\n", "postgres")
    assert [f.table for f in result.facts] == ["a", "b"] and result.skipped == 1


def test_unknown_dialect():
    with pytest.raises(BadRequest):
        dialect_of("cobol")
    assert dialect_of(None) is None and dialect_of("PostgreSQL") == "postgres"


def test_hostile_names_are_folded_or_dropped_never_stored_raw():
    long_name = "c" * 700
    result = read_ddl(f'CREATE TABLE t ("{long_name}" int, "nul\x00name" int, ok int);', "postgres")
    columns = [f.column for f in result.facts]
    assert "ok" in columns and not any("\x00" in c for c in columns)
    assert all(len(c.encode()) <= 512 for c in columns) and any(c.startswith("c" * 120 + "~") for c in columns)
