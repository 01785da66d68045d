"""sample-shuffle-compute: a global ORDER BY as a sample sort.

Each rank samples its sort keys, the samples are gathered and P-1 splitters picked and broadcast,
rows are range-shuffled so rank i holds the i-th key range, and each rank sorts locally: the
concatenation of the ranks' results in rank order is the sorted relation.
"""
from __future__ import annotations

from planner.logical import Sort
from planner.patterns.base import Alternative, Dist, Exchange
from planner.patterns.base import SAMPLE_SHUFFLE_COMPUTE as NAME

SAMPLE_ROWS_PER_RANK = 1024  # rows each rank contributes to the splitter sample


def alternatives(node, kids, ctx) -> list[Alternative]:
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
