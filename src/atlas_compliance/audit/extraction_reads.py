"""SELECT scopes: the columns one SELECT reads, and the tables they belong to.

A :class:`SelectReader` walks one SELECT (sqlglot's :func:`~sqlglot.optimizer.scope.walk_in_scope`)
and hands each column reference to its collector's name resolution, after deciding what a bare name
stands for: in GROUP BY and HAVING an input column of the query's own FROM comes before a SELECT-list
alias of the same name (``SELECT a AS c FROM t GROUP BY c`` groups by ``t.c``); in ORDER BY, DISTINCT
ON and QUALIFY a name of the SELECT list is that output column, not any table's. It also credits what
a join's USING list or NATURAL JOIN reads: the key of USING on both sides; for NATURAL JOIN the
columns both sides share when every column of both is known (catalog, or a derived relation's SELECT
list), the known side's columns when one side is, and ``*`` to every table of both sides otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, walk_in_scope

from .extraction_helpers import Sources, has_star, projected_names

if TYPE_CHECKING:
    from .extraction_scope import AccessCollector

_ALIAS_CLAUSES = (exp.Order, exp.Distinct, exp.Group, exp.Having, exp.Qualify)
# Clauses where an input column wins over a SELECT-list alias of the same name (PostgreSQL, MySQL,
# Snowflake): GROUP BY c groups by the table's c when there is one.
_INPUT_FIRST_CLAUSES = (exp.Group, exp.Having)
# What a bare name of a SELECT stands for (see SelectReader._bare_name_role).
_INPUT, _LOCAL_INPUT, _OUTPUT = 0, 1, 2


class _Outputs:
    """The output names of one SELECT list: its aliases, and every name it outputs (aliases and
    plain columns; ``*`` left out)."""

    __slots__ = ("aliases", "names")

    def __init__(self, select: exp.Expr) -> None:
        projections = select.expressions
        self.aliases = {p.alias.lower() for p in projections if isinstance(p, exp.Alias)}
        self.names = self.aliases | {p.name.lower() for p in projections
                                     if isinstance(p, exp.Column) and not isinstance(p.this, exp.Star)}


class SelectReader:
    """Credits the columns of SELECT scopes through ``collector`` (its sources, chains, resolution)."""

    def __init__(self, collector: AccessCollector) -> None:
        self.collector = collector

    def read(self, scope: Scope) -> None:
        """Credit the columns, ``*`` and tables one SELECT scope reads, then its USING / NATURAL joins."""
        collector = self.collector
        select = scope.expression
        sources = collector.sources_of(scope)
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
                chain = chain or collector.chain(scope)
                frames, reach = chain
                if local:
                    collector.resolve(node, frames[:1], 1)
                else:
                    collector.resolve(node, frames, reach)
            elif isinstance(node, exp.Star) and node.parent is select and reads_rows:
                excluded = frozenset(c.name.lower() for c in node.args.get("except_") or [])
                for table in sources.real_tables():
                    collector.credit_star(table, excluded)
            elif isinstance(node, exp.Table):
                collector.note_table(node)
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
        collector = self.collector
        name = column.name.lower()
        if name in outputs.names:
            clause = _alias_clause(column, select)
            if isinstance(clause, _INPUT_FIRST_CLAUSES):
                if name in outputs.aliases:
                    return _LOCAL_INPUT if self._may_own(sources, name) else _OUTPUT
            elif clause is not None:
                return _OUTPUT
        return _OUTPUT if collector.pseudo_column(column) else _INPUT

    def _may_own(self, sources: Sources, name: str) -> bool:
        """Whether a relation of this scope may have a column ``name``: a table the catalog knows
        has it or does not know (any table without a catalog), or a derived relation outputting it."""
        collector = self.collector
        if name in sources.opaque or any(name in projected_names(d) or has_star(d) for d in sources.derived.values()):
            return True
        tables = sources.real_tables()
        if collector.catalog is None:
            return bool(tables)
        return any(collector.known(t) is None or name in (collector.known(t) or ()) for t in tables)

    def all_columns(self, tables: list[str], derived: list[Scope]) -> set[str] | None:
        """Every column of these relations, or None when one of them is not fully known (a table
        the catalog does not know, a derived relation with ``SELECT *``)."""
        collector = self.collector
        columns: set[str] = set()
        for table in tables:
            known = collector.known(table)
            if known is None:
                return None
            columns.update(known)
        for scope in derived:
            if has_star(scope):
                return None
            columns.update(projected_names(scope))
        return columns

    def _join_columns(self, join: exp.Join, left: _LeftOfJoin) -> None:
        """JOIN ... USING (k) reads k of the joined relation and of the relations before it. NATURAL
        JOIN reads the columns both sides share: when the catalog (or a derived relation's SELECT
        list) gives every column of both sides, exactly those; when one side is known, its columns
        (the shared ones are among them); when neither is, every table of both sides is credited
        with ``*`` (its known columns, if any)."""
        collector = self.collector
        using = join.args.get("using") or []
        if not using and str(join.args.get("method") or "").upper() != "NATURAL":
            return
        alias = join.this.alias_or_name.lower()
        right_tables = left.sources.tables.get(alias, [])
        if using:
            names = [ident.name.lower() for ident in using]
        else:
            right = self.all_columns(right_tables, [left.sources.derived[alias]] if alias in left.sources.derived else [])
            mine = left.all_columns()
            if mine is None and right is None:
                for table in [*left.tables, *right_tables]:
                    collector.credit_star(table)
                return
            # One side known: the shared columns are among its columns, credited as USING would.
            names = sorted(mine & right if mine is not None and right is not None else mine or right or ())
        for name in names:
            for table in right_tables:
                collector.credit(table, name)
            left.credit(name)


class _LeftOfJoin:
    """The relations before a JOIN of one SELECT, grown join by join, and what a USING / NATURAL
    column credits among them. Each name's crediting resumes where the previous join left it, so a
    chain of n USING joins costs time linear in n (recomputing the left side for every join cost n²).
    The tables credited are those of :meth:`AccessCollector._candidates` over the left tables (or all
    of them), unless a derived relation on the left projects the name (its SELECT list credits it)."""

    def __init__(self, reader: SelectReader, sources: Sources, first: str | None) -> None:
        self.reader = reader
        self.collector = reader.collector
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
            more = self.reader.all_columns(tables, derived)
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
            state.projected = name in projected_names(self.derived[state.derived_seen])
            state.derived_seen += 1
        if state.projected:
            return
        tables = self.tables
        catalog = self.collector.catalog is not None
        for table in tables[state.tables_seen:]:
            known = self.collector.known(table) if catalog else None
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
