"""globally-reduce: combine every rank's partial state into one answer.

Aggregates without GROUP BY (allreduce of partial states: each rank aggregates its rows, the small
states are exchanged, every rank finishes the same answer, so the result is replicated); ORDER BY
… LIMIT k (each rank keeps its top k, rank 0 merges k·P rows); LIMIT without ORDER BY; a small
ORDER BY (rank 0 merges the sorted runs); and as the last resort for operators that need all rows in
one place (a window without PARTITION BY, an aggregate that cannot be split).
"""
from __future__ import annotations

import math
from dataclasses import replace

from planner.logical import Aggregate, Distinct, Limit, SingleRow, Sort, Window
from planner.patterns.base import REPLICATED, SINGLE, Alternative, Exchange, local_top
from planner.patterns.base import GLOBALLY_REDUCE as NAME
from planner.patterns.combine_shuffle_reduce import combine

# Rank 0's final top-k over the gathered local top-ks, per comparison, as a share of sort_row.
FINAL_TOPK_SHARE = 0.3


def alternatives(node, kids, ctx) -> list[Alternative]:
    if not kids or any(k.dist.kind == "replicated" for k in kids):
        return []
    k = kids[0]
    p, P = ctx.params, ctx.nranks
    if isinstance(node, Aggregate) and not node.groups:
        split = combine(node, k.node, ctx.new_id)
        if split is not None:
            part_node, _, reduce = split
            cost = ctx.rows(node.input) / P * p.agg_row + p.allgather(P * ctx.est.estimate(node).width, P)
            return [Alternative(NAME, cost, lambda: (reduce(Exchange(part_node, "broadcast")), REPLICATED),
                                "allreduce of partial states")]
        cost = p.allgather(ctx.bytes(node.input), P) + ctx.rows(node.input) * p.agg_row
        return [Alternative(NAME, cost, lambda: (node.with_children(Exchange(k.node, "broadcast")), REPLICATED),
                            "aggregate cannot be split: every rank gets all rows")]
    if isinstance(node, Limit) and node.limit is not None:
        inner = node.input
        keep = node.limit + node.offset
        if isinstance(inner, Sort):
            kin = kids[0]
            # The child of the Sort was planned by the caller: kids[0] is the Sort's input.
            rows = min(ctx.rows(inner.input) / P, keep)
            # A top-k keeps a heap of `keep` rows: log2(keep) comparisons a row, on each rank and
            # again on rank 0 over everything gathered. Rank 0's pass costs less a comparison
            # (measured: 10M rows keeping 5M, 1.0 s where a full sort estimate says 3.3 s), but
            # with a deep OFFSET at many ranks it is the serial step that decides.
            local_rows = ctx.rows(inner.input) / P
            cost = local_rows * math.log2(max(2.0, min(keep, local_rows))) * p.sort_row \
                + p.gather(rows * P * ctx.est.estimate(inner).width, P) \
                + FINAL_TOPK_SHARE * rows * P * math.log2(max(2.0, min(keep, rows * P))) * p.sort_row

            def lower_topk():
                local = Limit(Sort(kin.node, inner.keys), keep, 0)
                return Limit(Sort(Exchange(local, "gather"), inner.keys), node.limit, node.offset), SINGLE
            return [Alternative(NAME, cost, lower_topk, f"local top-{keep}, gather {keep}·P rows, final top-k")]
        rows = min(ctx.rows(inner) / P, keep)
        cost = p.gather(rows * P * ctx.est.estimate(inner).width, P)

        def lower_limit():
            return Limit(Exchange(Limit(k.node, keep, 0), "gather"), node.limit, node.offset), SINGLE
        return [Alternative(NAME, cost, lower_limit, "local limit, gather, final limit")]
    if isinstance(node, Limit):  # OFFSET only
        return [Alternative(NAME, p.gather(ctx.bytes(node.input), P),
                            lambda: (Limit(Exchange(k.node, "gather"), None, node.offset), SINGLE), "gather, then offset")]
    if isinstance(node, Sort):
        n = ctx.rows(node.input)
        cost = p.gather(ctx.bytes(node.input), P) + p.sort(n) - p.gather(ctx.bytes(node.input), P) * 0
        return [Alternative(NAME, cost, lambda: (Sort(Exchange(Sort(k.node, node.keys), "gather"), node.keys), SINGLE),
                            "local sort, gather the runs to rank 0, merge")]
    if isinstance(node, SingleRow):
        return [Alternative(NAME, p.allgather(ctx.bytes(node.input), P),
                            lambda: (SingleRow(Exchange(k.node, "broadcast")), REPLICATED), "every rank gets the row")]
    if isinstance(node, Window) and node.top is not None:
        # Each rank's own first N rows of each partition: the global first N are among them.
        partitions = 1.0
        for w in dict(node.funcs).values():
            keys = w.args.get("partition_by") or []
            partitions = max(partitions, ctx.est.key_ndv(node.input, keys) if keys else 1.0)
        kept = min(ctx.rows(node.input), node.top[1] * P * partitions)
        width = ctx.bytes(node.input) / max(ctx.rows(node.input), 1.0)
        cost = p.sort(ctx.rows(node.input) / P) + p.gather(kept * width, P) + p.sort(kept)
        return [Alternative(NAME, cost, lambda: (replace(node, input=Exchange(local_top(k.node, node, ctx), "gather")),
                                                 SINGLE), f"each rank's first {node.top[1]} rows{' per partition' if partitions > 1 else ''} to rank 0")]
    if isinstance(node, Window):
        cost = p.gather(ctx.bytes(node.input), P) + p.sort(ctx.rows(node.input))
        return [Alternative(NAME, cost * 2, lambda: (Window(Exchange(k.node, "gather"), node.funcs), SINGLE),
                            "all rows to rank 0 (no PARTITION BY)")]
    if isinstance(node, (Aggregate, Distinct)):
        # Last resort for grouped aggregates: all rows to rank 0.
        cost = p.gather(ctx.bytes(node.input), P) + ctx.rows(node.input) * p.agg_row
        return [Alternative(NAME, cost * 4, lambda: (node.with_children(Exchange(k.node, "gather")), SINGLE),
                            "all rows to rank 0")]
    return []
