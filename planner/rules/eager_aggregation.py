"""eager_aggregation: an aggregate over inner joins is computed in part before the join of a table
that only gives it group keys.

Before:  Aggregate[by c_name, d_year: sum(ss_price)] ← Join(ss_customer_sk = c_customer_sk)
             ← (store_sales ⋈ date_dim), customer
After:   Project ← Aggregate[by c_name, d_year: sum(part)] ← Join(ss_customer_sk = c_customer_sk)
             ← Aggregate·local[by d_year, ss_customer_sk: part = sum(ss_price)] ← (store_sales ⋈ date_dim),
               customer

TPC-DS q4, q11 and q74 group a year of sales by the customer's id and names: the million sales
rows were joined to the customer's seven columns and grouped by them; now a rank first sums its
own rows by (customer key, year), a tenth as many, and only those meet the customer table.

Why the answer stays the same: the join sends each row of the aggregated side to the same partner
rows whether it is summed first or not, so a partial state joined to k partners counts k times,
as its rows would have; the final aggregate merges the states (sum of sums, sum of counts, min of
mins). The joined table (D) must give no aggregate an argument, meet the rest by equalities of
bare columns, and be a plain scan: a table filtered, or a join that drops rows, would have
dropped rows before they were summed, and summing them all first could cost more than it saves.
The partial aggregate is marked local (each rank may compute it over its own rows alone, since
the final one merges its states), and is only built where the estimates say it keeps at most a
quarter of the rows.
"""
from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from planner.logical import Aggregate, Join, Node, Project, Query, Scan, and_all, col, column_ids
from planner.patterns.combine_shuffle_reduce import split_aggregates
from planner.rules.flatten_dependent_joins import FreshIds

# The partial aggregate must keep at most this share of its input's rows (estimated).
MAX_KEPT_SHARE = 0.25


def _inner_leaves(node: Node):
    """(leaves, equality pairs, residuals) of a tree of inner joins."""
    if isinstance(node, Join) and node.kind == "inner":
        la, lp, lr = _inner_leaves(node.left)
        ra, rp, rr = _inner_leaves(node.right)
        res = [node.residual] if node.residual is not None else []
        return la + ra, lp + rp + list(zip(node.left_keys, node.right_keys)), lr + rr + res
    return [node], [], []


def _plain_table(node: Node) -> bool:
    """A scan, under projections only: every row of the table reaches the join."""
    while isinstance(node, Project):
        node = node.input
    return isinstance(node, Scan)


def _join_all(leaves: list[Node], pairs, residuals) -> Node | None:
    """The leaves joined again, each next one that an equality connects to those joined so far;
    None if some leaf is connected by none."""
    out, have, left = leaves[0], set(leaves[0].columns), list(leaves[1:])
    pairs, residuals = list(pairs), list(residuals)
    while left:
        for leaf in left:
            cols = set(leaf.columns)
            lk, rk, rest = [], [], []
            for a, b in pairs:
                if column_ids(a) <= have and column_ids(b) <= cols:
                    lk.append(a), rk.append(b)
                elif column_ids(b) <= have and column_ids(a) <= cols:
                    lk.append(b), rk.append(a)
                else:
                    rest.append((a, b))
            if lk:
                break
        else:
            return None
        have |= cols
        pairs = rest
        ready = [r for r in residuals if column_ids(r) <= have]
        residuals = [r for r in residuals if not column_ids(r) <= have]
        out = Join(out, leaf, "inner", tuple(lk), tuple(rk), and_all(ready) if ready else None)
        left.remove(leaf)
    if pairs or residuals:
        return None
    return out


class _Rewriter:
    def __init__(self, root: Node, estimator):
        self.est = estimator
        self.new_id = FreshIds(root).new

    def rewrite(self, node: Node) -> Node:
        kids = [self.rewrite(c) for c in node.children]
        if any(a is not b for a, b in zip(kids, node.children)):
            node = node.with_children(*kids)
        if isinstance(node, Aggregate) and node.groups and not node.local and not node.partition_on \
                and isinstance(node.input, Join):
            if node.input.kind == "inner":
                return self._eager(node) or node
            if node.input.kind == "left":
                return self._eager_left(node) or node
        return node

    def _eager_left(self, agg: Aggregate) -> Node | None:
        """D LEFT JOIN rest, grouped by columns of D (and maybe of rest): rest is summed in part by
        the join keys first. A D row no rest row matches meets no partial state, as it met only its
        NULL-extended row before: each aggregate must ignore that row (count, sum, min, max or avg of
        a bare column of rest; not count(*), nor an expression that may be non-NULL over NULLs)."""
        join = agg.input
        d, rest = join.left, join.right
        if join.residual is not None or not all(_ignores_null_rows(e) for _, e in agg.aggs):
            return None
        dcols = set(d.columns)
        if any(column_ids(g) - dcols and not isinstance(g, exp.Column) for _, g in agg.groups):
            return None  # a key over rest's columns must be NULL on a NULL-extended row (`coalesce(x, 0)` is not)
        d_pairs = []
        for a, b in zip(join.left_keys, join.right_keys):
            if not (isinstance(a, exp.Column) and isinstance(b, exp.Column)):
                return None
            d_pairs.append((b.name, a.name))
        return self._partial_then_join(agg, d, rest, d_pairs, "left")

    def _eager(self, agg: Aggregate) -> Node | None:
        leaves, pairs, residuals = _inner_leaves(agg.input)
        agg_reads = set().union(*(column_ids(e) for _, e in agg.aggs)) if agg.aggs else set()
        for d in leaves:
            out = self._without(agg, d, leaves, pairs, residuals, agg_reads)
            if out is not None:
                return out
        return None

    def _without(self, agg, d, leaves, pairs, residuals, agg_reads):
        dcols = set(d.columns)
        if not _plain_table(d) or agg_reads & dcols or any(column_ids(r) & dcols for r in residuals):
            return None
        d_pairs, rest_pairs = [], []
        for a, b in pairs:
            ra, rb = column_ids(a), column_ids(b)
            if not (ra | rb) & dcols:
                rest_pairs.append((a, b))
                continue
            if not (isinstance(a, exp.Column) and isinstance(b, exp.Column)):
                return None
            if a.name in dcols and b.name not in dcols:
                d_pairs.append((b.name, a.name))
            elif b.name in dcols and a.name not in dcols:
                d_pairs.append((a.name, b.name))
            else:
                return None
        others = [x for x in leaves if x is not d]
        if not d_pairs or not others:
            return None
        rest = _join_all(others, rest_pairs, residuals)
        if rest is None:
            return None
        return self._partial_then_join(agg, d, rest, d_pairs, "inner")

    def _partial_then_join(self, agg: Aggregate, d: Node, rest: Node, d_pairs, kind: str) -> Node | None:
        """agg over `rest` summed in part by its join keys (and its own group keys), then joined to
        the plain table `d` (d_pairs: (rest column, d column)) and merged; None where it does not
        pay or cannot be split."""
        dcols = set(d.columns)
        agg_reads = set().union(*(column_ids(e) for _, e in agg.aggs)) if agg.aggs else set()
        if not d_pairs or not _plain_table(d) or agg_reads & dcols:
            return None
        rest_keys = []
        for gid, g in agg.groups:
            reads = column_ids(g)
            if reads & dcols and not reads <= dcols:
                return None
            if not reads <= dcols or not reads:
                rest_keys.append(gid)
        if len(rest_keys) == len(agg.groups):
            return None
        split = split_aggregates(agg.aggs, self.new_id)
        if split is None or split[1]:
            return None
        partial, _, final, post = split
        groups = dict(agg.groups)
        part_keys = [(self.new_id(gid), groups[gid]) for gid in rest_keys]
        join_keys = {}
        for r, _ in d_pairs:
            if r not in join_keys:
                join_keys[r] = self.new_id(r)
        part = Aggregate(rest, tuple(part_keys) + tuple((k, col(r)) for r, k in join_keys.items()), tuple(partial),
                         local=True)
        if self.est.estimate(part).rows > MAX_KEPT_SHARE * self.est.estimate(rest).rows:
            return None
        part_side, d_side = tuple(col(join_keys[r]) for r, _ in d_pairs), tuple(col(c) for _, c in d_pairs)
        joined = Join(part, d, "inner", part_side, d_side) if kind == "inner" else \
            Join(d, part, "left", d_side, part_side)
        kept = {gid: col(pid) for gid, (pid, _) in zip(rest_keys, part_keys)}
        merged = Aggregate(joined, tuple((gid, kept.get(gid, g)) for gid, g in agg.groups), tuple(final))
        return Project(merged, tuple((gid, col(gid)) for gid, _ in agg.groups) +
                       tuple((aid, post[aid]) for aid, _ in agg.aggs))


def _ignores_null_rows(aggregate: exp.Expression) -> bool:
    """count, sum, min, max or avg of a bare column (FILTER allowed): a row whose columns are all
    NULL changes nothing in it."""
    inner = aggregate.this if isinstance(aggregate, exp.Filter) else aggregate
    return isinstance(inner, (exp.Count, exp.Sum, exp.Min, exp.Max, exp.Avg)) and isinstance(inner.this, exp.Column)


def eager_aggregation(query: Query, estimator=None) -> Query:
    if estimator is None:
        return query
    return replace(query, root=_Rewriter(query.root, estimator).rewrite(query.root))


eager_aggregation.needs_estimator = True  # type: ignore[attr-defined]
