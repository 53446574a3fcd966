"""SQL access extraction, specified by tests/audit/fixtures/extraction_cases.sql."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atlas_compliance.audit.extraction import Catalog, extract_access, normalize_dialect, normalize_table_name

FIXTURES = Path(__file__).parent / "fixtures" / "extraction_cases.sql"


def _parse_expect(text: str):
    text = text.strip()
    if text == "ERROR":
        return None
    expected: dict[str, tuple[str, ...]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        table, _, cols = part.partition("(")
        expected[table.strip()] = tuple(sorted(c.strip() for c in cols.rstrip(")").split(",") if c.strip()))
    return expected


def _parse_catalog(text: str) -> Catalog:
    tables = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        table, _, cols = part.partition("(")
        tables[table.strip()] = [c.strip() for c in cols.rstrip(")").split(",") if c.strip()]
    return Catalog(tables)


def load_cases():
    cases = []
    for block in FIXTURES.read_text().split("\n\n"):
        lines = block.splitlines()
        if not any(line.startswith("# title:") for line in lines):
            continue
        case = {"dialect": None, "catalog": None, "sql": []}
        for line in lines:
            if line.startswith("# title:"):
                case["title"] = line.split(":", 1)[1].strip()
            elif line.startswith("# dialect:"):
                case["dialect"] = line.split(":", 1)[1].strip()
            elif line.startswith("# catalog:"):
                case["catalog"] = _parse_catalog(line.split(":", 1)[1])
            elif line.startswith("# expect:"):
                case["expect"] = _parse_expect(line.split(":", 1)[1])
            elif not line.startswith("#"):
                case["sql"].append(line)
        case["sql"] = "\n".join(case["sql"])
        cases.append(case)
    return cases


CASES = load_cases()


def test_the_fixture_file_is_substantial():
    assert len(CASES) >= 60
    dialects = {c["dialect"] for c in CASES}
    assert {"postgres", "mysql", "snowflake", "bigquery", "sqlite", "tsql"} <= dialects


@pytest.mark.parametrize("case", CASES, ids=[c["title"] for c in CASES])
def test_extraction_case(case):
    info = extract_access(case["sql"], case["dialect"], case["catalog"])
    if case["expect"] is None:
        assert info.parse_error and info.tables == () and info.columns_by_table == {}
        return
    assert info.parse_error is None
    assert dict(info.columns_by_table) == case["expect"]
    assert info.tables == tuple(sorted(case["expect"]))
    assert info.columns == tuple(sorted({c for cols in case["expect"].values() for c in cols}))


def test_normalize_table_name():
    assert normalize_table_name(' "Public"."Orders" ') == "orders"
    assert normalize_table_name("ANALYTICS.Events") == "analytics.events"
    assert normalize_table_name("`crm`.`customers`") == "crm.customers"
    assert normalize_table_name("proj.dataset.table") == "dataset.table"
    assert normalize_table_name(normalize_table_name("Public.X")) == "x"


def test_normalize_dialect():
    assert normalize_dialect("PostgreSQL") == "postgres"
    assert normalize_dialect("mariadb") == "mysql"
    assert normalize_dialect("SQL Server") == "tsql"
    assert normalize_dialect(None) is None and normalize_dialect("mongodb") is None


def test_repeated_texts_are_parsed_once():
    sql = "SELECT id FROM cache_probe_table WHERE k = 1"
    first = extract_access(sql, "postgres")
    assert extract_access(sql, "postgres") is first
    assert extract_access.cache_info().hits >= 1


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.sampled_from([None, "postgres", "mysql", "snowflake", "bigquery", "tsql"]))
def test_never_raises(sql, dialect):
    info = extract_access(sql, dialect)
    assert isinstance(info.tables, tuple)
    assert (info.parse_error is None) or info.tables == ()
