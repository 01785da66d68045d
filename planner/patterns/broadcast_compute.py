"""broadcast-compute: replicate the small side of a join on every rank, join locally.

Applies to inner and cross joins (either side), LEFT / SEMI / ANTI / ASOF joins (right side) and
RIGHT joins (left side); an ASOF join without equality keys is always planned this way. A side whose size is only a guess is never broadcast, nor one bigger than
CostParams.broadcast_max_bytes. A side that is a plain scan is replicated by every rank reading the
whole table (shared storage), which costs reading, not messages.
"""
from __future__ import annotations

from planner.logical import Join
from planner.patterns.base import BROADCAST_COMPUTE as NAME
from planner.patterns.base import ALLGATHER, Alternative, Exchange, is_replicable, replicate_cost

# An ASOF join may replicate only its right side: each left row must see every right row.
BUILD_SIDE = {"inner": ("right", "left"), "cross": ("right", "left"), "left": ("right",),
              "semi": ("right",), "anti": ("right",), "right": ("left",), "full": (),
              "asof": ("right",), "asof_left": ("right",)}


def alternatives(node, kids, ctx) -> list[Alternative]:
    if not isinstance(node, Join):
        return []
    out = []
    lk, rk = kids
    p = ctx.params
    for side in BUILD_SIDE[node.kind]:
        small, big = (rk, lk) if side == "right" else (lk, rk)
        small_node = node.right if side == "right" else node.left
        big_node = node.left if side == "right" else node.right
        if big.dist.kind == "replicated":
            continue  # that case is local (embarrassingly-parallel) or the other side's broadcast
        no_keys = not node.left_keys
        if small.dist.kind != "replicated" and not no_keys:
            if not ctx.known(small_node) or ctx.bytes(small_node) > p.broadcast_max_bytes:
                continue
        if small.dist.kind == "replicated":
            move, how, sent = 0.0, "already replicated", False
        else:
            move, how, sent = replicate_cost(small, ctx)
        compute = (ctx.rows(big_node) / ctx.nranks + ctx.rows(small_node)) * p.hash_row

        def lower(side=side, small=small, big=big, sent=sent):
            s = small.node if small.dist.kind == "replicated" else \
                Exchange(small.node, "broadcast", fn=ALLGATHER if sent and is_replicable(small.node) else ())
            if side == "right":
                return node.with_children(big.node, s), big.dist
            return node.with_children(s, big.node), big.dist
        out.append(Alternative(NAME, move + compute, lower, f"replicate {side} side ({how})"))
    return out
