"""SQL access extraction, specified by tests/audit/fixtures/extraction_cases.sql (no database needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atlas_compliance.audit.extraction import (
    AccessInfo,
    Catalog,
    cache_info,
    extract_access,
    normalize_dialect,
    normalize_table_name,
)

FIXTURES = Path(__file__).parent / "fixtures" / "extraction_cases.sql"


@dataclass
class Case:
    title: str
    line: int
    dialect: str | None = None
    catalog: Catalog | None = None
    sql_lines: list[str] = field(default_factory=list)
    expect: dict[str, tuple[str, ...]] | None = None  # None: a parse error is expected

    @property
    def sql(self) -> str:
        return "\n".join(self.sql_lines)


def _table_list(text: str) -> dict[str, list[str]]:
    """``a(x, y); b()`` -> {"a": ["x", "y"], "b": []}."""
    tables: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, paren, rest = part.partition("(")
        assert paren and rest.endswith(")"), f"malformed table entry {part!r}"
        tables[name.strip()] = [c.strip() for c in rest[:-1].split(",") if c.strip()]
    return tables


def load_cases(path: Path = FIXTURES) -> list[Case]:
    """Read the fixture file: a case runs from its ``# title:`` line to its ``# expect:`` line."""
    cases: list[Case] = []
    case: Case | None = None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        directive, _, value = line.partition(":")
        if directive == "# title":
            assert case is None, f"line {number}: new title before the previous case's '# expect:'"
            case = Case(title=value.strip(), line=number)
        elif case is None:
            assert not line.startswith("# expect"), f"line {number}: '# expect:' without a title"
            continue  # file header, section banners, blank lines between cases
        elif directive == "# dialect":
            case.dialect = value.strip() or None
        elif directive == "# catalog":
            case.catalog = Catalog(_table_list(value))
        elif directive == "# expect":
            expected = value.strip()
            if expected != "ERROR":
                case.expect = {t: tuple(sorted(set(c))) for t, c in _table_list(expected).items()}
            while case.sql_lines and not case.sql_lines[-1].strip():
                case.sql_lines.pop()
            cases.append(case)
            case = None
        else:
            case.sql_lines.append(line)
    assert case is None, f"case {case.title!r} has no '# expect:' line"
    return cases


CASES = load_cases()


def test_the_fixture_file_covers_the_specification():
    assert len(CASES) >= 70
    titles = [c.title for c in CASES]
    assert len(set(titles)) == len(titles), "titles are test ids: keep them unique"
    assert {"postgres", "mysql", "snowflake", "bigquery", "sqlite", "tsql"} <= {c.dialect for c in CASES}
    assert sum(c.catalog is not None for c in CASES) >= 8
    assert sum(c.expect is None for c in CASES) >= 4


@pytest.mark.parametrize("case", CASES, ids=[c.title for c in CASES])
def test_extraction_case(case: Case):
    info = extract_access(case.sql, case.dialect, case.catalog)
    if case.expect is None:
        assert info.parse_error, f"expected a parse error, got {info.columns_by_table}"
        assert info.tables == () and info.columns_by_table == {} and info.columns == ()
        return
    assert info.parse_error is None
    assert info.columns_by_table == case.expect
    assert info.tables == tuple(sorted(case.expect))


@pytest.mark.parametrize("case", [c for c in CASES if c.expect], ids=lambda c: c.title)
def test_columns_are_the_union_of_columns_by_table(case: Case):
    info = extract_access(case.sql, case.dialect, case.catalog)
    assert info.columns == tuple(sorted({c for cols in info.columns_by_table.values() for c in cols}))
    assert all(cols == tuple(sorted(set(cols))) for cols in info.columns_by_table.values())


def test_normalize_table_name():
    assert normalize_table_name(' "Public"."Orders" ') == "orders"
    assert normalize_table_name("public.orders") == "orders"
    assert normalize_table_name("ANALYTICS.Events") == "analytics.events"
    assert normalize_table_name("`crm`.`customers`") == "crm.customers"
    assert normalize_table_name("[dbo].[Patients]") == "dbo.patients"
    assert normalize_table_name("db.public.orders") == "db.public.orders"
    assert normalize_table_name("proj.dataset.table") == "proj.dataset.table"
    assert normalize_table_name("`acme-prod.crm.customers`") == "acme-prod.crm.customers"
    assert normalize_table_name("orders") == "orders"
    assert normalize_table_name("public") == "public"  # a table that happens to be called public


@given(st.text(alphabet='abcXYZ_."`[] ', max_size=30))
def test_normalize_table_name_is_idempotent(name):
    once = normalize_table_name(name)
    assert normalize_table_name(once) == once


def test_normalize_dialect():
    assert normalize_dialect("postgres") == normalize_dialect("PostgreSQL") == normalize_dialect("pg") == "postgres"
    assert normalize_dialect("mysql") == normalize_dialect("MariaDB") == "mysql"
    assert normalize_dialect("SQL Server") == normalize_dialect("mssql") == normalize_dialect("tsql") == "tsql"
    assert normalize_dialect("Snowflake") == "snowflake"
    assert normalize_dialect("bigquery") == "bigquery"
    assert normalize_dialect("sqlite") == "sqlite"
    assert normalize_dialect("duckdb") == "duckdb"
    assert normalize_dialect("redshift") == "redshift"
    assert normalize_dialect("oracle") == "oracle"
    assert normalize_dialect("clickhouse") == "clickhouse"
    assert normalize_dialect("trino") == "trino" and normalize_dialect("presto") == "presto"
    assert normalize_dialect("databricks") == "databricks" and normalize_dialect("spark") == "spark"
    assert normalize_dialect(None) is None and normalize_dialect("") is None and normalize_dialect("mongodb") is None


def test_extract_access_accepts_datasource_type_names_as_dialects():
    sql = "SELECT `m`.`email` FROM `members` AS `m`"
    assert extract_access(sql, "MariaDB").columns_by_table == {"members": ("email",)}
    assert extract_access("SELECT a FROM t", "no-such-dialect").columns_by_table == {"t": ("a",)}


def test_catalog_is_hashable_and_normalized():
    first = Catalog({"Public.Patients": ["ID", "email"], "visits": ("id",)})
    second = Catalog({"patients": ("email", "id"), "visits": ["id"]})
    assert first == second and hash(first) == hash(second)
    assert first.columns_of("patients") == ("email", "id")
    assert first.columns_of("public.patients") == ("email", "id")
    assert first.columns_of("nurses") is None
    assert dict(first.tables) == {"patients": ("email", "id"), "visits": ("id",)}


def test_the_cache_returns_the_same_object_for_the_same_text():
    sql = "SELECT id FROM cache_probe_table WHERE k = 1"
    first = extract_access(sql, "postgres")
    hits = cache_info().hits
    assert extract_access(sql, "postgres") is first
    assert cache_info().hits == hits + 1
    assert extract_access.cache_info().hits == hits + 1  # type: ignore[attr-defined]


def test_texts_that_differ_only_in_literals_share_one_result():
    first = extract_access("SELECT name FROM shape_probe WHERE id = 1 AND note = 'a' -- first", "postgres")
    second = extract_access("SELECT name FROM shape_probe WHERE id = 22 AND note = 'b'", "postgres")
    assert second is first and first.columns_by_table == {"shape_probe": ("id", "name", "note")}
    assert extract_access("SELECT name FROM shape_probe WHERE id = 1", "mysql") is not first


def test_statements_kept_whole_by_the_tokenizer_are_not_conflated_by_the_shape_cache():
    # The tokenizer keeps the rest of an EXPLAIN as one string token: it is the statement, not a value.
    first = extract_access("EXPLAIN ANALYZE SELECT a FROM explain_probe_1", "postgres")
    second = extract_access("EXPLAIN ANALYZE SELECT b FROM explain_probe_2", "postgres")
    assert first.columns_by_table == {"explain_probe_1": ("a",)}
    assert second.columns_by_table == {"explain_probe_2": ("b",)}


def test_strings_in_table_position_are_not_conflated_by_the_shape_cache():
    assert extract_access("SELECT name FROM 'a.csv'", "duckdb").tables == ("a.csv",)
    assert extract_access("SELECT name FROM 'b.csv'", "duckdb").tables == ("b.csv",)


def test_long_texts_bypass_the_per_text_cache():
    columns = ", ".join(f"c{i}" for i in range(1500))
    sql = f"SELECT {columns} FROM long_probe WHERE c0 = 1"
    assert len(sql) > 8_192
    size = cache_info().currsize
    info = extract_access(sql, "postgres")
    assert len(info.columns_by_table["long_probe"]) == 1500
    assert cache_info().currsize == size


def test_the_catalog_is_part_of_the_cache_key():
    sql = "SELECT a FROM catalog_probe_1 JOIN catalog_probe_2 ON catalog_probe_1.id = catalog_probe_2.id"
    plain = extract_access(sql)
    known = extract_access(sql, catalog=Catalog({"catalog_probe_2": ["id", "a"]}))
    assert plain.columns_by_table["catalog_probe_1"] == ("a", "id")
    assert known.columns_by_table["catalog_probe_1"] == ("id",)


def test_parse_error_messages_are_short_and_single_line():
    info = extract_access("SELECT (" * 400 + "1")
    assert info.parse_error and len(info.parse_error) <= 200 and "\n" not in info.parse_error
    info = extract_access("SELEC id FROM t")
    assert info.parse_error and "\x1b" not in info.parse_error and "\n" not in info.parse_error


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.sampled_from([None, "postgres", "mysql", "snowflake", "bigquery", "tsql", "sqlite"]))
def test_extraction_never_raises(sql, dialect):
    info = extract_access(sql, dialect)
    assert isinstance(info, AccessInfo)
    assert info.parse_error is None or (info.tables == () and info.columns == ())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(
    ["SELECT", "FROM", "WHERE", "JOIN", "ON", "WITH", "AS", "(", ")", ",", ";", "*", "t", "u.a", "a", "1",
     "'x'", "=", "UNION", "INSERT INTO", "UPDATE", "SET", "DELETE", "VALUES", "LATERAL", "USING", "MERGE"]),
    max_size=25), st.sampled_from([None, "postgres", "mysql", "snowflake", "bigquery", "tsql"]))
def test_extraction_never_raises_on_sql_like_token_soup(words, dialect):
    info = extract_access(" ".join(words), dialect)
    assert isinstance(info, AccessInfo)
    assert info.parse_error is None or info.tables == ()
