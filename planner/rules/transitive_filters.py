"""transitive_filters: a filter on one side's join key holds for the other side's key too.

Before:  Join(left, ss_year = ws_year …) ← [… ss_year = 2000 …], [ws: every year grouped]
After:   Join(left, ss_year = ws_year …) ← [… ss_year = 2000 …], [ws: … Filter[ws_year = 2000] …]

A row of one side meets only rows of the other whose key is equal, so a conjunct over one side's
key alone, which every row of that side satisfies, can be applied to the other side's key: the
rows it drops could meet nothing (TPC-DS q78: store sales of 2000 LEFT JOINed with web and
catalog sales grouped by year, which were grouped for every year). The other side must be one the
join may filter before it: both sides of an inner join; the NULL-extended side of a LEFT or RIGHT
join (its rows that meet nothing are dropped by the join anyway); either side of a SEMI join and
the right side of an ANTI join. The moved conjunct goes as deep as push_filters would take it.

What every row of a side satisfies is read from the filters under it, through projections and
group keys that pass columns on, and the sides of joins that are never NULL-extended.
"""
from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from planner.logical import (Aggregate, Distinct, Filter, Join, Limit, MaterializedCte, Node, Project, Query, Sort,
                             col, column_ids, conjuncts)
from planner.rules.push_filters import KEPT_SIDES, Mover, cannot_raise, same_type, substitute

# Join kind -> the directions (from side, to side) in which a key's conjuncts may be copied.
_DIRECTIONS = {"inner": ((0, 1), (1, 0)), "left": ((0, 1),), "right": ((1, 0),), "semi": ((0, 1), (1, 0)),
               "anti": ((0, 1),)}


class _Transfer:
    def __init__(self, types: dict):
        self.types = types
        self.mover = Mover(types)
        self._implied: dict[int, tuple[Node, list]] = {}

    def implied(self, node: Node) -> list[exp.Expression]:
        """Conjuncts (that cannot raise) every output row of node satisfies."""
        hit = self._implied.get(id(node))
        if hit is not None and hit[0] is node:
            return hit[1]
        out: list[exp.Expression] = []
        if isinstance(node, Filter):
            out = self.implied(node.input) + [c for c in conjuncts(node.predicate) if cannot_raise(c)]
        elif isinstance(node, (Distinct, Sort, Limit)):
            out = self.implied(node.input)
        elif isinstance(node, MaterializedCte):
            out = self.implied(node.input)
        elif isinstance(node, Project) or (isinstance(node, Aggregate) and node.groups):
            outputs: dict[str, str] = {}
            for cid, e in (node.exprs if isinstance(node, Project) else node.groups):
                if isinstance(e, exp.Column):
                    outputs.setdefault(e.name, cid)
            out = [substitute(p, {c: col(outputs[c]) for c in column_ids(p)})
                   for p in self.implied(node.input) if column_ids(p) <= set(outputs)]
        elif isinstance(node, Join):
            for side in KEPT_SIDES.get(node.kind, ()):
                out = out + self.implied(node.children[side])
        self._implied[id(node)] = (node, out)
        return out

    def rewrite(self, node: Node) -> Node:
        if node.children:
            node = node.with_children(*(self.rewrite(c) for c in node.children))
        if not isinstance(node, Join) or node.kind not in _DIRECTIONS:
            return node
        kids = list(node.children)
        keys = (node.left_keys, node.right_keys)
        for src, dst in _DIRECTIONS[node.kind]:
            for a, b in zip(keys[src], keys[dst]):
                if not (isinstance(a, exp.Column) and isinstance(b, exp.Column)) or \
                        not same_type(self.types.get(a.name), self.types.get(b.name)):
                    continue
                have = {p.sql("duckdb") for p in self.implied(kids[dst])}
                for p in self.implied(kids[src]):
                    if column_ids(p) != {a.name}:
                        continue
                    moved = substitute(p, {a.name: col(b.name)})
                    key = moved.sql("duckdb")
                    if key not in have:
                        have.add(key)
                        kids[dst] = self.mover.place(kids[dst], moved)
        if all(k is c for k, c in zip(kids, node.children)):
            return node
        return node.with_children(*kids)


def transitive_filters(query: Query) -> Query:
    return replace(query, root=_Transfer(query.types).rewrite(query.root))
