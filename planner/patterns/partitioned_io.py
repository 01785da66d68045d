"""partitioned-io: each rank reads its own share of a table's row groups (and, for CREATE TABLE AS,
writes its own part file). No communication for splittable Parquet. A table function that generates
rows (range, generate_series, unnest of a list) is read the same way: each rank makes its slice."""
from __future__ import annotations

from planner.logical import Generate, Scan
from planner.patterns.base import ANY, Alternative, hash_dist, scan_cost
from planner.patterns.base import PARTITIONED_IO as NAME


def alternatives(node, kids, ctx) -> list[Alternative]:
    if isinstance(node, Generate):
        return [Alternative(NAME, scan_cost(node, ctx), lambda: (node, ANY), "each rank makes its slice of the rows")]
    if not isinstance(node, Scan):
        return []
    cost = scan_cost(node, ctx)
    key = node.key_range_id()
    if key is not None and ctx.nranks > 1:
        dist = hash_dist([key], ("range", node.key_range[1]))
        return [Alternative(NAME, cost, lambda: (node, dist), f"range-partitioned on {node.key_range[0]}")]
    return [Alternative(NAME, cost, lambda: (node, ANY), "row groups split over the ranks")]
