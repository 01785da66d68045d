"""SQL (a qualified sqlglot tree) → our logical plan.

Decorrelation happens here, while scopes are known:
- EXISTS / NOT EXISTS / IN / NOT IN in a WHERE conjunct become semi / anti joins; correlated
  conjuncts of the subquery's WHERE become the join condition (equalities as keys, the rest as a
  residual), so Q21's `l2.l_suppkey <> l1.l_suppkey` stays a join residual instead of an array lambda.
- NOT IN keeps SQL's NULL semantics: an anti join on the keys plus a one-row side table counting the
  subquery's rows and non-NULL values.
- A correlated scalar subquery `(SELECT agg FROM … WHERE inner = outer …)` becomes a LEFT JOIN with
  the subquery grouped by its correlation keys; COUNT gets its empty-group value back.
- An uncorrelated scalar subquery becomes a one-row side relation joined in front of the expression
  that uses it: it runs first, and its value is used in place.
- Any other correlated subquery (an aggregate, LIMIT, a window or a set operation inside, outer
  columns below its WHERE or from further out), a LATERAL subquery and a derived table that reads
  the FROM items before it become DependentJoin nodes, which planner/rules/flatten_dependent_joins.py
  turns into joins (_decorrelated_in_place decides).
Inner joins of one FROM clause are ordered greedily by estimated result size (GOO).
"""
from __future__ import annotations

import itertools
from dataclasses import replace

from sqlglot import exp

from engine.errors import CatalogError, InternalError, NotSupportedError, PlanError
from planner import cte_materialization, table_functions
from planner.comparable import common_setop_type, comparable_pair, kind_of, never_raising
from planner.cost import CostParams
from planner.estimate import Estimator
from planner.grouping_sets import expand, grouping_masks, has_grouping_sets
from planner.order_all import expand_order_all
from planner.patterns.combine_shuffle_reduce import split_aggregates
from planner.qualify import duckdb_item_name, sql_data_type
from planner.rules.factor_or import factor_or
from planner.rules.push_filters import substitute
from planner.rules.quantified_subqueries import rewrite_quantified
from planner.rules.simplify_outer_joins import rejects_nulls
from planner.logical import (ZERO_ON_EMPTY, Aggregate, CteRef, DependentJoin, Distinct, Filter, Generate, Join,
                             Limit, MaterializedCte, Node, Project, Query, Scan, SetOp, SingleRow, Sort, Values,
                             Window, and_all, col, column_ids, conjuncts, cte_refs, walk)

GROUPING_CALLS = (exp.Grouping, exp.GroupingId)
# An outer join's preserved side estimated at no more rows than this narrows the other side first
# (Builder._reduced_by).
OUTER_REDUCTION_ROWS = 10_000



class Scope:
    """Name resolution for one SELECT: table alias → {column name → column id}."""

    def __init__(self, parent: "Scope | None" = None):
        self.parent = parent
        self.sources: dict[str, dict[str, str]] = {}
        # Column ids of this scope referenced from a subquery's WHERE (filled by children).
        self.correlated: list[exp.Expression] | None = None
        # For the scope a dependent join's right side reads (a LATERAL's left side, the outer query
        # of a correlated scalar subquery that is not a plain aggregate): the column ids of this
        # scope the right side read, anywhere in it. None for an ordinary scope.
        self.free: set[str] | None = None

    def ancestor(self, depth: int) -> "Scope":
        scope = self
        for _ in range(depth):
            scope = scope.parent
        return scope

    def reading(self) -> "Scope":
        """A scope for a dependent join's right side to read this one's columns from, anywhere."""
        out = Scope(self.parent)
        out.sources = {alias: m for alias, m in self.sources.items() if alias != "__scalar"}
        out.free = set()
        return out

    def add(self, alias: str, mapping: dict[str, str]):
        self.sources[alias] = mapping

    def resolve(self, table: str, name: str) -> tuple[str, int]:
        scope, depth = self, 0
        while scope is not None:
            if table:
                m = scope.sources.get(table)
                if m is not None and name in m:
                    return m[name], depth
            else:
                hits = [m[name] for m in scope.sources.values() if name in m]
                if len(hits) == 1:
                    return hits[0], depth
            scope, depth = scope.parent, depth + 1
        raise CatalogError(f"unknown column: {table + '.' if table else ''}{name}")


def _in_table_order(node: Node) -> bool:
    """Whether a plan's rows can come in its table's order (files, then rows), on one rank or over
    the ranks in rank order: scans (read in_order), generated rows and values, filtered and
    projected."""
    while isinstance(node, (Filter, Project)):
        node = node.input
    return isinstance(node, (Scan, Values, Generate))


def _read_in_order(node: Node) -> Node:
    """node (see _in_table_order) with its scan reading consecutive runs of the table on each rank."""
    if isinstance(node, Scan):
        return replace(node, in_order=True)
    if isinstance(node, (Filter, Project)):
        return node.with_children(_read_in_order(node.input))
    return node


def _add_sources(scope: Scope, sources: dict[str, dict[str, str]]) -> None:
    for alias, mapping in sources.items():
        scope.add(alias, mapping)


def _outside_subqueries(e: exp.Expression, kinds) -> list[exp.Expression]:
    """Nodes of the given kinds in e (e included), not looking inside nested queries."""
    nested = (exp.Subquery, exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Exists)
    out = []
    stack = [e]
    while stack:
        n = stack.pop()
        if isinstance(n, kinds):
            out.append(n)
        if isinstance(n, nested):
            continue
        stack.extend(n.iter_expressions())
    return out


def _has_subquery(e: exp.Expression) -> bool:
    return any(isinstance(n, (exp.Subquery, exp.Exists, exp.Select)) for n in e.walk() if n is not e) or \
        isinstance(e, (exp.Exists, exp.Subquery))


def _window_owned(agg: exp.Expression) -> bool:
    parent = agg.parent
    while isinstance(parent, exp.Filter):  # agg FILTER (WHERE …) OVER (…)
        parent = parent.parent
    return isinstance(parent, exp.Window)


def _aggregates(e: exp.Expression) -> list[exp.AggFunc]:
    """Group aggregates in e: not in nested SELECTs, not window functions themselves, and not
    nested inside another group aggregate (DuckDB rejects those; the outer one reports it)."""
    out = []
    for n in _outside_subqueries(e, (exp.AggFunc,)):
        if not _window_owned(n) and not _inside_aggregate(n, e.parent):
            # count(*) FILTER (WHERE …) is one aggregate: the filter belongs to it.
            out.append(n.parent if isinstance(n.parent, exp.Filter) and n.parent.this is n else n)
    return out


def _inside_aggregate(n: exp.Expression, stop: exp.Expression | None) -> bool:
    """Whether a group aggregate encloses n below `stop`."""
    anc = n.parent
    while anc is not None and anc is not stop:
        if isinstance(anc, exp.AggFunc) and not _window_owned(anc):
            return True
        anc = anc.parent
    return False


def _outer_aggregates(e: exp.Expression, aliases) -> list[exp.Expression]:
    """Aggregates written inside e's subqueries that read only the query's own FROM items (whose
    aliases are `aliases`): `(SELECT count(*) FROM p WHERE p.v > avg(o.c))` in a query over o.
    In SQL such an aggregate is the outer query's, computed over its groups."""
    out = []
    for n in e.find_all(exp.AggFunc):
        inside = n.parent
        while inside is not None and inside is not e and not isinstance(inside, exp.Query):
            inside = inside.parent
        if isinstance(inside, exp.Query) and inside is not e:  # in a subquery (EXISTS / IN / scalar)
            if _window_owned(n):
                continue
            columns = list(n.find_all(exp.Column))
            if not columns or not all(c.table in aliases and not _bound_inside(c, e) for c in columns):
                continue
            if not _inside_aggregate(n, e):
                out.append(n.parent if isinstance(n.parent, exp.Filter) and n.parent.this is n else n)
    return out


def expr_key(e: exp.Expression) -> str:
    """Text that is equal for equal expressions however their names were quoted (t."k" is t.k) and
    however many parentheses enclose them: `GROUP BY ((v * 0), w)` keys `v * 0`, which a select
    item `(v * 0)` must find (it read NULL, as if rolled up, in the grouping set that kept it)."""
    while isinstance(e, exp.Paren):
        e = e.this
    return e.sql("duckdb", identify=True)


class Replacements(dict):
    """SQL text of an expression → the column that holds its value (after GROUP BY / windows);
    `types` lets translate() skip rendering nodes that cannot match."""

    def __init__(self):
        super().__init__()
        self.types: set[type] = set()
        # Whether a literal is replaced too. Under GROUPING SETS a literal key (`ROLLUP (k, 'a')`)
        # is NULL in the sets without it, wherever it is written in the select list, as in DuckDB;
        # under a plain GROUP BY the literal and its key column hold one value.
        self.literals = False

    def add(self, source: exp.Expression, column: exp.Expression) -> None:
        self[expr_key(source)] = column
        while isinstance(source, exp.Paren):  # found by its enclosed expression (see expr_key)
            source = source.this
        self.types.add(type(source))


class Correlation:
    """What a correlated subquery hands back to its caller: the WHERE conjuncts that reference the
    outer query and, for a scalar subquery, the outer and inner key columns it was grouped by."""

    def __init__(self, scalar: bool = False, outer_rel: Node | None = None):
        self.scalar = scalar
        self.conjuncts: list[exp.Expression] = []
        self.outer_keys: list[str] = []
        self.inner_keys: list[str] = []
        # The outer relation, for a correlation that is not `inner = outer column`: the subquery is
        # then computed once per distinct outer value (see Builder._dependent_join).
        self.outer_rel = outer_rel
        self.dependent = False
        self.null_safe: set[str] = set()  # outer keys of a dependent join that NULL must match
        # After GROUP BY, outer columns are read from the aggregate: group key id → its output id.
        self.outer_map: dict | None = None

    def __bool__(self):
        return bool(self.conjuncts or self.outer_keys)


class _SharedCte:
    """A CTE of the statement whose definition was planned at its first reference: kept (a
    MaterializedCte that every reference reads) or planned again at each later reference."""

    def __init__(self, cte, name: str, node: Node, names: list, ids: list, keep: bool, reason: str, refs: int):
        self.cte, self.name, self.node, self.names, self.ids = cte, name, node, names, ids
        self.keep, self.reason, self.refs = keep, reason, refs


class _CteLabel:
    """The name EXPLAIN shows for a CTE the planner made (it has no WITH of its own)."""

    def __init__(self, name: str):
        self.alias_or_name = name


_GROUPING_INPUT = _CteLabel("grouping sets input")


def _reads_outside(node: Node) -> bool:
    """Whether an expression under node reads a column that nothing under node produces (an outer
    query's, in a correlated or LATERAL subquery)."""
    from planner.rules.flatten_dependent_joins import node_expressions
    produced, read = set(), set()
    for n in walk(node):
        produced.update(n.columns)
        for e in node_expressions(n):
            read |= column_ids(e)
    return not read <= produced


class Builder:
    def __init__(self, catalog, estimator: Estimator, params: CostParams | None = None):
        self.catalog = catalog
        self.est = estimator
        # The cost model's constants, for deciding which CTEs are kept (planner/cte_materialization.py).
        self.params = params or CostParams()
        # id(CTE expression) -> (it, how often the statement names it), counted where its WITH is read.
        self._cte_ref_counts: dict[int, tuple] = {}
        # id(CTE expression) -> _SharedCte, for CTEs whose definition was planned; `_kept` lists
        # the kept ones in the order their definitions were finished (one reading another after it).
        self._shared: dict[int, _SharedCte] = {}
        self._kept: list[_SharedCte] = []
        self._ids = itertools.count(1)
        self._positions: dict[int, str] = {}  # a positional join's result (id of its node) -> its position column
        # Column id → its SQL type where known (planner/comparable.py makes join keys of different
        # kinds comparable with it).
        self.id_types: dict[str, exp.DataType] = {}
        self._ctes: list[dict[str, exp.Expression]] = []

    # ------------------------------------------------------------------ ids
    def new_id(self, base: str, typ: exp.DataType | None = None) -> str:
        base = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in (base or "c"))[:24] or "c"
        cid = f"{base}_{next(self._ids)}"
        if typ is not None:
            self.id_types[cid] = typ
        return cid

    def tcol(self, cid: str) -> exp.Column:
        """A reference to column cid that carries its type, where known."""
        c = col(cid)
        t = self.id_types.get(cid)
        if t is not None:
            c.type = t
        return c

    # ------------------------------------------------------------------ queries
    def build(self, ast: exp.Expression, original: exp.Expression | None = None) -> Query:
        node, names, _ = self.query(ast, None)
        node = self._with_kept_ctes(node)
        return Query(node, tuple(display_names(original, names) if original is not None else names), self.id_types)

    def _with_kept_ctes(self, node: Node) -> Node:
        """node under a MaterializedCte for each kept CTE that something still reads, the first
        finished outermost (it is computed first: a later one may read it)."""
        for shared in reversed(self._kept):
            refs = cte_refs(node, shared.name)
            if refs:
                node = MaterializedCte(shared.name, shared.cte.alias_or_name, shared.node, node,
                                       shared.refs, shared.reason)
        return node

    def query(self, ast: exp.Expression, parent: Scope | None, corr: list | None = None):
        """Returns (node, output names, output ids)."""
        if isinstance(ast, exp.Subquery):
            node, names, ids = self.query(ast.this, parent, corr)
            return self._order_limit(ast, node, names, ids, {})
        if isinstance(ast, (exp.Union, exp.Intersect, exp.Except)):
            return self.setop(ast, parent)
        if isinstance(ast, exp.Select):
            return self.select(ast, parent, corr)
        if isinstance(ast, exp.Values):
            return self.values(ast, None)
        raise NotSupportedError(f"statement {ast.key.upper()}")

    def _push_ctes(self, ast):
        w = ast.args.get("with") or ast.args.get("with_")
        if not w:
            return False
        if w.args.get("recursive"):
            raise NotSupportedError("WITH RECURSIVE")
        frame = {}
        self._ctes.append(frame)
        for i, cte in enumerate(w.expressions):
            frame[cte.alias_or_name] = cte
            if id(cte) not in self._cte_ref_counts:  # the CTE is held too: its id stays its own
                self._cte_ref_counts[id(cte)] = (cte, _references(ast, w.expressions[:i + 1]))
        return True

    def _find_cte(self, name: str):
        for frame in reversed(self._ctes):
            if name in frame:
                return frame[name]
        return None

    def _by_name(self, left, lnames, lids, right, rnames, rids):
        """UNION BY NAME as DuckDB runs it: the columns of both sides matched by name (case
        insensitive), the left's first, then those only the right has; a side lacking a column
        gives NULL in the other side's type."""
        sides = []
        for names, ids in ((lnames, lids), (rnames, rids)):
            lower = {n.lower(): i for n, i in zip(names, ids)}
            if len(lower) != len(names):
                raise NotSupportedError("UNION BY NAME of a side with two columns of one name")
            sides.append(lower)
        out = list(lnames) + [n for n in rnames if n.lower() not in sides[0]]
        projected = []
        for node, mine, other in ((left, sides[0], sides[1]), (right, sides[1], sides[0])):
            items = []
            for n in out:
                if n.lower() in mine:
                    cid = mine[n.lower()]
                    items.append((self.new_id(n, self.id_types.get(cid)), col(cid)))
                else:
                    t = self.id_types.get(other[n.lower()])
                    items.append((self.new_id(n, t), typed_null(t)))
            projected.append(Project(node, tuple(items)))
        return projected[0], projected[1], out

    def setop(self, ast, parent):
        pushed = self._push_ctes(ast)
        try:
            kind = {exp.Union: "union", exp.Intersect: "intersect", exp.Except: "except"}[type(ast)]
            left, lnames, lids = self.query(ast.this, parent)
            right, rnames, rids = self.query(ast.expression, parent)
            if ast.args.get("by_name"):
                left, right, lnames = self._by_name(left, lnames, lids, right, rnames, rids)
                lids, rids = list(left.columns), list(right.columns)
            if len(left.columns) != len(right.columns):
                raise CatalogError(f"{kind.upper()} inputs have {len(left.columns)} and {len(right.columns)} columns")
            distinct = ast.args.get("distinct")
            left, right, types = self._setop_inputs(left, lids, right, rids)
            ids = tuple(self.new_id(n, t) for n, t in zip(lnames, types))
            node = SetOp(kind, not distinct, left, right, ids)
            return self._order_limit(ast, node, lnames, list(ids), {})
        finally:
            if pushed:
                self._ctes.pop()

    def _order_limit(self, ast, node, names, ids, _unused):
        order = expand_order_all(ast.args.get("order"), len(ids))
        computed = []  # (id, expression) of sort keys computed from the output columns
        if order:
            by_name = dict(zip(names, ids))
            keys = []
            for o in order.expressions:
                e = o.this
                if isinstance(e, exp.Column) and not e.table and e.name in by_name:
                    k = o.copy()
                    k.set("this", col(by_name[e.name]))
                    keys.append(k)
                elif (pos := order_position(e, len(ids))) is not None:
                    k = o.copy()
                    k.set("this", col(ids[pos]))
                    keys.append(k)
                else:
                    # An expression over the output columns, by name (`ORDER BY k + 1`; a
                    # qualifier names the first side's table, whose columns are the output's).
                    outputs = Scope()
                    outputs.add("__setop", by_name)
                    bare = e.transform(lambda n: exp.column(n.this.copy()) if isinstance(n, exp.Column)
                                       and not isinstance(n.this, exp.Star) else n)
                    value = self.translate(bare, outputs)
                    kid = self.new_id("order", value.type)
                    computed.append((kid, value))
                    k = o.copy()
                    k.set("this", col(kid))
                    keys.append(k)
            keys = [self._ordered(k) for k in keys]
            if computed:
                node = Project(node, tuple((i, col(i)) for i in ids) + tuple(computed))
            node = Sort(node, tuple(keys))
        node = self._limit(ast, node)
        if computed:
            node = Project(node, tuple((i, col(i)) for i in ids))
        return node, names, ids

    def _limit(self, ast, node):
        lim = ast.args.get("limit")
        off = ast.args.get("offset")
        if lim is None and off is None:
            return node
        def const(x):
            if x is None:
                return None
            if isinstance(x, exp.Fetch):  # FETCH FIRST|NEXT [n] ROW[S] ONLY: LIMIT n, one row without n
                x = x.args.get("count") or exp.Literal.number(1)
            e = x.expression if isinstance(x, (exp.Limit, exp.Offset)) else x
            if isinstance(e, exp.Literal) and not e.is_string:
                return int(e.this)
            if isinstance(e, exp.Null) or (isinstance(x, exp.Limit) and isinstance(e, exp.Var)
                                           and e.name.upper() == "ALL"):
                return None  # LIMIT NULL and LIMIT ALL: no limit
            raise NotSupportedError("LIMIT/OFFSET that is not a constant integer")
        return Limit(node, const(lim), const(off) or 0)

    @staticmethod
    def _ordered(o: exp.Ordered) -> exp.Ordered:
        # DuckDB's default: NULLS LAST for both ASC and DESC; make it explicit so every rank and every
        # phase of a distributed sort agrees.
        o = o.copy()
        if o.args.get("nulls_first") is None:
            o.set("nulls_first", False)
        return o

    # ------------------------------------------------------------------ FROM
    def source(self, src: exp.Expression, scope: Scope):
        """Returns (node, alias, {name: id}, output names in order)."""
        alias = src.alias_or_name
        if src.args.get("pivots"):
            raise NotSupportedError("PIVOT / UNPIVOT")
        if isinstance(src, exp.Table):
            if src.args.get("db") or src.args.get("catalog"):
                raise CatalogError(f"unknown table: {src.sql('duckdb')}")
            if table_functions.function_name(src.this) is not None:
                return self._generated(src, alias)
            if isinstance(src.this, exp.Anonymous) or not isinstance(src.this, exp.Identifier):
                raise NotSupportedError(f"table function {src.this.sql('duckdb')}")
            name = src.name
            cte = self._find_cte(name)
            if cte is not None:
                node, names, ids = self._cte_query(cte, scope)
                return self._rename(src, node, names, ids, alias)
            if name.lower() in self.catalog.views:
                node, names, ids = self.view_query(name.lower(), scope)
                return self._rename(src, node, names, ids, alias)
            table = self.catalog.table(name)
            fields = tuple((self.new_id(f.name, sql_data_type(f.type)), f.name) for f in table.schema)
            node = Scan(table.name, fields)
            names = [f.name for f in table.schema]
            return self._rename(src, node, names, [i for i, _ in fields], alias)
        if isinstance(src, exp.Subquery):
            # A derived table sees the queries around its SELECT (a correlated subquery's FROM may
            # read the outer query), not its siblings in FROM (that is LATERAL: _lateral_join).
            node, names, ids = self.query(src.this, scope.parent)
            node, names, ids = self._order_limit(src, node, names, ids, {}) if (src.args.get("order") or src.args.get("limit")) else (node, names, ids)
            return self._rename(src, node, names, ids, alias)
        if isinstance(src, exp.Values):
            node, names, ids = self.values(src, alias)
            return self._rename(src, node, names, ids, alias)
        if isinstance(src, exp.Lateral) and isinstance(src.this, exp.Subquery) and not src.args.get("view"):
            # First in FROM, a LATERAL subquery has nothing before it to read: a derived table.
            node, names, ids = self.query(src.this, scope.parent)
            return self._rename(src, node, names, ids, alias)
        if isinstance(src, (exp.Unnest, exp.Lateral)):
            raise NotSupportedError(f"{src.key.upper()} in FROM")
        raise NotSupportedError(f"FROM item {src.sql('duckdb')[:60]}")

    def _generated(self, src: exp.Table, alias: str):
        """range / generate_series / unnest in FROM, bound when the statement was qualified."""
        bound = table_functions.bound_of(src.this)
        typ = None
        try:
            typ = exp.DataType.build(bound.type, dialect="duckdb")
        except Exception:  # noqa: BLE001 - a type sqlglot cannot read stays unknown (the safe path)
            pass
        node = Generate(self.new_id(bound.name, typ), bound.call, bound.rows, bound.series, bound.lo, bound.hi)
        return self._rename(src, node, [bound.name], [node.id], alias)

    def _cte_query(self, cte, scope):
        """A reference to a CTE: the first one plans its definition and decides whether it is kept
        (planner/cte_materialization.py); a kept CTE is then read through a CteRef of fresh column
        ids, any other is planned again where each reference stands."""
        shared = self._shared.get(id(cte))
        if shared is None:
            node, names, ids = self._cte_definition(cte)
            refs = self._cte_ref_counts.get(id(cte), (cte, 1))[1]
            keep, reason = cte_materialization.decide(node, refs, cte.args.get("materialized"), self.est,
                                                      self.params)
            shared = _SharedCte(cte, self.new_id(f"cte_{cte.alias_or_name}"), node, names, ids, keep, reason, refs)
            self._shared[id(cte)] = shared
            if keep:
                self._kept.append(shared)
                self.est.define_cte(shared.name, node)
            else:
                return node, names, ids
        if not shared.keep:
            return self._cte_definition(cte)
        fresh = [self.new_id(n, self.id_types.get(i)) for n, i in zip(shared.names, shared.ids)]
        ref = CteRef(shared.name, cte.alias_or_name, tuple(fresh), tuple(shared.ids))
        return ref, list(shared.names), fresh

    def _cte_definition(self, cte):
        # The frames above the CTE stay visible, later ones do not.
        idx = next(i for i in range(len(self._ctes) - 1, -1, -1) if cte in self._ctes[i].values())
        saved = self._ctes
        own = dict(self._ctes[idx])
        # Only CTEs defined before this one in its WITH clause are visible to it.
        visible = {}
        for k, v in own.items():
            if v is cte:
                break
            visible[k] = v
        self._ctes = saved[:idx] + [visible]
        try:
            node, names, ids = self.query(cte.this, None)
        finally:
            self._ctes = saved
        cols = cte.args.get("alias") and cte.args["alias"].columns
        if cols:
            names = [c.name for c in cols] + names[len(cols):]
        return node, names, ids

    def view_query(self, name, scope):
        import sqlglot
        from planner.qualify import qualify_statement
        ast = qualify_statement(sqlglot.parse_one(self.catalog.views[name], read="duckdb"), self.catalog)
        saved = self._ctes
        self._ctes = []
        try:
            return self.query(ast, None)
        finally:
            self._ctes = saved

    def _rename(self, src, node, names, ids, alias):
        a = src.args.get("alias")
        if a is not None and getattr(a, "columns", None):
            new = [c.name for c in a.columns]
            if len(new) > len(names):
                raise CatalogError(f"{alias} has {len(names)} columns but {len(new)} column aliases were given")
            names = new + list(names[len(new):])
        mapping = {}
        for n, i in zip(names, ids):
            mapping.setdefault(n, i)
        # Names are matched case-insensitively, as DuckDB does: sqlglot's qualification writes a
        # column `Upper` of a file as `upper`.
        for n, i in zip(names, ids):
            mapping.setdefault(n.lower(), i)
        return node, alias, mapping, list(names), list(ids)

    def values(self, v: exp.Values, alias):
        rows = []
        for t in v.expressions:
            items = t.expressions if isinstance(t, exp.Tuple) else [t]
            for i in items:
                if any(isinstance(n, exp.Column) for n in i.walk()) or _has_subquery(i):
                    raise NotSupportedError("VALUES with column references or subqueries")
            rows.append(tuple(i.copy() for i in items))
        n = len(rows[0]) if rows else 0
        a = v.args.get("alias")
        names = [c.name for c in a.columns] if a is not None and a.columns else [f"col{i}" for i in range(n)]
        ids = tuple(self.new_id(x) for x in names)
        return Values(ids, tuple(rows)), names, list(ids)

    # ------------------------------------------------------------------ expressions
    def translate(self, e: exp.Expression, scope: Scope, *, allow_outer: bool = False, outer_seen=None,
                  replace: dict | None = None) -> exp.Expression:
        """Copy of e with columns replaced by column ids; replace maps sql text → expression first."""
        replace_types = getattr(replace, "types", None)

        def rec(n: exp.Expression) -> exp.Expression:
            # A window's own aggregate (count(*) OVER ()) is not the group's same-looking one.
            if replace and (replace_types is None or type(n) in replace_types) and \
                    not (isinstance(n, exp.AggFunc) and _window_owned(n)):
                key = expr_key(n)
                if key in replace and (not isinstance(n, exp.Literal) or getattr(replace, "literals", False)):
                    return _typed(replace[key].copy(), n)
            if isinstance(n, exp.Column):
                if isinstance(n.this, exp.Star):
                    raise NotSupportedError("* here")
                cid, depth = scope.resolve(n.table, n.name)
                owner = scope.ancestor(depth) if depth > 0 else None
                if owner is not None and owner.free is not None:
                    # A dependent join's right side reads its left side (depth 1), or a subquery
                    # inside it reads a query further out through it: a free column of the dependent
                    # joins in between, which planner/rules/flatten_dependent_joins.py flattens first.
                    # Between them every scope must be a dependent join's too (the binder sends a
                    # subquery that reads past its own outer query there, _decorrelated_in_place).
                    if any(scope.ancestor(d).free is None for d in range(1, depth)):
                        raise NotSupportedError(f"a subquery inside a correlated subquery that reads the outer "
                                                f"query's column {n.sql('duckdb')} here")
                    owner.free.add(cid)
                elif depth > 0:
                    if not allow_outer or depth > 1:
                        raise NotSupportedError(f"correlated reference to {n.sql('duckdb')} here")
                    if outer_seen is not None:
                        outer_seen.add(cid)
                return _typed(self.tcol(cid), n)
            if isinstance(n, (exp.Subquery, exp.Exists)) or isinstance(n, exp.Select):
                raise NotSupportedError(f"subquery in this position: {n.sql('duckdb')[:80]}")
            if isinstance(n, (exp.Placeholder, exp.Parameter)):
                raise NotSupportedError("a parameter that was not bound")
            if isinstance(n, (exp.Any, exp.All)):
                raise NotSupportedError("ANY / ALL here")
            if isinstance(n, exp.Anonymous) and n.name.lower() in FORBIDDEN_FUNCTIONS:
                raise NotSupportedError(f"function {n.name}")
            if type(n).__name__.lower() in FORBIDDEN_FUNCTIONS:
                raise NotSupportedError(f"function {n.sql('duckdb')[:40]}")
            new = n.copy() if not list(n.iter_expressions()) else None
            if new is not None:
                return new
            # Built empty and filled: passing n's children to the constructor would re-parent them,
            # corrupting the source tree for its next use (a CTE referenced twice).
            out = n.__class__()
            for k, v in n.args.items():
                if isinstance(v, exp.Expression):
                    out.set(k, rec(v))
                elif isinstance(v, list):
                    out.set(k, [rec(x) if isinstance(x, exp.Expression) else x for x in v])
                else:
                    out.args[k] = v
            return _typed(out, n)
        return rec(e)

    # ------------------------------------------------------------------ SELECT
    def select(self, sel: exp.Select, parent: Scope | None, corr: Correlation | None = None):
        """Plans a SELECT. With corr (a list), WHERE conjuncts that reference the parent scope are
        taken out and appended to corr instead (for the caller to use as a join condition)."""
        pushed = self._push_ctes(sel)
        try:
            return self._select(sel, parent, corr)
        finally:
            if pushed:
                self._ctes.pop()

    def _select(self, sel: exp.Select, parent: Scope | None, corr):
        for unsupported in ("qualify", "windows", "prewhere", "connect", "sample", "pivots"):  # qualify, windows: see planner/rules
            if sel.args.get(unsupported):
                raise NotSupportedError(unsupported.upper())
        if sel.args.get("into"):
            raise NotSupportedError("SELECT INTO")
        scope = Scope(parent)
        frm = sel.args.get("from_") or sel.args.get("from")
        if frm is None:
            items: list[Node] = [Values((self.new_id("dummy"),), ((exp.Literal.number(1),),))]
            set_conjuncts: list[exp.Expression] = []
            on_subqueries: list[exp.Expression] = []
        where = [f for w in conjuncts(sel.args.get("where")) for f in factor_or(w, expr_key)]
        taken: set[int] = set()  # WHERE conjuncts applied before an outer join (see _take_where)
        if frm is not None:
            items, set_conjuncts, on_subqueries = self._from_clause(frm.this, sel.args.get("joins") or [], scope,
                                                                    where, taken)
        # WHERE
        subq_preds = on_subqueries
        for c in where:
            if id(c) in taken:
                continue
            if corr is not None and self._references_outer(c, scope):
                if _has_subquery(c):
                    raise NotSupportedError("a correlated predicate that contains a subquery")
                corr.conjuncts.append(self.translate(c, scope, allow_outer=True))
            elif _has_subquery(c):
                subq_preds.append(c)
            else:
                set_conjuncts.append(self.translate(c, scope))
        # A subquery predicate that touches one FROM item is applied to that item before the joins
        # when the item (after its own filters) is smaller than the joined result (Q18: orders IN
        # (…) before lineitem), else after them (Q21: the joins with supplier shrink l1 first).
        late = []
        items, set_conjuncts = self._push_item_filters(items, set_conjuncts)
        joined_rows = None
        for c in subq_preds:
            refs = self._local_refs(c, scope)
            owners = [i for i, it in enumerate(items) if refs and refs <= set(it.columns)]
            if owners and len(items) > 1:
                i = owners[0]
                if joined_rows is None:
                    joined_rows = self.est.rows(self.join_set(list(items), list(set_conjuncts), scope))
                if self.est.rows(items[i]) <= joined_rows:
                    items[i] = self.subquery_predicate(items[i], c, scope)
                    continue
            late.append(c)
        rel = self.join_set(items, set_conjuncts, scope)
        for c in late:
            rel = self.subquery_predicate(rel, c, scope)
        return self._project(sel, rel, scope, corr)

    def _take_where(self, where: list, taken: set[int], scope: Scope) -> list[exp.Expression]:
        """The WHERE conjuncts (neither taken yet nor holding a subquery) that read only the FROM
        items bound so far, translated and marked taken. Before a LEFT, SEMI, ANTI or ASOF join
        they filter its left side, which the join never NULL-extends: joined with the inner joins
        before it (TPC-DS q72: `… JOIN date_dim d1 … LEFT JOIN promotion … WHERE d1.d_year = 1999`
        would otherwise join every year's rows first)."""
        out = []
        for c in where:
            if id(c) in taken or _has_subquery(c) or not c.find(exp.Column):
                continue  # (a conjunct of no column, random() < 0.5, stays where it was written)
            try:
                if any(scope.resolve(col_.table, col_.name)[1] != 0 for col_ in c.find_all(exp.Column)):
                    continue
            except CatalogError:
                continue  # a table bound later in the FROM
            out.append(self.translate(c, scope))
            taken.add(id(c))
        return out

    def _from_clause(self, first: exp.Expression, joins: list, scope: Scope, where: list | None = None,
                     taken: set[int] | None = None):
        """Binds a FROM item and the joins after it into scope. Returns (the current inner-join set's
        items, its conjuncts, the subquery conjuncts of inner joins' ON clauses, which are applied
        with the WHERE's). where/taken: the WHERE's conjuncts, of which those applied before an
        outer join are added to taken (_take_where)."""
        node, sources = self._from_item(first, scope)
        _add_sources(scope, sources)
        items: list[Node] = [node]
        set_conjuncts: list[exp.Expression] = []
        on_subqueries: list[exp.Expression] = []
        group_start = 0  # where the last comma-separated FROM item's join chain begins in items
        # The ON conjuncts of that chain's inner joins (by id), and the columns of the items before
        # it that its ON clauses read: DuckDB evaluates a chain with a RIGHT or FULL JOIN that
        # reads them once per row before it, laterally (_lateral_chain).
        chain_conjuncts: set[int] = set()
        chain_reads: set[str] = set()
        lateral_chain = False

        def close_chain():
            nonlocal items, set_conjuncts, group_start, chain_conjuncts, chain_reads, lateral_chain
            if lateral_chain:
                items, set_conjuncts = self._lateral_chain(items, group_start, set_conjuncts, chain_conjuncts,
                                                           chain_reads, scope)
                group_start = 0
            chain_conjuncts, chain_reads, lateral_chain = set(), set(), False
        # Whether a join after the i-th NULL-extends what comes before it (RIGHT, FULL, POSITIONAL):
        # the WHERE then filters those NULLs too, and cannot run before it (_take_where).
        extends_later = [False] * (len(joins) + 1)
        for i in range(len(joins) - 1, -1, -1):
            later = joins[i]
            extends_later[i] = extends_later[i + 1] or (later.args.get("side") or "").upper() in ("RIGHT", "FULL") \
                or "POSITIONAL" in ((later.args.get("method") or "").upper(), (later.args.get("kind") or "").upper())
        # Whether the chain of the i-th join holds a RIGHT or FULL JOIN at or after it: then a
        # join there takes only the chain as its left side, not the items before the comma too.
        outer_ahead = [False] * (len(joins) + 1)
        for i in range(len(joins) - 1, -1, -1):
            outer_ahead[i] = (joins[i].args.get("side") or "").upper() in ("RIGHT", "FULL") or (
                outer_ahead[i + 1] and not _comma(joins[i + 1]))
        for at, j in enumerate(joins):
            side = (j.args.get("side") or "").upper()
            kind = (j.args.get("kind") or "").upper()
            bound = None
            if isinstance(j.this, exp.Lateral) or _derived_table(j.this):
                bound, reading = self._lateral_item(j.this, scope)
                if reading.free:
                    close_chain()
                    items = [self._lateral_join(j, self.join_set(items, set_conjuncts, scope), bound, reading, scope)]
                    set_conjuncts, group_start = [], 0
                    continue
                # A subquery that reads nothing before it is a derived table (LATERAL or not, as in
                # DuckDB).
            method = (j.args.get("method") or "").upper()
            asof = "ASOF" in (method, kind)
            if "POSITIONAL" in (method, kind) and not (j.args.get("on") or j.args.get("using")):
                node, sources = bound or self._from_item(j.this, scope)
                close_chain()
                left = self.join_set(items, set_conjuncts, scope)
                _add_sources(scope, sources)
                items, set_conjuncts, group_start = [self._positional_join(left, node)], [], 0
                continue
            if method and not asof:
                raise NotSupportedError(f"{method} JOIN")
            node, sources = bound or self._from_item(j.this, scope)
            using = j.args.get("using")
            if _comma(j):
                # `FROM a, b JOIN c …`: an explicit join binds tighter than the comma, so an outer
                # join after it takes only b's group as its left side, not a × b.
                close_chain()
                group_start = len(items)
            if side in ("LEFT", "RIGHT", "FULL") or kind in ("SEMI", "ANTI") or asof:
                others = items[:group_start]
                outer_ids = set().union(*(set(it.columns) for it in others))
                if others and outer_ahead[at]:
                    # The chain's own inner joins first, then this join, on the chain alone.
                    mine = [c for c in set_conjuncts if id(c) in chain_conjuncts]
                    chain_reads |= {i for c in mine for i in column_ids(c)} & outer_ids
                    set_conjuncts = [c for c in set_conjuncts if id(c) not in chain_conjuncts]
                    chain_conjuncts = set()
                    left = self.join_set(items[group_start:], mine, scope)
                else:
                    # LEFT/SEMI/ANTI keep every left row, and an ASOF join each left row's one
                    # partner: joining the other groups first is the same.
                    others = []
                    if where and side not in ("RIGHT", "FULL") and not extends_later[at + 1]:
                        set_conjuncts = set_conjuncts + self._take_where(where, taken, scope)
                    left = self.join_set(items, set_conjuncts, scope)
                    set_conjuncts = []
                left_ids = set(left.columns)
                _add_sources(scope, sources)
                jkind = f"asof_{side.lower()}" if asof and side else "asof" if asof else (side.lower() if side else kind.lower())
                if on_subqueries and jkind in ("right", "full", "asof_right", "asof_full"):
                    # They are applied after every join: right of a RIGHT or FULL join, too late.
                    raise NotSupportedError("a subquery in an inner join's ON clause before a RIGHT or FULL JOIN")
                on, both = [], []
                for c in conjuncts(j.args.get("on")):
                    if not _has_subquery(c):
                        on.append(self.translate(c, scope))
                        continue
                    refs = self._local_refs(c, scope)
                    if jkind in ("left", "semi", "anti") and refs <= set(node.columns):
                        # It reads only the joined table, whose rows it filters before the join.
                        node = self.subquery_predicate(node, c, scope)
                    elif jkind == "right" and refs <= left_ids:
                        left = self.subquery_predicate(left, c, scope)
                    elif asof:
                        raise NotSupportedError("a subquery in the ON clause of an ASOF JOIN that reads its sides")
                    elif refs <= left_ids or refs <= set(node.columns):
                        # It reads one side, which the join keeps whether it holds or not: its value
                        # there (a mark), read by the join's condition.
                        if refs <= left_ids:
                            left, value = self.attach_scalars(left, c, scope)
                        else:
                            node, value = self.attach_scalars(node, c, scope)
                        on.append(self.translate(value, scope))
                    elif jkind in ("left", "semi", "anti", "right", "full"):
                        both.append(c)
                    else:
                        raise NotSupportedError(f"a subquery in the ON clause of a {jkind.upper()} JOIN that "
                                                "reads both sides")
                left_ids = set(left.columns)
                if using:
                    on += self._using(using, scope, sources)
                reads_before = {i for c in on for i in column_ids(c)} & outer_ids
                if asof and others and reads_before:
                    raise NotSupportedError("an ASOF JOIN whose ON clause reads a table listed before a comma in "
                                            "FROM (write that table in a JOIN instead)")
                chain_reads |= reads_before
                lateral_chain = lateral_chain or bool(others and chain_reads)
                # A subquery in the ON clause may read the tables before the comma too: the
                # chain's own dependent join binds them (_lateral_chain).
                beyond = (outer_ids if others else frozenset(), set())
                if both and jkind in ("right", "full"):
                    # `l RIGHT JOIN r ON p` is `r LEFT JOIN l ON p`: l, each of whose FROM items
                    # the subquery reads inside, filtered for each row of r. `l FULL JOIN r ON p`
                    # is `l LEFT JOIN r ON p` and then the rows of r no row of l meets (r ANTI
                    # JOIN l ON p), their l columns NULL.
                    left_ids = set(left.columns)
                    left_sources = {alias: m for alias, m in scope.sources.items()
                                    if alias not in sources and m and set(m.values()) <= left_ids}
                    if jkind == "right":
                        joined = self._join_reading_both(node, left, "left", left_sources, both, on, scope, beyond)
                    else:
                        kept = self._join_reading_both(left, node, "left", sources, both, on, scope, beyond)
                        # (Without the columns the subquery's filter may add to r.)
                        kept = Project(kept, tuple((c, col(c)) for c in left.columns + node.columns))
                        spare = self._join_reading_both(node, left, "anti", left_sources, both,
                                                        [c.copy() for c in on], scope, beyond)
                        joined, renamed = self._with_unmatched(kept, spare, node.columns, left.columns)
                        for alias, mapping in scope.sources.items():
                            scope.sources[alias] = {n: renamed.get(i, i) for n, i in mapping.items()}
                elif both:
                    joined = self._join_reading_both(left, node, jkind, sources, both, on, scope, beyond)
                elif jkind in ("asof_right", "asof_full"):
                    joined, renamed = self._asof_outer(left, node, jkind, on, left_ids)
                    for alias, mapping in scope.sources.items():
                        scope.sources[alias] = {n: renamed.get(i, i) for n, i in mapping.items()}
                else:
                    make = self.make_asof_join if asof else self.make_join
                    joined = make(left, node, jkind, on, left_ids)
                chain_reads |= beyond[1]
                lateral_chain = lateral_chain or bool(others and chain_reads)
                items = others + [joined]
                group_start = len(others)
            else:
                _add_sources(scope, sources)
                items.append(node)
                on = j.args.get("on")
                for c in [f for o in conjuncts(on) for f in factor_or(o, expr_key)]:  # an inner join's ON is a WHERE
                    if _has_subquery(c):
                        on_subqueries.append(c)
                    else:
                        set_conjuncts.append(self.translate(c, scope))
                        chain_conjuncts.add(id(set_conjuncts[-1]))
                if using:
                    equalities = self._using(using, scope, sources)
                    set_conjuncts += equalities
                    chain_conjuncts |= {id(c) for c in equalities}
        close_chain()
        return items, set_conjuncts, on_subqueries

    def _lateral_chain(self, items: list[Node], start: int, conjuncts: list[exp.Expression], chain: set[int],
                       reads: set[str], scope: Scope) -> tuple[list[Node], list[exp.Expression]]:
        """`FROM a, b JOIN c ON … RIGHT|FULL JOIN d ON p`, an ON clause of the chain after the comma
        reading a: DuckDB evaluates the chain once per row of a, p reading that row, so each row of
        a keeps d's (and, FULL, b ⋈ c's) rows that p pairs with nothing - not (a × …) ⟗ d. That is
        a lateral join of the items before the comma with the chain: a DependentJoin, whose right
        side is items[start] (the chain's outer joins, built already) joined with the chain's inner
        ON conjuncts. Returns the one item and the conjuncts left to the items before the comma."""
        before = [c for c in conjuncts if id(c) not in chain]
        mine = [c for c in conjuncts if id(c) in chain]
        outer = self.join_set(items[:start], before, scope)
        chain_node = self.join_set(items[start:], mine, scope)
        return [DependentJoin(outer, chain_node, "inner", tuple(sorted(reads)))], []

    def _positional_join(self, left: Node, right: Node) -> Node:
        """`left POSITIONAL JOIN right`: the i-th rows of both side by side, the shorter side padded
        with NULLs. Each side is numbered in its order, row_number() OVER (), which gathers a
        partitioned side to rank 0 in rank order, that is in the files' order; a positional join's
        result is numbered by its own positions (it is chained: `a POSITIONAL JOIN b POSITIONAL
        JOIN c`). Then a FULL JOIN on the numbers."""
        def numbered(side: Node) -> tuple[Node, str]:
            if id(side) in self._positions:
                return side, self._positions[id(side)]
            if not _in_table_order(side):
                raise NotSupportedError("POSITIONAL JOIN of a side whose row order is not its table's "
                                        "(a join, aggregate, sort or limit inside)")
            pos = self.new_id("position", exp.DataType.build("BIGINT"))
            return Window(_read_in_order(side), ((pos, exp.Window(this=exp.RowNumber())),)), pos
        (lnum, lpos), (rnum, rpos) = numbered(left), numbered(right)
        joined = Join(lnum, rnum, "full", (col(lpos),), (col(rpos),))
        pos = self.new_id("position", exp.DataType.build("BIGINT"))
        out = Project(joined, tuple((c, col(c)) for c in left.columns + right.columns)
                      + ((pos, exp.Coalesce(this=col(lpos), expressions=[col(rpos)])),))
        self._positions[id(out)] = pos
        return out

    def _join_reading_both(self, left: Node, right: Node, kind: str, sources: dict, conds: list, on: list,
                           scope: Scope, beyond=(frozenset(), None)) -> Node:
        """`left LEFT|SEMI|ANTI JOIN right ON … AND p`, p a subquery predicate that reads both sides:
        right filtered by p for each left row, that is `LEFT JOIN LATERAL (SELECT * FROM right WHERE
        p) ON …` (SEMI: EXISTS of it with the ON clause, ANTI: NOT EXISTS), a DependentJoin.
        beyond: (the columns p may read besides left's, which a dependent join further out binds:
        the tables before a comma, for a lateral chain; the set those it read are added to)."""
        reading = scope.reading()
        for alias in sources:
            reading.sources.pop(alias, None)
        inner = Scope(reading)
        _add_sources(inner, sources)
        for c in conds:
            right = self.subquery_predicate(right, c, inner)
        own = reading.free & set(left.columns)
        outside, read_outside = beyond
        if not reading.free - own <= outside:
            raise NotSupportedError(f"a {kind.upper()} JOIN whose ON clause reads a table listed before a comma in "
                                    "FROM (write that table in a JOIN instead)")
        if read_outside is not None:
            read_outside |= reading.free - own
        return DependentJoin(left, right, kind, tuple(sorted(own)), and_all(on))

    def _lateral_item(self, src: exp.Expression, scope: Scope):
        """Binds `LATERAL (q)` or a derived table after the first FROM item, either of which may read
        the FROM items before it (DuckDB makes such a derived table lateral): ((node, {alias:
        mapping}), the scope it read scope's columns through, whose `free` are those it reads)."""
        if isinstance(src, exp.Lateral) and (not isinstance(src.this, exp.Subquery) or src.args.get("view")):
            raise NotSupportedError(f"LATERAL of something other than a subquery: {src.sql('duckdb')[:60]}")
        reading = scope.reading()
        # (A derived table's own ORDER BY / LIMIT apply: query() reads them from the Subquery.)
        node, names, ids = self.query(src.this if isinstance(src, exp.Lateral) else src, reading)
        _, alias, mapping, _, _ = self._rename(src, node, names, ids, src.alias_or_name)
        return (node, {alias: mapping}), reading

    def _lateral_join(self, j: exp.Join, left: Node, bound, reading: Scope, scope: Scope) -> Node:
        """`left, LATERAL (q)`, `[CROSS | LEFT] JOIN LATERAL (q) [ON …]` where q reads the columns
        of the FROM items before it (reading.free), anywhere: a DependentJoin
        (planner/rules/flatten_dependent_joins.py)."""
        side = (j.args.get("side") or "").upper()
        kind = (j.args.get("kind") or "").upper()
        if j.args.get("using") or j.args.get("method") or kind not in ("", "CROSS", "INNER", "OUTER") or side not in ("", "LEFT") or (
                kind == "OUTER" and not side):
            what = " ".join(w for w in (j.args.get("method") or "", side, kind) if w) or "USING"
            raise NotSupportedError(f"{what} JOIN LATERAL (LATERAL joins are INNER, CROSS or LEFT, with ON; DuckDB "
                                    "refuses the others too)")
        node, sources = bound
        _add_sources(scope, sources)
        on = []
        for c in conjuncts(j.args.get("on")):
            if _has_subquery(c):
                raise NotSupportedError("a subquery in the ON clause of a LATERAL join (DuckDB refuses it too)")
            on.append(self.translate(c, scope))
        return DependentJoin(left, node, "left" if side else "inner", tuple(sorted(reading.free)), and_all(on))

    def _from_item(self, src: exp.Expression, scope: Scope):
        """(node, {alias: {column name: id}}) for one FROM item. A parenthesised join
        (`a JOIN (b JOIN c ON …) ON …`) is one item that brings every table in it into scope."""
        if not (isinstance(src, exp.Subquery) and isinstance(src.this, exp.Table) and src.this.args.get("joins")):
            node, alias, mapping, _, _ = self.source(src, scope)
            return node, {alias: mapping}
        tree = src.this
        first = tree.copy()
        first.set("joins", None)
        inner = Scope(scope.parent)
        items, set_conjuncts, on_subqueries = self._from_clause(first, tree.args["joins"], inner)
        node = self.join_set(items, set_conjuncts, inner)
        for c in on_subqueries:
            node = self.subquery_predicate(node, c, inner)
        if src.alias:
            merged: dict[str, str] = {}
            for mapping in inner.sources.values():
                for name, cid in mapping.items():
                    merged.setdefault(name, cid)
            return node, {src.alias: merged}
        return node, dict(inner.sources)

    def _using(self, using, scope, sources):
        out = []
        for ident in using:
            name = ident.name
            right = next((m[name] for m in sources.values() if name in m), None)
            left = None
            for a, m in scope.sources.items():
                if a not in sources and name in m:
                    left = m[name]
            if left is None or right is None:
                raise CatalogError(f"unknown column in USING: {name}")
            out.append(exp.EQ(this=self.tcol(left), expression=self.tcol(right)))
        return out

    def _references_outer(self, e: exp.Expression, scope: Scope) -> bool:
        for c in e.find_all(exp.Column):
            # Only columns at this nesting level count; deeper subqueries are checked when built.
            owner = c.find_ancestor(exp.Select)
            if owner is not None and owner is not e and owner in e.walk():
                continue
            try:
                _, depth = scope.resolve(c.table, c.name)
            except CatalogError:
                continue
            if depth > 0:
                return True
        return False

    def _local_refs(self, e: exp.Expression, scope: Scope) -> set[str]:
        """Columns of this scope that e reads, including through correlated subqueries (a column
        inside a subquery counts only if no table of an enclosing subquery has its qualifier)."""
        return {cid for _, cid in self._scope_columns(e, scope)}

    @staticmethod
    def _scope_columns(e: exp.Expression, scope: Scope) -> list[tuple[exp.Column, str]]:
        """(column, its id) for each column in e that resolves to this scope itself."""
        out = []
        for c in e.find_all(exp.Column):
            if _bound_inside(c, e):
                continue
            try:
                cid, depth = scope.resolve(c.table, c.name)
            except CatalogError:
                continue
            if depth == 0:
                out.append((c, cid))
        return out

    # ------------------------------------------------------------------ joins
    def make_join(self, left: Node, right: Node, kind: str, on: list[exp.Expression], left_ids: set[str]) -> Node:
        right_ids = set(right.columns)
        lk, rk, residual = [], [], []
        for c in on:
            refs = column_ids(c)
            pair = self._equi_pair(c, left_ids, right_ids)
            if pair:
                a, b, extra = comparable_pair(*pair)
                lk.append(a)
                rk.append(b)
                if extra is not None:
                    residual.append(extra)
            elif refs and refs <= right_ids and kind in ("left", "semi", "anti", "inner"):
                right = Filter(right, c)
            elif refs and refs <= left_ids and kind in ("right", "inner"):
                left = Filter(left, c)
            else:
                residual.append(c)
        if kind == "inner" and not lk and not residual:
            kind = "cross"
        if lk and kind == "right":
            left = self._reduced_by(left, lk, right, rk)
        elif lk and kind == "left":
            right = self._reduced_by(right, rk, left, lk)
        return Join(left, right, kind, tuple(lk), tuple(rk), and_all(residual))

    def make_asof_join(self, left: Node, right: Node, kind: str, on: list[exp.Expression], left_ids: set[str]) -> Node:
        """An ASOF join: equalities between the sides become keys (the planner partitions on them);
        the rest, which must hold the one inequality, stays in the ON clause DuckDB runs. Nothing is
        moved into a side's filter: which right row is nearest depends on every right row."""
        right_ids = set(right.columns)
        lk, rk, rest = [], [], []
        for c in on:
            pair = self._equi_pair(c, left_ids, right_ids)
            if pair:
                a, b, extra = comparable_pair(*pair)
                lk.append(a)
                rk.append(b)
                rest += [extra] if extra is not None else []
            else:
                rest.append(c)
        if not any(isinstance(c, (exp.GT, exp.GTE, exp.LT, exp.LTE)) for c in rest):
            raise PlanError("missing ASOF JOIN inequality: its ON clause needs one of >=, >, <=, < between "
                            "the two sides")
        return Join(left, right, kind, tuple(lk), tuple(rk), and_all(rest))

    def _asof_outer(self, left: Node, right: Node, kind: str, on: list[exp.Expression], left_ids: set[str]):
        """ASOF RIGHT / FULL JOIN: the inner (RIGHT) or LEFT ASOF join, and then every right row no
        left row took, its left columns NULL. The rows taken are the inner join's right columns,
        distinct; EXCEPT ALL removes one copy of each from the right side: identical right rows are
        interchangeable, and of such copies a left row takes only one. Returns (the union, {old
        column id: its id in the union}) - the union's columns are new."""
        inner = self.make_asof_join(left, right, "asof", on, left_ids)
        kept = inner if kind == "asof_right" else \
            self.make_asof_join(left, right, "asof_left", [c.copy() for c in on], left_ids)
        taken_ids = tuple(self.new_id(c.rsplit("_", 1)[0], self.id_types.get(c)) for c in right.columns)
        taken = Distinct(Project(inner, tuple((t, col(c)) for t, c in zip(taken_ids, right.columns))))
        spare_ids = tuple(self.new_id(c.rsplit("_", 1)[0], self.id_types.get(c)) for c in right.columns)
        spare = SetOp("except", True, right, taken, spare_ids)
        return self._with_unmatched(kept, spare, spare_ids, left.columns)

    def _with_unmatched(self, kept: Node, spare: Node, spare_ids, left_columns):
        """An outer join's rows (kept: left columns, then right ones) and, after them, the right
        rows no left row took (spare's columns spare_ids, in the right side's order), their left
        columns NULL: (the union, {kept's column id: its id in the union})."""
        nulls = tuple((self.new_id(c.rsplit("_", 1)[0], self.id_types.get(c)), typed_null(self.id_types.get(c)))
                      for c in left_columns)
        unmatched = Project(spare, nulls + tuple((i, col(i)) for i in spare_ids))
        out = tuple(self.new_id(c.rsplit("_", 1)[0], self.id_types.get(c)) for c in kept.columns)
        return SetOp("union", True, kept, unmatched, out), dict(zip(kept.columns, out))

    def _reduced_by(self, big: Node, big_keys, small: Node, small_keys) -> Node:
        """The null-supplying side of an outer join whose preserved side is tiny, semi-joined with
        the preserved side's keys as deep in its join tree as the keys allow: its rows that match
        no preserved row can only be dropped by the outer join, so dropping them first changes
        nothing, and an explosive inner join under it (`(a ⋈ b ⋈ c) RIGHT JOIN empty`) is not
        computed in full."""
        small_rows, big_rows = self.est.rows(small), self.est.rows(big)
        if small_rows > OUTER_REDUCTION_ROWS or big_rows < 100 * max(small_rows, 1) or not isinstance(big, (Join, Filter)):
            return big
        needed = set().union(*(column_ids(k) for k in big_keys))
        fresh = [(self.new_id("preserved_key"), never_raising(k)) for k in small_keys]
        keys_rel = Project(small, tuple(fresh))

        def push(n: Node) -> Node:
            if isinstance(n, Join) and n.kind in ("inner", "cross"):
                for i, child in enumerate(n.children):
                    if needed <= set(child.columns):
                        kids = list(n.children)
                        kids[i] = push(child)
                        return n.with_children(*kids)
            if isinstance(n, Filter) and needed <= set(n.input.columns):
                return Filter(push(n.input), n.predicate)
            return Join(n, keys_rel, "semi", tuple(never_raising(k) for k in big_keys),
                        tuple(col(f) for f, _ in fresh))
        return push(big)

    @staticmethod
    def _equi_pair(c, left_ids, right_ids):
        if not isinstance(c, exp.EQ):
            return None
        a, b = c.this, c.expression
        ra, rb = column_ids(a), column_ids(b)
        if not ra or not rb:
            return None
        if ra <= left_ids and rb <= right_ids:
            return a, b
        if rb <= left_ids and ra <= right_ids:
            return b, a
        return None

    @staticmethod
    def _push_item_filters(items: list[Node], preds: list[exp.Expression]):
        """Applies each predicate that reads one item only to that item; returns (items, the rest)."""
        items = list(items)
        remaining = []
        for p in preds:
            refs = column_ids(p)
            owners = [i for i, it in enumerate(items) if refs <= set(it.columns)]
            if refs and owners:
                items[owners[0]] = Filter(items[owners[0]], p)
            else:
                remaining.append(p)
        return items, remaining

    def join_set(self, items: list[Node], preds: list[exp.Expression], scope: Scope) -> Node:
        """Greedy operator ordering: join the connected pair with the smallest estimated result."""
        items, remaining = self._push_item_filters(items, preds)
        refs = {id(p): column_ids(p) for p in remaining}  # each predicate's columns, read once: see _equi_pair
        while len(items) > 1:
            best = None
            for i, j in itertools.combinations(range(len(items)), 2):
                li, ri = set(items[i].columns), set(items[j].columns)
                usable = [p for p in remaining if refs[id(p)] <= li | ri and refs[id(p)] & li and refs[id(p)] & ri]
                pairs = [pair for pair in (self._equi_pair(p, li, ri) for p in usable) if pair]
                if not pairs:
                    continue
                rows = self.est.join_rows(items[i], items[j], pairs)
                if best is None or rows < best[0]:
                    best = (rows, i, j, usable)
            if best is None:  # no equi edge: cross join the two smallest
                order = sorted(range(len(items)), key=lambda k: self.est.rows(items[k]))
                i, j = sorted(order[:2])
                li, ri = set(items[i].columns), set(items[j].columns)
                usable = [p for p in remaining if refs[id(p)] <= li | ri]
                best = (0, i, j, usable)
            _, i, j, usable = best
            a, b = items[i], items[j]
            if self.est.rows(a) < self.est.rows(b):
                a, b = b, a  # the bigger input probes, the smaller one builds
            joined = self.make_join(a, b, "inner", usable, set(a.columns))
            remaining = [p for p in remaining if not any(p is u for u in usable)]
            items = [it for k, it in enumerate(items) if k not in (i, j)] + [joined]
        rel = items[0]
        if remaining:
            rel = Filter(rel, and_all(remaining))
        return rel

    # ------------------------------------------------------------------ subqueries
    def _subquery_select(self, q: exp.Expression) -> exp.Expression:
        while isinstance(q, exp.Subquery):
            q = q.this
        return q

    def subquery_predicate(self, rel: Node, c: exp.Expression, scope: Scope) -> Node:
        negated = False
        inner = c
        while isinstance(inner, exp.Paren):
            inner = inner.this
        if isinstance(inner, exp.Not):
            negated, inner = True, inner.this
            while isinstance(inner, exp.Paren):
                inner = inner.this
        if isinstance(inner, exp.Exists):
            return self._exists(rel, inner, scope, negated)
        if isinstance(inner, exp.In) and inner.args.get("query") is not None:
            return self._in(rel, inner, scope, negated)
        if isinstance(inner, exp.EQ) and isinstance(inner.expression, exp.Any):
            # x = ANY (subquery) is x IN (subquery).
            sub = inner.expression.this
            sub = sub if isinstance(sub, exp.Subquery) else exp.Subquery(this=sub)
            return self._in(rel, exp.In(this=inner.this, query=sub), scope, negated)
        # anything else: scalar subqueries inside an expression
        rel, e = self.attach_scalars(rel, c, scope)
        return Filter(rel, self.translate(e, scope))

    def _exists(self, rel, e: exp.Exists, scope, negated):
        q = self._subquery_select(e.this)
        kind = "anti" if negated else "semi"
        if not self._decorrelated_in_place(q, e, scope, scalar=False):
            return self._dependent_predicate(rel, e.this, scope, kind, lambda ids: [])
        corr = Correlation()
        if not isinstance(q, exp.Select):
            node, _, _ = self.query(q, scope)
        else:
            node, _, _ = self.select(q, scope, corr)
        if not corr:
            # Uncorrelated: one row of the subquery decides for every outer row.
            node = Limit(node, 1, 0)
        elif isinstance(q, exp.Select) and (_aggregates_in_select(q) or q.args.get("limit")):
            raise InternalError("a correlated EXISTS subquery with aggregates or LIMIT was not routed to a dependent join")
        return self.make_join(rel, node, kind, corr.conjuncts, set(rel.columns))

    def _in(self, rel, e: exp.In, scope, negated):
        q = self._subquery_select(e.args["query"])
        lhs = e.this
        if _has_subquery(lhs):
            # `(SELECT …) IN (SELECT …)`: the left side's value for each row first.
            rel, lhs = self.attach_scalars(rel, lhs.copy(), scope)
        lhs_items = lhs.expressions if isinstance(lhs, exp.Tuple) else [lhs]
        keys = [self.translate(x, scope) for x in lhs_items]

        def equalities(ids):
            if len(keys) != len(ids):
                raise CatalogError(f"IN subquery returns {len(ids)} columns, expected {len(keys)}")
            eqs = [exp.EQ(this=k.copy(), expression=self.tcol(i)) for k, i in zip(keys, ids)]
            for eq in eqs:
                ka, kb = kind_of(eq.this.type), kind_of(eq.expression.type)
                if ka and kb and ka != kb:
                    raise CatalogError(f"Cannot compare values of type {eq.this.type.sql('duckdb')} and type "
                                       f"{eq.expression.type.sql('duckdb')} in IN/ANY/ALL clause - an explicit cast is required")
            return eqs

        if not self._decorrelated_in_place(q, e.args["query"], scope, scalar=False) or (negated and len(keys) > 1):
            if not negated:
                return self._dependent_predicate(rel, e.args["query"], scope, "semi", equalities)
            # x NOT IN S keeps an outer row only where no row of its S makes x = s TRUE or NULL
            # (a NULL x or a NULL s): an anti join on `(x = s) IS NOT FALSE`; an empty S keeps it.
            # So for (x1, x2) NOT IN S, with `x1 = s1 AND x2 = s2`, whose NULL rules are those of
            # comparing the rows.
            return self._dependent_predicate(
                rel, e.args["query"], scope, "anti",
                lambda ids: [exp.Not(this=exp.Paren(this=exp.Is(this=exp.Paren(this=and_all(equalities(ids))),
                                                                expression=exp.false())))])
        corr = Correlation()
        if isinstance(q, exp.Select):
            node, names, ids = self.select(q, scope, corr)
        else:
            node, names, ids = self.query(q, scope)
        # A correlated subquery also hands back the inner columns its correlation reads.
        ids = ids[:len(names)]
        eqs = equalities(ids)
        if corr and isinstance(q, exp.Select) and (_aggregates_in_select(q) or q.args.get("limit")):
            raise InternalError("a correlated IN subquery with aggregates or LIMIT was not routed to a dependent join")
        if not negated:
            return self.make_join(rel, node, "semi", eqs + corr.conjuncts, set(rel.columns))
        if corr:
            # As a value: NOT (x IN …) with SQL's NULL rules, through counting subqueries.
            rel, value = self.attach_scalars(rel, exp.Not(this=exp.Paren(this=e.copy())), scope)
            return Filter(rel, self.translate(value, scope))
        # x NOT IN S is TRUE only if S is empty, or x is not NULL, S has no NULL and no S value equals x.
        n_id, nn_id = self.new_id("in_rows"), self.new_id("in_nonnull")
        stats = Aggregate(node, (), ((n_id, exp.Count(this=exp.Star())), (nn_id, exp.Count(this=col(ids[0])))))
        rel = Join(rel, stats, "cross")
        rel = self.make_join(rel, node, "anti", eqs, set(rel.columns))
        keep = exp.Or(
            this=exp.EQ(this=col(n_id), expression=exp.Literal.number(0)),
            expression=exp.And(this=exp.EQ(this=col(nn_id), expression=col(n_id)),
                               expression=exp.Not(this=exp.Is(this=keys[0].copy(), expression=exp.Null()))))
        return Filter(rel, keep)

    def _dependent_predicate(self, rel: Node, sub: exp.Expression, scope: Scope, kind: str, condition) -> Node:
        """EXISTS / IN / NOT … of a subquery that reads the outer query where the semi and anti joins
        above cannot take it (an aggregate, LIMIT, a window or a set operation inside, outer columns
        below its WHERE or further out): a semi or anti DependentJoin of rel with it, on
        condition(the subquery's output ids)."""
        reading = scope.reading()
        node, _, ids = self.query(sub, reading)
        if not reading.free <= set(rel.columns):
            raise NotSupportedError("a correlated subquery that reads a column its FROM item does not hold here")
        return DependentJoin(rel, node, kind, tuple(sorted(reading.free)), and_all(condition(ids)))

    def _outer_columns(self, root: exp.Expression, scope: Scope) -> list[tuple[exp.Column, int]]:
        """(column, depth) for each column in root that no query inside root (root included) binds
        and scope resolves: depth 0 is a column of scope itself, more one of a query further out."""
        out = []
        for c in root.find_all(exp.Column):
            if _bound_inside(c, root.parent):
                continue
            try:
                _, depth = scope.resolve(c.table, c.name)
            except CatalogError:
                continue
            out.append((c, depth))
        return out

    def _decorrelated_in_place(self, q: exp.Expression, root: exp.Expression, scope: Scope, scalar: bool) -> bool:
        """Whether the binder's own decorrelation takes subquery q (root: its node in the outer
        query's tree): q reads nothing outside it, or it reads only scope's columns, each in a
        conjunct of its own WHERE that holds no subquery, and its rows are those of its FROM and
        WHERE (for a scalar subquery: one aggregate row over them). Everything else is a
        DependentJoin (planner/rules/flatten_dependent_joins.py)."""
        outer = self._outer_columns(root, scope)
        if not outer:
            return True
        if any(depth for _, depth in outer) or not isinstance(q, exp.Select):
            return False
        limited = any(q.args.get(k) for k in ("limit", "offset", "qualify")) or \
            any(_outside_subqueries(x, (exp.Window,)) for x in q.expressions)
        if scalar:
            shaped = any(_aggregates(x) for x in q.expressions) and not q.args.get("group") and \
                not q.args.get("distinct") and not q.args.get("order")
        else:
            shaped = not q.args.get("group") and not q.args.get("having") and not _aggregates_in_select(q)
        if limited or not shaped:
            return False
        where = q.args.get("where")
        if where is None or any(c.find_ancestor(exp.Select) is not q or c.find_ancestor(exp.Where) is not where
                                for c, _ in outer):
            return False  # (an outer column outside the WHERE: in the select list, read per outer row)
        mine = {id(c) for c, _ in outer}
        return not any(_has_subquery(x) and any(id(n) in mine for n in x.walk())
                       for x in conjuncts(where.this if where is not None else None))

    def _computed_as_columns(self, e: exp.Expression, scope: Scope, post: Replacements) -> exp.Expression:
        """e with each subquery that is a group key (`GROUP BY (SELECT …)`, or its alias) and each
        window computed already read as the column that holds it: after grouping a key is a value
        of the group, and a window is not evaluated again (nor its subqueries, which would change
        it so that it is no longer found)."""
        def grouped(s):
            return [x for x in _outside_subqueries(s, (exp.Subquery, exp.Window)) if expr_key(x) in post]
        if not grouped(e):
            return e
        holder = exp.Paren(this=e.copy())
        placeholders = scope.sources.setdefault("__scalar", {})
        for s in grouped(holder.this):
            gid = post[expr_key(s)].name
            placeholders[f"__scalar_{gid}"] = gid
            s.replace(exp.Column(this=exp.Identifier(this=f"__scalar_{gid}", quoted=True),
                                 table=exp.Identifier(this="__scalar", quoted=True)))
        return holder.this

    def attach_scalars(self, rel: Node, e: exp.Expression, scope: Scope, after_agg: dict | None = None):
        """Joins every scalar subquery in e onto rel; returns (rel, e with the subqueries replaced by
        placeholder columns that translate() resolves through the scope's '__scalar' source)."""
        e = rewrite_quantified(e, correlated=lambda q: bool(self._outer_columns(q, scope)))
        subs = [s for s in _outside_subqueries(e, (exp.Subquery,)) if not isinstance(s.parent, exp.In)]
        if not subs:
            return rel, e
        # A holder gives the expression a parent, so that even a bare subquery can be replaced.
        holder = exp.Paren(this=e.copy())
        subs = [s for s in _outside_subqueries(holder.this, (exp.Subquery,)) if not isinstance(s.parent, exp.In)]
        placeholders = scope.sources.setdefault("__scalar", {})
        for s in subs:
            q = self._subquery_select(s)
            if not self._decorrelated_in_place(q, s, scope, scalar=True):
                rel, value = self._dependent_scalar(rel, s, scope, after_agg)
                name = f"__scalar_{value}"
                placeholders[name] = value
                s.replace(exp.Column(this=exp.Identifier(this=name, quoted=True),
                                     table=exp.Identifier(this="__scalar", quoted=True)))
                continue
            corr = Correlation(scalar=True, outer_rel=rel)
            corr.outer_map = after_agg
            if isinstance(q, exp.Select):
                node, _, ids = self.select(q, scope, corr)
            else:
                node, _, ids = self.query(q, scope)
            if not corr:
                if len(ids) != 1:
                    raise CatalogError(f"scalar subquery returns {len(ids)} columns")
                value = ids[0]
                if not _single_row(node):
                    node = SingleRow(node)
                rel = Join(rel, node, "left")
            else:
                if after_agg is not None:
                    missing = [k for k in corr.outer_keys if k not in after_agg]
                    if missing:
                        raise NotSupportedError("a correlated subquery after GROUP BY on a column that is not a group key")
                    corr.outer_keys = [after_agg[k] for k in corr.outer_keys]
                    # The keys NULL must meet NULL on, under their names after the grouping too.
                    corr.null_safe = {after_agg.get(k, k) for k in corr.null_safe}
                rel, value = self._correlated_scalar(rel, node, ids, corr, q)
            name = f"__scalar_{value}"
            placeholders[name] = value
            s.replace(exp.Column(this=exp.Identifier(this=name, quoted=True), table=exp.Identifier(this="__scalar", quoted=True)))
        return rel, holder.this

    def _dependent_scalar(self, rel: Node, sub: exp.Expression, scope: Scope, after_agg: dict | None):
        """A correlated scalar subquery of any other shape (`ORDER BY … LIMIT 1`, a plain column,
        outer columns in its select list): a left DependentJoin of rel with it; returns (rel, the
        value's column id)."""
        reading = scope.reading()
        if after_agg is not None:
            # After GROUP BY the outer query's columns are the group keys' output columns; any
            # other column id is missing from rel (checked below).
            reading.sources = {a: {n: after_agg.get(cid, cid) for n, cid in m.items()}
                               for a, m in reading.sources.items()}
        node, _, ids = self.query(sub, reading)
        if len(ids) != 1:
            raise CatalogError(f"scalar subquery returns {len(ids)} columns")
        if not reading.free <= set(rel.columns):
            raise NotSupportedError("a correlated subquery after GROUP BY on a column that is not a group key")
        return DependentJoin(rel, node, "left", tuple(sorted(reading.free)), scalar=True), ids[0]

    def _comparable_keys(self, left, right):
        """Key tuples (column ids or expressions) made comparable pairwise, and their residual."""
        lk, rk, residual = [], [], []
        for a, b in zip(left, right):
            a = self.tcol(a) if isinstance(a, str) else a
            b = self.tcol(b) if isinstance(b, str) else b
            a, b, extra = comparable_pair(a, b)
            lk.append(a)
            rk.append(b)
            if extra is not None:
                residual.append(extra)
        return tuple(lk), tuple(rk), and_all(residual)

    def _setop_inputs(self, left, lids, right, rids):
        """Inputs of a set operation whose column pairs differ in kind (an integer beside a VARCHAR)
        cast to the type DuckDB unites them in, so that equal rows hash alike; and the output types."""
        types, lcast, rcast = [], {}, {}
        for a, b in zip(lids, rids):
            ta, tb = self.id_types.get(a), self.id_types.get(b)
            common = common_setop_type(ta, tb)
            if common is not None:
                if kind_of(ta) != kind_of(common):
                    lcast[a] = common
                if kind_of(tb) != kind_of(common):
                    rcast[b] = common
            types.append(common or (ta if kind_of(ta) is not None and kind_of(ta) == kind_of(tb) else None))

        def cast(node, ids, casts):
            if not casts:
                return node
            exprs = []
            for c in node.columns:
                if c in casts:
                    exprs.append((self.new_id(c.rsplit("_", 1)[0], casts[c]), exp.Cast(this=col(c), to=casts[c].copy())))
                else:
                    exprs.append((c, col(c)))
            return Project(node, tuple(exprs))
        return cast(left, lids, lcast), cast(right, rids, rcast), types

    def _expand_grouping_sets(self, rel: Node, groups, sets, skip=None):
        """Rows repeated once per grouping set but set number `skip`, the keys a set does not keep
        NULL in its copy (see planner/grouping_sets.py); returns (rel, the aggregate's groups, the
        set number's id)."""
        number = self.new_id("grouping_set", exp.DataType.build("INT"))
        # The empty set () is a global aggregate of its own (_grouping_sets_aggregate): over no rows
        # it still gives one row.
        expanded = [i for i, s in enumerate(sets) if s and i != skip]
        values = Values((number,), tuple((exp.Literal.number(i),) for i in expanded))
        exprs = [(c, col(c)) for c in rel.columns] + [(number, col(number))]
        keyed = []
        for i, (gid, key) in enumerate(groups):
            keep = [n for n in expanded if i in sets[n]]
            nulled = self.new_id("set_key", self.id_types.get(gid))
            if len(keep) == len(expanded):
                # Kept by every expanded set: the key itself, so a partitioning on it holds here.
                value = key
            else:
                cond = exp.In(this=col(number), expressions=[exp.Literal.number(n) for n in keep]) if keep else exp.false()
                value = exp.Case(ifs=[exp.If(this=cond, true=key)])
            exprs.append((nulled, value))
            keyed.append((gid, col(nulled)))
        set_id = self.new_id("grouping_set")
        return Project(Join(rel, values, "cross"), tuple(exprs)), keyed + [(set_id, col(number))], set_id

    def _keep_grouping_input(self, base: Node, groups, aggs, finest: bool = False):
        """GROUPING SETS with the empty set read their input twice: expanded for the other sets,
        and whole for the grand total. The input (the pre-aggregated rows where the aggregates
        split) is kept as a CTE, computed once, and read by both (TPC-DS q18's ROLLUP over a
        seven-table join computed the join twice). finest: a third reader, the set of every key,
        which takes the pre-aggregated rows as they are. Returns (the expansion's input, the grand
        total's input, the groups and aggregates over each, and the third reference with its
        {base column: column} or None)."""
        shared = _SharedCte(_GROUPING_INPUT, self.new_id("cte_grouping_input"), base, list(base.columns),
                            list(base.columns), True, "read by the grouping sets and by the grand total",
                            3 if finest else 2)
        self._kept.append(shared)
        self.est.define_cte(shared.name, base)
        refs = []
        for _ in range(3 if finest else 2):
            fresh = tuple(self.new_id(c.rsplit("_", 1)[0], self.id_types.get(c)) for c in base.columns)
            refs.append((CteRef(shared.name, _GROUPING_INPUT.alias_or_name, fresh, tuple(base.columns)),
                         {c: self.tcol(f) for c, f in zip(base.columns, fresh)}))
        (expand_in, to_expand), (total_in, to_total) = refs[:2]
        groups = [(gid, substitute(g, to_expand)) for gid, g in groups]
        return (expand_in, total_in, groups, tuple((a, substitute(e, to_expand)) for a, e in aggs),
                tuple((a, substitute(e, to_total)) for a, e in aggs), refs[2] if finest else None)

    def _grouping_sets_aggregate(self, base: Node, expanded: Node, groups, aggs, sets, set_id,
                                 finish=None, total_aggs=None, finest=None) -> Node:
        """The aggregate over the expanded rows of the non-empty sets, and one global aggregate of
        `base` per empty set, its keys NULL, all with the same columns (UNION ALL). With finish =
        ({aggregate id: expression over aggs}, aggregate ids), aggs merge partial states and the
        expressions give the aggregates' values. total_aggs: aggs over base's columns where they
        differ from the expansion's (the input kept and read twice). finest: (set number, the
        node giving that set's rows, when they are not expanded)."""
        key_ids = tuple(gid for gid, _ in groups)

        def finished(node: Node, keys) -> Node:
            if finish is None:
                return Project(node, keys + tuple((aid, col(aid)) for aid, _ in aggs)) if keys else node
            exprs, out_ids = finish
            return Project(node, (keys or tuple((g, col(g)) for g in key_ids)) + tuple((a, exprs[a]) for a in out_ids))

        parts = []
        if any(s for n, s in enumerate(sets) if finest is None or n != finest[0]):
            parts.append(finished(Aggregate(expanded, tuple(groups), aggs), ()))
        if finest is not None:
            parts.append(finest[1])
        for n, s in enumerate(sets):
            if s:
                continue
            keys = tuple((gid, exp.Null()) if gid != set_id else (gid, exp.Literal.number(n)) for gid, _ in groups)
            if not aggs and finish is None or finish is not None and not finish[1]:
                # No aggregate: one row of NULL keys, whatever the input.
                parts.append(Values(tuple(g for g, _ in keys), (tuple(v for _, v in keys),)))
                continue
            parts.append(finished(Aggregate(base, (), total_aggs if total_aggs is not None else aggs), keys))
        ids = key_ids + (finish[1] if finish is not None else tuple(aid for aid, _ in aggs))
        out = parts[0]
        if out.columns != ids:
            out = Project(out, tuple((i, col(i)) for i in ids))
        for p in parts[1:]:
            out = SetOp("union", True, out, p, ids)
        return out

    def _dependent_join(self, rel: Node, corr: Correlation, outer_ids: set[str]):
        """A correlation of any shape (`inner.x < outer.y`, several, under OR): the subquery's rows
        are joined with the distinct values of the outer columns it reads, on the correlation
        itself, and grouped by those values; returns (rel, the group keys). The caller joins the
        groups back to the outer rows on those columns; where the correlation can hold for a NULL
        outer value (`inner.x IS NOT DISTINCT FROM outer.y`, an OR), NULL must meet NULL there, so
        those keys are compared as one-element lists ([NULL] = [NULL] in DuckDB)."""
        if corr.outer_rel is None:
            raise NotSupportedError("a correlated subquery whose correlation is not `inner = outer column` here")
        used = sorted(set().union(*(column_ids(c) for c in corr.conjuncts)) & outer_ids)
        corr.null_safe = {o for o in used if not any(rejects_nulls(c, {o}) for c in corr.conjuncts)}
        fresh = {o: self.new_id("outer_value", self.id_types.get(o)) for o in used}
        source = {o: o for o in used}
        if corr.outer_map is not None:
            if any(o not in corr.outer_map for o in used):
                raise NotSupportedError("a correlated subquery after GROUP BY on a column that is not a group key")
            source = {o: corr.outer_map[o] for o in used}
        values = Distinct(Project(corr.outer_rel, tuple((fresh[o], self.tcol(source[o])) for o in used)))
        on = [c.transform(lambda n: self.tcol(fresh[n.name]) if isinstance(n, exp.Column) and n.name in fresh else n)
              for c in corr.conjuncts]
        rel = self.make_join(rel, values, "inner", on, set(rel.columns))
        corr.outer_keys = list(used)
        corr.dependent = True
        return rel, [self.tcol(fresh[o]) for o in used]

    def _correlated_scalar(self, rel, node, ids, corr: Correlation, q):
        # node outputs: the value, then the inner correlation key columns (see _project).
        if len(ids) != 1 + len(corr.inner_keys):
            raise CatalogError("scalar subquery returns more than one column")
        value, inner_keys, outer_keys = ids[0], corr.inner_keys, corr.outer_keys
        if not corr.dependent:  # a dependent join is already restricted to the outer values
            node = self._restrict_to_outer_keys(node, rel, inner_keys, outer_keys)
        marker = self.new_id("matched")
        proj = Project(node, tuple([(i, col(i)) for i in ids] + [(marker, exp.true())]))
        if corr.dependent:  # the groups' keys are copies of the outer columns: same types
            def key(outer, cid):
                return exp.Array(expressions=[self.tcol(cid)]) if outer in corr.null_safe else self.tcol(cid)
            lk = tuple(key(o, o) for o in outer_keys)
            rk = tuple(key(o, i) for o, i in zip(outer_keys, inner_keys))
            residual = None
        else:
            lk, rk, residual = self._comparable_keys(outer_keys, inner_keys)
        rel = Join(rel, proj, "left", lk, rk, residual)
        empty = self._empty_value(q)
        if empty is None:
            return rel, value
        fixed = self.new_id("scalar")
        rel = Project(rel, tuple((c, col(c)) for c in rel.columns) + ((fixed, exp.Case(
            ifs=[exp.If(this=exp.Is(this=col(marker), expression=exp.Null()), true=empty)], default=col(value))),))
        return rel, fixed

    def _restrict_to_outer_keys(self, node: Node, rel: Node, inner_keys, outer_keys) -> Node:
        """Magic set: aggregate the subquery only over the keys the outer query can produce.

        When the outer keys come from a filtered scan (Q17: parts of one brand and container), the
        subquery's input is semi-joined with those keys before grouping, instead of aggregating
        every key (Q17: 200 of 200,000 parts)."""
        source = _key_source(rel, set(outer_keys))
        if source is None:
            return node

        def rewrite(n: Node) -> Node:
            if isinstance(n, Aggregate) and [g for g, _ in n.groups[-len(inner_keys):]] == list(inner_keys):
                exprs = dict(n.groups)
                fresh = [(self.new_id("outer_key", self.id_types.get(k)), col(k)) for k in outer_keys]
                keys_rel = Project(source, tuple(fresh))
                lk, rk, residual = self._comparable_keys([exprs[k] for k in inner_keys], [f for f, _ in fresh])
                lk, rk = tuple(never_raising(k) for k in lk), tuple(never_raising(k) for k in rk)
                restricted = Join(n.input, keys_rel, "semi", lk, rk, residual)
                return replace(n, input=restricted)
            if isinstance(n, (Project, Filter)):
                inner = rewrite(n.input)
                return n if inner is n.input else n.with_children(inner)
            return n
        return rewrite(node)

    def _empty_value(self, q: exp.Select):
        """The value of the subquery's select item over no rows, when it is not simply NULL: each
        aggregate takes its value over an empty group (COUNT 0, the others NULL) and the expression
        around them is kept, so `coalesce(sum(x), 0)` gives 0 and `count(*) + 1` gives 1."""
        item = q.expressions[0]
        item = item.this if isinstance(item, exp.Alias) else item
        aggs = _aggregates(item)
        if not aggs:
            return None
        found = {id(a) for a in aggs}

        def repl(n):
            if id(n) in found:
                inner = n.this if isinstance(n, exp.Filter) else n
                return exp.Literal.number(0) if isinstance(inner, ZERO_ON_EMPTY) else exp.Null()
            return n
        empty = _replace_nodes(item, found, repl)
        if isinstance(empty, exp.Null):
            return None
        if any(isinstance(n, exp.Column) for n in empty.walk()):
            raise NotSupportedError("a correlated scalar subquery mixing columns and aggregates")
        return empty

    # ------------------------------------------------------------------ GROUP BY … SELECT … ORDER BY
    def _project(self, sel: exp.Select, rel: Node, scope: Scope, corr):
        items = list(sel.expressions)
        names = [item_name(it) for it in items]
        exprs = [it.this if isinstance(it, exp.Alias) else it for it in items]
        order = expand_order_all(sel.args.get("order"), len(items))
        order_exprs = [o.this for o in order.expressions] if order else []
        alias_names = {n for it, n in zip(items, names) if isinstance(it, exp.Alias)}
        having = sel.args.get("having")
        having_e = having.this if having else None
        group = sel.args.get("group")
        sets = None
        if has_grouping_sets(group):
            group_exprs, sets = expand(group, expr_key)
        else:
            group_exprs = list(group.expressions) if group else []
        own = {alias for alias in scope.sources if not alias.startswith("__")}
        if group is not None and group.args.get("all"):
            # GROUP BY ALL: every select item without an aggregate is a group key.
            # A constant item (`1.25::DOUBLE`, `0 + 0.001`, an uncorrelated subquery) is no group
            # key for DuckDB: over no rows the result is still one row.
            group_exprs = [e for e in exprs if not _aggregates(e) and not _outside_subqueries(e, (exp.Window,))
                           and _reads_own_columns(e, own)]
        # Correlation keys of a decorrelated scalar subquery become extra group keys.
        corr_groups = []
        if corr is not None and corr.scalar and corr.conjuncts:
            if group_exprs or sel.args.get("limit") or sel.args.get("distinct") or not any(_aggregates(x) for x in exprs):
                raise NotSupportedError("a correlated scalar subquery that is not a plain aggregate")
            outer_ids = self._outer_ids(scope)
            pairs = []
            for c in corr.conjuncts:
                pair = None
                if isinstance(c, exp.EQ):
                    a, b = c.this, c.expression
                    if isinstance(a, exp.Column) and a.name in outer_ids and column_ids(b) and not column_ids(b) & outer_ids:
                        pair = (a, b)
                    elif isinstance(b, exp.Column) and b.name in outer_ids and column_ids(a) and not column_ids(a) & outer_ids:
                        pair = (b, a)
                pairs.append(pair)
            if all(pairs):
                for outer, inner in pairs:
                    corr.outer_keys.append(outer.name)
                    # Grouped in the type the comparison uses: '1' and '01' are one group when the
                    # outer key is a number (else an outer row would match two groups).
                    _, inner_key, unknown = comparable_pair(self.tcol(outer.name), inner)
                    corr_groups.append(inner if unknown is not None else inner_key)
            else:
                rel, corr_groups = self._dependent_join(rel, corr, outer_ids)
            corr.conjuncts = []


        def agg_list(es):
            found = []
            for e in es:
                if e is not None:
                    found += [a for a in _aggregates(e) + _outer_aggregates(e, own)
                              if not isinstance(a, GROUPING_CALLS)]
            return found

        aggs = agg_list(exprs + [having_e] + [o for o in order_exprs
                                                if not (isinstance(o, exp.Column) and not o.table and o.name in alias_names)])
        has_windows = any(_outside_subqueries(e, (exp.Window,)) for e in exprs + order_exprs)
        post = Replacements()
        if group_exprs or aggs or corr_groups:
            # A subquery inside an aggregate's arguments or a group key: its value for each input
            # row, joined onto the rows before they are grouped (attach_scalars).
            attached = {}
            for a in aggs:
                if _has_subquery(a) and id(a) not in attached:
                    rel, attached[id(a)] = self.attach_scalars(rel, a, scope)
            groups = []
            for g in group_exprs:
                bound = g
                if _has_subquery(g):
                    rel, bound = self.attach_scalars(rel, g, scope)
                tg = self.translate(bound, scope)
                gid = self.new_id(g.name if isinstance(g, exp.Column) else "group", tg.type)
                groups.append((gid, tg))
                post.add(g, col(gid))
            for gexpr in corr_groups:
                gid = self.new_id("corr_key", gexpr.type)
                groups.append((gid, gexpr))
                corr.inner_keys.append(gid)
            agg_cols = []
            seen = {}
            for a in aggs:
                key = a.sql("duckdb")
                if key in seen:
                    continue
                inner = a.this if isinstance(a, exp.Filter) else a
                if any(_aggregates(x) for x in inner.iter_expressions()):
                    raise CatalogError(f"aggregate function calls cannot be nested: {key}")
                aid = self.new_id(a.key, a.type)
                agg_cols.append((aid, self.translate(attached.get(id(a), a), scope)))
                seen[key] = aid
                post.add(a, col(aid))
            group_map = {g.name: gid for gid, g in groups if isinstance(g, exp.Column)}
            set_id = finish = None
            calls = [n for e in exprs + [having_e] + order_exprs if e is not None
                     for n in _outside_subqueries(e, GROUPING_CALLS)]
            if sets is not None:
                if corr_groups:
                    raise NotSupportedError("a correlated subquery with GROUPING SETS, ROLLUP or CUBE")
                # Aggregated first by every key, when the aggregates split into partial and final
                # states: the expansion then repeats groups, not input rows (TPC-DS q22: 11.7 M
                # inventory rows would become 58 M).
                split = split_aggregates(tuple(agg_cols), self.new_id)
                if split is not None and sum(1 for x in sets if x) > 1:
                    partial, _, final_aggs, finish = split
                    pre_keys = [(self.new_id("pre_key", self.id_types.get(gid)), key) for gid, key in groups]
                    common = frozenset.intersection(*(x for x in sets if x))
                    rel = Aggregate(rel, tuple(pre_keys), tuple(partial),
                                    tuple(pid for i, (pid, _) in enumerate(pre_keys) if i in common))
                    groups = [(gid, col(pid)) for (gid, _), (pid, _) in zip(groups, pre_keys)]
                base = rel
                set_aggs, total_aggs, finest = tuple(final_aggs if finish is not None else agg_cols), None, None
                if any(sets) and not all(sets) and agg_cols and not _reads_outside(base):
                    # The input is read twice, by the expansion and by the grand total: kept once
                    # (unless it reads an outer query's columns, a LATERAL's: then it is per row).
                    # Pre-aggregated by every key, its rows are the set of every key as they are:
                    # that set is read, not expanded again.
                    every = frozenset(range(len(groups)))
                    skip = sets.index(every) if finish is not None and every in sets else None
                    pre_groups = groups
                    rel, base, groups, set_aggs, total_aggs, finest_ref = self._keep_grouping_input(
                        base, groups, set_aggs, skip is not None)
                    if finest_ref is not None:
                        finest = (skip, pre_groups, finest_ref, {f: col(e.this.name) for f, e in final_aggs})
                rel, groups, set_id = self._expand_grouping_sets(rel, groups, sets, finest[0] if finest else None)
                post.literals = True
            elif calls:
                sets = [frozenset(range(len(group_exprs)))]
            keys_index = {expr_key(g): i for i, g in enumerate(group_exprs)}
            for call in calls:
                masks = grouping_masks(call, keys_index, sets, expr_key)
                if set_id is None:
                    value = exp.Literal.number(masks[0])
                else:
                    value = exp.Case(this=col(set_id), ifs=[exp.If(this=exp.Literal.number(i), true=exp.Literal.number(m))
                                                            for i, m in enumerate(masks)])
                post.add(call, value)
            if set_id is not None and finish is not None:
                out_ids = tuple(aid for aid, _ in agg_cols)
                finest_rows = None
                if finest is not None:
                    number, pre_groups, (ref, to_ref), states = finest
                    columns = tuple((gid, substitute(g, to_ref)) for gid, g in pre_groups) + \
                        ((set_id, exp.Literal.number(number)),) + \
                        tuple((a, substitute(substitute(finish[a], states), to_ref)) for a in out_ids)
                    finest_rows = (number, Project(ref, columns))
                rel = self._grouping_sets_aggregate(base, rel, groups, set_aggs, sets, set_id,
                                                    finish=(finish, out_ids), total_aggs=total_aggs,
                                                    finest=finest_rows)
            elif set_id is not None:
                rel = self._grouping_sets_aggregate(base, rel, groups, set_aggs, sets, set_id,
                                                    total_aggs=total_aggs)
            else:
                rel = Aggregate(rel, tuple(groups), tuple(agg_cols))
            corr_out = [gid for gid, _ in groups[len(group_exprs):] if gid != set_id]
            grouped = True
        else:
            corr_out = []
            grouped = False
            group_map = {}

        def tr(e, rel_):
            after = None
            if grouped:
                e = self._computed_as_columns(e, scope, post)
                e, after = self._aggregates_as_columns(e, scope, post, group_map)
            rel_, e = self.attach_scalars(rel_, e, scope, after_agg=after)
            if grouped:
                return rel_, self._translate_post(e, scope, post)
            return rel_, self.translate(e, scope)

        if having_e is not None:
            if not grouped:
                raise CatalogError("HAVING without GROUP BY or aggregates")
            rel, h = tr(having_e, rel)
            rel = Filter(rel, h)
        # windows
        if has_windows:
            funcs = []
            for e in exprs + order_exprs:
                for w in _outside_subqueries(e, (exp.Window,)):
                    if expr_key(w) in post:
                        continue
                    wid = self.new_id("window", w.type)
                    # A group key that is a subquery is read as its column (the window runs after
                    # the grouping), not evaluated again.
                    bound = self._computed_as_columns(w, scope, post) if grouped else w
                    if _has_subquery(bound):
                        # A subquery in its arguments, PARTITION BY, ORDER BY or FILTER: its value
                        # for each row, joined onto the rows the window reads.
                        after = None
                        if grouped:
                            bound, after = self._aggregates_as_columns(w.copy(), scope, post, group_map)
                        rel, bound = self.attach_scalars(rel, bound.copy(), scope, after_agg=after)
                    wt = self._translate_post(bound, scope, post) if grouped else self.translate(bound, scope)
                    funcs.append((wid, wt))
                    post.add(w, col(wid))
            rel = Window(rel, tuple(funcs))

        def final(e, rel_):
            if has_windows and not grouped:
                rel_, e = self.attach_scalars(rel_, self._computed_as_columns(e, scope, post), scope)
                return rel_, self._translate_mixed(e, scope, post)
            return tr(e, rel_)

        out_exprs = []
        for n, e in zip(names, exprs):
            rel, t = final(e, rel)
            out_exprs.append((self.new_id(n, t.type), t))
        out_ids = [i for i, _ in out_exprs]
        hidden = []
        sort_keys = []
        by_alias = {n: i for n, i in zip(names, out_ids)}
        by_text = {}
        for (i, t) in out_exprs:
            by_text.setdefault(t.unnest().sql("duckdb"), i)
        for o, e in zip(order.expressions if order else [], order_exprs):
            if isinstance(e, exp.Column) and not e.table and e.name in by_alias:
                target = by_alias[e.name]
            elif (pos := order_position(e, len(out_ids))) is not None:
                target = out_ids[pos]
            else:
                # Unqualified names in an ORDER BY expression refer to select aliases first.
                alias_expr = {n: x for n, x, it in zip(names, exprs, items) if isinstance(it, exp.Alias) or
                              isinstance(it, exp.Column)}
                e = e.copy().transform(lambda n: alias_expr[n.name].copy()
                                       if isinstance(n, exp.Column) and not n.table and n.name in alias_expr else n)
                rel, t = final(e, rel)
                target = by_text.get(t.unnest().sql("duckdb"))
                if target is None:
                    if sel.args.get("distinct"):
                        # DuckDB answers it, ordering each distinct row by one of the values it was made from.
                        raise NotSupportedError("ORDER BY an expression that is not in the select list of a SELECT DISTINCT")
                    target = self.new_id("order")
                    hidden.append((target, t))
            k = o.copy()
            k.set("this", col(target))
            sort_keys.append(self._ordered(k))
        if corr is not None and not corr.scalar and corr.conjuncts:
            # The join condition of a correlated EXISTS / IN reads inner columns: let them through.
            outer_ids = self._outer_ids(scope)
            inner_refs = set()
            for c in corr.conjuncts:
                inner_refs |= column_ids(c) - outer_ids
            corr_out = corr_out + sorted(inner_refs - set(out_ids))
        extra = [(i, col(i)) for i in corr_out]
        node = Project(rel, tuple(out_exprs + extra + hidden))
        d = sel.args.get("distinct")
        if d is not None:
            if d.args.get("on"):
                raise NotSupportedError("DISTINCT ON")
            node = Distinct(node)
        if sort_keys:
            node = Sort(node, tuple(sort_keys))
        node = self._limit(sel, node)
        if hidden:
            node = Project(node, tuple((i, col(i)) for i in out_ids + corr_out))
        return node, names, out_ids + corr_out

    @staticmethod
    def _aggregates_as_columns(e: exp.Expression, scope: Scope, post: Replacements, group_map: dict):
        """(e, the columns a subquery in it may read after GROUP BY): with a subquery in e, e's own
        aggregates read as the columns that hold them (source `__agg` of scope), for the subquery
        they may be moved into (`sum(x) > ANY (…)` becomes a count over the subquery's rows of
        those below the sum, planner/rules/quantified_subqueries.py), where they would otherwise be
        aggregates of the subquery."""
        if not _has_subquery(e):
            return e, group_map
        # A window computed after the grouping keeps its aggregates (`row_number() OVER (ORDER BY
        # count(*))`): it is found whole in post, and computed there over every rank's groups.
        in_windows = {id(n) for w in _outside_subqueries(e, (exp.Window,)) if expr_key(w) in post for n in w.walk()}
        found = {}
        own = {alias for alias in scope.sources if not alias.startswith("__")}
        for a in _aggregates(e) + _outer_aggregates(e, own):
            if id(a) in in_windows:
                continue
            held = post.get(expr_key(a))
            if isinstance(held, exp.Column):
                found[id(a)] = held.name
        if not found:
            return e, group_map
        held_by = scope.sources.setdefault("__agg", {})
        for cid in found.values():
            held_by[cid] = cid
        e = _replace_nodes(e, set(found), lambda a: exp.Column(this=exp.Identifier(this=found[id(a)], quoted=True),
                                                               table=exp.Identifier(this="__agg", quoted=True)))
        return e, {**group_map, **{cid: cid for cid in found.values()}}

    def _outer_ids(self, scope: Scope) -> set[str]:
        out = set()
        s = scope.parent
        if s is not None:
            for m in s.sources.values():
                out |= set(m.values())
        return out

    def _translate_post(self, e: exp.Expression, scope: Scope, post: dict) -> exp.Expression:
        """Translate an expression evaluated after GROUP BY: group expressions and aggregates map to
        their columns; any other column is an error, as in DuckDB."""
        def check(n):
            return n
        t = self.translate(e, scope, replace=post)
        allowed = {c.name for v in post.values() for c in v.find_all(exp.Column)}
        bad = [c.name for c in t.find_all(exp.Column) if c.name not in allowed]
        if bad:
            # Columns that came from the scalar placeholder scope are fine, and so are a dependent
            # join's outer columns: one value per evaluation.
            scal = set(scope.sources.get("__scalar", {}).values())
            free, up = set(), scope.parent
            while up is not None:
                free |= up.free or set()
                up = up.parent
            bad = [b for b in bad if b not in scal and b not in free]
        if bad:
            raise CatalogError(f"column {bad[0].rsplit('_', 1)[0]} must appear in the GROUP BY clause or be used in an aggregate function")
        return t

    def _translate_mixed(self, e, scope, post):
        return self.translate(e, scope, replace=post)


def _references(ast: exp.Expression, own: list) -> int:
    """How often a statement names the last CTE of `own` (its WITH's CTEs up to that one): in its
    body and in the CTEs after it, not in it or those before it, which cannot see it. A nested WITH
    that reuses the name can make the count too high: a CTE read once is then kept, still correct."""
    name = own[-1].alias_or_name
    hidden = {id(c) for c in own}
    count = 0
    for t in ast.find_all(exp.Table):
        if t.name != name or t.args.get("db") or t.args.get("catalog"):
            continue
        p = t.parent
        while p is not None and p is not ast and id(p) not in hidden:
            p = p.parent
        count += p is None or p is ast
    return count


def typed_null(t: exp.DataType | None) -> exp.Expression:
    """NULL of type t where the type is known (a nested column's is not: plain NULL then)."""
    if t is None or t.this == exp.DataType.Type.UNKNOWN:
        return exp.Null()
    return exp.Cast(this=exp.Null(), to=t.copy())


def _typed(e: exp.Expression, source: exp.Expression) -> exp.Expression:
    """e carrying source's type (from qualify's annotate_types), for planner/comparable.py."""
    if source.type is not None and e.type is None:
        e.type = source.type
    return e


def order_position(e: exp.Expression, ncols: int) -> int | None:
    """The 0-based output column an ORDER BY key names by position (`ORDER BY 2`), None when the
    key is an expression. Other constants are refused as DuckDB refuses them: they sort nothing.
    DuckDB's parser drops parentheses and folds a minus into a number, so `(2)` names column 2,
    `-(1)` is out of range and `(false)` is a non-integer literal; `- -1` stays an expression."""
    e = e.unnest()
    negative = isinstance(e, exp.Neg) and isinstance(e.this.unnest(), exp.Literal)
    literal = e.this.unnest() if negative else e
    if isinstance(literal, (exp.Null, exp.Boolean)):
        raise CatalogError("ORDER BY non-integer literal has no effect")
    if not isinstance(literal, exp.Literal):
        return None
    if literal.is_string or not literal.this.isdigit():
        raise CatalogError("ORDER BY non-integer literal has no effect")
    pos = -int(literal.this) if negative else int(literal.this)
    if not 1 <= pos <= ncols:
        raise CatalogError(f"ORDER term out of range - should be between 1 and {ncols}")
    return pos - 1


def _replace_nodes(root: exp.Expression, targets: set[int], repl) -> exp.Expression:
    """A copy of root in which each node whose id() is in targets is replaced by repl(node)."""
    if id(root) in targets:
        return repl(root)
    out = root.copy()
    originals = list(root.walk())
    copies = list(out.walk())
    for orig, copy in zip(originals, copies):
        if id(orig) in targets:
            copy.replace(repl(orig))
    return out


def _comma(j: exp.Join) -> bool:
    """`FROM a, b`: b's join has no side, kind, ON or USING."""
    return not j.args.get("side") and not j.args.get("kind") and j.args.get("on") is None and not j.args.get("using")


def _derived_table(src: exp.Expression) -> bool:
    """Whether a FROM item is a derived table `(SELECT …) AS t`, not a parenthesised join."""
    return isinstance(src, exp.Subquery) and not isinstance(src.this, exp.Table)


def _reads_own_columns(e: exp.Expression, aliases) -> bool:
    """Whether e reads a column of the query: one outside its subqueries, or one of the query's own
    FROM items (aliases) that a subquery is correlated on."""
    for c in e.find_all(exp.Column):
        node = c
        while node is not e and node is not None and not isinstance(node, exp.Query):
            node = node.parent
        if node is e or node is None:  # not inside a subquery of e
            return True
        if c.table in aliases and not _bound_inside(c, e):
            return True
    return False


def _bound_inside(column: exp.Column, root: exp.Expression) -> bool:
    """Whether a SELECT between column and root defines the column's table qualifier."""
    node = column.parent
    while node is not None and node is not root:
        if isinstance(node, exp.Select):
            sources = []
            frm = node.args.get("from_") or node.args.get("from")
            if frm is not None:
                sources.append(frm.this)
            sources += [j.this for j in node.args.get("joins") or []]
            if any(s.alias_or_name == column.table for s in sources):
                return True
        node = node.parent
    return False


def display_names(original: exp.Expression, names: list[str]) -> list[str]:
    """Result column names as the user wrote them (qualify renames unaliased expressions to
    _col_N): alias, else column name, else the expression's text, as DuckDB does."""
    sel = original
    while isinstance(sel, (exp.Union, exp.Intersect, exp.Except, exp.Subquery)):
        sel = sel.this
    if not isinstance(sel, exp.Select) or len(sel.expressions) != len(names):
        return list(names)
    if any(isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star)) for e in sel.expressions):
        return list(names)
    return [item_name(e) for e in sel.expressions]


def item_name(item: exp.Expression) -> str:
    """A select item's output name: its alias, else its column name, else its text."""
    if isinstance(item, exp.Alias):
        return item.alias
    if isinstance(item, exp.Column):
        return item.name
    return duckdb_item_name(item)


def _key_source(rel: Node, keys: set[str]) -> Node | None:
    """The filtered scan pipeline inside rel that produces all of keys, if there is one."""
    node = rel
    while True:
        if not keys <= set(node.columns):
            return None
        if isinstance(node, Join):
            side = next((c for c in (node.left, node.right) if keys <= set(c.columns)), None)
            if side is None:
                return None
            node = side
            continue
        probe, filtered = node, False
        while isinstance(probe, (Filter, Project)):
            filtered = filtered or isinstance(probe, Filter)
            probe = probe.input
        return node if isinstance(probe, Scan) and filtered else None


def _aggregates_in_select(q: exp.Select) -> bool:
    return bool(q.args.get("group")) or any(_aggregates(x) for x in q.expressions)


def _single_row(node: Node) -> bool:
    while isinstance(node, (Project, Filter, Sort)):
        if isinstance(node, Filter):
            return False
        node = node.input
    return isinstance(node, Aggregate) and not node.groups or (isinstance(node, Limit) and node.limit is not None and node.limit <= 1)


# Scalar functions that reach outside the catalog (files, environment, settings).
FORBIDDEN_FUNCTIONS = {
    "getenv", "read_text", "read_blob", "read_csv", "read_csv_auto", "read_parquet", "read_json",
    "read_json_auto", "glob", "current_setting", "pragma", "system", "parquet_scan", "parquet_metadata",
    "parquet_schema", "query", "query_table", "sniff_csv", "read_ndjson", "read_json_objects",
}
