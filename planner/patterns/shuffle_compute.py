"""shuffle-compute: hash-partition the inputs by key so matching rows meet on one rank.

Joins (by their equality keys; for an ASOF join that puts all of a key's right rows on the rank of its
left rows, where DuckDB picks the nearest), set operations other than UNION ALL (by all columns), windows (by
their PARTITION BY keys), aggregates that cannot be split into partial states (by the group keys).
An input already hash-partitioned on the keys is not shuffled again.
"""
from __future__ import annotations

from dataclasses import replace


from planner.logical import Aggregate, Distinct, Join, Project, SetOp, Window, col
from planner.patterns.base import (ANY, Alternative, Dist, Exchange, aggregate_hash_positions, hash_dist, key_ids,
                                   local_top)
from planner.patterns.base import SHUFFLE_COMPUTE as NAME


def shuffled(kid, keys, ctx, node_for_size, fn: tuple = ()):
    """(node, cost): kid partitioned by fn on keys, reusing an existing partitioning."""
    ids = key_ids(keys)
    if ids is not None and kid.dist.hashed_on(ids, fn):
        return kid.node, 0.0
    cost = ctx.params.shuffle(ctx.bytes(node_for_size), ctx.nranks, ctx.rows(node_for_size))
    return Exchange(kid.node, "shuffle", tuple(keys), fn=fn), cost


def _colocated(node: Join, lk, rk) -> bool:
    """Both sides hashed on the same join-key positions, in the same order."""
    if lk.dist.kind != "hash" or rk.dist.kind != "hash" or len(lk.dist.keys) != len(rk.dist.keys):
        return False
    lids, rids = key_ids(node.left_keys), key_ids(node.right_keys)
    if lids is None or rids is None:
        return False
    pos_l = []
    for k in lk.dist.keys:
        hit = [i for i, c in enumerate(lids) if c in k]
        if not hit:
            return False
        pos_l.append(hit)
    for k, cand in zip(rk.dist.keys, pos_l):
        if not any(rids[i] in k for i in cand):
            return False
    return True


def _distinct_keys_shuffled(node: Join, rk, rids, ctx, fn, rnode, rcost):
    """A semi or anti join without residual only asks whether a key exists on the right: each rank
    can shuffle its distinct right keys instead of its rows (TPC-H Q22: 1.5M order rows become
    the ~100k customers that ordered)."""
    keys_only = Distinct(Project(node.right, tuple((i, col(i)) for i in rids)))
    per_rank = min(ctx.rows(node.right) / ctx.nranks, ctx.rows(keys_only))
    nbytes = per_rank * ctx.nranks * ctx.est.estimate(keys_only).width
    cost = ctx.params.shuffle(nbytes, ctx.nranks, per_rank * ctx.nranks) + ctx.rows(node.right) / ctx.nranks * ctx.params.agg_row
    if cost >= rcost:
        return rnode, rcost
    local = Distinct(Project(rk.node, tuple((i, col(i)) for i in rids)))
    return Exchange(local, "shuffle", tuple(node.right_keys), fn=fn), cost


def _join(node: Join, kids, ctx):
    lk, rk = kids
    p = ctx.params
    if lk.dist.kind == "replicated" or rk.dist.kind == "replicated":
        return []
    compute = (ctx.rows(node.left) + ctx.rows(node.right)) / ctx.nranks * p.hash_row
    if not node.left_keys:
        if node.kind != "full":
            return []
        # No key to hash on: all rows meet on rank 0.
        def lower_single():
            return node.with_children(Exchange(lk.node, "gather"), Exchange(rk.node, "gather")), ANY
        cost = p.gather(ctx.bytes(node.left) + ctx.bytes(node.right), ctx.nranks) + compute * ctx.nranks
        return [Alternative(NAME, cost, lower_single, "no equality key: everything to rank 0")]
    lids, rids = key_ids(node.left_keys), key_ids(node.right_keys)

    def result_dist():
        if lids is None or rids is None:
            return ANY
        if node.kind == "inner":
            return Dist("hash", tuple(frozenset([a, b]) for a, b in zip(lids, rids)))
        if node.kind in ("left", "semi", "anti", "asof", "asof_left"):
            return hash_dist(lids)
        if node.kind == "right":
            return hash_dist(rids)
        return ANY

    if _colocated(node, lk, rk) and lk.dist.fn == rk.dist.fn:
        # Only the left keys name the result's partitioning. Naming the right ones too would let
        # later joins and aggregates fuse into this fragment without a shuffle, but DuckDB then
        # orders the fused joins worse (TPC-H Q21 at SF 1: 0.50 s -> 0.70 s, Q10 0.35 -> 0.45 s).
        dist = lk.dist if node.kind in ("inner", "left", "semi", "anti", "asof", "asof_left") else (rk.dist if node.kind == "right" else ANY)
        return [Alternative(NAME, compute, lambda: (node.with_children(lk.node, rk.node), dist),
                            "inputs already partitioned on the keys: no shuffle")]
    out = []
    # Hash both sides, or move only one side into the other's existing partitioning (a range
    # partitioning from co-partitioned reads, or a hash on exactly the keys).
    fns = {()}
    for side_dist, ids in ((lk.dist, lids), (rk.dist, rids)):
        # Only a side partitioned on this join's own key: the range splitters of a co-partitioned
        # read on another column (t3 read by ranges of i, joined on its text column s) would
        # compare s with i's integers (a binder error at 2 ranks, found by the fuzzer).
        if side_dist.kind == "hash" and ids is not None and len(side_dist.keys) == 1 and len(ids) == 1 \
                and side_dist.hashed_on(ids, side_dist.fn):
            fns.add(side_dist.fn)
    for fn in fns:
        if fn and len(node.left_keys) != 1:
            continue
        lnode, lcost = shuffled(lk, node.left_keys, ctx, node.left, fn)
        rnode, rcost = shuffled(rk, node.right_keys, ctx, node.right, fn)
        if rcost and node.kind in ("semi", "anti") and node.residual is None and rids is not None:
            rnode, rcost = _distinct_keys_shuffled(node, rk, rids, ctx, fn, rnode, rcost)
        moved = [s for s, c in (("left", lcost), ("right", rcost)) if c]
        how = "by key range" if fn else "by hash"
        note = (f"shuffle {' and '.join(moved)} {how}" if moved else "inputs already partitioned on the keys: no shuffle")

        def lower(lnode=lnode, rnode=rnode, fn=fn):
            d = result_dist()
            return node.with_children(lnode, rnode), (Dist(d.kind, d.keys, fn) if d.kind == "hash" else d)
        out.append(Alternative(NAME, lcost + rcost + compute, lower, note))
    return out


def _setop(node: SetOp, kids, ctx):
    if node.kind == "union" and node.all:
        return []
    if any(k.dist.kind == "replicated" for k in kids):
        kids = [k if k.dist.kind != "replicated" else type(k)(Exchange(k.node, "localize"), ANY, k.cost) for k in kids]
    lnode, lcost = shuffled(kids[0], [col(c) for c in node.left.columns], ctx, node.left)
    rnode, rcost = shuffled(kids[1], [col(c) for c in node.right.columns], ctx, node.right)
    compute = (ctx.rows(node.left) + ctx.rows(node.right)) / ctx.nranks * ctx.params.agg_row
    return [Alternative(NAME, lcost + rcost + compute, lambda: (node.with_children(lnode, rnode), hash_dist(node.ids)),
                        "shuffle both inputs by all columns")]


def window_partition_keys(node: Window):
    """PARTITION BY expressions shared by every window function of the node (None if some have none)."""
    common = None
    for _, w in node.funcs:
        keys = {k.sql("duckdb"): k for k in (w.args.get("partition_by") or [])}
        common = keys if common is None else {k: v for k, v in common.items() if k in keys}
    return list(common.values()) if common else None


def _window(node: Window, kids, ctx):
    keys = window_partition_keys(node)
    k = kids[0]
    if not keys or k.dist.kind == "replicated":
        return []
    ids = key_ids(keys)
    note = "shuffle by PARTITION BY"
    if ids is not None and k.dist.hashed_within(ids):
        new, cost = k.node, 0.0
    else:
        new, cost = shuffled(k, keys, ctx, node.input)
        if node.top is not None:
            new = Exchange(local_top(k.node, node, ctx), "shuffle", tuple(keys))
            note += f"; each rank first keeps its own top {node.top[1]} per partition"
    dist = hash_dist(ids) if (ids is not None and cost) else (k.dist if not cost else ANY)
    compute = ctx.params.sort(ctx.rows(node.input) / ctx.nranks)
    return [Alternative(NAME, cost + compute, lambda: (replace(node, input=new), dist), note)]



def _aggregate(node: Aggregate, kids, ctx):
    k = kids[0]
    if not node.groups or k.dist.kind == "replicated":
        return []
    keys = [g for _, g in node.groups]
    ids = key_ids(keys)
    if ids is not None and k.dist.hashed_within(ids):
        return []  # local: see combine-shuffle-reduce
    on = aggregate_hash_positions(node, ctx)
    new, cost = shuffled(k, [keys[i] for i in on], ctx, node.input)
    compute = ctx.rows(node.input) / ctx.nranks * ctx.params.agg_row
    gids = [node.groups[i][0] for i in on]
    return [Alternative(NAME, cost + compute, lambda: (replace(node, input=new), hash_dist(gids)),
                        "shuffle raw rows by the group keys")]


def alternatives(node, kids, ctx) -> list[Alternative]:
    if isinstance(node, Join):
        return _join(node, kids, ctx)
    if isinstance(node, SetOp):
        return _setop(node, kids, ctx)
    if isinstance(node, Window):
        return _window(node, kids, ctx)
    if isinstance(node, Aggregate):
        return _aggregate(node, kids, ctx)
    return []
