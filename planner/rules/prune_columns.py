"""prune_columns: every node produces only the columns something above it uses.

Before:  Project[a] ← Join(l.k = r.k) ← Scan l[a, b, c, k], Scan r[k, x, y]
After:   Project[a] ← Join(l.k = r.k) ← Scan l[a, k],       Scan r[k]
Narrow scans read fewer Parquet columns, and narrow rows are cheaper to shuffle.
"""
from __future__ import annotations

from dataclasses import replace

from planner.logical import (Aggregate, CteRef, Distinct, Filter, Generate, Join, Limit, MaterializedCte, Node,
                             Project, Query, Scan, SetOp, SingleRow, Sort, Values, Window, col, column_ids, cte_refs,
                             multiplies_rows)


def _refs(exprs) -> set[str]:
    out: set[str] = set()
    for e in exprs:
        if e is not None:
            out |= column_ids(e)
    return out


def prune(node: Node, required: set[str]) -> Node:
    if isinstance(node, Scan):
        fields = tuple(f for f in node.fields if f[0] in required) or node.fields[:1]
        return replace(node, fields=fields)
    if isinstance(node, (Values, Generate)):
        return node
    if isinstance(node, CteRef):
        kept = [(i, s) for i, s in zip(node.ids, node.sources) if i in required] or [(node.ids[0], node.sources[0])]
        return CteRef(node.name, node.label, tuple(i for i, _ in kept), tuple(s for _, s in kept))
    if isinstance(node, MaterializedCte):
        # The rest of the statement first: the CTE keeps the columns its references still read.
        body = prune(node.input, required)
        refs = cte_refs(body, node.name)
        if not refs:
            return body  # nothing reads it any more
        need = {s for ref in refs for s in ref.sources}
        return node.with_children(prune(node.definition, need), body)
    if isinstance(node, Filter):
        return Filter(prune(node.input, required | column_ids(node.predicate)), node.predicate)
    if isinstance(node, Project):
        # An UNNEST decides how many rows there are: it stays even where nobody reads its column.
        exprs = tuple(x for x in node.exprs if x[0] in required or multiplies_rows(x[1])) or node.exprs[:1]
        return Project(prune(node.input, _refs(e for _, e in exprs)), exprs)
    if isinstance(node, Join):
        cond = _refs(node.left_keys) | _refs(node.right_keys) | _refs([node.residual])
        left_need = (required | cond) & set(node.left.columns)
        right_need = (required | cond) & set(node.right.columns)
        return node.with_children(prune(node.left, left_need), prune(node.right, right_need))
    if isinstance(node, Aggregate):
        aggs = tuple(a for a in node.aggs if a[0] in required)
        if not aggs and not node.groups:
            aggs = node.aggs[:1]
        need = _refs(g for _, g in node.groups) | _refs(a for _, a in aggs)
        return replace(node, input=prune(node.input, need), aggs=aggs)
    if isinstance(node, Distinct):
        return Distinct(prune(node.input, set(node.input.columns)))
    if isinstance(node, Window):
        funcs = tuple(f for f in node.funcs if f[0] in required)
        if not funcs:
            return prune(node.input, required)
        need = (required & set(node.input.columns)) | _refs(f for _, f in funcs)
        return Window(prune(node.input, need), funcs)
    if isinstance(node, Sort):
        return Sort(prune(node.input, required | _refs(node.keys)), node.keys)
    if isinstance(node, (Limit, SingleRow)):
        return node.with_children(prune(node.input, required))
    if isinstance(node, SetOp):
        if node.kind == "union" and node.all:
            # UNION ALL keeps rows whatever their other columns: only the used positions are needed
            # (and a column nobody reads is never cast to the union's type).
            keep = [i for i, c in enumerate(node.ids) if c in required] or [0]
            distinct_ids = all(len({side.columns[i] for i in keep}) == len(keep) for side in (node.left, node.right))
            if len(keep) < len(node.ids) and distinct_ids:
                sides = []
                for side in (node.left, node.right):
                    cols = [side.columns[i] for i in keep]
                    sides.append(prune(Project(side, tuple((c, col(c)) for c in cols)), set(cols)))
                return SetOp(node.kind, node.all, sides[0], sides[1], tuple(node.ids[i] for i in keep))
        return node.with_children(prune(node.left, set(node.left.columns)), prune(node.right, set(node.right.columns)))
    return node


def prune_columns(query: Query) -> Query:
    return replace(query, root=prune(query.root, set(query.root.columns)))
