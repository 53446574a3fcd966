"""Schema facts: one column of one table of one datasource, with where the fact came from.

Origins, strongest first: ``introspected`` (read from the database itself by `catalog sync` or
`pii scan`), ``ddl`` (read from `CREATE TABLE` statements by `catalog import`), ``learned`` (seen
qualified in the audit trail: `t.col`, `INSERT INTO t (col)`, `UPDATE t SET col`). Learned facts
never override the others: a table that has introspected or DDL facts is known by those alone; and,
until the ambiguity rule exists, they do not take part in attribution (:data:`LEARNED_ATTRIBUTION`).
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


def _storable(f: Fact) -> bool:
    """PostgreSQL text cannot hold NUL: a name with one (only a hostile DDL file can have it) is dropped."""
    return "\x00" not in f"{f.table}{f.column}{f.schema or ''}{f.data_type or ''}"


def dedupe(facts: Iterable[Fact]) -> list[Fact]:
    """The first fact of each (table, column), in order; empty names and names with NUL dropped."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for f in facts:
        key = (f.table, f.column)
        if f.table and f.column and key not in seen and _storable(f):
            seen.add(key)
            kept.append(f)
    return kept


# Whether facts learned from the trail take part in attribution. Not yet: a table known only from
# learned facts is known *incompletely*, and the extraction treats a known table as not having a column
# it does not list, so an unqualified column of a join with such a table and an unknown one would be
# credited to the unknown table alone, a miss when it is the learned table's (SQL alone cannot tell).
# The ambiguity rule of issue 16 (a column no table can be shown to own is recorded as ambiguous with
# its candidates) makes them safe to use; until then they are recorded, listed and not used.
LEARNED_ATTRIBUTION = False


def build_catalog(rows: Iterable[tuple[str, str, str]], *,
                  with_learned: bool | None = None) -> Catalog | None:
    """The extraction :class:`Catalog` from (table, column, origin) rows.

    Per table, introspected and DDL facts win: learned facts count only for tables that have no other
    fact, and only when ``with_learned`` (default :data:`LEARNED_ATTRIBUTION`, off). A learned-only
    table also lists ``*``: what the trail showed is not all of the table, so a ``SELECT *`` of it is
    still recorded as ``*`` (all columns) besides the learned ones.

    >>> rows = [("t", "a", "introspected"), ("t", "b", "learned"), ("u", "c", "learned")]
    >>> build_catalog(rows).tables
    mappingproxy({'t': ('a',)})
    >>> build_catalog(rows, with_learned=True).tables
    mappingproxy({'t': ('a',), 'u': ('*', 'c')})
    """
    use_learned = LEARNED_ATTRIBUTION if with_learned is None else with_learned
    declared: dict[str, set[str]] = {}
    learned: dict[str, set[str]] = {}
    for table, column, origin in rows:
        (learned if origin == "learned" else declared).setdefault(table, set()).add(column)
    tables: dict[str, list[str]] = {t: sorted(c) for t, c in declared.items()}
    if use_learned:
        for table, columns in learned.items():
            if table not in tables:
                tables[table] = sorted({*columns, STAR})
    return Catalog(tables) if tables else None
