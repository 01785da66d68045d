"""embarrassingly-parallel: row-wise work on each rank's own rows, no communication.

Filters, projections, and any operator whose inputs are already where they need to be
(every input replicated, or a UNION ALL of partitioned inputs).
"""
from __future__ import annotations

from sqlglot import exp

from planner.logical import Aggregate, Distinct, Filter, Join, Limit, Project, SetOp, SingleRow, Sort, Values, Window
from planner.patterns.base import EMBARRASSINGLY_PARALLEL as NAME
from planner.patterns.base import REPLICATED, Alternative, Dist

LOCAL_ROW = 1e-9  # s per row of row-wise work: tiny next to any exchange


def alternatives(node, kids, ctx) -> list[Alternative]:
    if isinstance(node, Values):
        return [Alternative(NAME, 0.0, lambda: (node, REPLICATED), "every rank holds the rows")]
    if isinstance(node, Filter):
        k = kids[0]
        return [Alternative(NAME, ctx.rows(node.input) / ctx.nranks * LOCAL_ROW,
                            lambda: (Filter(k.node, node.predicate), k.dist))]
    if isinstance(node, Project):
        k = kids[0]
        mapping: dict[str, set[str]] = {}
        for cid, e in node.exprs:
            if isinstance(e, exp.Column):
                mapping.setdefault(e.name, set()).add(cid)
        return [Alternative(NAME, ctx.rows(node.input) / ctx.nranks * LOCAL_ROW,
                            lambda: (Project(k.node, node.exprs), k.dist.rename(mapping)))]
    if isinstance(node, Aggregate) and node.local and kids[0].dist.kind != "replicated":
        # A pre-aggregation that an aggregate above merges: each rank groups its own rows.
        k = kids[0]
        mapping: dict[str, set[str]] = {}
        for gid, g in node.groups:
            if isinstance(g, exp.Column):
                mapping.setdefault(g.name, set()).add(gid)
        return [Alternative(NAME, ctx.rows(node.input) / ctx.nranks * ctx.params.agg_row,
                            lambda: (node.with_children(k.node), k.dist.rename(mapping)),
                            "each rank groups its own rows; the aggregate above merges them")]
    if all(k.dist.kind == "replicated" for k in kids) and kids:
        # Every rank holds all input rows: compute locally, the result is replicated too.
        return [Alternative(NAME, _local_cost(node, ctx), lambda: (node.with_children(*[k.node for k in kids]), REPLICATED),
                            "inputs are replicated")]
    if isinstance(node, SetOp) and node.kind == "union" and node.all and not any(k.dist.kind == "replicated" for k in kids):
        return [Alternative(NAME, 0.0, lambda: (node.with_children(*[k.node for k in kids]), Dist("any")),
                            "concatenate the partitions")]
    return []


def _local_cost(node, ctx) -> float:
    p = ctx.params
    if isinstance(node, Join):
        return (ctx.rows(node.left) + ctx.rows(node.right)) * p.hash_row
    if isinstance(node, (Aggregate, Distinct)):
        return ctx.rows(node.input) * p.agg_row
    if isinstance(node, (Sort, Window)):
        return p.sort(ctx.rows(node.input))
    if isinstance(node, (Limit, SingleRow)):
        return 0.0
    return sum(ctx.rows(c) for c in node.children) * LOCAL_ROW
