"""Which tables, and which columns *of each table*, a SQL text touches (pure functions, no I/O).

Parsed with sqlglot in the event's dialect. Columns are attributed to the table they belong to:
qualified columns through their alias, unqualified ones through the scope they appear in. Where
SQL alone cannot tell (an unqualified column in a join), the column is credited to every table
that could own it — an audit over-reports rather than misses — unless a :class:`Catalog` (stored
by PII scans) says which table has it.

>>> info = extract_access("SELECT u.email, o.total FROM public.users u JOIN orders o ON o.user_id = u.id")
>>> info.tables, info.columns_by_table["users"], info.columns_by_table["orders"]
(('orders', 'users'), ('email', 'id'), ('total', 'user_id'))
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from .extraction_scope import Collector

__all__ = ["AccessInfo", "Catalog", "extract_access", "normalize_dialect", "normalize_table_name", "cache_info"]

_QUOTES = str.maketrans("", "", '"`[]')
# EXPLAIN ANALYZE runs its statement, so the statement's tables count; EXPLAIN's options are stripped.
_EXPLAIN = re.compile(r"^\s*EXPLAIN\b(\s*\([^)]*\))?(\s+(ANALYZE|ANALYSE|VERBOSE|QUERY\s+PLAN\s+FOR))*\s+",
                      re.IGNORECASE)
logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its "falling back to Command" notes are ours to report

_DIALECTS = {
    "postgres": "postgres", "postgresql": "postgres", "pg": "postgres", "psql": "postgres", "redshift": "redshift",
    "mysql": "mysql", "mariadb": "mysql", "snowflake": "snowflake", "bigquery": "bigquery", "sqlite": "sqlite",
    "duckdb": "duckdb", "tsql": "tsql", "mssql": "tsql", "sqlserver": "tsql", "sql_server": "tsql",
    "oracle": "oracle", "clickhouse": "clickhouse", "trino": "trino", "presto": "presto", "athena": "athena",
    "databricks": "databricks", "spark": "spark", "hive": "hive", "teradata": "teradata", "doris": "doris",
    "starrocks": "starrocks", "materialize": "materialize", "risingwave": "risingwave",
}


def normalize_dialect(source_type: str | None) -> str | None:
    """Map a datasource type to a sqlglot dialect; unknown or missing types use the generic parser.

    >>> normalize_dialect("PostgreSQL"), normalize_dialect("mariadb"), normalize_dialect("salesforce")
    ('postgres', 'mysql', None)
    """
    if not source_type:
        return None
    return _DIALECTS.get(source_type.strip().lower().replace(" ", "").replace("-", ""))


def normalize_table_name(name: str) -> str:
    """Normalize a table name one way everywhere: lowercase, unquoted, `public` dropped, other
    schemas kept; a catalog/project/database part before the schema is dropped.

    >>> [normalize_table_name(n) for n in ('"Public"."Orders"', "Analytics.Events", "db.public.orders", "[dbo].[x]")]
    ['orders', 'analytics.events', 'orders', 'dbo.x']
    """
    parts = [p.strip() for p in name.translate(_QUOTES).lower().split(".") if p.strip()]
    if len(parts) > 2:
        parts = parts[-2:]
    if len(parts) == 2 and parts[0] == "public":
        parts = parts[1:]
    return ".".join(parts)


class Catalog:
    """Known columns per (normalized) table of a datasource. Hashable, so results can be cached."""

    __slots__ = ("_tables", "_key")

    def __init__(self, tables: Mapping[str, Iterable[str]]) -> None:
        normalized: dict[str, tuple[str, ...]] = {}
        for table, columns in tables.items():
            key = normalize_table_name(table)
            normalized[key] = tuple(sorted({c.lower() for c in columns} | set(normalized.get(key, ()))))
        self._tables = normalized
        self._key = tuple(sorted(normalized.items()))

    @property
    def tables(self) -> Mapping[str, tuple[str, ...]]:
        return self._tables

    def columns_of(self, table: str) -> tuple[str, ...] | None:
        return self._tables.get(table)

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Catalog) and other._key == self._key

    def __repr__(self) -> str:
        return f"Catalog({len(self._tables)} tables)"


@dataclass(frozen=True)
class AccessInfo:
    tables: tuple[str, ...]
    columns_by_table: dict[str, tuple[str, ...]]
    columns: tuple[str, ...]
    parse_error: str | None


def _error(message: str) -> AccessInfo:
    return AccessInfo(tables=(), columns_by_table={}, columns=(), parse_error=message[:200])


# Literal values never change which tables and columns a statement touches, so texts that differ only
# in their literals (ids, dates, strings) and comments share one parse: the cache is keyed by shape.
_LITERALS = re.compile(r"""'(?:[^'\\]|\\.|'')*'|/\*.*?\*/|--[^\n]*|(?<![\w.$"`])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w"`])""",
                       re.DOTALL)


def _literal_free(match: re.Match[str]) -> str:
    token = match.group(0)
    if token.startswith("'"):
        return "''"
    if token.startswith(("/*", "--")):
        return " "
    return "0"


def sql_shape(sql: str) -> str:
    """The SQL text with literals and comments blanked out.

    >>> sql_shape("SELECT a FROM t1 WHERE id = 42 AND name = 'O''Brien'")
    "SELECT a FROM t1 WHERE id = 0 AND name = ''"
    """
    return _LITERALS.sub(_literal_free, sql)


def extract_access(sql: str, dialect: str | None = None, catalog: Catalog | None = None) -> AccessInfo:
    """Tables read or written and the columns of each table read, for every statement of ``sql``.

    Never raises: unparseable SQL gives an :class:`AccessInfo` with ``parse_error`` set.
    """
    if not isinstance(sql, str) or not sql.strip():
        return _error("empty SQL text")
    if len(sql) <= 100_000:
        info = _extract_cached(sql_shape(sql), dialect, catalog)
        if info.parse_error is None:
            return info
    return _extract_cached(sql, dialect, catalog)


@lru_cache(maxsize=20_000)
def _extract_cached(sql: str, dialect: str | None, catalog: Catalog | None) -> AccessInfo:
    try:
        statements = sqlglot.parse(_EXPLAIN.sub("", sql, count=1), read=dialect, error_level=sqlglot.ErrorLevel.RAISE)
    except (SqlglotError, RecursionError, ValueError, KeyError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return _error(f"unparseable SQL: {first}")
    collector = Collector(catalog, normalize_table_name)
    unsupported = []
    for statement in statements:
        if statement is None:
            continue
        if isinstance(statement, exp.Command):
            unsupported.append(str(statement.this)[:40])
            continue
        try:
            collector.add_statement(statement)
        except (SqlglotError, RecursionError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return _error(f"could not analyze SQL: {type(exc).__name__}: {str(exc)[:120]}")
    result = collector.result()
    if not result[0] and unsupported:
        return _error(f"not parsed: unsupported or invalid statement {unsupported[0]!r}")
    tables, by_table = result
    columns = tuple(sorted({c for cols in by_table.values() for c in cols}))
    return AccessInfo(tables=tables, columns_by_table=by_table, columns=columns, parse_error=None)


def cache_info():
    """Hit/miss statistics of the parse cache (bounded to 20,000 SQL texts)."""
    return _extract_cached.cache_info()


extract_access.cache_info = cache_info  # type: ignore[attr-defined]
