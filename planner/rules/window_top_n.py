"""window_top_n: a filter that keeps each window partition's first N rows lets every rank drop, before
the window's shuffle, the rows it already places past N among its own rows.

Before:  Filter[r <= 100] ← Window[r = rank() OVER (PARTITION BY c ORDER BY s DESC)] ← x
After:   the same, the Window marked top = (r, 100); shuffle-compute then shuffles
         Filter[local r <= 100] ← Window[local r] ← x instead of x (TPC-DS q67: 1,100 rows of 505,000),
         and without PARTITION BY, globally-reduce gathers each rank's first 100 rows, not all.

Why the answer stays the same: a row's rank among all rows is at least its rank among one rank's
rows (rank: 1 + the rows ordered before it; dense_rank: 1 + the distinct values before it;
row_number: 1 + the rows before it, ties in any order), so no row the filter keeps is dropped; and
every row ordered before a kept row is kept too, so each kept row's value is unchanged. That holds
for the node's other functions only when they are of these kinds over the same window, so the node
must have no others.
"""
from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from planner.logical import Filter, Node, Query, Window, conjuncts

RANKING = (exp.Rank, exp.DenseRank, exp.RowNumber)


def _window_spec(w: exp.Expression) -> tuple:
    return (tuple(k.sql("duckdb") for k in w.args.get("partition_by") or ()),
            w.args["order"].sql("duckdb") if w.args.get("order") is not None else "")


def _bound(c: exp.Expression, ids: set[str]) -> tuple[str, int] | None:
    """(function id, N) when the conjunct keeps only rows whose function value is at most N."""
    while isinstance(c, exp.Paren):
        c = c.this
    flip = {exp.GTE: exp.LTE, exp.GT: exp.LT, exp.EQ: exp.EQ}
    if isinstance(c, tuple(flip)) and isinstance(c.expression, exp.Column):
        c = flip[type(c)](this=c.expression, expression=c.this)
    if isinstance(c, exp.Between):
        c = exp.LTE(this=c.this, expression=c.args["high"])
    if not (isinstance(c, (exp.LTE, exp.LT, exp.EQ)) and isinstance(c.this, exp.Column) and c.this.name in ids):
        return None
    lit = c.expression
    if not (isinstance(lit, exp.Literal) and not lit.is_string and lit.this.isdigit()):
        return None
    n = int(lit.this) - (1 if isinstance(c, exp.LT) else 0)
    return (c.this.name, n) if n >= 1 else None


def _mark(node: Node) -> Node:
    node = node.with_children(*(_mark(c) for c in node.children))
    if not (isinstance(node, Filter) and isinstance(node.input, Window) and node.input.top is None):
        return node
    window = node.input
    funcs = [w for _, w in window.funcs]
    if not all(isinstance(w, exp.Window) and isinstance(w.this, RANKING) and w.args.get("spec") is None
               for w in funcs) or len({_window_spec(w) for w in funcs}) != 1:
        return node
    bounds = [b for c in conjuncts(node.predicate) if (b := _bound(c, {i for i, _ in window.funcs}))]
    if not bounds:
        return node
    return replace(node, input=replace(window, top=min(bounds, key=lambda b: b[1])))


def window_top_n(query: Query) -> Query:
    return replace(query, root=_mark(query.root))
