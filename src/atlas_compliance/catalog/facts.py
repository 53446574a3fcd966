"""Schema facts: one column of one table of one datasource, with where the fact came from.

Origins, strongest first: ``introspected`` (read from the database itself by `catalog sync` or
`pii scan`), ``ddl`` (read from `CREATE TABLE` statements by `catalog import`), ``learned`` (seen
qualified in the audit trail: `t.col`, `INSERT INTO t (col)`, `UPDATE t SET col`). Learned facts
never override the others: a table that has introspected or DDL facts is known by those alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..audit.extraction import Catalog
from ..audit.names import normalize_column_name, normalize_table_name

ORIGINS = ("introspected", "ddl", "learned")
LEARNED_SOURCE = ""  # the datasource name of learned facts: the audit trail itself
STAR = "*"


@dataclass(frozen=True)
class Fact:
    """One column of one table (``table`` normalized like audit rows; ``schema`` as the source wrote it)."""

    table: str
    column: str
    schema: str | None = None
    data_type: str | None = None
    ordinal: int = 0

    @staticmethod
    def of(table: str, column: str, schema: str | None = None, data_type: str | None = None,
           ordinal: int = 0) -> Fact:
        return Fact(normalize_table_name(table), normalize_column_name(column.strip()),
                    schema.lower() if schema else None, data_type.lower() if data_type else None, ordinal)


def dedupe(facts: Iterable[Fact]) -> list[Fact]:
    """The first fact of each (table, column), in order."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for f in facts:
        key = (f.table, f.column)
        if f.table and f.column and key not in seen:
            seen.add(key)
            kept.append(f)
    return kept


def build_catalog(rows: Iterable[tuple[str, str, str]]) -> Catalog | None:
    """The extraction :class:`Catalog` from (table, column, origin) rows.

    Per table, introspected and DDL facts win: learned facts count only for tables that have no other
    fact. A learned-only table also lists ``*``: what the trail showed is not all of the table, so a
    ``SELECT *`` of it is still recorded as ``*`` (all columns) besides the learned ones.

    >>> build_catalog([("t", "a", "introspected"), ("t", "b", "learned"), ("u", "c", "learned")]).tables
    mappingproxy({'t': ('a',), 'u': ('*', 'c')})
    """
    declared: dict[str, set[str]] = {}
    learned: dict[str, set[str]] = {}
    for table, column, origin in rows:
        (learned if origin == "learned" else declared).setdefault(table, set()).add(column)
    tables: dict[str, list[str]] = {t: sorted(c) for t, c in declared.items()}
    for table, columns in learned.items():
        if table not in tables:
            tables[table] = sorted({*columns, STAR})
    return Catalog(tables) if tables else None
