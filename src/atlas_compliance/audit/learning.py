"""Columns a statement places in a table beyond doubt, for the schema catalog's *learned* facts.

Only what the SQL itself says: a column qualified by a table's name or alias (``t.col``,
``o.total``), the column list of ``INSERT INTO t (col, …)``, and the targets of ``UPDATE t SET col``.
Anything that could mislead is left out: a qualifier that names different tables in different
scopes of the statement, a CTE, a derived table or a function's alias, struct fields
(``alias.struct.field``), ``t.*``.

>>> from atlas_compliance.audit.names import normalize_table_name as n
>>> import sqlglot
>>> qualified_columns(sqlglot.parse("SELECT o.total, c.Email, x FROM orders o JOIN crm.customers c ON c.id = o.cid"), n)
(('crm.customers', 'email'), ('crm.customers', 'id'), ('orders', 'cid'), ('orders', 'total'))
>>> qualified_columns(sqlglot.parse("INSERT INTO t (a, b) SELECT 1, 2; UPDATE u SET c = 1 WHERE d = 2"), n)
(('t', 'a'), ('t', 'b'), ('u', 'c'))
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from sqlglot import exp

from .names import normalize_column_name

_AMBIGUOUS = ""
_LEAF, _COLUMN, _TABLE, _ALIAS, _CTE, _WRITE, _OTHER = range(7)
_KINDS: dict[type, int] = {exp.Identifier: _LEAF, exp.Literal: _LEAF, exp.DataType: _LEAF, exp.Star: _LEAF,
                           exp.Column: _COLUMN, exp.Table: _TABLE, exp.TableAlias: _ALIAS, exp.CTE: _CTE,
                           exp.Insert: _WRITE, exp.Update: _WRITE}
# Only a text with a dot (a qualifier) or a write can name a column for sure: other texts are skipped
# without walking their tree.
_MAY_PLACE = re.compile(r"\.|\b(?:insert|update)\b", re.IGNORECASE)


def _table_name(table: exp.Table, normalize: Callable[[str], str]) -> str | None:
    if not isinstance(table.this, exp.Identifier):
        return None
    return normalize(".".join(p.name for p in table.parts)) or None


def _statement_pairs(statement: exp.Expr, normalize: Callable[[str], str], found: set[tuple[str, str]]) -> None:
    ctes: set[str] = set()
    tables: list[exp.Table] = []
    columns: list[exp.Column] = []
    writes: list[exp.Insert | exp.Update] = []
    shadowed: set[str] = set()  # derived table, table function, VALUES and UNNEST aliases
    stack: list[exp.Expr] = [statement]
    pop, push = stack.pop, stack.append
    while stack:  # one pass over the tree, not into names, literals and types (a third of its nodes)
        node = pop()
        kind = _KINDS.get(type(node), _OTHER)
        if kind is _LEAF:
            continue
        if kind is _COLUMN:
            if node.args.get("table") is not None:
                columns.append(node)  # type: ignore[arg-type]
            continue
        if kind is _TABLE:
            if type(node.this) is exp.Identifier:
                tables.append(node)  # type: ignore[arg-type]
                continue
            alias = node.args.get("alias")
            if isinstance(alias, exp.TableAlias):
                shadowed.add(alias.name.lower())
        elif kind is _ALIAS:
            shadowed.add(node.name.lower())
        elif kind is _CTE:
            ctes.add(node.alias_or_name.lower())
        elif kind is _WRITE:
            writes.append(node)  # type: ignore[arg-type]
        for value in node.args.values():
            if type(value) is list:
                for v in value:
                    if isinstance(v, exp.Expr):
                        push(v)
            elif isinstance(value, exp.Expr):
                push(value)
    if not columns and not writes:
        return
    shadowed |= ctes
    names: dict[str, str] = {}

    def note(key: str, table: str) -> None:
        known = names.get(key)
        names[key] = table if known in (None, table) else _AMBIGUOUS

    targets: dict[int, str] = {}
    for table in tables:
        if not table.args.get("db") and table.name.lower() in ctes:
            continue
        name = _table_name(table, normalize)
        if name is None:
            continue
        targets[id(table)] = name
        alias_name = table.alias
        if alias_name:
            note(alias_name.lower(), name)
        else:
            note(table.name.lower(), name)
            note(name, name)
    for column in columns:
        args = column.args
        if args.get("db") is None and args.get("catalog") is None:
            qualifier = column.text("table").lower()
        else:
            qualifier = ".".join(p.lower() for p in (column.text("catalog"), column.text("db"), column.text("table")) if p)
        if not qualifier or isinstance(column.this, exp.Star) or qualifier in shadowed:
            continue
        table_name = names.get(qualifier) or (names.get(normalize(qualifier)) if "." in qualifier else None)
        if table_name:
            found.add((table_name, normalize_column_name(column.name)))
    for node in writes:
        target = node.this
        if isinstance(node, exp.Insert) and isinstance(target, exp.Schema) and isinstance(target.this, exp.Table):
            table_name = targets.get(id(target.this))
            written = [e.name for e in target.expressions if isinstance(e, exp.Identifier | exp.Column)]
        elif isinstance(node, exp.Update) and isinstance(target, exp.Table):
            table_name = targets.get(id(target))
            written = [e.this.name for e in node.expressions if isinstance(e, exp.EQ) and isinstance(e.this, exp.Column)]
        else:
            continue
        if table_name:
            found.update((table_name, normalize_column_name(c)) for c in written if c)


def qualified_columns(statements: Iterable[exp.Expr | None], normalize: Callable[[str], str],
                      sql: str | None = None) -> tuple[tuple[str, str], ...]:
    """Sorted distinct (table, column) pairs the statements place beyond doubt (module docstring).
    ``sql``, the statements' text, lets a text without a dot or a write skip the walk. Never raises:
    a statement it cannot read gives nothing."""
    if sql is not None and not _MAY_PLACE.search(sql):
        return ()
    found: set[tuple[str, str]] = set()
    for statement in statements:
        if statement is None or isinstance(statement, exp.Command):
            continue
        try:
            _statement_pairs(statement, normalize, found)
        except (RecursionError, AttributeError, TypeError, ValueError):
            continue
    return tuple(sorted(p for p in found if p[0] and p[1] and p[1] != "*"))
