"""Scope walking for SQL access extraction: resolve every column to the table(s) that own it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

STAR = "*"


class Collector:
    """Accumulates tables and per-table columns over the statements of one SQL text."""

    def __init__(self, catalog: Any, normalize: Callable[[str], str]) -> None:
        self.catalog = catalog
        self.normalize = normalize
        self.tables: set[str] = set()
        self.columns: dict[str, set[str]] = {}

    # --- results -----------------------------------------------------------------------------
    def result(self) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
        tables = tuple(sorted(self.tables))
        by_table = {t: tuple(sorted(self.columns.get(t, set()))) for t in tables}
        return tables, by_table

    def _credit(self, table: str, column: str) -> None:
        self.tables.add(table)
        cols = self.columns.setdefault(table, set())
        if column == STAR and self.catalog is not None:
            known = self.catalog.columns_of(table)
            if known:
                cols.update(known)
                return
        cols.add(column)

    # --- names -------------------------------------------------------------------------------
    def table_name(self, table: exp.Table) -> str | None:
        if not isinstance(table.this, exp.Identifier):
            return None  # a table function, e.g. UNNEST(...) or generate_series(...)
        parts = [p for p in (table.catalog, table.db, table.name) if p]
        return self.normalize(".".join(parts)) or None

    # --- statements --------------------------------------------------------------------------
    def add_statement(self, statement: exp.Expression) -> None:
        cte_names = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
        for table in statement.find_all(exp.Table):
            if not table.db and table.name.lower() in cte_names:
                continue
            name = self.table_name(table)
            if name:
                self.tables.add(name)
        for scope in traverse_scope(statement):
            if isinstance(scope.expression, exp.Select):
                self._select_scope(scope)
        if isinstance(statement, exp.Insert | exp.Update | exp.Delete | exp.Merge):
            self._dml(statement)

    # --- SELECT scopes -----------------------------------------------------------------------
    def _sources(self, scope: Scope) -> tuple[dict[str, str], dict[str, Scope]]:
        """Table sources (alias → table) and derived sources (alias → scope). Other sources, such as
        UNNEST or table functions, map to an empty derived entry: their columns are not table columns."""
        tables: dict[str, str] = {}
        derived: dict[str, Scope] = {}
        for alias, (node, source) in scope.selected_sources.items():
            if isinstance(source, exp.Table) and self.table_name(source):
                tables[alias.lower()] = self.table_name(source) or ""
            elif isinstance(source, Scope) and isinstance(source.expression, exp.Select | exp.SetOperation):
                derived[alias.lower()] = source
            else:
                derived[alias.lower()] = _OPAQUE
                for column_alias in _column_aliases(node):
                    derived[column_alias] = _OPAQUE
        return tables, derived

    def _select_scope(self, scope: Scope) -> None:
        tables, derived = self._sources(scope)
        select = scope.expression
        aliases = {p.alias.lower() for p in select.expressions if isinstance(p, exp.Alias)}
        for projection in select.expressions:
            if isinstance(projection, exp.Star):
                for table in tables.values():
                    self._credit(table, STAR)
            elif isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
                target = tables.get(projection.table.lower())
                if target:
                    self._credit(target, STAR)
        for column in scope.columns:
            if isinstance(column.this, exp.Star) or column.find_ancestor(exp.Select) is not select:
                continue
            name = column.name.lower()
            qualifier = column.table.lower()
            if qualifier:
                self._qualified(scope, qualifier, name)
            elif not (name in aliases and _outside_projection(column, select)):
                self._unqualified(name, tables, derived)
        for join in select.args.get("joins") or []:
            for ident in join.args.get("using") or []:
                for table in self._candidates(ident.name.lower(), list(tables.values())):
                    self._credit(table, ident.name.lower())

    def _qualified(self, scope: Scope | None, qualifier: str, name: str) -> None:
        while scope is not None:
            tables, derived = self._sources(scope)
            if qualifier in tables:
                self._credit(tables[qualifier], name)
                return
            if qualifier in derived:
                return  # the derived table's own scope credits what it projects
            scope = scope.parent
        # An unknown qualifier (e.g. schema.table.column or a dialect's struct access): match by table name.
        for table in list(self.tables):
            if table == qualifier or table.endswith("." + qualifier):
                self._credit(table, name)
                return

    def _unqualified(self, name: str, tables: dict[str, str], derived: dict[str, Scope]) -> None:
        if derived.get(name) is _OPAQUE:
            return  # the alias of an UNNEST / table function value
        for source in derived.values():
            if source is not _OPAQUE and name in _projected_names(source):
                return  # SQL resolves it to the derived table, whose scope credits the real columns
        for table in self._candidates(name, list(dict.fromkeys(tables.values()))):
            self._credit(table, name)

    def _candidates(self, column: str, tables: list[str]) -> list[str]:
        if len(tables) <= 1 or self.catalog is None:
            return tables
        having = [t for t in tables if column in (self.catalog.columns_of(t) or ())]
        if having:
            return having
        unknown = [t for t in tables if self.catalog.columns_of(t) is None]
        return unknown or tables

    # --- INSERT / UPDATE / DELETE / MERGE ------------------------------------------------------
    def _dml(self, statement: exp.Expression) -> None:
        sources: dict[str, str] = {}
        target: str | None = None
        target_node = statement.this
        if isinstance(target_node, exp.Schema):  # INSERT INTO t (a, b)
            table_node = target_node.this
            if isinstance(table_node, exp.Table):
                target = self.table_name(table_node)
                for ident in target_node.expressions:
                    if target and isinstance(ident, exp.Identifier | exp.Column):
                        self._credit(target, ident.name.lower())
        elif isinstance(target_node, exp.Table):
            target = self.table_name(target_node)
            if target:
                sources[target_node.alias_or_name.lower()] = target
                sources[target_node.name.lower()] = target
        if isinstance(statement, exp.Insert):
            return  # the SELECT part has its own scopes
        for key in ("from", "using", "from_"):
            node = statement.args.get(key)
            if not isinstance(node, exp.Expression | list):
                continue
            for table in _direct_tables(node):
                name = self.table_name(table)
                if name:
                    sources[table.alias_or_name.lower()] = name
        for join in statement.args.get("joins") or []:
            for table in _direct_tables(join):
                name = self.table_name(table)
                if name:
                    sources[table.alias_or_name.lower()] = name
        for column in _own_columns(statement):
            name = column.name.lower()
            qualifier = column.table.lower()
            if qualifier and qualifier in sources:
                self._credit(sources[qualifier], name)
            elif qualifier:
                self._qualified(None, qualifier, name)
            elif target and _is_set_target(column):
                self._credit(target, name)
            else:
                for table in self._candidates(name, list(dict.fromkeys(sources.values()))):
                    self._credit(table, name)


_OPAQUE: Any = object()


def _column_aliases(node: Any) -> list[str]:
    alias = node.args.get("alias") if isinstance(node, exp.Expression) else None
    if isinstance(alias, exp.TableAlias):
        return [c.name.lower() for c in alias.columns]
    return []


def _projected_names(scope: Scope) -> set[str]:
    expression = scope.expression
    if isinstance(expression, exp.Select):
        return {p.alias_or_name.lower() for p in expression.expressions}
    if isinstance(expression, exp.SetOperation):
        left = expression.left
        while isinstance(left, exp.SetOperation):
            left = left.left
        if isinstance(left, exp.Select):
            return {p.alias_or_name.lower() for p in left.expressions}
    return set()


def _outside_projection(column: exp.Column, select: exp.Select) -> bool:
    """A bare name in ORDER BY / GROUP BY / HAVING / QUALIFY may be a select-list alias."""
    node = column.parent
    while node is not None and node is not select:
        if isinstance(node, exp.Order | exp.Group | exp.Having | exp.Qualify):
            return True
        node = node.parent
    return False


def _direct_tables(node: exp.Expression | list | None) -> list[exp.Table]:
    """Tables named directly in a FROM/USING/JOIN clause of a DML statement (not in its subqueries)."""
    if node is None:
        return []
    nodes = node if isinstance(node, list) else [node]
    found = []
    for item in nodes:
        for table in item.find_all(exp.Table):
            if table.find_ancestor(exp.Select) is None:
                found.append(table)
    return found


def _own_columns(statement: exp.Expression) -> list[exp.Column]:
    """Columns of a DML statement outside its nested SELECTs (those have their own scopes)."""
    return [c for c in statement.find_all(exp.Column)
            if not isinstance(c.this, exp.Star) and c.find_ancestor(exp.Select, exp.Subquery) is None]


def _is_set_target(column: exp.Column) -> bool:
    parent = column.parent
    return isinstance(parent, exp.EQ) and parent.this is column and isinstance(
        parent.parent, exp.Update | exp.Merge | exp.When | exp.Tuple) or _in_merge_insert_columns(column)


def _in_merge_insert_columns(column: exp.Column) -> bool:
    insert = column.find_ancestor(exp.Insert)
    return insert is not None and isinstance(insert.this, exp.Tuple) and column.parent is insert.this
