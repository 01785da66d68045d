"""Rank 0 alone: the whole-plan alternative to distributing a small query.

Distributing costs a fixed price whatever the data: every exchange is a round in which all ranks
take part (CostParams.fragment and α), the workers receive the plan and report their statistics, and
a rank busy with another query's fragment delays the round for everyone. For a query over little
data (a dimension table, a catalog look-up, `count(*)` of a few thousand rows) that price is most of
the time, and rank 0 reading the tables whole and answering alone is faster; the other ranks stay
free for the queries that need them.

So the planner also plans such a query for one rank, and keeps that plan beside the distributed one
when the cost model finds it cheaper. Rank 0 runs it when the result goes to rank 0 anyway (collect,
stream, EXPLAIN ANALYZE); a client that asked for the result in parts per rank gets the distributed
plan. Only plans cheap in both forms are compared (ALONE_MAX_COST_S), so a query that reads a lot never
lands on one rank.
"""
from __future__ import annotations

import os

from planner.copartition import copartition
from planner.cost import CostParams
from planner.estimate import Estimator
from planner.logical import Query
from planner.patterns.base import Exchange
from planner.physical import PhysicalPlan, PhysicalPlanner

# Plans estimated to cost more than this (seconds, planner/cost.py) are not run by one rank, in
# either form: the distributed plan is not planned again for one rank when it costs more, and the
# one-rank plan is not kept when it does. About twenty exchange rounds' fixed cost.
ALONE_MAX_COST_S = 0.05
# Sets ALONE_MAX_COST_S (0 turns rank-0-alone plans off, as the tests do to exercise the exchanges
# on their small tables).
ALONE_MAX_COST_ENV = "FLOCKSQL_ALONE_MAX_COST_S"


def alone_max_cost() -> float:
    raw = os.environ.get(ALONE_MAX_COST_ENV)
    if raw is None:
        return ALONE_MAX_COST_S
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise ValueError(f"{ALONE_MAX_COST_ENV} must be a number of seconds, not {raw!r}") from None


def distributed_cost(plan: PhysicalPlan, est: Estimator, params: CostParams) -> float:
    """The plan's cost with the final gather PhysicalPlanner.plan adds above a distributed result,
    which no pattern priced."""
    root = plan.root
    if plan.gathered and isinstance(root, Exchange):
        return plan.cost + params.gather(est.estimate(root.input).bytes, plan.nranks)
    return plan.cost


def single_rank_plan(query: Query, est: Estimator, params: CostParams, distributed: PhysicalPlan,
                     max_cost: float) -> PhysicalPlan | None:
    """The plan of `query` for rank 0 alone over whole tables, when it is cheaper than `distributed`
    (the same query planned for its ranks) and both cost at most max_cost; else None. `query` is
    the logical plan before copartitioning."""
    if distributed.nranks <= 1 or max_cost <= 0:
        return None
    spread = distributed_cost(distributed, est, params)
    if spread > max_cost:
        return None
    single = PhysicalPlanner(est, params, 1).plan(copartition(query, est.catalog, 1))
    if single.cost >= spread or single.cost > max_cost:
        return None
    single.alone_of = distributed.nranks
    single.distributed_cost = spread
    return single
