"""sample-shuffle-compute: a global ORDER BY as a sample sort.

Each rank samples its sort keys, the samples are gathered and P-1 splitters picked and broadcast,
rows are range-shuffled so rank i holds the i-th key range, and each rank sorts locally: the
concatenation of the ranks' results in rank order is the sorted relation.

LIMIT/OFFSET over it needs no final sort on one rank: the ranks share their row counts, so each
knows which of its rows fall in the global window, and only those travel to rank 0 ('slice').
"""
from __future__ import annotations

from planner.logical import Limit, Sort
from planner.patterns.base import SINGLE, Alternative, Dist, Exchange
from planner.patterns.base import SAMPLE_SHUFFLE_COMPUTE as NAME

SAMPLE_ROWS_PER_RANK = 1024  # rows each rank contributes to the splitter sample


def alternatives(node, kids, ctx) -> list[Alternative]:
    if isinstance(node, Limit):
        return _window(node, kids, ctx)
    if not isinstance(node, Sort) or kids[0].dist.kind == "replicated":
        return []
    k = kids[0]
    p, P = ctx.params, ctx.nranks
    n = ctx.rows(node.input)
    sample = p.allgather(SAMPLE_ROWS_PER_RANK * P * 16, P)
    # The sorted ranges still travel to rank 0 at the end, like the gathered runs of the alternative.
    # Steps beyond a plain shuffle: the sample, the splitters, and assigning each row its range
    # (a second local sort).
    cost = sample + p.shuffle(ctx.bytes(node.input), P) + 2 * p.sort(n / P) + p.gather(ctx.bytes(node.input), P) \
        + 2 * p.fragment
    return [Alternative(NAME, cost, lambda: (Sort(Exchange(k.node, "range", node.keys), node.keys), Dist("range")),
                        "sample splitters, range shuffle, local sort")]


def _window(node: Limit, kids, ctx) -> list[Alternative]:
    """ORDER BY … LIMIT/OFFSET (planned as one operator, kids[0] is the Sort's input) or a
    LIMIT/OFFSET over rows already range-sorted: sort if needed, then slice the global window."""
    k = kids[0]
    p, P = ctx.params, ctx.nranks
    if k.dist.kind == "replicated":
        return []
    window = (node.offset, node.limit)
    if isinstance(node.input, Sort) and node.limit is not None:
        sort = node.input
        n = ctx.rows(sort.input)
        keep = min(node.limit, n)
        # Assigning each row its range is a sort too (measured: the range step and the local sort
        # of 5M rows a rank take 2.3 times one sort's estimate).
        cost = p.allgather(SAMPLE_ROWS_PER_RANK * P * 16, P) + p.shuffle(ctx.bytes(sort.input), P) \
            + 3 * p.sort(n / P) + p.gather(keep * ctx.est.estimate(sort).width, P) + 3 * p.fragment

        def lower_sorted():
            ranged = Sort(Exchange(k.node, "range", sort.keys), sort.keys)
            return Exchange(ranged, "slice", fn=window), SINGLE
        return [Alternative(NAME, cost, lower_sorted, "sample sort, then only the global window goes to rank 0")]
    if k.dist.kind != "range":
        return []
    rows = ctx.rows(node.input) if node.limit is None else min(node.limit, ctx.rows(node.input))
    cost = p.gather(rows * ctx.est.estimate(node.input).width, P) + p.fragment
    return [Alternative(NAME, cost, lambda: (Exchange(k.node, "slice", fn=window), SINGLE),
                        "input already range-sorted: only the global window goes to rank 0")]
