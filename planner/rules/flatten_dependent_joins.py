"""flatten_dependent_joins: a join whose right side reads its left side's columns (LATERAL, a
correlated scalar subquery that is not a plain aggregate, EXISTS / IN / NOT … of a correlated
subquery the binder's semi and anti joins cannot take) becomes ordinary joins, aggregates and
windows — the "dependent join" unnesting of Neumann & Kemper ("Unnesting Arbitrary Queries",
BTW 2015), which DuckDB's FlattenDependentJoins also follows.

Before:  DependentJoin(outer n_regionkey) ← nation,
             Limit 1 ← Sort[r_name] ← Filter(r_regionkey = n_regionkey) ← region
After:   Join([n_regionkey] = [d]) ← nation,
             Filter(rn <= 1) ← Window(rn := row_number() OVER (PARTITION BY d ORDER BY r_name))
                 ← Join(r_regionkey = d) ← region, Distinct ← Project(d := n_regionkey) ← nation

The distinct values of the outer columns (the domain, DuckDB's "delim" relation) are joined into
the right side where it first reads them, and carried up through every operator above as extra
columns, so that the right side is computed once per domain value, all at once: a predicate on an
outer column becomes a predicate on the domain column (a join key where it is an equality), an
aggregate also groups by the domain columns (one without GROUP BY still gives its one row per
domain value over no rows, count 0, through a left join from the domain), LIMIT/OFFSET becomes a
row_number() window partitioned by them, DISTINCT and set operations work per domain value. The
result is joined back to the left side on the domain columns with NULL matching NULL (IS NOT
DISTINCT FROM, as one-element lists: [NULL] = [NULL] in DuckDB); a semi or anti dependent join
becomes a semi or anti join on them. A dependent join inside another's right side is flattened
first; the columns it reads of a query further out stay in its result as free columns, which the
outer one's domain then binds. Every operator used is one the distributed planner already runs
(shuffle joins, combine-shuffle-reduce, partitioned windows).
"""
from __future__ import annotations

import itertools
import re
from dataclasses import replace

from sqlglot import exp

from engine.errors import PlanError
from planner.comparable import comparable_pair
from planner.logical import (ZERO_ON_EMPTY, Aggregate, DependentJoin, Distinct, Filter, Join, Limit, Node,
                             Project, Query, SetOp, SingleRow, Sort, Window, and_all, col, column_ids,
                             conjuncts)

# What DuckDB says when a scalar subquery gives a row of the outer query two rows.
MORE_THAN_ONE_ROW = "more than one row returned by a subquery used as an expression"


def flatten_dependent_joins(query: Query) -> Query:
    ids = FreshIds(query.root)
    done: dict[int, Node] = {}
    # A flattened dependent join → its left side: the rows of the one are rows of the other, with
    # the same values in the left's columns, so the distinct values of those columns are read from
    # the left side. Without it a chain of them (one per scalar subquery of a select list) would
    # compute each one's left side again for the next one's domain, twice as often at each step.
    lefts: dict[int, Node] = {}

    def rewrite(node: Node) -> Node:
        # Bottom-up, so that a dependent join inside another's right side is flat first; the plan
        # may share subtrees (an outer relation read twice), each is rewritten once.
        if id(node) in done:
            return done[id(node)]
        kids = tuple(rewrite(c) for c in node.children)
        out = node.with_children(*kids) if any(k is not c for k, c in zip(kids, node.children)) else node
        if isinstance(out, DependentJoin):
            flat = _Flattener(out, ids, lefts).flatten()
            lefts[id(flat)] = out.left
            out = flat
        done[id(node)] = out
        return out
    return replace(query, root=rewrite(query.root))


class FreshIds:
    """Fresh column ids: the plan's ids end in a counter (`l_orderkey_7`); new ones continue it."""

    def __init__(self, root: Node):
        top, seen, stack = 0, set(), [root]
        while stack:
            n = stack.pop()
            if id(n) in seen:
                continue
            seen.add(id(n))
            for c in n.columns:
                m = re.search(r"_(\d+)$", c)
                top = max(top, int(m.group(1))) if m else top
            stack.extend(n.children)
        self._next = itertools.count(top + 1)

    def new(self, base: str) -> str:
        return f"{re.sub(r'_[0-9]+$', '', base)}_{next(self._next)}"


def node_expressions(node: Node) -> list[exp.Expression]:
    """The expressions a node evaluates (not its children's)."""
    if isinstance(node, Filter):
        return [node.predicate]
    if isinstance(node, Project):
        return [e for _, e in node.exprs]
    if isinstance(node, Join):
        return [*node.left_keys, *node.right_keys] + ([node.residual] if node.residual is not None else [])
    if isinstance(node, Aggregate):
        return [e for _, e in node.groups + node.aggs]
    if isinstance(node, Window):
        return [e for _, e in node.funcs]
    if isinstance(node, Sort):
        return list(node.keys)
    if isinstance(node, DependentJoin):
        return [node.condition] if node.condition is not None else []
    return []


def _swap(e: exp.Expression, mapping: dict[str, str]) -> exp.Expression:
    """A copy of e reading mapping[c] in place of each column c it maps (keeping the type)."""
    def repl(n):
        if isinstance(n, exp.Column) and n.name in mapping:
            new = col(mapping[n.name])
            new.type = n.type
            return new
        return n
    return e.transform(repl)


def _null_safe(cid: str) -> exp.Expression:
    # A join key that NULL matches: [NULL] = [NULL] holds in DuckDB, and lists hash like values.
    return exp.Array(expressions=[col(cid)])


def _at_most_one_row(node: Node) -> bool:
    while isinstance(node, (Project, Filter, Sort, Window, Distinct)):
        node = node.input
    if isinstance(node, Limit) and node.limit is not None and node.limit <= 1:
        return True
    return isinstance(node, Aggregate) and not node.groups


def _keyed(left: Node, right: Node, kind: str, conds: list[exp.Expression], lk=(), rk=()) -> Join:
    """Join of left and right on conds: equalities between the sides become keys (made comparable
    as the binder makes them), the rest the residual."""
    lids, rids = set(left.columns), set(right.columns)
    lk, rk, residual = list(lk), list(rk), []
    for c in conds:
        if c == exp.true():  # `LEFT JOIN LATERAL (…) ON true`
            continue
        if isinstance(c, exp.EQ):
            a, b = column_ids(c.this), column_ids(c.expression)
            pair = ((c.this, c.expression) if a and b and a <= lids and b <= rids else
                    (c.expression, c.this) if a and b and b <= lids and a <= rids else None)
            if pair is not None:
                x, y, extra = comparable_pair(*pair)
                lk.append(x)
                rk.append(y)
                residual += [extra] if extra is not None else []
                continue
        residual.append(c)
    if kind == "cross" and (lk or residual):
        kind = "inner"
    if kind == "inner" and not lk and not residual:
        kind = "cross"
    return Join(left, right, kind, tuple(lk), tuple(rk), and_all(residual))


class _Flattener:
    """Pushes the domain of one dependent join's outer columns into its right side."""

    def __init__(self, dj: DependentJoin, ids: FreshIds, lefts: dict[int, Node]):
        self.dj, self.ids = dj, ids
        self.outer = dj.outer
        self._reads: dict[int, bool] = {}
        self.source = dj.left
        while id(self.source) in lefts and set(self.outer) <= set(lefts[id(self.source)].columns):
            self.source = lefts[id(self.source)]

    def flatten(self) -> Node:
        dj = self.dj
        conds = conjuncts(dj.condition)
        if not self.reads(dj.right):
            right = dj.right if not dj.scalar or _at_most_one_row(dj.right) else SingleRow(dj.right)
            return _keyed(dj.left, right, dj.kind if conds or dj.kind != "inner" else "cross", conds)
        right, dmap = self.push(dj.right)
        if dj.scalar and not _at_most_one_row(dj.right):
            right = self.one_row_each(right, dmap)
        joined = _keyed(dj.left, right, dj.kind, conds, [_null_safe(o) for o in self.outer],
                        [_null_safe(dmap[o]) for o in self.outer])
        return Project(joined, tuple((c, col(c)) for c in dj.columns))

    def reads(self, node: Node) -> bool:
        """Whether node or anything under it reads an outer column."""
        hit = self._reads.get(id(node))
        if hit is None:
            outer = set(self.outer)
            hit = any(column_ids(e) & outer for e in node_expressions(node)) or any(self.reads(c) for c in node.children)
            self._reads[id(node)] = hit
        return hit

    def domain(self) -> tuple[Node, dict[str, str]]:
        """The distinct outer values, a fresh copy (fresh ids) each time it is joined in."""
        dmap = {o: self.ids.new(o) for o in self.outer}
        return Distinct(Project(self.source, tuple((dmap[o], col(o)) for o in self.outer))), dmap

    def push(self, node: Node) -> tuple[Node, dict[str, str]]:
        """node with the domain joined in: (node computing its columns for every domain value at
        once, with the domain columns added; outer column → the domain column that holds it)."""
        if not self.reads(node):
            dom, dmap = self.domain()
            return Join(node, dom, "cross"), dmap
        if isinstance(node, Filter):
            if self.reads(node.input):
                inner, dmap = self.push(node.input)
                return Filter(inner, _swap(node.predicate, dmap)), dmap
            # The first place the outer columns are read: the domain is joined in here, and the
            # predicate on them becomes the join's condition.
            dom, dmap = self.domain()
            outer = set(self.outer)
            mine = [c for c in conjuncts(node.predicate) if not column_ids(c) & outer]
            source = Filter(node.input, and_all(mine)) if mine else node.input
            theirs = [_swap(c, dmap) for c in conjuncts(node.predicate) if column_ids(c) & outer]
            return _keyed(source, dom, "inner", theirs), dmap
        if isinstance(node, Project):
            inner, dmap = self.push(node.input)
            exprs = tuple((c, _swap(e, dmap)) for c, e in node.exprs)
            return Project(inner, exprs + tuple((d, col(d)) for d in dmap.values())), dmap
        if isinstance(node, Aggregate):
            return self.push_aggregate(node)
        if isinstance(node, Window):
            inner, dmap = self.push(node.input)
            funcs = []
            for c, w in node.funcs:
                w = _swap(w, dmap)
                w.set("partition_by", [col(d) for d in dmap.values()] + list(w.args.get("partition_by") or []))
                funcs.append((c, w))
            return Window(inner, tuple(funcs)), dmap
        if isinstance(node, Sort):
            # Rows of a subquery have no order outside it; a LIMIT above keeps the keys (below).
            return self.push(node.input)
        if isinstance(node, Limit):
            return self.push_limit(node)
        if isinstance(node, Distinct):
            inner, dmap = self.push(node.input)
            return Distinct(inner), dmap
        if isinstance(node, SingleRow):
            inner, dmap = self.push(node.input)
            return self.one_row_each(inner, dmap), dmap
        if isinstance(node, Join):
            return self.push_join(node)
        if isinstance(node, SetOp):
            sides, dom_ids = [], tuple(self.ids.new(o) for o in self.outer)
            for side in (node.left, node.right):
                inner, dmap = self.push(side)
                sides.append(Project(inner, tuple((c, col(c)) for c in side.columns) +
                                     tuple((dmap[o], col(dmap[o])) for o in self.outer)))
            return SetOp(node.kind, node.all, sides[0], sides[1], node.ids + dom_ids), dict(zip(self.outer, dom_ids))
        raise PlanError(f"cannot flatten a dependent join through {type(node).__name__}")

    def push_aggregate(self, node: Aggregate):
        inner, dmap = self.push(node.input)
        keys = {o: self.ids.new(o) for o in self.outer}
        groups = tuple((c, _swap(e, dmap)) for c, e in node.groups) + tuple((keys[o], col(dmap[o])) for o in self.outer)
        aggs = tuple((c, _swap(e, dmap)) for c, e in node.aggs)
        if node.groups:
            return Aggregate(inner, groups, aggs), keys
        # Without GROUP BY an aggregate has one row even over no rows: every domain value gets its
        # row, from the domain left-joined with the groups; a missing group's aggregates are NULL,
        # which is their value over no rows but for COUNT's 0.
        zero = {c: self.ids.new(c) for c, a in node.aggs
                if isinstance(a.this if isinstance(a, exp.Filter) else a, ZERO_ON_EMPTY)}
        agg = Aggregate(inner, groups, tuple((zero.get(c, c), a) for c, a in aggs))
        dom, dmap = self.domain()
        joined = Join(dom, agg, "left", tuple(_null_safe(dmap[o]) for o in self.outer),
                      tuple(_null_safe(keys[o]) for o in self.outer))
        exprs = tuple((c, exp.Coalesce(this=col(zero[c]), expressions=[exp.Literal.number(0)]) if c in zero else col(c))
                      for c, _ in node.aggs)
        return Project(joined, exprs + tuple((d, col(d)) for d in dmap.values())), dmap

    def push_limit(self, node: Limit):
        source, keys = node.input, ()
        if isinstance(source, Sort):
            source, keys = source.input, source.keys
        inner, dmap = self.push(source)
        rn = self.ids.new("row_number")
        window = exp.Window(this=exp.RowNumber(), partition_by=[col(d) for d in dmap.values()])
        if keys:
            window.set("order", exp.Order(expressions=[_swap(k, dmap) for k in keys]))
        conds = []
        if node.offset:
            conds.append(exp.GT(this=col(rn), expression=exp.Literal.number(node.offset)))
        if node.limit is not None:
            conds.append(exp.LTE(this=col(rn), expression=exp.Literal.number(node.offset + node.limit)))
        numbered = Window(inner, ((rn, window),))
        kept = Filter(numbered, and_all(conds)) if conds else numbered
        return Project(kept, tuple((c, col(c)) for c in inner.columns)), dmap

    def push_join(self, node: Join):
        reads_left, reads_right = self.reads(node.left), self.reads(node.right)
        if node.kind == "full":
            return self.push_full_join(node)
        if node.kind == "right":
            push_left, push_right = reads_left, True
        elif node.kind in ("inner", "cross"):
            push_left, push_right = reads_left or not reads_right, reads_right
        else:  # left, semi, anti, asof: every left row is kept, so every domain value needs its copy
            push_left, push_right = True, reads_right
        left, ldmap = self.push(node.left) if push_left else (node.left, None)
        right, rdmap = self.push(node.right) if push_right else (node.right, None)
        dmap = rdmap if node.kind == "right" or ldmap is None else ldmap
        lk = [_swap(k, dmap) for k in node.left_keys]
        rk = [_swap(k, dmap) for k in node.right_keys]
        if ldmap is not None and rdmap is not None:
            lk += [_null_safe(ldmap[o]) for o in self.outer]
            rk += [_null_safe(rdmap[o]) for o in self.outer]
        residual = _swap(node.residual, dmap) if node.residual is not None else None
        kind = "inner" if node.kind == "cross" and (lk or residual is not None) else node.kind
        return Join(left, right, kind, tuple(lk), tuple(rk), residual), dmap

    def push_full_join(self, node: Join):
        """Both sides keep their unmatched rows, so both get the domain and match on it too; a row
        of one side alone has NULL in the other's domain columns, and its domain value is the one
        its own side holds (a matched row's two are equal, NULL matching NULL)."""
        left, ldmap = self.push(node.left)
        right, rdmap = self.push(node.right)
        lk = [_swap(k, ldmap) for k in node.left_keys] + [_null_safe(ldmap[o]) for o in self.outer]
        rk = [_swap(k, rdmap) for k in node.right_keys] + [_null_safe(rdmap[o]) for o in self.outer]
        residual = _swap(node.residual, ldmap) if node.residual is not None else None
        joined = Join(left, right, "full", tuple(lk), tuple(rk), residual)
        dmap = {o: self.ids.new(o) for o in self.outer}
        domain = tuple((dmap[o], exp.Coalesce(this=col(ldmap[o]), expressions=[col(rdmap[o])])) for o in self.outer)
        return Project(joined, tuple((c, col(c)) for c in node.columns) + domain), dmap

    def one_row_each(self, node: Node, dmap: dict[str, str]) -> Node:
        """A scalar subquery's rows, checked to be at most one per domain value (DuckDB raises)."""
        n = self.ids.new("rows")
        count = exp.Window(this=exp.Count(this=exp.Star()), partition_by=[col(d) for d in dmap.values()])
        check = exp.Case(ifs=[exp.If(this=exp.GT(this=col(n), expression=exp.Literal.number(1)),
                                     true=exp.func("error", exp.Literal.string(MORE_THAN_ONE_ROW)))],
                         default=exp.true())
        return Project(Filter(Window(node, ((n, count),)), check), tuple((c, col(c)) for c in node.columns))
