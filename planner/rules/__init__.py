"""Logical rewrite rules, one module each, run in the order of RULES by run_rules.

Each rule is a pure function Query -> Query. run_rules can disable a rule by name and records how
long each took.
"""
from __future__ import annotations

import time

from planner.logical import Query
from planner.rules.cte_filters import push_reader_filters_into_ctes
from planner.rules.cte_partition_keys import cte_partition_keys
from planner.rules.distinct_aggregates import distinct_aggregates
from planner.rules.eager_aggregation import eager_aggregation
from planner.rules.flatten_dependent_joins import flatten_dependent_joins
from planner.rules.inner_to_semi_joins import inner_to_semi_joins
from planner.rules.prune_columns import prune_columns
from planner.rules.push_filters import push_filters
from planner.rules.simplify_outer_joins import simplify_outer_joins
from planner.rules.transitive_filters import transitive_filters
from planner.rules.window_top_n import window_top_n

# flatten_dependent_joins first: the other rules and the physical planner know no DependentJoin.
RULES = (flatten_dependent_joins, simplify_outer_joins, push_filters, transitive_filters, push_reader_filters_into_ctes,
         distinct_aggregates, eager_aggregation, prune_columns, inner_to_semi_joins, window_top_n, cte_partition_keys)


def run_rules(query: Query, disabled: frozenset = frozenset(), timings: dict | None = None,
              estimator=None) -> Query:
    """estimator: for the rules that weigh a rewrite by the estimates (skipped without one)."""
    for rule in RULES:
        if rule.__name__ in disabled:
            continue
        t0 = time.perf_counter()
        query = rule(query, estimator) if getattr(rule, "needs_estimator", False) else rule(query)
        if timings is not None:
            timings[rule.__name__] = time.perf_counter() - t0
    return query
