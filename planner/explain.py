"""EXPLAIN [ANALYZE] text: the distributed plan with each operator's pattern and the alternatives it
beat; with ANALYZE, per exchange stage the actual rows, bytes moved and compute vs communication time
(summed rows and bytes over ranks, the slowest rank's times)."""
from __future__ import annotations

from planner.patterns.base import Exchange
from planner.physical import PhysicalPlan, describe


def _fmt(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return f"{n:.0f}"


def _fmt_s(s: float) -> str:
    return f"{s * 1000:.1f}ms" if s < 1 else f"{s:.2f}s"


def _decision_text(d) -> str:
    label = d.label
    text = label if len(label) <= 160 else label[:157] + "..."
    text += f"  [{d.pattern}] est rows={_fmt(d.rows)} bytes={_fmt(d.bytes)}B cost={d.cost * 1000:.2f}ms"
    if d.note:
        text += f" ({d.note})"
    if d.beaten:
        text += "; beat " + ", ".join(f"{p} {c * 1000:.2f}ms" for p, c, _ in sorted(d.beaten, key=lambda b: b[1]))
    return text


def render_explain(plan: PhysicalPlan, plan_seconds: float, analyze=None) -> str:
    stages = {}
    if analyze is not None:
        per_rank, total, rows = analyze
        for rs in per_rank or []:
            for eid, st in rs.stages.items():
                agg = stages.setdefault(eid, {"rows_in": 0, "rows_out": 0, "bytes": 0, "spilled": 0,
                                                   "compute": 0.0, "comm": 0.0})
                agg["rows_in"] += st.rows_in
                agg["rows_out"] += st.rows_out
                agg["bytes"] += st.bytes_out
                agg["spilled"] += st.bytes_spilled
                agg["compute"] = max(agg["compute"], st.compute_s)
                agg["comm"] = max(agg["comm"], st.comm_s)
    lines = [f"Distributed plan on {plan.nranks} rank{'s' if plan.nranks != 1 else ''} (planned in {_fmt_s(plan_seconds)})"]

    def rec(node, depth):
        pad = "  " * depth
        d = plan.decisions.get(id(node))
        if isinstance(node, Exchange) and d is not None:
            # An operator lowered to an exchange alone (a sorted window): its decision, then the step.
            lines.append(pad + _decision_text(d))
            depth += 1
            pad = "  " * depth
        if isinstance(node, Exchange):
            keys = ", ".join(k.sql("duckdb") for k in node.keys)
            line = f"{pad}Exchange #{node.eid} {node.kind}" + (f" [{keys}]" if keys else "")
            st = stages.get(node.eid)
            if st:
                line += (f"  actual: rows in={_fmt(st['rows_in'])} out={_fmt(st['rows_out'])} moved={_fmt(st['bytes'])}B "
                         f"compute={_fmt_s(st['compute'])} comm={_fmt_s(st['comm'])}")
                if st["spilled"]:
                    line += f" spilled={_fmt(st['spilled'])}B"
            lines.append(line)
        else:
            text = describe(node)
            if d is not None:
                text = _decision_text(d)
            elif len(text) > 160:
                text = text[:157] + "..."
            lines.append(pad + text)
        for c in node.children:
            rec(c, depth + 1)

    rec(plan.root, 0)
    if analyze is not None:
        lines.append(f"Total: {_fmt_s(analyze[1])}, {analyze[2]} rows")
    return "\n".join(lines)
