"""The parts of a write or DDL statement that no SELECT covers: INSERT, UPDATE, DELETE, MERGE, COPY
and DDL statements' own relations and columns.

A :class:`StatementWriter` builds a pseudo-scope from the statement's relations (its target, the
FROM / USING relations of UPDATE, DELETE and MERGE, MySQL's joined targets) and credits the target's
written columns (``INSERT INTO t (a, b)``, ``SET a = ...``, ``ON CONFLICT`` keys, ``EXCLUDED.a``,
T-SQL ``OUTPUT inserted.a``), ``RETURNING *``, and every other column of the statement outside its
SELECTs. The subqueries of UPDATE, DELETE and MERGE see that pseudo-scope (they may correlate with
the target); an INSERT's SELECT does not, nor does a derived table among the statement's relations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp
from sqlglot.optimizer.scope import walk_in_scope

from .extraction_helpers import EMPTY_SOURCES, Sources

if TYPE_CHECKING:
    from .extraction_scope import AccessCollector

# Pseudo-tables naming a DML statement's target row: PostgreSQL/SQLite ON CONFLICT, T-SQL OUTPUT.
_TARGET_ROW_ALIASES = ("excluded", "inserted", "deleted")
_RELATIONS = (exp.Table, exp.Subquery, exp.Lateral, exp.Unnest, exp.Values)


class StatementWriter:
    """Credits what a write or DDL statement touches outside its SELECTs, through ``collector``."""

    def __init__(self, collector: AccessCollector) -> None:
        self.collector = collector

    def write(self, statement: exp.Expr) -> list[exp.Expr]:
        """Credit the statement's own relations and columns, outside any SELECT; return the queries
        the walk stopped at (the caller scopes those sqlglot did not)."""
        collector = self.collector
        sources = Sources()
        target = statement.this if isinstance(statement, exp.DML) else None
        schema_columns: list[str] = []
        if isinstance(target, exp.Schema):  # INSERT INTO t (a, b) / COPY t (a, b)
            schema_columns = [c.name.lower() for c in target.expressions if isinstance(c, exp.Identifier | exp.Column)]
            target = target.this
        from_, using = statement.args.get("from_"), statement.args.get("using")
        relations = [from_.this] if isinstance(from_, exp.From) else []
        relations.extend(using if isinstance(using, list) else [using] if isinstance(using, exp.Expr) else [])
        target_tables: list[exp.Table] = []
        if isinstance(statement, exp.Delete) and statement.args.get("tables"):
            relations.insert(0, target)  # MySQL DELETE t1 FROM t1 JOIN t2: `tables` are the targets
            target_tables = [t for t in statement.args["tables"] if isinstance(t, exp.Table)]
        elif isinstance(target, exp.Table):
            target_tables = [target]
            relations.extend(j.this for j in target.args.get("joins") or [])  # MySQL UPDATE a JOIN b
        for relation in (r for r in relations if isinstance(r, exp.Expr)):
            for node in [relation, *(j.this for j in relation.args.get("joins") or [])]:
                if isinstance(node, _RELATIONS):
                    collector.add_source(sources, node.alias_or_name.lower(), node)

        targets: list[str] = []
        alias_targets: set[int] = set()
        for table in target_tables:
            bare = table.name.lower()
            if (isinstance(statement, exp.Update | exp.Delete) and not table.args.get("db") and not table.alias
                    and bare in sources.tables and table not in relations):
                targets.extend(sources.tables[bare])  # T-SQL UPDATE p SET ... FROM patients p
                alias_targets.add(id(table))
            elif name := collector.table_name(table):
                targets.append(name)
                sources.add_table(table.alias_or_name.lower(), name)
                sources.add_table(bare, name)
        targets = list(dict.fromkeys(targets))
        for name in targets:
            collector.add_table(name)
            for column_name in schema_columns:
                collector.credit(name, column_name)
        # An INSERT's own SELECT cannot see its target; UPDATE/DELETE/MERGE subqueries can correlate.
        collector.statement_sources = EMPTY_SOURCES if isinstance(statement, exp.Insert) else sources

        columns: list[exp.Column] = []
        queries: list[exp.Expr] = []
        for node in walk_in_scope(statement):
            if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
                columns.append(node)
            elif isinstance(node, exp.Table) and id(node) not in alias_targets:
                collector.note_table(node)
                if not isinstance(statement, exp.DML) and (own := collector.table_name(node)):
                    sources.add_table(node.alias_or_name.lower(), own)  # DDL: the table(s) it names
            elif isinstance(node, exp.Select | exp.SetOperation) and node is not statement:
                queries.append(node)
            elif isinstance(node, exp.Star) and isinstance(node.parent, exp.Returning):
                for name in targets:
                    collector.credit_star(name)  # RETURNING *
        for column in columns:
            qualifier = column.text("table").lower()
            target_row = (qualifier in _TARGET_ROW_ALIASES and qualifier not in sources.tables
                          and not column.text("db"))
            if targets and (target_row or (not qualifier and _is_write_target(column))):
                for name in targets:  # SET b = ..., SET b = EXCLUDED.b, OUTPUT inserted.id
                    collector.credit(name, column.name.lower())
            elif column.table or not collector.pseudo_column(column):
                collector.resolve(column, [sources])
        return queries


def is_dml_relation(expression: exp.Expr, statement: exp.Expr | None) -> bool:
    """A derived table among a DML statement's own relations (MERGE/DELETE ... USING (SELECT ...)),
    which sqlglot scopes as a subquery: it cannot see the statement's target."""
    node = expression.parent
    if not isinstance(node, exp.Subquery) or statement is None or isinstance(statement, exp.Query):
        return False
    while isinstance(node, exp.Subquery | exp.From | exp.Join | exp.Table):
        node = node.parent
    return node is statement


def _is_write_target(column: exp.Column) -> bool:
    """SET col = ... (UPDATE, MERGE, ON CONFLICT / DUPLICATE KEY), a MERGE INSERT column list, or an
    ON CONFLICT key: the column belongs to the statement's target table."""
    parent = column.parent
    if isinstance(parent, exp.EQ) and column.arg_key == "this":
        return isinstance(parent.parent, exp.Update | exp.OnConflict)
    if isinstance(parent, exp.Tuple) and isinstance(parent.parent, exp.Insert):
        return parent.arg_key == "this"
    if isinstance(parent, exp.Ordered):
        parent = parent.parent
    return isinstance(parent, exp.OnConflict)
