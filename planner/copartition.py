"""Co-partitioned reads: tables written in key order (lineitem and orders by orderkey, part and
partsupp by partkey) are read range-partitioned on the join key with the SAME splitters, so joins
between them (and self-joins, and GROUP BY on the key) need no shuffle at all.

Columns are joined into key domains by the plan's equality join keys (traced back to scans through
filters, projections and joins); each domain takes its splitters from the row groups of its largest
table, balanced by rows. Each rank then reads `key >= lo AND key < hi`, and DuckDB skips the row
groups whose statistics fall outside the range.
"""
from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from planner.logical import Join, Node, Project, Query, Scan, replace_scans, walk


def _origins(root: Node) -> dict[str, tuple[Scan, str]]:
    """Column id → (scan, table column) for columns that are scan columns passed through unchanged."""
    out: dict[str, tuple[Scan, str]] = {}

    def rec(n: Node):
        for c in n.children:
            rec(c)
        if isinstance(n, Scan):
            for cid, name in n.fields:
                out[cid] = (n, name)
        elif isinstance(n, Project):
            for cid, e in n.exprs:
                if isinstance(e, exp.Column) and e.name in out:
                    out[cid] = out[e.name]
    rec(root)
    return out


def splitters_for(table, column: str, nranks: int) -> tuple:
    ranges = table.clustered[column]
    total = sum(r[2] for r in ranges)
    out, acc, r = [], 0, 1
    for lo, _, rows in ranges:
        if r < nranks and acc >= total * r / nranks:
            out.append(lo)
            r += 1
        acc += rows
    while len(out) < nranks - 1:
        out.append(out[-1] if out else ranges[-1][1])
    return tuple(out)


def copartition(query: Query, catalog, nranks: int) -> Query:
    if nranks <= 1:
        return query
    origins = _origins(query.root)
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x):
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    def union(a, b):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    members: set[tuple[str, str]] = set()
    for n in walk(query.root):
        if not isinstance(n, Join) or n.kind == "cross":
            continue
        for a, b in zip(n.left_keys, n.right_keys):
            if not (isinstance(a, exp.Column) and isinstance(b, exp.Column)):
                continue
            oa, ob = origins.get(a.name), origins.get(b.name)
            if oa is None or ob is None:
                continue
            ka, kb = (oa[0].table, oa[1]), (ob[0].table, ob[1])
            if ka[1] in catalog.table(ka[0]).clustered and kb[1] in catalog.table(kb[0]).clustered:
                members |= {ka, kb}
                union(ka, kb)
    if not members:
        return query
    domains: dict[tuple, list] = {}
    for m in members:
        domains.setdefault(find(m), []).append(m)
    ranges: dict[tuple[str, str], tuple] = {}
    for group in domains.values():
        big = max(group, key=lambda m: catalog.table(m[0]).row_count)
        split = splitters_for(catalog.table(big[0]), big[1], nranks)
        for m in group:
            ranges[m] = (m[1], split, find(m))
    # One domain per table: the first one found wins for a table in two.
    chosen: dict[str, tuple] = {}
    for (table, column), rng in sorted(ranges.items()):
        chosen.setdefault(table, rng)

    def ranged(n: Scan) -> Node:
        rng = chosen.get(n.table)
        if rng is not None and any(name == rng[0] for _, name in n.fields):
            return replace(n, key_range=(rng[0], rng[1]))
        return n
    return replace(query, root=replace_scans(query.root, ranged))
