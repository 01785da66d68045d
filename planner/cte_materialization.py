"""Which CTEs are computed once (kept) and which are planned again where each reference stands.

DuckDB (src/optimizer/cte_inlining.cpp) keeps a CTE that is referenced more than once unless told
otherwise, and always keeps one written `AS MATERIALIZED`; it plans again (inlines) one referenced
once, one written `AS NOT MATERIALIZED`, and, by default, one whose reader ends in a LIMIT (there
its pipelines can stop early: ours compute every input whole anyway, so that rule is not ours).
It never inlines a CTE that calls a volatile function (random(): every reference must see the same
rows) and always keeps one that ends in an aggregate, DISTINCT or window. We follow those rules and
decide the remaining case, a multiply-referenced CTE of scans, filters, projections and joins, with
the cost model: keeping it costs one materialisation plus a read per reference; planning it again
costs its work once more per extra reference, but keeps what inlining gives (a filter of the reader
pushed into the scan, a small table read whole by every rank instead of being gathered). So a CTE
that only filters one table is read again where that is cheaper than holding its rows.

`keep_cost` is also what the physical planner charges a MaterializedCte (planner/physical.py).
"""
from __future__ import annotations

import math

from sqlglot import exp

from planner.cost import CostParams
from planner.estimate import Estimator
from planner.logical import (Aggregate, CteRef, Distinct, Generate, Join, Limit, Node, Scan, SetOp, Sort, Values,
                             Window, walk)
from planner.patterns.base import SCAN_REFERENCE_WIDTH

# Functions whose value differs between two evaluations of the same row: a CTE calling one is kept,
# so that every reference sees the same rows (DuckDB's PreventInlining).
VOLATILE_FUNCTIONS = frozenset({"random", "rand", "uuid", "gen_random_uuid", "uuidv4", "uuidv7", "nextval",
                                "setseed", "now_volatile"})


def volatile(node: Node) -> bool:
    """Whether any expression of the plan under node calls a volatile function."""
    from planner.rules.flatten_dependent_joins import node_expressions
    for n in walk(node):
        for e in node_expressions(n):
            for f in e.find_all(exp.Func):
                name = f.name.lower() if isinstance(f, exp.Anonymous) else f.sql_name().lower()
                if name in VOLATILE_FUNCTIONS or isinstance(f, exp.Rand):
                    return True
    return False


def ends_in_aggregate(node: Node) -> bool:
    """DuckDB's EndsInAggregateOrDistinct: an aggregate, DISTINCT or window under a chain of
    one-input operators."""
    while True:
        if isinstance(node, (Aggregate, Distinct, Window)):
            return True
        if len(node.children) != 1:
            return False
        node = node.children[0]


def work(node: Node, est: Estimator, params: CostParams) -> float:
    """Seconds of local work to compute node's plan once on one rank (all ranks' work together:
    both sides of the comparison divide by the rank count alike)."""
    total = 0.0
    for n in walk(node):
        rows = est.rows(n)
        if isinstance(n, (Scan, Generate, CteRef)):
            total += rows * params.scan_row * max(1.0, est.estimate(n).width / SCAN_REFERENCE_WIDTH)
        elif isinstance(n, Join):
            total += (est.rows(n.left) + est.rows(n.right) + rows) * params.hash_row
        elif isinstance(n, (Aggregate, Distinct, SetOp)):
            total += sum(est.rows(c) for c in n.children) * params.agg_row
        elif isinstance(n, (Window, Sort)) or (isinstance(n, Limit) and isinstance(n.input, Sort)):
            total += params.sort(est.rows(n.children[0]))
        elif isinstance(n, Values):
            total += rows * params.scan_row
    return total


def keep_cost(rows: float, nbytes: float, refs: int, params: CostParams, nranks: int = 1) -> float:
    """Seconds per rank to keep a CTE's result and read it back once per reference: one more
    fragment, its rows turned into Arrow, each reference scanning its share of them."""
    per_rank = 1.0 / max(1, nranks)
    return params.fragment + nbytes * per_rank * params.materialize_byte + refs * rows * per_rank * params.scan_row


def decide(definition: Node, refs: int, hint: bool | None, est: Estimator,
           params: CostParams) -> tuple[bool, str]:
    """(keep the CTE once, why). `hint`: True for AS MATERIALIZED, False for AS NOT MATERIALIZED,
    None when the statement says neither."""
    if hint is True:
        return True, "AS MATERIALIZED"
    if hint is False:
        return False, "AS NOT MATERIALIZED"
    if refs <= 1:
        return False, "referenced once"
    if volatile(definition):
        return True, "calls a volatile function: every reference must see the same rows"
    if ends_in_aggregate(definition):
        return True, f"referenced {refs} times and ends in an aggregate, DISTINCT or window"
    again = (refs - 1) * work(definition, est, params)
    e = est.estimate(definition)
    keep = keep_cost(e.rows, e.bytes, refs, params)
    if again > keep:
        return True, f"referenced {refs} times: computing it again costs {_ms(again)}, keeping it {_ms(keep)}"
    return False, f"referenced {refs} times, but computing it again costs {_ms(again)}, keeping it {_ms(keep)}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}ms" if math.isfinite(seconds) else "∞"
