"""Logical plan → distributed physical plan: for each operator, the cheapest applicable pattern.

Children are planned first (bottom-up); every pattern in PATTERNS offers its alternatives for the
node given how the children are distributed; the cheapest wins and its lowering (local nodes plus
Exchange nodes) becomes the physical subtree. Each decision is kept for EXPLAIN, with the costs of
the alternatives it beat.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from sqlglot import exp

from planner import patterns
from planner.cost import CostParams
from planner.cte_materialization import keep_cost
from planner.estimate import Estimator
from planner.logical import CteRef, Join, Limit, MaterializedCte, Node, Query, Sort
from planner.patterns.base import ANY, Ctx, Exchange, Phys


@dataclass
class Decision:
    subject: object  # a label, or the logical node (described only when someone asks)
    pattern: str
    cost: float
    rows: float
    bytes: float
    note: str
    beaten: list = field(default_factory=list)  # (pattern, cost, note)

    @property
    def operator(self) -> str:
        """The operator as EXPLAIN names it."""
        return self.subject if isinstance(self.subject, str) else describe(self.subject)

    label = operator


@dataclass
class PhysicalPlan:
    root: Node
    names: tuple[str, ...]
    nranks: int
    decisions: dict = field(default_factory=dict)  # id(physical node) -> Decision
    exchanges: list = field(default_factory=list)   # Exchange nodes by eid
    # No join key can hold NaN, so DuckDB may prune Parquet row groups with join filters built
    # from the other side (it compares NaN against min/max statistics that leave NaN out).
    nan_free_join_keys: bool = False
    # Names the statement (text and parameters) on every rank, so that executors can remember how
    # its fragments ran last time; None for plans that are not kept.
    key: str | None = None
    # The planner's estimate of the whole plan's cost in seconds (planner/cost.py).
    cost: float = 0.0
    # Whether plan() put a gather above a distributed result (its cost is not in `cost`).
    gathered: bool = False
    # The same query planned for rank 0 alone, when that is cheaper (planner/single_rank.py).
    single: "PhysicalPlan | None" = None
    # On such a plan: the ranks of the flock it leaves idle, and the distributed plan's cost.
    alone_of: int = 0
    distributed_cost: float = 0.0
    # Tables of rows built by rank 0 for this statement alone (the system catalog's, for a query
    # that also reads data: engine/catalog_statements.py), by name; they travel with the plan.
    virtual: dict = field(default_factory=dict)

    def __getstate__(self):
        # Decisions are for EXPLAIN on the planning rank only; ranks receive the bare plan (never
        # the one-rank alternative: rank 0 runs that alone).
        state = dict(self.__dict__)
        state.update(decisions={}, exchanges=[], single=None)
        return state


class PhysicalPlanner:
    def __init__(self, estimator: Estimator, params: CostParams, nranks: int, forced: dict | None = None):
        self._ids = itertools.count(1)
        self.ctx = Ctx(estimator, params, nranks, forced or {})
        self.ctx.new_id = self.new_id  # type: ignore[attr-defined]
        self.decisions: dict[int, Decision] = {}
        # A materialized CTE's name -> its planned definition, for the references that read it.
        self._kept: dict[str, Phys] = {}

    def new_id(self, base: str) -> str:
        return f"{base}__p{next(self._ids)}"

    def plan(self, query: Query) -> PhysicalPlan:
        top = self.node(query.root)
        root = top.node
        gathered = top.dist.kind not in ("replicated", "single")
        if gathered:
            root = Exchange(root, "gather")
        plan = PhysicalPlan(root, query.names, self.ctx.nranks, self.decisions, cost=top.cost, gathered=gathered)
        plan.root = _number_exchanges(plan)
        plan.nan_free_join_keys = nan_free_join_keys(root, self.ctx.est.catalog)
        return plan

    def node(self, node: Node) -> Phys:
        if isinstance(node, MaterializedCte):
            return self._materialized_cte(node)
        if isinstance(node, CteRef):
            return self._cte_ref(node)
        # ORDER BY … LIMIT is planned as one operator (top-k).
        if isinstance(node, Limit) and isinstance(node.input, Sort) and node.limit is not None:
            kids = [self.node(node.input.input)]
            if kids[0].dist.kind == "replicated":
                local = Limit(Sort(kids[0].node, node.input.keys), node.limit, node.offset)
                est = self.ctx.est.estimate(node)
                self.decisions[id(local)] = Decision(f"TopK {node.limit}", "embarrassingly-parallel", 0.0, est.rows,
                                                     est.bytes, "input is replicated")
                return Phys(local, kids[0].dist, kids[0].cost)
            return self._choose(node, kids, label=f"TopK {node.limit}")
        kids = [self.node(c) for c in node.children]
        return self._choose(node, kids)

    def _materialized_cte(self, node: MaterializedCte) -> Phys:
        """The definition planned like any input, kept as it is distributed; then the rest of the
        statement, whose references read that partition (no pattern to choose: a kept CTE moves no
        data, and what reads it is priced by the patterns as usual)."""
        self.ctx.est.define_cte(node.name, node.definition)
        definition = self.node(node.definition)
        self._kept[node.name] = definition
        body = self.node(node.input)
        est = self.ctx.est.estimate(node.definition)
        keep = keep_cost(est.rows, est.bytes, node.refs, self.ctx.params, self.ctx.nranks)
        new = MaterializedCte(node.name, node.label, definition.node, body.node, node.refs, node.reason)
        self.decisions[id(new)] = Decision(
            f"MaterializedCte {node.label}", "computed-once", keep, est.rows, est.bytes,
            f"{node.reason}; each rank keeps its part, {describe_dist(definition.dist)}")
        return Phys(new, body.dist, definition.cost + body.cost + keep)

    def _cte_ref(self, node: CteRef) -> Phys:
        """A reference keeps the definition's distribution, under its own column ids: a CTE
        hash-partitioned on its group key joins itself on that key with no exchange."""
        kept = self._kept[node.name]
        mapping: dict[str, set[str]] = {}
        for cid, source in zip(node.ids, node.sources):
            mapping.setdefault(source, set()).add(cid)
        return Phys(node, kept.dist.rename(mapping), 0.0)

    def _choose(self, node: Node, kids: list[Phys], label: str | None = None) -> Phys:
        alts = []
        for module in patterns.PATTERNS:
            alts += module.alternatives(node, kids, self.ctx)
        if not alts and any(k.dist.kind == "replicated" for k in kids):
            # An operator that cannot run on replicated inputs: keep rank 0's copy of them.
            kids = [Phys(Exchange(k.node, "localize"), ANY, k.cost) if k.dist.kind == "replicated" else k for k in kids]
            for module in patterns.PATTERNS:
                alts += module.alternatives(node, kids, self.ctx)
        if not alts:
            from engine.errors import NotSupportedError
            raise NotSupportedError(f"no distributed pattern for {type(node).__name__}")
        forced = self.ctx.forced.get(type(node).__name__)
        pool = [a for a in alts if a.pattern == forced] or alts if forced else alts
        best = min(pool, key=lambda a: a.cost)
        new, dist = best.lower()
        note = best.note
        if isinstance(new, Join) and new.kind == "inner" and self.ctx.rows(node.left) < self.ctx.rows(node.right):
            # DuckDB builds its hash table on the right input; fragments that keep our join order
            # keep this side too, so the smaller estimate goes right.
            new = Join(new.right, new.left, "inner", new.right_keys, new.left_keys, new.residual)
            note += "; inputs swapped so the smaller one is built"
        est = self.ctx.est.estimate(node)
        self.decisions[id(new)] = Decision(label or node, best.pattern, best.cost, est.rows, est.bytes,
                                           note, [(a.pattern, a.cost, a.note) for a in alts if a is not best])
        return Phys(new, dist, sum(k.cost for k in kids) + best.cost)


def describe_dist(dist) -> str:
    """A distribution in words, for EXPLAIN's notes."""
    if dist.kind == "hash":
        keys = ", ".join("=".join(sorted(k)) for k in dist.keys)
        return f"{'range' if dist.fn else 'hash'}-partitioned on [{keys}]"
    return {"replicated": "whole on every rank", "single": "all on rank 0", "range": "in global order",
            "any": "as computed"}.get(dist.kind, dist.kind)


def describe(node: Node) -> str:
    """One line for a node, with the planner's column ids (EXPLAIN VERBOSE's wording)."""
    from planner.explain import describe_node
    return describe_node(node)


def operator_numbers(root: Node) -> dict[int, int]:
    """id(node) -> the node's number in a preorder walk of the plan, each node once. The same on
    every rank (each receives the plan pickled, which keeps its shape and its shared nodes), so
    what a rank measures of an operator travels to rank 0 by number (executors/profile.py to
    planner/explain.py)."""
    numbers: dict[int, int] = {}

    def walk(n: Node) -> None:
        if id(n) in numbers:
            return
        numbers[id(n)] = len(numbers)
        for c in n.children:
            walk(c)
    walk(root)
    return numbers


def _number_exchanges(plan: PhysicalPlan) -> Node:
    counter = itertools.count(1)
    decisions = plan.decisions

    def rec(n: Node) -> Node:
        kids = [rec(c) for c in n.children]
        if isinstance(n, Exchange):
            new = Exchange(kids[0], n.kind, n.keys, next(counter), n.fn)
            plan.exchanges.append(new)
        elif any(a is not b for a, b in zip(kids, n.children)):
            new = n.with_children(*kids)
        else:
            new = n
        if new is not n and id(n) in decisions:
            decisions[id(new)] = decisions.pop(id(n))
        return new
    return rec(plan.root)


def nan_free_join_keys(root: Node, catalog) -> bool:
    """True when every equality key of every join is a column that cannot hold NaN: a table column
    of a type other than float, or a group key, MIN, MAX, SUM or COUNT of one. Any other expression
    counts as a possible float."""
    import pyarrow as pa

    from planner.logical import Aggregate, Join, Project, Scan
    safe: set[str] = set()
    # Children first: a MaterializedCte's definition is walked before the references that read it.

    def nan_free(e) -> bool:
        if isinstance(e, exp.Column):
            return e.name in safe
        if isinstance(e, exp.Count):
            return True
        if isinstance(e, (exp.Min, exp.Max, exp.Sum)):
            return nan_free(e.this)
        return False

    joins: list[Join] = []

    def walk(n: Node):
        for c in n.children:
            walk(c)
        if isinstance(n, Scan):
            schema = catalog.table(n.table).schema
            safe.update(cid for cid, name in n.fields if not pa.types.is_floating(schema.field(name).type))
        elif isinstance(n, Project):
            safe.update(cid for cid, e in n.exprs if nan_free(e))
        elif isinstance(n, Aggregate):
            safe.update(cid for cid, e in (*n.groups, *n.aggs) if nan_free(e))
        elif isinstance(n, CteRef):
            safe.update(cid for cid, source in zip(n.ids, n.sources) if source in safe)
        elif isinstance(n, Join):
            joins.append(n)
    walk(root)
    return all(nan_free(k) for j in joins for k in (*j.left_keys, *j.right_keys))
