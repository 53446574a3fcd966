"""Attribute every column of a parsed SQL statement to the table(s) that own it.

The walk follows sqlglot's scopes (:func:`sqlglot.optimizer.scope.traverse_scope`): each SELECT is
resolved against the sources it can name — real tables, CTEs and derived tables, table functions —
and, for correlated references, against the sources of the scopes around it. The parts of a
statement that no SELECT covers (the target of an INSERT, UPDATE, DELETE or MERGE, its FROM/USING
relations, SET, RETURNING and conflict clauses, a DDL statement's own table) are resolved against a
pseudo-scope built from the statement's relations.

Two rules keep the result an over-report rather than a miss:

* a CTE or derived table credits the columns its own SELECT list reads, so a reference to one of
  its output columns needs no further tracing — except through ``SELECT *``, which is traced to
  the tables behind it;
* an unqualified column that SQL text alone cannot pin to one table is credited to every table of
  its scope that could own it — and, in a subquery, to the tables of the outer queries it may
  correlate with; a :class:`~atlas_compliance.audit.extraction.Catalog` narrows that to the tables
  known to have the column, looked up scope by scope from the innermost, as PostgreSQL does.

Bare names in GROUP BY / HAVING are input columns before SELECT-list aliases; in ORDER BY /
DISTINCT ON / QUALIFY, output columns first. NATURAL JOIN credits the shared columns when both
sides' columns are known, the known side's columns when one is, ``*`` to both sides otherwise.

All names are compared lowercased (identifiers, aliases, CTE names), quoted or not.

This module holds the :class:`AccessCollector` — what was credited, the statement walk, the sources
and chains of scopes, and name resolution. What a SELECT reads is in ``extraction_reads``; what a
write or DDL statement touches outside its SELECTs in ``extraction_writes``; the pieces both share
(:class:`~atlas_compliance.audit.extraction_helpers.Sources`, CTE lookup) in ``extraction_helpers``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.scope import Scope, traverse_scope

from .extraction_helpers import EMPTY_SOURCES, STAR, Sources, cte_of, ctes_by_table, has_star, projected_names
from .extraction_reads import SelectReader
from .extraction_writes import StatementWriter, is_dml_relation
from .names import fold_name

_MAX_TRACE_DEPTH = 16  # nested `SELECT *` layers followed when tracing a column to its table

# Unquoted names these dialects read as keywords, functions or row pseudo-columns, not table columns.
_POSTGRES_WORDS = frozenset({"default", "user", "current_user", "current_role", "session_user"})
_PSEUDO_COLUMNS: dict[str | None, frozenset[str]] = {
    "postgres": _POSTGRES_WORDS, "redshift": _POSTGRES_WORDS, "materialize": _POSTGRES_WORDS,
    "risingwave": _POSTGRES_WORDS, "oracle": frozenset({"default", "rownum", "level", "user", "uid", "sysdate"}),
}
# How firmly one scope claims an unqualified name (see AccessCollector._attribute).
_NOT_HERE, _MAYBE_HERE, _HERE = 0, 1, 2


class AccessCollector:
    """Accumulates tables and per-table columns over the statements of one SQL text.

    Args:
        catalog: a Catalog (``columns_of(table)``) or None.
        normalize: the table-name normalizer, applied to dotted names built from the AST.
        dialect: the sqlglot dialect name the text was parsed with (for dialect pseudo-columns).
    """

    def __init__(self, catalog: Any, normalize: Callable[[str], str], dialect: str | None) -> None:
        self.catalog = catalog
        self.normalize = normalize
        self.pseudo_columns = _PSEUDO_COLUMNS.get(dialect, frozenset({"default"}))
        self.tables: set[str] = set()
        self.columns: dict[str, set[str]] = {}
        self.statement_sources = EMPTY_SOURCES  # what the subqueries of a DML statement see of it
        self._reader = SelectReader(self)
        self._writer = StatementWriter(self)
        self._statement: exp.Expr | None = None
        self._scopes: dict[int, Scope] = {}  # id(scope expression) -> scope
        self._sources: dict[int, Sources] = {}  # id(scope) -> its sources
        self._table_refs: dict[int, str | exp.CTE | bool] = {}  # id(Table) -> real name, its CTE, or False
        self._ctes: dict[int, exp.CTE | None] | None = None  # id(Table) -> the CTE it names (one pass)
        self._chains: dict[int, list[Sources]] = {}  # id(scope) -> its sources and those around it
        self._reach: dict[int, int] = {}  # id(scope) -> how many frames of its chain its columns may name
        self._by_suffix: dict[str, list[str]] = {}  # "t", "s.t" -> tables named so (see add_table)

    def result(self) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
        tables = tuple(sorted(self.tables))
        return tables, {t: tuple(sorted(self.columns.get(t, ()))) for t in tables}

    def add_table(self, table: str) -> None:
        """Note a table, indexed by each dotted suffix of its name (``s.t`` under ``s.t`` and ``t``),
        so that a column qualified by a table's name finds it without scanning every table."""
        if table in self.tables:
            return
        self.tables.add(table)
        self._by_suffix.setdefault(table, []).append(table)
        for index, char in enumerate(table):
            if char == ".":
                self._by_suffix.setdefault(table[index + 1:], []).append(table)

    def credit(self, table: str, column: str) -> None:
        self.add_table(table)
        self.columns.setdefault(table, set()).add(fold_name(column))

    def credit_star(self, table: str, excluded: frozenset[str] = frozenset()) -> None:
        known = self.known(table)
        if known:
            self.add_table(table)
            self.columns.setdefault(table, set()).update(c for c in known if c not in excluded)
        else:
            self.credit(table, STAR)

    def known(self, table: str) -> tuple[str, ...] | None:
        return self.catalog.columns_of(table) if self.catalog is not None else None

    # --- statements -------------------------------------------------------------------------------
    def add_statement(self, statement: exp.Expr) -> None:
        if isinstance(statement, exp.Describe) and isinstance(statement.this, exp.Query | exp.DML):
            statement = statement.this  # MySQL's EXPLAIN <statement>
        with_ = statement.args.get("with_")
        for cte in with_.expressions if isinstance(with_, exp.With) else ():
            if isinstance(cte.this, exp.DML):
                self.add_statement(cte.this)  # PostgreSQL's WITH moved AS (DELETE ... RETURNING *)
        self._statement, self.statement_sources = statement, EMPTY_SOURCES
        self._sources, self._table_refs, self._ctes, self._chains, self._reach = {}, {}, None, {}, {}
        try:
            scopes = traverse_scope(statement) if isinstance(statement, exp.Query | exp.DDL | exp.DML) else []
        except OptimizeError:
            self._flat_statement(statement)  # a tree sqlglot cannot scope: over-report, never fail
            return
        self._scopes = {id(scope.expression): scope for scope in scopes}
        if not isinstance(statement, exp.Query):
            # Queries sqlglot leaves unscoped (e.g. in INSERT ... VALUES) become roots of their own.
            for query in self._writer.write(statement):
                if id(query) not in self._scopes:
                    extra = traverse_scope(query)
                    self._scopes.update((id(scope.expression), scope) for scope in extra)
                    scopes.extend(extra)
        for scope in scopes:
            # Set operations, UDTFs and the Table/Subquery-rooted scopes of DML relations hold no
            # columns that their SELECTs or the statement pseudo-scope do not cover.
            if isinstance(scope.expression, exp.Select):
                self._reader.read(scope)

    def _flat_statement(self, statement: exp.Expr) -> None:
        """Scope-free fallback: every real table; qualified columns by alias, the rest to all tables."""
        sources = Sources()
        for table in statement.find_all(exp.Table):
            name = self.table_name(table)
            if name:
                self.add_table(name)
                sources.add_table(table.alias_or_name.lower(), name)
        for column in statement.find_all(exp.Column):
            if not isinstance(column.this, exp.Star):
                self.resolve(column, [sources])

    # --- tables and sources -----------------------------------------------------------------------
    def table_name(self, table: exp.Table) -> str | None:
        """Normalized name of a real table; None for a table function or a CTE reference."""
        found = self._table_ref(table)
        return found if isinstance(found, str) else None

    def _table_ref(self, table: exp.Table) -> str | exp.CTE | bool:
        found = self._table_refs.get(id(table))
        if found is None:
            this = table.this
            found = False  # a table function, e.g. generate_series(...) or TABLE(FLATTEN(...))
            if isinstance(this, exp.Identifier | exp.Dot):
                cte = None if table.args.get("db") else self._cte_named(table)
                found = cte or self.normalize(".".join(p.name for p in table.parts)) or False
            elif isinstance(this, exp.DynamicIdentifier) and isinstance(this.this, exp.Literal):
                found = self.normalize(this.this.name) or False  # Snowflake IDENTIFIER('schema.table')
            self._table_refs[id(table)] = found
        return found

    def _cte_named(self, table: exp.Table) -> exp.CTE | None:
        if self._ctes is None:
            self._ctes = ctes_by_table(self._statement) if self._statement is not None else {}
        if id(table) in self._ctes:
            return self._ctes[id(table)]
        return cte_of(table)  # a table outside the statement (not expected): walk up from it

    def note_table(self, table: exp.Table) -> None:
        name = None if isinstance(table.parent, exp.JoinHint) else self.table_name(table)
        if name:
            self.add_table(name)

    def sources_of(self, scope: Scope) -> Sources:
        expression = scope.expression
        if expression is self._statement and not isinstance(expression, exp.Query):
            return self.statement_sources
        sources = self._sources.get(id(scope))
        if sources is None:
            sources = self._sources[id(scope)] = Sources()
            if isinstance(expression, exp.Select):
                for name, node in scope.references:
                    self.add_source(sources, name.lower(), node)
                for join in expression.args.get("joins") or []:
                    if isinstance(join.this, exp.Alias):  # ClickHouse ARRAY JOIN tags AS tag
                        sources.opaque.add(join.this.alias.lower())
        return sources

    def add_source(self, sources: Sources, alias: str, node: exp.Expr) -> None:
        child: Scope | None = None
        if isinstance(node, exp.Table):
            if isinstance(node.parent, exp.Into | exp.JoinHint):
                return  # SELECT ... INTO target: written, not a source
            found = self._table_ref(node)
            if isinstance(found, str):
                sources.add_table(alias, found)
                return
            child = self._scopes.get(id(found.this)) if isinstance(found, exp.CTE) else None
        elif isinstance(node, exp.Lateral | exp.Subquery | exp.Query):
            inner = node.this if isinstance(node, exp.Lateral | exp.Subquery) else node
            child = self._scopes.get(id(inner.unnest())) if isinstance(inner, exp.Query) else None
        if child is not None:
            sources.derived[alias] = child
        else:
            sources.add_opaque(alias, node)

    def chain(self, scope: Scope) -> tuple[list[Sources], int]:
        """The sources of ``scope`` and of the scopes around it, innermost first (shared: read only),
        and how many of them an unqualified column of ``scope`` may name: its own, plus those a
        subquery (or LATERAL) can correlate with; a CTE or a derived table sees only its own.

        Only SELECT scopes (and a DML statement's pseudo-scope) name anything, so the others, such
        as every level of a chain of UNIONs, are left out; chains are built once per scope, reusing
        the parent's, so a statement's chains cost time linear in its scopes, not in their depth."""
        path: list[Scope] = []
        node: Scope | None = scope
        while node is not None and id(node) not in self._chains:
            path.append(node)
            node = node.parent
        frames = self._chains[id(node)] if node is not None else []
        reach = self._reach[id(node)] if node is not None else 0
        for node in reversed(path):
            expression = node.expression
            outer = reach if node.can_be_correlated and not is_dml_relation(expression, self._statement) else 0
            if isinstance(expression, exp.Select) or (expression is self._statement and not isinstance(expression, exp.Query)):
                frames = [self.sources_of(node), *frames]
                reach = 1 + outer
            else:
                reach = outer
            self._chains[id(node)], self._reach[id(node)] = frames, reach
        return frames, reach

    # --- resolution -------------------------------------------------------------------------------
    def resolve(self, column: exp.Column, frames: list[Sources], reach: int = 1) -> None:
        qualifier = [p.lower() for p in (column.text("catalog"), column.text("db"), column.text("table")) if p]
        if qualifier:
            self._qualified(qualifier, column.name.lower(), frames, star=isinstance(column.this, exp.Star))
        else:
            self._unqualified(column.name.lower(), frames, reach)

    def _qualified(self, qualifier: list[str], name: str, frames: list[Sources], star: bool = False) -> None:
        last = qualifier[-1]
        for sources in frames:
            if last in sources.tables:
                self._credit_all(sources.tables[last], name, star)
                return
            if last in sources.derived:
                if not star:  # a derived table's own SELECT list credits what its `t.*` reads
                    self._through_derived(sources.derived[last], name, 0)
                return
            if last in sources.opaque:
                return
        if len(qualifier) >= 2 and not star:
            # alias.struct_column.field (BigQuery, Snowflake, DuckDB): the struct column is read.
            for sources in frames:
                if qualifier[0] in sources.tables or qualifier[0] in sources.derived:
                    self._qualified(qualifier[:1], qualifier[1], [sources])
                    return
        dotted = self.normalize(".".join(qualifier))  # a table named, not aliased: `orders.id`, `s.t.col`
        self._credit_all(list(self._by_suffix.get(dotted, ())), name, star)

    def _credit_all(self, tables: list[str], name: str, star: bool) -> None:
        for table in tables:
            if star:
                self.credit_star(table)
            else:
                self.credit(table, name)

    def _unqualified(self, name: str, frames: list[Sources], reach: int = 1) -> None:
        """Credit an unqualified column, scope by scope from its own outwards, as PostgreSQL looks
        it up: the first scope with a relation that has the column owns it. Where that is not
        known (no catalog, or a table the catalog does not know) the scope may own it, and so may
        the scopes around it that a subquery can correlate with (the first ``reach`` frames): each
        is credited, until a scope surely owns it."""
        maybe = False
        for depth, sources in enumerate(frames):
            if maybe and depth >= reach:
                return
            claim = self._attribute(name, sources)
            if claim == _HERE:
                return
            maybe = maybe or claim == _MAYBE_HERE
        if not maybe:
            # No scope claims it (a stale catalog, or invalid SQL): credit the column's own scope.
            for table in frames[0].real_tables() if frames else ():
                self.credit(table, name)

    def _attribute(self, name: str, sources: Sources) -> int:
        """Credit ``name`` within one scope. ``_HERE``: this scope owns it; ``_MAYBE_HERE``: it
        may (credited to the tables that could have it); ``_NOT_HERE``: look further out."""
        if name in sources.opaque:
            return _HERE
        derived = list(sources.derived.values())
        if any(name in projected_names(d) for d in derived):
            return _HERE  # the derived table's own SELECT list credits the real column
        if name in sources.tables and not self.catalog_has(sources, name):
            for table in sources.tables[name]:
                self.credit_star(table)  # a whole-row reference, e.g. row_to_json(p)
            return _HERE
        tables = sources.real_tables()
        candidates = self._candidates(name, tables)
        for table in candidates:
            self.credit(table, name)
        starred = [d for d in derived if has_star(d)]
        for scope in starred:
            self._trace_star(scope, name, 0)
        if self.catalog is not None and any(name in (self.known(t) or ()) for t in candidates):
            return _HERE
        if candidates or starred:
            return _HERE if self.catalog is not None and not candidates else _MAYBE_HERE
        return _NOT_HERE

    def _candidates(self, name: str, tables: list[str]) -> list[str]:
        """The tables that could own an unqualified column: those the catalog knows to have it, else
        those the catalog does not know; all of them without a catalog."""
        if self.catalog is None:
            return tables
        having = [t for t in tables if name in (self.known(t) or ())]
        return having or [t for t in tables if self.known(t) is None]

    def catalog_has(self, sources: Sources, column: str) -> bool:
        return any(column in (self.known(t) or ()) for t in sources.real_tables())

    def pseudo_column(self, column: exp.Column) -> bool:
        return column.name.lower() in self.pseudo_columns and not column.this.args.get("quoted")

    def _through_derived(self, scope: Scope, name: str, depth: int) -> None:
        if name not in projected_names(scope):
            self._trace_star(scope, name, depth)

    def _trace_star(self, scope: Scope, name: str, depth: int) -> None:
        """Follow an output column of a derived source through its ``SELECT *`` to the tables behind."""
        expression = scope.expression
        if depth > _MAX_TRACE_DEPTH:
            return
        if isinstance(expression, exp.SetOperation):
            for branch in scope.set_operation_scopes:
                self._trace_star(branch, name, depth + 1)
        elif isinstance(expression, exp.Select):
            sources = self.sources_of(scope)
            for projection in expression.expressions:
                if isinstance(projection, exp.Star):
                    if name not in {c.name.lower() for c in projection.args.get("except_") or []}:
                        self._attribute(name, sources)
                elif isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
                    qualifier = projection.text("table").lower()
                    for table in sources.tables.get(qualifier, []):
                        self.credit(table, name)
                    if qualifier in sources.derived:
                        self._through_derived(sources.derived[qualifier], name, depth + 1)
