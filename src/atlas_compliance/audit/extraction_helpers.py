"""What the extraction's walk shares between its parts: what one scope can name (:class:`Sources`),
which CTE a table name refers to, and what a derived relation outputs. Pure functions of the sqlglot
tree; no crediting happens here."""

from __future__ import annotations

from typing import Any

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

STAR = "*"


class Sources:
    """What one scope can name: real tables, derived sources (CTE / subquery scopes), opaque sources."""

    __slots__ = ("tables", "derived", "opaque")

    def __init__(self) -> None:
        self.tables: dict[str, list[str]] = {}  # alias (or bare name) -> normalized real table names
        self.derived: dict[str, Scope] = {}  # alias -> scope of a CTE, derived table or LATERAL subquery
        self.opaque: set[str] = set()  # aliases and column names of table functions, UNNEST, VALUES

    def add_table(self, alias: str, table: str) -> None:
        names = self.tables.setdefault(alias, [])
        if table not in names:
            names.append(table)

    def add_opaque(self, alias: str, node: exp.Expr) -> None:
        self.opaque.add(alias)
        table_alias = node.args.get("alias")
        if isinstance(table_alias, exp.TableAlias):
            self.opaque.update(c.name.lower() for c in table_alias.columns)

    def real_tables(self) -> list[str]:
        return list(dict.fromkeys(t for names in self.tables.values() for t in names))


EMPTY_SOURCES = Sources()


# --- CTE lookup --------------------------------------------------------------------------------------
_CteFrame = tuple[dict[str, int], list[exp.CTE], int | None, Any]  # first index by name, CTEs, visible limit, outer


def ctes_by_table(statement: exp.Expr) -> dict[int, exp.CTE | None]:
    """id(Table) -> the CTE its unqualified name refers to (None: a real table), for every table of
    ``statement``, in one pass from the root: the same rules as :func:`cte_of`, in time linear in
    the statement (walking up from each table costs its depth, quadratic over a chain of UNIONs)."""
    found: dict[int, exp.CTE | None] = {}
    firsts: dict[int, dict[str, int]] = {}

    def first_index(with_: exp.With) -> dict[str, int]:
        names = firsts.get(id(with_))
        if names is None:
            names = firsts[id(with_)] = {}
            for index, cte in enumerate(with_.expressions):
                names.setdefault(cte.alias.lower(), index)
        return names

    stack: list[tuple[exp.Expr, _CteFrame | None]] = [(statement, None)]
    while stack:
        node, env = stack.pop()
        if isinstance(node, exp.With):  # each CTE body sees the CTEs before it (all: RECURSIVE)
            recursive = bool(node.args.get("recursive"))
            position = {id(cte): index for index, cte in enumerate(node.expressions)}
            for child in node.iter_expressions():
                index = position.get(id(child))
                if index is None:
                    stack.append((child, env))
                else:
                    stack.append((child, (first_index(node), node.expressions, None if recursive else index, env)))
            continue
        if isinstance(node, exp.Table) and not node.args.get("db"):
            found[id(node)] = _visible_cte(env, node.name.lower())
        with_ = node.args.get("with_")
        inner = (first_index(with_), with_.expressions, None, env) if isinstance(with_, exp.With) else env
        for child in node.iter_expressions():
            stack.append((child, env if child is with_ else inner))
    return found


def _visible_cte(env: _CteFrame | None, name: str) -> exp.CTE | None:
    while env is not None:
        names, ctes, limit, outer = env
        index = names.get(name)
        if index is not None and (limit is None or index < limit):
            return ctes[index]
        env = outer
    return None


def cte_of(table: exp.Table) -> exp.CTE | None:
    """The CTE an unqualified table name refers to, if any, following SQL's visibility rules: a CTE
    body sees the CTEs defined before it (all of them, itself included, under WITH RECURSIVE)."""
    name = table.name.lower()
    child: exp.Expr | None = table
    node = table.parent
    while node is not None:
        if isinstance(node, exp.With):
            recursive = bool(node.args.get("recursive"))
            for cte in node.expressions:
                if cte is child and not recursive:
                    break
                if cte.alias.lower() == name:
                    return cte
            child = node.parent  # the query owning this WITH: its other CTEs are not visible here
            node = child.parent if child is not None else None
            continue
        with_ = node.args.get("with_")
        if isinstance(with_, exp.With) and with_ is not child:
            for cte in with_.expressions:
                if cte.alias.lower() == name:
                    return cte
        child, node = node, node.parent
    return None


# --- derived relations -------------------------------------------------------------------------------
def projected_names(scope: Scope) -> set[str]:
    """Output column names of a derived source (its column list, else its SELECT list), without '*'."""
    if scope.outer_columns:
        return {c.lower() for c in scope.outer_columns}
    expression = scope.expression
    if isinstance(expression, exp.Query):
        return {n.lower() for n in expression.named_selects if n != STAR}
    return set()


def has_star(scope: Scope) -> bool:
    expression = scope.expression
    while isinstance(expression, exp.SetOperation):
        expression = expression.this
    if isinstance(expression, exp.Subquery):
        expression = expression.unnest()
    return isinstance(expression, exp.Select) and any(
        isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))
        for p in expression.expressions)
