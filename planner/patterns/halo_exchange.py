"""halo-exchange: window frames over a global order without PARTITION BY.

After a sample sort puts each rank's rows in one key range, a ROWS frame of n PRECEDING / m
FOLLOWING (and lag/lead by n) only needs the last n rows of the previous rank and the first m rows
of the next: those boundary rows are exchanged with the neighbours, each rank computes its window
over halo + own rows and keeps its own rows.
"""
from __future__ import annotations

from sqlglot import exp

from planner.logical import Window
from planner.patterns.base import Alternative, Dist, Exchange
from planner.patterns.base import HALO_EXCHANGE as NAME

OFFSET_FUNCS = (exp.Lag, exp.Lead)
MAX_HALO_ROWS = 10_000  # wider frames are not worth a halo: gather instead


def halo_width(node: Window):
    """(preceding, following) rows each function needs, or None if a function is not halo-able."""
    order = None
    before = after = 0
    for _, w in node.funcs:
        if w.args.get("partition_by"):
            return None
        o = w.args.get("order")
        if o is None:
            return None
        text = o.sql("duckdb")
        if order is None:
            order = (text, o)
        elif order[0] != text:
            return None
        f = w.this
        spec = w.args.get("spec")
        if isinstance(f, OFFSET_FUNCS):
            off = f.args.get("offset")
            n = int(off.this) if isinstance(off, exp.Literal) and not off.is_string else (1 if off is None else None)
            if n is None:
                return None
            if isinstance(f, exp.Lag):
                before = max(before, n)
            else:
                after = max(after, n)
            continue
        if spec is None or (spec.args.get("kind") or "").upper() != "ROWS":
            return None
        s = _bound(spec, "start")
        # `ROWS n PRECEDING` alone ends at the current row.
        e = 0 if spec.args.get("end") is None and s is not None else _bound(spec, "end")
        if s is None or e is None:
            return None
        before = max(before, -s if s < 0 else 0)
        after = max(after, e if e > 0 else 0)
    if order is None or max(before, after) > MAX_HALO_ROWS:
        return None
    return before, after, order[1]


def _bound(spec, which):
    side = spec.args.get(which)
    side_kind = (spec.args.get(f"{which}_side") or "").upper()
    if isinstance(side, str) and side.upper() == "CURRENT ROW":
        return 0
    if isinstance(side, exp.Literal) and not side.is_string:
        n = int(side.this)
        return -n if side_kind == "PRECEDING" else n
    return None


def alternatives(node, kids, ctx) -> list[Alternative]:
    if not isinstance(node, Window) or kids[0].dist.kind == "replicated":
        return []
    hw = halo_width(node)
    if hw is None:
        return []
    before, after, order = hw
    k = kids[0]
    p, P = ctx.params, ctx.nranks
    keys = tuple(o.copy() for o in order.expressions)
    for o in keys:
        if o.args.get("nulls_first") is None:
            o.set("nulls_first", False)
    width = ctx.est.estimate(node.input).width
    cost = p.shuffle(ctx.bytes(node.input), P) + p.sort(ctx.rows(node.input) / P) + 2 * p.alpha + (before + after) * width * p.beta

    def lower():
        ranged = Exchange(k.node, "range", keys)
        halo = Exchange(ranged, "halo", keys + (exp.Literal.number(before), exp.Literal.number(after)))
        return Window(halo, node.funcs), Dist("range")
    return [Alternative(NAME, cost, lower, f"range-partition, exchange {before} preceding / {after} following rows")]
