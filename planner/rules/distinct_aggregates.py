"""distinct_aggregates: a global aggregate with DISTINCT over one argument is grouped by that
argument first, so that both steps split into partial states.

Before:  Aggregate[avg(p), count(p), count(DISTINCT p)] ← store_sales
After:   Project ← Aggregate[sum(s) / sum(n), sum(n), count(p')] ← Aggregate[by p' = p: s = sum(p), n = count(p)]
         ← store_sales

Without it such an aggregate cannot be split into per-rank states: every rank read all of
store_sales for each of TPC-DS q28's six buckets, and q16, q94 and q95 gathered every order row.
Grouped by the argument, each distinct value is one row of the inner aggregate (which the ranks
combine, shuffle by the value and reduce), so count/sum/avg/min/max of DISTINCT p are those of p'
in the outer one; the other aggregates merge their partial states as a split aggregate does.
With GROUP BY keys the plain plan already shuffles rows by them, so only global aggregates change.
"""
from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from planner.logical import Aggregate, Node, Project, Query, col
from planner.patterns.combine_shuffle_reduce import split_aggregates
from planner.rules.flatten_dependent_joins import FreshIds

# DISTINCT aggregates whose value over the distinct values is the same function over p'.
_OVER_VALUES = (exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max)


def _distinct_argument(agg: exp.Expression) -> exp.Expression | None:
    """x of `f(DISTINCT x)` for the functions above, else None."""
    if type(agg) not in _OVER_VALUES or not isinstance(agg.this, exp.Distinct):
        return None
    args = agg.this.expressions
    return args[0] if len(args) == 1 else None


class _Rewriter:
    def __init__(self, root: Node):
        self.new_id = FreshIds(root).new

    def rewrite(self, node: Node) -> Node:
        kids = [self.rewrite(c) for c in node.children]
        if any(a is not b for a, b in zip(kids, node.children)):
            node = node.with_children(*kids)
        if isinstance(node, Aggregate) and not node.groups and not node.local:
            return self._split(node) or node
        return node

    def _split(self, agg: Aggregate) -> Node | None:
        distinct, plain, argument = [], [], None
        for aid, e in agg.aggs:
            x = _distinct_argument(e)
            if x is None:
                if any(isinstance(n, exp.Distinct) for n in e.walk()):
                    return None
                plain.append((aid, e))
                continue
            if argument is not None and x.sql("duckdb") != argument.sql("duckdb"):
                return None
            argument = x
            distinct.append((aid, e))
        if argument is None:
            return None
        split = split_aggregates(tuple(plain), self.new_id)
        if split is None or split[1]:
            return None
        partial, _, final, post = split
        value = self.new_id("distinct_value")
        inner = Aggregate(agg.input, ((value, argument.copy()),), tuple(partial))
        outer = Aggregate(inner, (), tuple(final) + tuple((aid, type(e)(this=col(value))) for aid, e in distinct))
        return Project(outer, tuple((aid, post[aid] if aid in post else col(aid)) for aid, _ in agg.aggs))


def distinct_aggregates(query: Query) -> Query:
    return replace(query, root=_Rewriter(query.root).rewrite(query.root))
