"""Schema facts from DDL text: `CREATE TABLE` (column list), `CREATE TABLE … AS SELECT` and
`CREATE VIEW` (their output names), `ALTER TABLE … ADD COLUMN`. Everything else is skipped."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from ..audit.extraction import normalize_dialect
from ..errors import BadRequest
from .facts import Fact, dedupe

MAX_DDL_BYTES = 64 * 1024 * 1024


@dataclass
class DdlResult:
    facts: list[Fact] = field(default_factory=list)
    tables: int = 0
    skipped: int = 0  # statements that did not parse (pg_dump COPY data, vendor commands, …)


def dialect_of(name: str | None) -> str | None:
    """A sqlglot dialect for ``name`` (a datasource type or sqlglot name); None for generic SQL."""
    if name is None or not name.strip():
        return None
    dialect = normalize_dialect(name)
    if dialect is None:
        raise BadRequest(f"unknown SQL dialect {name!r}: use e.g. postgres, mysql, sqlite, snowflake, bigquery, tsql",
                         code="invalid_dialect")
    return dialect


def _table_of(table: exp.Table) -> tuple[str, str | None]:
    return ".".join(p.name for p in table.parts), table.db or None


def _facts_of(statement: exp.Expr, dialect: str | None) -> tuple[str | None, list[Fact]]:
    if isinstance(statement, exp.Create) and str(statement.args.get("kind") or "").upper() in ("TABLE", "VIEW"):
        target = statement.this
        columns: list[tuple[str, str | None]] = []
        if isinstance(target, exp.Schema) and isinstance(target.this, exp.Table):
            table = target.this
            for e in target.expressions:
                if isinstance(e, exp.ColumnDef):
                    kind = e.args.get("kind")
                    columns.append((e.name, kind.sql(dialect=dialect) if kind is not None else None))
                elif isinstance(e, exp.Identifier):  # CREATE VIEW v (a, b) AS …
                    columns.append((e.name, None))
        elif isinstance(target, exp.Table):
            table = target
        else:
            return None, []
        query = statement.expression
        if not columns and isinstance(query, exp.Query):
            columns = [(n, None) for n in query.named_selects if n and n != "*"]
        name, schema = _table_of(table)
        return name, [Fact.of(name, c, schema, t, i) for i, (c, t) in enumerate(columns, start=1)]
    if isinstance(statement, exp.Alter) and isinstance(statement.this, exp.Table):
        name, schema = _table_of(statement.this)
        added = [a for a in statement.args.get("actions") or [] if isinstance(a, exp.ColumnDef)]
        facts = [Fact.of(name, a.name, schema, a.args["kind"].sql(dialect=dialect) if a.args.get("kind") else None)
                 for a in added]
        return (name if facts else None), facts
    return None, []


_STATEMENT_END = re.compile(r";[ \t]*\r?\n")
_COPY_DATA = re.compile(r"^COPY\b[^;]*\bFROM\s+stdin\s*;.*?^\\\.[ \t]*$", re.IGNORECASE | re.MULTILINE | re.DOTALL)


def read_ddl(text: str, dialect: str | None = None) -> DdlResult:
    """Facts of every table the DDL defines (names normalized like audit rows, origin ``ddl``).

    >>> r = read_ddl('CREATE TABLE "Public".Patients (id int, "SSN" text); CREATE INDEX i ON x (y);')
    >>> [(f.table, f.column, f.data_type) for f in r.facts], r.tables
    ([('patients', 'id', 'int'), ('patients', 'ssn', 'text')], 1)
    """
    if len(text) > MAX_DDL_BYTES // 4 and len(text.encode()) > MAX_DDL_BYTES:
        raise BadRequest("the DDL file is larger than 64 MB", code="too_large")
    result = DdlResult()
    text = _COPY_DATA.sub("", text)  # pg_dump's table data
    try:
        chunks = [(text, sqlglot.parse(text, read=dialect))]
    except (SqlglotError, RecursionError, ValueError):
        chunks = []
        for part in _STATEMENT_END.split(text):  # parse statement by statement, skipping what fails
            if not part.strip():
                continue
            try:
                chunks.append((part, sqlglot.parse(part, read=dialect)))
            except (SqlglotError, RecursionError, ValueError):
                result.skipped += 1
    facts: list[Fact] = []
    tables: set[str] = set()
    for _, statements in chunks:
        for statement in statements:
            if statement is None:
                continue
            name, found = _facts_of(statement, dialect)
            if name and found:
                tables.add(found[0].table)
                facts.extend(found)
    result.facts = dedupe(facts)
    result.tables = len(tables)
    return result
