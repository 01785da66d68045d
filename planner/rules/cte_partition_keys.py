"""cte_partition_keys: a kept CTE that ends in an aggregate, and whose readers join it on some of
its group keys, is partitioned on those keys alone.

A kept CTE stays where its aggregate's shuffle put its rows: hash-partitioned on every group key.
TPC-DS q31 reads two CTEs grouped by (county, quarter, year) six times and joins the six readers
on county: each join then moved one side to every rank (five broadcasts, each a round of messages,
for a few thousand rows). Partitioned on county alone (planner/patterns/base.py
aggregate_hash_positions, where the keys have enough values for the ranks), every rank holds all
rows of its counties in every reader, and the joins run where the rows are.

The keys are those every join keyed on the CTE's columns (traced through filters, projections and
other joins) uses; a CTE whose readers join on no common group key keeps its partitioning.
"""
from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from planner.logical import (Aggregate, CteRef, Filter, Join, MaterializedCte, Node, Project, Query, column_origin,
                             replace_nodes, walk)


def cte_partition_keys(query: Query) -> Query:
    changed: dict[int, Node] = {}  # id(aggregate) -> the same aggregate with partition_on
    for kept in (n for n in walk(query.root) if isinstance(n, MaterializedCte)):
        found = _final_aggregate(kept.definition)
        if found is None:
            continue
        aggregate, group_of = found
        keys = _joined_keys(kept.input, kept.name)
        if not keys:
            continue
        groups = {group_of[c] for c in keys if c in group_of}
        if len(groups) != len(keys) or len(groups) >= len(aggregate.groups):
            continue
        order = [g for g, _ in aggregate.groups if g in groups]
        changed[id(aggregate)] = replace(aggregate, partition_on=tuple(order))
    if not changed:
        return query
    return replace(query, root=replace_nodes(query.root, lambda n: changed.get(id(n))))


def _final_aggregate(node: Node):
    """(aggregate, definition column id -> its group id) where the CTE's rows come from an
    aggregate through filters and projections of its columns; None otherwise."""
    rename: dict[str, str] = {c: c for c in node.columns}  # definition column -> column of `node`
    while isinstance(node, (Filter, Project)):
        if isinstance(node, Project):
            exprs = dict(node.exprs)
            rename = {out: exprs[c].name for out, c in rename.items()
                      if isinstance(exprs.get(c), exp.Column)}
        node = node.input
    if not isinstance(node, Aggregate) or not node.groups or node.local or node.partition_on:
        return None
    group_ids = {g for g, _ in node.groups}
    return node, {out: c for out, c in rename.items() if c in group_ids}


def _joined_keys(body: Node, name: str) -> set[str] | None:
    """The CTE's columns (definition ids) that every join keyed on the CTE's columns uses as keys.
    (A join keyed on other columns only meets rows the joins below it placed already.)"""
    common = None
    for join in (n for n in walk(body) if isinstance(n, Join)):
        used: set[str] = set()
        for key in (*join.left_keys, *join.right_keys):
            if not isinstance(key, exp.Column):
                continue
            leaf = column_origin(join, key.name)
            if leaf is not None and isinstance(leaf[0], CteRef) and leaf[0].name == name:
                used.add(dict(zip(leaf[0].ids, leaf[0].sources))[leaf[1]])
        if used:
            common = used if common is None else common & used
    return common

