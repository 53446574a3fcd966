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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.scope import Scope, traverse_scope, walk_in_scope

from .names import fold_name

STAR = "*"
_MAX_TRACE_DEPTH = 16  # nested `SELECT *` layers followed when tracing a column to its table

# Unquoted names these dialects read as keywords, functions or row pseudo-columns, not table columns.
_POSTGRES_WORDS = frozenset({"default", "user", "current_user", "current_role", "session_user"})
_PSEUDO_COLUMNS: dict[str | None, frozenset[str]] = {
    "postgres": _POSTGRES_WORDS, "redshift": _POSTGRES_WORDS, "materialize": _POSTGRES_WORDS,
    "risingwave": _POSTGRES_WORDS, "oracle": frozenset({"default", "rownum", "level", "user", "uid", "sysdate"}),
}
# Pseudo-tables naming a DML statement's target row: PostgreSQL/SQLite ON CONFLICT, T-SQL OUTPUT.
_TARGET_ROW_ALIASES = ("excluded", "inserted", "deleted")
_ALIAS_CLAUSES = (exp.Order, exp.Distinct, exp.Group, exp.Having, exp.Qualify)
# Clauses where an input column wins over a SELECT-list alias of the same name (PostgreSQL, MySQL,
# Snowflake): GROUP BY c groups by the table's c when there is one.
_INPUT_FIRST_CLAUSES = (exp.Group, exp.Having)
# How firmly one scope claims an unqualified name (see AccessCollector._attribute).
_NOT_HERE, _MAYBE_HERE, _HERE = 0, 1, 2
# What a bare name of a SELECT stands for (see AccessCollector._bare_name_role).
_INPUT, _LOCAL_INPUT, _OUTPUT = 0, 1, 2
_RELATIONS = (exp.Table, exp.Subquery, exp.Lateral, exp.Unnest, exp.Values)


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


_EMPTY = Sources()


class _Outputs:
    """The output names of one SELECT list: its aliases, and every name it outputs (aliases and
    plain columns; ``*`` left out)."""

    __slots__ = ("aliases", "names")

    def __init__(self, select: exp.Expr) -> None:
        projections = select.expressions
        self.aliases = {p.alias.lower() for p in projections if isinstance(p, exp.Alias)}
        self.names = self.aliases | {p.name.lower() for p in projections
                                     if isinstance(p, exp.Column) and not isinstance(p.this, exp.Star)}


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
        self._statement: exp.Expr | None = None
        self._statement_sources = _EMPTY  # what the subqueries of a DML statement see of it
        self._scopes: dict[int, Scope] = {}  # id(scope expression) -> scope
        self._sources: dict[int, Sources] = {}  # id(scope) -> its sources
        self._table_refs: dict[int, str | exp.CTE | bool] = {}  # id(Table) -> real name, its CTE, or False
        self._ctes: dict[int, exp.CTE | None] | None = None  # id(Table) -> the CTE it names (one pass)
        self._chains: dict[int, list[Sources]] = {}  # id(scope) -> its sources and those around it
        self._reach: dict[int, int] = {}  # id(scope) -> how many frames of its chain its columns may name
        self._by_suffix: dict[str, list[str]] = {}  # "t", "s.t" -> tables named so (see _add_table)

    def result(self) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
        tables = tuple(sorted(self.tables))
        return tables, {t: tuple(sorted(self.columns.get(t, ()))) for t in tables}

    def _add_table(self, table: str) -> None:
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
        self._add_table(table)
        self.columns.setdefault(table, set()).add(fold_name(column))

    def credit_star(self, table: str, excluded: frozenset[str] = frozenset()) -> None:
        known = self._known(table)
        if known:
            self._add_table(table)
            self.columns.setdefault(table, set()).update(c for c in known if c not in excluded)
        else:
            self.credit(table, STAR)

    def _known(self, table: str) -> tuple[str, ...] | None:
        return self.catalog.columns_of(table) if self.catalog is not None else None

    # --- statements -------------------------------------------------------------------------------
    def add_statement(self, statement: exp.Expr) -> None:
        if isinstance(statement, exp.Describe) and isinstance(statement.this, exp.Query | exp.DML):
            statement = statement.this  # MySQL's EXPLAIN <statement>
        with_ = statement.args.get("with_")
        for cte in with_.expressions if isinstance(with_, exp.With) else ():
            if isinstance(cte.this, exp.DML):
                self.add_statement(cte.this)  # PostgreSQL's WITH moved AS (DELETE ... RETURNING *)
        self._statement, self._statement_sources = statement, _EMPTY
        self._sources, self._table_refs, self._ctes, self._chains, self._reach = {}, {}, None, {}, {}
        try:
            scopes = traverse_scope(statement) if isinstance(statement, exp.Query | exp.DDL | exp.DML) else []
        except OptimizeError:
            self._flat_statement(statement)  # a tree sqlglot cannot scope: over-report, never fail
            return
        self._scopes = {id(scope.expression): scope for scope in scopes}
        if not isinstance(statement, exp.Query):
            # Queries sqlglot leaves unscoped (e.g. in INSERT ... VALUES) become roots of their own.
            for query in self._statement_scope(statement):
                if id(query) not in self._scopes:
                    extra = traverse_scope(query)
                    self._scopes.update((id(scope.expression), scope) for scope in extra)
                    scopes.extend(extra)
        for scope in scopes:
            # Set operations, UDTFs and the Table/Subquery-rooted scopes of DML relations hold no
            # columns that their SELECTs or the statement pseudo-scope do not cover.
            if isinstance(scope.expression, exp.Select):
                self._select_scope(scope)

    def _flat_statement(self, statement: exp.Expr) -> None:
        """Scope-free fallback: every real table; qualified columns by alias, the rest to all tables."""
        sources = Sources()
        for table in statement.find_all(exp.Table):
            name = self.table_name(table)
            if name:
                self._add_table(name)
                sources.add_table(table.alias_or_name.lower(), name)
        for column in statement.find_all(exp.Column):
            if not isinstance(column.this, exp.Star):
                self._resolve(column, [sources])

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
            self._ctes = _ctes_by_table(self._statement) if self._statement is not None else {}
        if id(table) in self._ctes:
            return self._ctes[id(table)]
        return _cte_of(table)  # a table outside the statement (not expected): walk up from it

    def _note_table(self, table: exp.Table) -> None:
        name = None if isinstance(table.parent, exp.JoinHint) else self.table_name(table)
        if name:
            self._add_table(name)

    def sources_of(self, scope: Scope) -> Sources:
        expression = scope.expression
        if expression is self._statement and not isinstance(expression, exp.Query):
            return self._statement_sources
        sources = self._sources.get(id(scope))
        if sources is None:
            sources = self._sources[id(scope)] = Sources()
            if isinstance(expression, exp.Select):
                for name, node in scope.references:
                    self._add_source(sources, name.lower(), node)
                for join in expression.args.get("joins") or []:
                    if isinstance(join.this, exp.Alias):  # ClickHouse ARRAY JOIN tags AS tag
                        sources.opaque.add(join.this.alias.lower())
        return sources

    def _add_source(self, sources: Sources, alias: str, node: exp.Expr) -> None:
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

    def _chain(self, scope: Scope) -> tuple[list[Sources], int]:
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
            outer = reach if node.can_be_correlated and not self._dml_relation(expression) else 0
            if isinstance(expression, exp.Select) or (expression is self._statement and not isinstance(expression, exp.Query)):
                frames = [self.sources_of(node), *frames]
                reach = 1 + outer
            else:
                reach = outer
            self._chains[id(node)], self._reach[id(node)] = frames, reach
        return frames, reach

    def _dml_relation(self, expression: exp.Expr) -> bool:
        """A derived table among a DML statement's own relations (MERGE/DELETE ... USING (SELECT ...)),
        which sqlglot scopes as a subquery: it cannot see the statement's target."""
        node = expression.parent
        if not isinstance(node, exp.Subquery) or isinstance(self._statement, exp.Query):
            return False
        while isinstance(node, exp.Subquery | exp.From | exp.Join | exp.Table):
            node = node.parent
        return node is self._statement

    # --- SELECT scopes ----------------------------------------------------------------------------
    def _select_scope(self, scope: Scope) -> None:
        select = scope.expression
        sources = self.sources_of(scope)
        reads_rows = not _is_exists_probe(select)
        outputs = _Outputs(select)
        chain: tuple[list[Sources], int] | None = None
        for node in walk_in_scope(select):
            if isinstance(node, exp.Column):
                if node.arg_key == "except_" and isinstance(node.parent, exp.Star):
                    continue  # SELECT * EXCEPT (ssn) does not read ssn
                if isinstance(node.this, exp.Star) and (_inside_count(node) or (node.parent is select and not reads_rows)):
                    continue  # COUNT(t.*) counts rows; EXISTS (SELECT t.* ...) reads nothing
                local = False
                if not node.table:
                    role = self._bare_name_role(node, select, sources, outputs)
                    if role == _OUTPUT:
                        continue
                    local = role == _LOCAL_INPUT
                chain = chain or self._chain(scope)
                frames, reach = chain
                if local:
                    self._resolve(node, frames[:1], 1)
                else:
                    self._resolve(node, frames, reach)
            elif isinstance(node, exp.Star) and node.parent is select and reads_rows:
                excluded = frozenset(c.name.lower() for c in node.args.get("except_") or [])
                for table in sources.real_tables():
                    self.credit_star(table, excluded)
            elif isinstance(node, exp.Table):
                self._note_table(node)
        joins = select.args.get("joins") or []
        if any(join.args.get("using") or join.args.get("method") for join in joins):
            from_ = select.args.get("from_")
            left = _LeftOfJoin(self, sources, from_.this.alias_or_name.lower() if from_ is not None else None)
            for join in joins:
                self._join_columns(join, left)
                left.add(join.this.alias_or_name.lower())

    def _bare_name_role(self, column: exp.Column, select: exp.Expr, sources: Sources, outputs: _Outputs) -> int:
        """What an unqualified name of ``select`` stands for, as PostgreSQL resolves it:

        * in ORDER BY, DISTINCT ON and QUALIFY, a name of the SELECT list (an alias, or a column
          the list outputs) is that output column: ``_OUTPUT``, not a column of any table;
        * in GROUP BY and HAVING an input column of the query's own FROM wins over an alias of the
          same name (``SELECT a AS c FROM t GROUP BY c`` groups by ``t.c``): ``_LOCAL_INPUT`` when
          one of its relations may have the column (no catalog: any table may), else ``_OUTPUT``;
        * a dialect's pseudo-column (``current_user``) is ``_OUTPUT`` too (nothing to record);
        * anything else is an ordinary column reference, ``_INPUT``."""
        name = column.name.lower()
        if name in outputs.names:
            clause = _alias_clause(column, select)
            if isinstance(clause, _INPUT_FIRST_CLAUSES):
                if name in outputs.aliases:
                    return _LOCAL_INPUT if self._may_own(sources, name) else _OUTPUT
            elif clause is not None:
                return _OUTPUT
        return _OUTPUT if self._pseudo_column(column) else _INPUT

    def _may_own(self, sources: Sources, name: str) -> bool:
        """Whether a relation of this scope may have a column ``name``: a table the catalog knows
        has it or does not know (any table without a catalog), or a derived relation outputting it."""
        if name in sources.opaque or any(name in _projected_names(d) or _has_star(d) for d in sources.derived.values()):
            return True
        tables = sources.real_tables()
        if self.catalog is None:
            return bool(tables)
        return any(self._known(t) is None or name in (self._known(t) or ()) for t in tables)

    def _pseudo_column(self, column: exp.Column) -> bool:
        return column.name.lower() in self.pseudo_columns and not column.this.args.get("quoted")

    def _all_columns(self, tables: list[str], derived: list[Scope]) -> set[str] | None:
        """Every column of these relations, or None when one of them is not fully known (a table
        the catalog does not know, a derived relation with ``SELECT *``)."""
        columns: set[str] = set()
        for table in tables:
            known = self._known(table)
            if known is None:
                return None
            columns.update(known)
        for scope in derived:
            if _has_star(scope):
                return None
            columns.update(_projected_names(scope))
        return columns

    def _catalog_has(self, sources: Sources, column: str) -> bool:
        return any(column in (self._known(t) or ()) for t in sources.real_tables())

    def _join_columns(self, join: exp.Join, left: _LeftOfJoin) -> None:
        """JOIN ... USING (k) reads k of the joined relation and of the relations before it. NATURAL
        JOIN reads the columns both sides share: when the catalog (or a derived relation's SELECT
        list) gives every column of both sides, exactly those; when one side is known, its columns
        (the shared ones are among them); when neither is, every table of both sides is credited
        with ``*`` (its known columns, if any)."""
        using = join.args.get("using") or []
        if not using and str(join.args.get("method") or "").upper() != "NATURAL":
            return
        alias = join.this.alias_or_name.lower()
        right_tables = left.sources.tables.get(alias, [])
        if using:
            names = [ident.name.lower() for ident in using]
        else:
            right = self._all_columns(right_tables, [left.sources.derived[alias]] if alias in left.sources.derived else [])
            mine = left.all_columns()
            if mine is None and right is None:
                for table in [*left.tables, *right_tables]:
                    self.credit_star(table)
                return
            # One side known: the shared columns are among its columns, credited as USING would.
            names = sorted(mine & right if mine is not None and right is not None else mine or right or ())
        for name in names:
            for table in right_tables:
                self.credit(table, name)
            left.credit(name)

    # --- resolution -------------------------------------------------------------------------------
    def _resolve(self, column: exp.Column, frames: list[Sources], reach: int = 1) -> None:
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
        if any(name in _projected_names(d) for d in derived):
            return _HERE  # the derived table's own SELECT list credits the real column
        if name in sources.tables and not self._catalog_has(sources, name):
            for table in sources.tables[name]:
                self.credit_star(table)  # a whole-row reference, e.g. row_to_json(p)
            return _HERE
        tables = sources.real_tables()
        candidates = self._candidates(name, tables)
        for table in candidates:
            self.credit(table, name)
        starred = [d for d in derived if _has_star(d)]
        for scope in starred:
            self._trace_star(scope, name, 0)
        if self.catalog is not None and any(name in (self._known(t) or ()) for t in candidates):
            return _HERE
        if candidates or starred:
            return _HERE if self.catalog is not None and not candidates else _MAYBE_HERE
        return _NOT_HERE

    def _candidates(self, name: str, tables: list[str]) -> list[str]:
        """The tables that could own an unqualified column: those the catalog knows to have it, else
        those the catalog does not know; all of them without a catalog."""
        if self.catalog is None:
            return tables
        having = [t for t in tables if name in (self._known(t) or ())]
        return having or [t for t in tables if self._known(t) is None]

    def _through_derived(self, scope: Scope, name: str, depth: int) -> None:
        if name not in _projected_names(scope):
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

    # --- INSERT / UPDATE / DELETE / MERGE / COPY / DDL ---------------------------------------------
    def _statement_scope(self, statement: exp.Expr) -> list[exp.Expr]:
        """Credit the statement's own relations and columns, outside any SELECT; return the queries
        the walk stopped at (the caller scopes those sqlglot did not)."""
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
                    self._add_source(sources, node.alias_or_name.lower(), node)

        targets: list[str] = []
        alias_targets: set[int] = set()
        for table in target_tables:
            bare = table.name.lower()
            if (isinstance(statement, exp.Update | exp.Delete) and not table.args.get("db") and not table.alias
                    and bare in sources.tables and table not in relations):
                targets.extend(sources.tables[bare])  # T-SQL UPDATE p SET ... FROM patients p
                alias_targets.add(id(table))
            elif name := self.table_name(table):
                targets.append(name)
                sources.add_table(table.alias_or_name.lower(), name)
                sources.add_table(bare, name)
        targets = list(dict.fromkeys(targets))
        for name in targets:
            self._add_table(name)
            for column_name in schema_columns:
                self.credit(name, column_name)
        # An INSERT's own SELECT cannot see its target; UPDATE/DELETE/MERGE subqueries can correlate.
        self._statement_sources = _EMPTY if isinstance(statement, exp.Insert) else sources

        columns: list[exp.Column] = []
        queries: list[exp.Expr] = []
        for node in walk_in_scope(statement):
            if isinstance(node, exp.Column) and not isinstance(node.this, exp.Star):
                columns.append(node)
            elif isinstance(node, exp.Table) and id(node) not in alias_targets:
                self._note_table(node)
                if not isinstance(statement, exp.DML) and (own := self.table_name(node)):
                    sources.add_table(node.alias_or_name.lower(), own)  # DDL: the table(s) it names
            elif isinstance(node, exp.Select | exp.SetOperation) and node is not statement:
                queries.append(node)
            elif isinstance(node, exp.Star) and isinstance(node.parent, exp.Returning):
                for name in targets:
                    self.credit_star(name)  # RETURNING *
        for column in columns:
            qualifier = column.text("table").lower()
            target_row = (qualifier in _TARGET_ROW_ALIASES and qualifier not in sources.tables
                          and not column.text("db"))
            if targets and (target_row or (not qualifier and _is_write_target(column))):
                for name in targets:  # SET b = ..., SET b = EXCLUDED.b, OUTPUT inserted.id
                    self.credit(name, column.name.lower())
            elif column.table or not self._pseudo_column(column):
                self._resolve(column, [sources])
        return queries


class _LeftOfJoin:
    """The relations before a JOIN of one SELECT, grown join by join, and what a USING / NATURAL
    column credits among them. Each name's crediting resumes where the previous join left it, so a
    chain of n USING joins costs time linear in n (recomputing the left side for every join cost n²).
    The tables credited are those of :meth:`AccessCollector._candidates` over the left tables (or all
    of them), unless a derived relation on the left projects the name (its SELECT list credits it)."""

    def __init__(self, collector: AccessCollector, sources: Sources, first: str | None) -> None:
        self.collector = collector
        self.sources = sources
        self.tables: list[str] = []  # the left tables, in order, distinct
        self._seen: set[str] = set()
        self.derived: list[Scope] = []
        self._columns: set[str] | None = None  # every column of the left side, once asked for; grown by add()
        self._complete = True  # False once a left relation's columns are unknown
        self._names: dict[str, _LeftCredit] = {}
        if first is not None:
            self.add(first)

    def add(self, alias: str) -> None:
        for table in self.sources.tables.get(alias, []):
            if table not in self._seen:
                self._seen.add(table)
                self.tables.append(table)
                self._grow([table], [])
        if alias in self.sources.derived:
            self.derived.append(self.sources.derived[alias])
            self._grow([], [self.sources.derived[alias]])

    def _grow(self, tables: list[str], derived: list[Scope]) -> None:
        if self._columns is not None and self._complete:
            more = self.collector._all_columns(tables, derived)
            if more is None:
                self._complete = False
            else:
                self._columns.update(more)

    def all_columns(self) -> set[str] | None:
        """Every column of the left side (None when one relation's columns are unknown); computed
        once, then grown join by join, so a chain of NATURAL joins stays linear."""
        if self._columns is None:
            self._columns = set()
            self._grow(self.tables, self.derived)
        return self._columns if self._complete else None

    def credit(self, name: str) -> None:
        state = self._names.get(name)
        if state is None:
            state = self._names[name] = _LeftCredit()
        while state.derived_seen < len(self.derived) and not state.projected:
            state.projected = name in _projected_names(self.derived[state.derived_seen])
            state.derived_seen += 1
        if state.projected:
            return
        tables = self.tables
        catalog = self.collector.catalog is not None
        for table in tables[state.tables_seen:]:
            known = self.collector._known(table) if catalog else None
            if not catalog or (known is not None and name in known):
                state.having.append(table)
            elif known is None:
                state.unknown.append(table)
        state.tables_seen = len(tables)
        if state.having:
            pick, done = state.having, state.having_done
        elif state.unknown:
            pick, done = state.unknown, state.unknown_done
        else:
            pick, done = tables, state.all_done
        for table in pick[done:]:
            self.collector.credit(table, name)
        if pick is state.having:
            state.having_done = len(pick)
        elif pick is state.unknown:
            state.unknown_done = len(pick)
        else:
            state.all_done = len(pick)


class _LeftCredit:
    """How far one name's crediting over the left side of a join chain got."""

    __slots__ = ("all_done", "derived_seen", "having", "having_done", "projected", "tables_seen", "unknown",
                 "unknown_done")

    def __init__(self) -> None:
        self.projected = False
        self.derived_seen = self.tables_seen = self.having_done = self.unknown_done = self.all_done = 0
        self.having: list[str] = []
        self.unknown: list[str] = []


# --- AST helpers -------------------------------------------------------------------------------------
_CteFrame = tuple[dict[str, int], list[exp.CTE], int | None, Any]  # first index by name, CTEs, visible limit, outer


def _ctes_by_table(statement: exp.Expr) -> dict[int, exp.CTE | None]:
    """id(Table) -> the CTE its unqualified name refers to (None: a real table), for every table of
    ``statement``, in one pass from the root: the same rules as :func:`_cte_of`, in time linear in
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


def _cte_of(table: exp.Table) -> exp.CTE | None:
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


def _projected_names(scope: Scope) -> set[str]:
    """Output column names of a derived source (its column list, else its SELECT list), without '*'."""
    if scope.outer_columns:
        return {c.lower() for c in scope.outer_columns}
    expression = scope.expression
    if isinstance(expression, exp.Query):
        return {n.lower() for n in expression.named_selects if n != STAR}
    return set()


def _has_star(scope: Scope) -> bool:
    expression = scope.expression
    while isinstance(expression, exp.SetOperation):
        expression = expression.this
    if isinstance(expression, exp.Subquery):
        expression = expression.unnest()
    return isinstance(expression, exp.Select) and any(
        isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))
        for p in expression.expressions)


def _alias_clause(column: exp.Column, select: exp.Expr) -> exp.Expr | None:
    """The ORDER BY / DISTINCT ON / GROUP BY / HAVING / QUALIFY clause of ``select`` that holds
    ``column``, where a bare name may be a SELECT-list alias; None elsewhere (SELECT list, WHERE,
    JOIN, window specs, an aggregate's ORDER BY or DISTINCT)."""
    node = column.parent
    while node is not None and node is not select:
        if isinstance(node, _ALIAS_CLAUSES) and not (isinstance(node, exp.Order | exp.Distinct) and node.parent is not select):
            return node
        node = node.parent
    return None


def _is_exists_probe(select: exp.Expr) -> bool:
    """``EXISTS (SELECT * ...)`` reads no columns through its star."""
    parent = select.parent
    while isinstance(parent, exp.Subquery):
        parent = parent.parent
    return isinstance(parent, exp.Exists)


def _inside_count(node: exp.Expr) -> bool:
    parent = node.parent
    while parent is not None and not isinstance(parent, exp.Query):
        if isinstance(parent, exp.Count):
            return True
        parent = parent.parent
    return False


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
