"""Which tables, and which columns *of each table*, a SQL text touches (pure functions, no I/O).

Parsed with sqlglot in the event's dialect. Columns are attributed to the table they belong to:
qualified columns through their alias, unqualified ones through the scope they appear in, columns of
CTEs and derived tables through those to the real tables. Where SQL alone cannot tell (an unqualified
column in a join), the column is credited to every table that could own it — an audit over-reports
rather than misses — unless a :class:`Catalog` (stored by PII scans) says which table has it.

>>> info = extract_access("SELECT u.email, o.total FROM public.users u JOIN orders o ON o.user_id = u.id")
>>> info.tables, info.columns_by_table["users"], info.columns_by_table["orders"]
(('orders', 'users'), ('email', 'id'), ('total', 'user_id'))
>>> extract_access("WITH p AS (SELECT id, email FROM patients) SELECT email FROM p").columns_by_table
{'patients': ('email', 'id')}

Names: table names go through :func:`normalize_table_name`; column names are lowercased, quoted or
not (``"Email"`` and ``email`` are one column), because audit rows, PII classifications and report
filters all compare lowercase names.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect, Dialects
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, Tokenizer, TokenType

from .extraction_scope import AccessCollector
from .learning import qualified_columns
from .names import MAX_NAME_BYTES, normalize_column_name, normalize_table_name, short_table_name

__all__ = ["MAX_NAME_BYTES", "AccessInfo", "Catalog", "cache_info", "extract_access", "normalize_column_name",
           "normalize_dialect", "normalize_table_name"]

CACHE_SIZE = 20_000
_MAX_CACHED_TEXT = 8_192  # longer texts are cached by shape digest only, bounding the cache's memory
_MAX_ERROR = 200

_DIALECTS = {
    "postgres": "postgres", "postgresql": "postgres", "pg": "postgres", "psql": "postgres",
    "timescale": "postgres", "timescaledb": "postgres", "cockroachdb": "postgres", "supabase": "postgres",
    "redshift": "redshift", "mysql": "mysql", "mariadb": "mysql", "tidb": "mysql",
    "snowflake": "snowflake", "bigquery": "bigquery", "sqlite": "sqlite", "sqlite3": "sqlite",
    "duckdb": "duckdb", "motherduck": "duckdb", "tsql": "tsql", "mssql": "tsql", "sqlserver": "tsql",
    "azuresql": "tsql", "synapse": "tsql", "fabric": "fabric", "oracle": "oracle", "clickhouse": "clickhouse",
    "trino": "trino", "presto": "presto", "athena": "athena", "databricks": "databricks", "spark": "spark",
    "sparksql": "spark", "spark2": "spark2", "hive": "hive", "teradata": "teradata", "doris": "doris",
    "starrocks": "starrocks", "materialize": "materialize", "risingwave": "risingwave", "exasol": "exasol",
    "dremio": "dremio", "drill": "drill", "druid": "druid",
}
_SQLGLOT_DIALECTS = frozenset(d.value for d in Dialects if d.value)


def normalize_dialect(source_type: str | None) -> str | None:
    """Map a datasource type to a sqlglot dialect name; unknown or missing types give None (generic).

    >>> normalize_dialect("PostgreSQL"), normalize_dialect("mariadb"), normalize_dialect("SQL Server")
    ('postgres', 'mysql', 'tsql')
    >>> normalize_dialect("salesforce") is None and normalize_dialect(None) is None
    True
    """
    if not source_type:
        return None
    key = re.sub(r"[\s_\-]", "", source_type.strip().lower())
    return _DIALECTS.get(key)


_normalize_cached = lru_cache(maxsize=4096)(normalize_table_name)


@dataclass(frozen=True, eq=False)
class Catalog:
    """Known schema of one datasource: normalized table name -> column names (lowercase).

    Table names are normalized and columns lowercased and sorted on construction. Hashable (by a
    fingerprint computed once), so it can be part of the extraction cache key.

    >>> catalog = Catalog({"Public.Patients": ["ID", "email"]})
    >>> catalog.columns_of("patients"), catalog.columns_of("visits")
    (('email', 'id'), None)
    """

    tables: Mapping[str, tuple[str, ...]]
    _fingerprint: tuple[tuple[str, tuple[str, ...]], ...] = field(init=False, repr=False)
    _hash: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        merged: dict[str, set[str]] = {}
        for table, columns in dict(self.tables).items():
            names = [columns] if isinstance(columns, str) else columns
            merged.setdefault(normalize_table_name(table), set()).update(normalize_column_name(c.strip()) for c in names)
        frozen = {table: tuple(sorted(cols)) for table, cols in sorted(merged.items())}
        object.__setattr__(self, "tables", MappingProxyType(frozen))
        object.__setattr__(self, "_fingerprint", tuple(frozen.items()))
        object.__setattr__(self, "_hash", hash(self._fingerprint))

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable (for the bulk import's worker processes) although `tables` is a read-only proxy.
        return (Catalog, ({table: list(columns) for table, columns in self.tables.items()},))

    def columns_of(self, table: str) -> tuple[str, ...] | None:
        """The known columns of ``table`` (a normalized name), or None when the table is unknown. A
        three-part name the catalog does not hold is looked up by its short form (``prod.public.t``
        as ``t``), since introspection names tables without their database."""
        found = self.tables.get(table)
        if found is None and table:
            table = normalize_table_name(table)
            found = self.tables.get(table)
            if found is None and table.count(".") == 2:
                # prod.public.patients: a catalog that names the table without its database knows it
                found = self.tables.get(short_table_name(table))
        return found

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, Catalog) and self._fingerprint == other._fingerprint)

    def __repr__(self) -> str:
        return f"Catalog({len(self.tables)} tables)"


@dataclass(frozen=True)
class AccessInfo:
    """What one SQL text touched. Instances are cached and shared: treat them as read-only.

    Attributes:
        tables: sorted, distinct, normalized names of the tables read or written.
        columns_by_table: table -> sorted distinct columns *of that table* the text accessed; ``*``
            for ``SELECT *`` / ``t.*`` when the table's columns are unknown.
        columns: sorted distinct column names over all tables (Atlas's ``columns_accessed``).
        parse_error: None when parsed; a short message when the text could not be parsed, in which
            case ``tables`` and ``columns`` are empty.
        qualified: the (table, column) pairs the SQL places beyond doubt, for the schema catalog.
    """

    tables: tuple[str, ...]
    columns_by_table: dict[str, tuple[str, ...]]
    columns: tuple[str, ...]
    parse_error: str | None
    # (table, column) pairs the SQL itself places beyond doubt (t.col, INSERT INTO t (col), UPDATE t
    # SET col): the schema catalog's learned facts (see audit/learning.py).
    qualified: tuple[tuple[str, str], ...] = ()


def extract_access(sql: str, dialect: str | None = None, catalog: Catalog | None = None) -> AccessInfo:
    """Tables read or written and the columns of each table read, over every statement of ``sql``.

    ``dialect`` is a sqlglot dialect name (see :func:`normalize_dialect`; other datasource type
    names are mapped, unknown ones parse with the generic dialect). Never raises: unparseable or
    empty SQL gives an :class:`AccessInfo` with ``parse_error`` set. Results are cached per
    (text, dialect, catalog), and texts that differ only in literal values and comments share one
    parse: see :func:`cache_info`.

    >>> extract_access("SELECT a, b FROM t1 JOIN t2 ON t1.id = t2.id").columns_by_table
    {'t1': ('a', 'b', 'id'), 't2': ('a', 'b', 'id')}
    >>> extract_access("SELECT a, b FROM t1 JOIN t2 ON t1.id = t2.id",
    ...                catalog=Catalog({"t1": ["id", "a"], "t2": ["id", "b"]})).columns_by_table
    {'t1': ('a', 'id'), 't2': ('b', 'id')}
    >>> extract_access("SELEC id FROM t").parse_error is not None
    True
    """
    if not isinstance(sql, str) or not sql.strip():
        return _EMPTY_SQL
    if dialect is not None and dialect not in _SQLGLOT_DIALECTS:
        dialect = normalize_dialect(dialect)
    if len(sql) > _MAX_CACHED_TEXT:  # kept out of the per-text cache, which holds texts as keys
        return _extract_text.__wrapped__(sql, dialect, catalog)
    return _extract_text(sql, dialect, catalog)


def cache_info() -> Any:
    """Hit/miss statistics of the per-text cache (``functools`` ``CacheInfo``; bounded to 20,000)."""
    return _extract_text.cache_info()


extract_access.cache_info = cache_info  # type: ignore[attr-defined]


# --- caching -----------------------------------------------------------------------------------------
def _error(message: str) -> AccessInfo:
    return AccessInfo(tables=(), columns_by_table={}, columns=(), parse_error=message[:_MAX_ERROR])


_EMPTY_SQL = _error("empty SQL text")
_NO_ACCESS = AccessInfo(tables=(), columns_by_table={}, columns=(), parse_error=None)

# One transaction-control statement: it touches no table. Several of these forms (SAVEPOINT x,
# RELEASE [SAVEPOINT] x, START TRANSACTION in PostgreSQL, COMMIT PREPARED) do not parse in sqlglot,
# and SQLAlchemy sends two of them for every begin_nested().
_NAME = r'(?:[A-Za-z_][\w$]*|"(?:[^"]|"")+"|`(?:[^`]|``)+`|\[[^\]]+\])'
_MODE = (r"(?:ISOLATION\s+LEVEL\s+(?:SERIALIZABLE|REPEATABLE\s+READ|READ\s+COMMITTED|READ\s+UNCOMMITTED|SNAPSHOT)"
         r"|READ\s+WRITE|READ\s+ONLY|NOT\s+DEFERRABLE|DEFERRABLE|WITH\s+CONSISTENT\s+SNAPSHOT)")
_TRANSACTION_CONTROL = re.compile(
    rf"""\s*(?:
        SAVEPOINT\s+{_NAME}
      | RELEASE\s+(?:SAVEPOINT\s+)?{_NAME}
      | ROLLBACK\s+(?:WORK\s+|TRANSACTION\s+)?TO\s+(?:SAVEPOINT\s+)?{_NAME}
      | (?:BEGIN|START)(?:\s+(?:WORK|TRANSACTION|TRAN))?(?:\s+{_MODE}(?:\s*,\s*{_MODE})*)?
      | (?:COMMIT|ROLLBACK|ABORT|END)(?:\s+(?:WORK|TRANSACTION|TRAN))?(?:\s+AND\s+(?:NO\s+)?CHAIN)?
      | (?:PREPARE\s+TRANSACTION|COMMIT\s+PREPARED|ROLLBACK\s+PREPARED)\s+'(?:[^']|'')*'
    )\s*;?\s*\Z""",
    re.IGNORECASE | re.VERBOSE,
)


class _ShapeCache:
    """A bounded, thread-safe LRU of results keyed by (dialect, catalog, digest of the token shape)."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[tuple[Any, ...], AccessInfo] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> AccessInfo | None:
        with self._lock:
            found = self._data.get(key)
            if found is not None:
                self._data.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], value: AccessInfo) -> None:
        with self._lock:
            self._data[key] = value
            if len(self._data) > self.maxsize:
                self._data.popitem(last=False)


_shapes = _ShapeCache(CACHE_SIZE)


@lru_cache(maxsize=CACHE_SIZE)
def _extract_text(sql: str, dialect: str | None, catalog: Catalog | None) -> AccessInfo:
    if len(sql) < 300 and _TRANSACTION_CONTROL.match(sql):
        return _NO_ACCESS
    try:
        reader = _dialect(dialect)
        tokens = _tokenizer(reader).tokenize(sql)
    except Exception as exc:  # any tokenizer failure is a parse error, never a crash
        return _error(f"unparseable SQL: {_describe(exc)}")
    shape = _shape(tokens, reader.tokenizer_class.COMMANDS).encode("utf-8", "surrogatepass")
    key = (dialect, catalog, hashlib.blake2b(shape, digest_size=20).digest())
    cached = _shapes.get(key)
    if cached is None:
        cached = _analyze(reader, tokens, sql, dialect, catalog)
        _shapes.put(key, cached)
    return cached


@lru_cache(maxsize=64)
def _dialect(name: str | None) -> Dialect:
    return Dialect.get_or_raise(name)


_local = threading.local()


def _tokenizer(reader: Dialect) -> Tokenizer:
    """A tokenizer per dialect and thread: building one costs as much as tokenizing a short query,
    and an instance is not safe to share between threads."""
    tokenizers: dict[int, Tokenizer] | None = getattr(_local, "tokenizers", None)
    if tokenizers is None:
        tokenizers = _local.tokenizers = {}
    found = tokenizers.get(id(reader))
    if found is None:
        found = tokenizers[id(reader)] = reader.tokenizer()
    return found


_LITERALS = frozenset({
    TokenType.STRING, TokenType.NUMBER, TokenType.NATIONAL_STRING, TokenType.HEX_STRING,
    TokenType.BIT_STRING, TokenType.BYTE_STRING, TokenType.RAW_STRING, TokenType.HEREDOC_STRING,
    TokenType.UNICODE_STRING,
})
_NAME_PARTS = frozenset({TokenType.DASH, TokenType.DOT, TokenType.VAR})
_BEFORE_NAMES = frozenset({TokenType.ALIAS, TokenType.FROM, TokenType.JOIN, TokenType.INTO, TokenType.TABLE,
                           TokenType.UPDATE, TokenType.USING})


def _shape(tokens: list[Token], commands: Collection[TokenType]) -> str:
    """The token stream with literal values blanked (comments are not tokens): texts that differ
    only in values share a shape, and a shape's tables and columns never depend on those values.
    Literals that may hold names stay: the rest of a command the tokenizer keeps as one string
    (``EXPLAIN ...``), string aliases (``AS 'n'``), strings in table position (DuckDB
    ``FROM 'file.csv'``), Snowflake ``IDENTIFIER('t')`` / ``TABLE('t')``, and numbers glued to a
    name (BigQuery ``my-project-42.ds.t``)."""
    parts = []
    previous: Token | None = None
    before: Token | None = None
    for token in tokens:
        kind = token.token_type
        text = token.text
        if kind in _LITERALS and not (previous is not None and _names_something(token, previous, before, commands)):
            text = "?"
        parts.append(f"{int(kind)}\x1f{text}")
        before, previous = previous, token
    return "\x1e".join(parts)


def _names_something(token: Token, previous: Token, before: Token | None, commands: Collection[TokenType]) -> bool:
    kind = previous.token_type
    if kind in commands or kind in _BEFORE_NAMES:
        return True
    if kind == TokenType.L_PAREN:
        return before is not None and before.text.upper() in ("IDENTIFIER", "TABLE")
    return token.token_type == TokenType.NUMBER and kind in _NAME_PARTS and previous.end + 1 == token.start


# --- parsing -----------------------------------------------------------------------------------------
class _DropPerStatementNotes(logging.Filter):
    """sqlglot logs a warning for every statement it keeps as an opaque Command or cannot scope; at
    ingest rates that is noise, and the outcome is reported through ``parse_error`` instead."""

    NOTES = ("Falling back to parsing as a 'Command'", "Cannot traverse scope")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(note in message for note in self.NOTES)


logging.getLogger("sqlglot").addFilter(_DropPerStatementNotes())

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# EXPLAIN's statement is what the audit cares about (EXPLAIN ANALYZE even runs it); options go.
_EXPLAIN_OPTIONS = re.compile(
    r"^\s*(?:\((?:[^()]|\([^()]*\))*\)\s*)?"
    r"(?:(?:ANALYZE|ANALYSE|VERBOSE|EXTENDED|FORMATTED|LOGICAL|CODEGEN|COST|QUERY\s+PLAN\s+FOR|PLAN\s+FOR"
    r"|FORMAT\s*=?\s*\w+|USING\s+\w+)\s+)*",
    re.IGNORECASE,
)
# Session and transaction statements that sqlglot keeps as Commands and that touch no table.
_BENIGN_COMMANDS = frozenset({
    "SHOW", "SET", "RESET", "DISCARD", "LISTEN", "UNLISTEN", "NOTIFY", "DEALLOCATE", "BEGIN", "START",
    "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE", "USE", "CHECKPOINT", "FETCH", "CLOSE",
})


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ParseError) and exc.errors:
        first = exc.errors[0]
        return f"{first.get('description') or 'invalid syntax'} (line {first.get('line')}, col {first.get('col')})"
    text = _ANSI.sub("", str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _analyze(reader: Dialect, tokens: list[Token], sql: str, dialect: str | None,
             catalog: Catalog | None) -> AccessInfo:
    try:
        statements = reader.parser().parse(tokens, sql)
    except RecursionError:
        return _error("unparseable SQL: nested too deeply")
    except Exception as exc:  # whatever the parser raises is reported, never raised
        return _error(f"unparseable SQL: {_describe(exc)}")
    if all(statement is None for statement in statements):
        return _error("no SQL statement (only comments or semicolons)")
    collector = AccessCollector(catalog, _normalize_cached, dialect)
    unsupported: list[str] = []
    try:
        _collect(collector, statements, reader, unsupported, depth=0)
    except RecursionError:
        return _error("could not analyze SQL: nested too deeply")
    except (ParseError, TokenError) as exc:  # the statement inside an EXPLAIN
        return _error(f"unparseable SQL: {_describe(exc)}")
    except Exception as exc:  # an analysis bug must not lose the event
        return _error(f"could not analyze SQL: {type(exc).__name__}: {_describe(exc)}")
    tables, by_table = collector.result()
    if not tables and unsupported:
        return _error(f"unsupported statement: {unsupported[0]}")
    columns = tuple(sorted({c for cols in by_table.values() for c in cols}))
    return AccessInfo(tables=tables, columns_by_table=by_table, columns=columns, parse_error=None,
                      qualified=qualified_columns(statements, _normalize_cached, sql))


def _collect(collector: AccessCollector, statements: Iterable[exp.Expr | None], reader: Dialect,
             unsupported: list[str], depth: int) -> None:
    for statement in statements:
        if statement is None:
            continue
        if isinstance(statement, exp.Condition | exp.Alias):
            # sqlglot reads a lone expression (a misspelt keyword: "SELEC x" is x aliased) where SQL
            # needs a statement: the text does not parse as SQL.
            raise ParseError(f"not a SQL statement (it reads as the expression {statement.sql()[:60]!r})")
        if isinstance(statement, exp.Command):
            keyword = str(statement.this).upper()
            body = statement.expression
            if keyword == "EXPLAIN" and depth == 0 and isinstance(body, exp.Literal):
                inner = _EXPLAIN_OPTIONS.sub("", body.name, count=1)
                _collect(collector, sqlglot.parse(inner, read=reader), reader, unsupported, depth + 1)
            elif keyword not in _BENIGN_COMMANDS:
                unsupported.append(keyword[:40])
            continue
        collector.add_statement(statement)
