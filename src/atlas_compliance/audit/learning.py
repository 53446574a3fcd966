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

from collections.abc import Callable, Iterable

from sqlglot import exp

from .names import normalize_column_name

_AMBIGUOUS = ""


def _table_name(table: exp.Table, normalize: Callable[[str], str]) -> str | None:
    if not isinstance(table.this, exp.Identifier):
        return None
    return normalize(".".join(p.name for p in table.parts)) or None


def _statement_pairs(statement: exp.Expr, normalize: Callable[[str], str], found: set[tuple[str, str]]) -> None:
    ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
    shadowed = set(ctes)
    for alias in statement.find_all(exp.TableAlias):
        if not isinstance(alias.parent, exp.Table) or not isinstance(alias.parent.this, exp.Identifier):
            shadowed.add(alias.name.lower())  # a derived table, function, VALUES or UNNEST alias
    names: dict[str, str] = {}

    def note(key: str, table: str) -> None:
        known = names.get(key)
        names[key] = table if known in (None, table) else _AMBIGUOUS

    targets: dict[int, str] = {}
    for table in statement.find_all(exp.Table):
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
    for column in statement.find_all(exp.Column):
        qualifier = ".".join(p.lower() for p in (column.text("catalog"), column.text("db"), column.text("table")) if p)
        if not qualifier or isinstance(column.this, exp.Star) or qualifier in shadowed:
            continue
        table_name = names.get(qualifier) or (names.get(normalize(qualifier)) if "." in qualifier else None)
        if table_name:
            found.add((table_name, normalize_column_name(column.name)))
    for node in statement.find_all(exp.Insert, exp.Update):
        target = node.this
        if isinstance(node, exp.Insert) and isinstance(target, exp.Schema) and isinstance(target.this, exp.Table):
            table_name = targets.get(id(target.this))
            columns = [e.name for e in target.expressions if isinstance(e, exp.Identifier | exp.Column)]
        elif isinstance(node, exp.Update) and isinstance(target, exp.Table):
            table_name = targets.get(id(target))
            columns = [e.this.name for e in node.expressions if isinstance(e, exp.EQ) and isinstance(e.this, exp.Column)]
        else:
            continue
        if table_name:
            found.update((table_name, normalize_column_name(c)) for c in columns if c)


def qualified_columns(statements: Iterable[exp.Expr | None], normalize: Callable[[str], str]) -> tuple[tuple[str, str], ...]:
    """Sorted distinct (table, column) pairs the statements place beyond doubt (module docstring).
    Never raises: a statement it cannot read gives nothing."""
    found: set[tuple[str, str]] = set()
    for statement in statements:
        if statement is None or isinstance(statement, exp.Command):
            continue
        try:
            _statement_pairs(statement, normalize, found)
        except (RecursionError, AttributeError, TypeError, ValueError):
            continue
    return tuple(sorted(p for p in found if p[0] and p[1] and p[1] != "*"))
