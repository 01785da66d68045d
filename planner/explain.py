"""EXPLAIN [ANALYZE]: the distributed plan with each operator's pattern and the alternatives it beat;
with ANALYZE, per exchange stage the actual rows, bytes moved and time (local compute,
communication, and waiting for slower ranks), summed over ranks and as min/median/max over ranks
(so a skewed or straggling rank shows), each rank's peak memory, and the actual rows of the
operators inside fragments as DuckDB's profiler counted them (executors/profile.py says which
operators get a count; a fragment where some did not also lists DuckDB's own operators).

Options, as PostgreSQL spells them: `EXPLAIN [ANALYZE] [VERBOSE] stmt` or
`EXPLAIN (ANALYZE, VERBOSE, FORMAT TEXT|JSON|DOT) stmt`.

- TEXT (default): one line per plan node, for people. Columns carry the names the query gave them;
  VERBOSE shows the planner's internal column ids instead (`l_orderkey_18`, `part_group__p3`) and
  every priced alternative with its note.
- JSON: the same tree for programs (`explain_tree` is its Python form).
- DOT: a Graphviz digraph of stages and exchanges (`dot -Tsvg`).

An exchange that moves no data is marked with why: at one rank every exchange is fused into its
fragment; a broadcast whose input every rank computes from the files is part of
the fragment that reads it (and so is every exchange inside that input); `localize` keeps rank 0's
copy of a replicated input.
"""
from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field

from sqlglot import exp

from engine.errors import NotSupportedError
from planner.logical import MaterializedCte
from planner.patterns.base import Exchange, computed_everywhere
from planner.physical import PhysicalPlan, operator_numbers

FORMATS = ("text", "json", "dot")
# An operator line longer than this is cut (TEXT only; JSON and DOT keep it whole).
MAX_LINE_CHARS = 160
# ANALYZE flags a stage whose busiest rank has more than this many times the rows of the median of
# the other ranks (with 2 ranks: of the other rank).
SKEW_FACTOR = 2.0


@dataclass(frozen=True)
class ExplainOptions:
    analyze: bool = False
    verbose: bool = False
    format: str = "text"


_OPTION_LIST = re.compile(r"^\(\s*(?P<body>[^()]*?)\s*\)\s*(?P<rest>.*)$", re.DOTALL)
_OPTION_WORDS = ("ANALYZE", "VERBOSE", "FORMAT")


def parse_options(text: str) -> tuple[ExplainOptions, str]:
    """(options, statement) from what follows the word EXPLAIN: `ANALYZE VERBOSE SELECT …` or
    `(ANALYZE, FORMAT JSON) SELECT …`. A parenthesised query (`EXPLAIN (SELECT 1)`) is a query."""
    analyze = verbose = False
    fmt = "text"
    rest = text.strip()
    m = _OPTION_LIST.match(rest)
    if m and m["body"] and m["body"].split()[0].upper().rstrip(",") in _OPTION_WORDS:
        for item in m["body"].split(","):
            words = item.split()
            if not words:
                raise NotSupportedError("EXPLAIN option list with an empty item")
            name, value = words[0].upper(), [w.upper() for w in words[1:]]
            if name == "FORMAT":
                if len(value) != 1 or value[0].lower() not in FORMATS + ("graphviz",):
                    raise NotSupportedError(f"EXPLAIN FORMAT {' '.join(value)}: choose TEXT, JSON or DOT")
                fmt = "dot" if value[0].lower() == "graphviz" else value[0].lower()
            elif name in ("ANALYZE", "VERBOSE"):
                if len(value) > 1 or (value and value[0] not in ("TRUE", "FALSE", "ON", "OFF", "1", "0")):
                    raise NotSupportedError(f"EXPLAIN option {item.strip()}")
                on = not value or value[0] in ("TRUE", "ON", "1")
                if name == "ANALYZE":
                    analyze = on
                else:
                    verbose = on
            else:
                raise NotSupportedError(f"EXPLAIN option {name}: choose from ANALYZE, VERBOSE, FORMAT")
        rest = m["rest"]
    else:
        while True:
            word = rest.split(None, 1)
            if word and word[0].upper() == "ANALYZE":
                analyze = True
            elif word and word[0].upper() == "VERBOSE":
                verbose = True
            else:
                break
            rest = word[1] if len(word) > 1 else ""
    return ExplainOptions(analyze, verbose, fmt), rest


# ---------------------------------------------------------------------------------------- names

_PHYSICAL_ID = re.compile(r"^(?P<base>.+)__p\d+$")
_LOGICAL_ID = re.compile(r"^(?P<base>.+)_\d+$")
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_#]*$")


def _base(cid: str) -> str:
    m = _PHYSICAL_ID.match(cid) or _LOGICAL_ID.match(cid)
    return m["base"] if m else cid


def _defs_and_scans(nodes) -> tuple[dict, list]:
    from planner.logical import Aggregate, Project, Scan, Window
    defs: dict[str, exp.Expression] = {}
    scans: list[tuple[str, str]] = []
    seen: set[int] = set()

    def walk(n):
        if id(n) in seen:
            return
        seen.add(id(n))
        if isinstance(n, Scan):
            scans.extend(n.fields)
        elif isinstance(n, Project):
            defs.update(n.exprs)
        elif isinstance(n, Aggregate):
            defs.update(n.groups)
            defs.update(n.aggs)
        elif isinstance(n, Window):
            defs.update(n.funcs)
        for c in n.children:
            walk(c)
    for n in nodes:
        walk(n)
    return defs, scans


def display_names(nodes) -> dict[str, str]:
    """Column id → the name a user knows it by: the table's column name for a scanned column (with
    `#2`, `#3` for the second and third distinct columns of that name, as in a self-join), the
    query's alias for a computed one, and for the planner's own columns (`part_group__p3`) the
    column they carry."""
    defs, scans = _defs_and_scans(nodes)
    names: dict[str, str] = {}
    by_name: dict[str, list[str]] = {}
    for cid, name in scans:
        ids = by_name.setdefault(name, [])
        if cid not in ids:
            ids.append(cid)
    for name, ids in by_name.items():
        for i, cid in enumerate(ids):
            names[cid] = name if i == 0 else f"{name}#{i + 1}"

    def name_of(cid: str, depth: int = 0) -> str:
        if cid in names:
            return names[cid]
        source = defs.get(cid)
        physical = _PHYSICAL_ID.match(cid) is not None
        if (isinstance(source, exp.Column) and depth < 200 and source.name != cid
                and (physical or _base(cid) == _base(source.name))):
            got = name_of(source.name, depth + 1)
        else:
            got = _base(cid)
        names[cid] = got
        return got

    for cid in defs:
        name_of(cid)
    return names


def rename_ids(text: str, names: dict[str, str]) -> str:
    """`text` (DuckDB's, an error's) with the column ids in it renamed by `names` (display_names)."""
    return re.sub(r"\b[A-Za-z_][A-Za-z0-9_]*\b", lambda m: names.get(m[0]) or m[0], text)


class _Namer:
    """Renders expressions with display names (or the internal ids, verbose)."""

    def __init__(self, names: dict[str, str] | None):
        self.names = names

    def col(self, cid: str) -> str:
        if self.names is None:
            return cid
        return self.names.get(cid) or _base(cid)

    def text(self, s: str) -> str:
        """Text of DuckDB's (an operator's detail) with the column ids in it renamed."""
        return s if self.names is None else rename_ids(s, self.names)

    def sql(self, e: exp.Expression) -> str:
        if self.names is None:
            return e.sql("duckdb")

        def rename(n):
            if isinstance(n, exp.Column) and not n.table:
                name = self.col(n.name)
                return exp.column(name, quoted=not _PLAIN_NAME.match(name))
            return n
        return e.copy().transform(rename).sql("duckdb")


def describe_node(node, names: dict[str, str] | None = None) -> str:
    """One line for a plan node; with `names` (display_names), columns as the user knows them."""
    return _describe(node, _Namer(names))


def _describe(node, nm: _Namer) -> str:
    from planner.logical import (ASOF_KINDS, Aggregate, CteRef, Distinct, Filter, Generate, Join, Limit,
                                 MaterializedCte, Project, Scan, SetOp, Sort, Values, Window)
    sql = nm.sql
    if isinstance(node, Scan):
        return f"Scan {node.table} [{', '.join(n for _, n in node.fields)}]"
    if isinstance(node, Join):
        on = " AND ".join(f"{sql(a)} = {sql(b)}" for a, b in zip(node.left_keys, node.right_keys))
        if node.residual is not None:
            on = (on + " AND " if on else "") + sql(node.residual)
        if node.kind in ASOF_KINDS:
            return f"AsofJoin {'left' if node.kind == 'asof_left' else 'inner'} on {on}"
        return f"HashJoin {node.kind}" + (f" on {on}" if on else "")
    if isinstance(node, Aggregate):
        g = ", ".join(sql(e) for _, e in node.groups)
        a = ", ".join(sql(e) for _, e in node.aggs)
        return f"Aggregate group by [{g}] compute [{a}]" if g else f"Aggregate [{a}]"
    if isinstance(node, Filter):
        return f"Filter {sql(node.predicate)}"
    if isinstance(node, Project):
        items = []
        for c, e in node.exprs:
            shown, name = sql(e), nm.col(c)
            items.append(shown if shown == name or shown == f'"{name}"' else f"{shown} AS {name}")
        return "Project " + ", ".join(items)
    if isinstance(node, Sort):
        return "Sort " + ", ".join(sql(k) for k in node.keys)
    if isinstance(node, Limit):
        return f"Limit {node.limit} offset {node.offset}"
    if isinstance(node, SetOp):
        return f"{node.kind.capitalize()}{' ALL' if node.all else ''}"
    if isinstance(node, Window):
        return "Window " + ", ".join(sql(e) for _, e in node.funcs)
    if isinstance(node, Values):
        return f"Values {len(node.rows)} rows"
    if isinstance(node, Generate):
        return f"Generate {node.call} ({node.rows} rows)"
    if isinstance(node, Distinct):
        return "Distinct"
    if isinstance(node, CteRef):
        return f"CteRef {node.label} [{', '.join(nm.col(c) for c in node.ids)}]"
    if isinstance(node, MaterializedCte):
        return f"MaterializedCte {node.label}"
    return type(node).__name__


# ---------------------------------------------------------------------------------------- tree

@dataclass
class PlanNode:
    """One line of EXPLAIN: an operator the planner chose a pattern for, a local step of a
    pattern's lowering, or an exchange between fragments."""

    operator: str                      # first word: HashJoin, Aggregate, Exchange, …
    text: str                          # the whole description
    pattern: str | None = None
    estimate: dict | None = None       # rows, bytes, cost_seconds
    note: str = ""
    alternatives: list = field(default_factory=list)  # {pattern, cost_seconds, note}
    exchange: dict | None = None       # id, kind, keys, runs, why_not
    actual: dict | None = None         # ANALYZE of an exchange: sums and per rank
    # ANALYZE of an operator: the rows it produced, over all ranks (one rank's where every rank
    # computes all of it). Inside a fragment they are DuckDB's counts, mapped onto the plan
    # (executors/profile.py); where that mapping is not certain, the rows an exchange received
    # from the operator it reads from, if any.
    actual_rows: int | None = None
    # {"per_rank": [{"rank", "rows"}], "spread": {min, median, max}, "each_rank": bool}
    actual_rows_detail: dict | None = None
    # The top operator of a fragment whose operators were not all matched to DuckDB's: DuckDB's
    # operators as they ran, [{"ranks": [...], "operators": [{depth, name, detail, rows}]}], one
    # entry per shape of DuckDB's plan (ranks may differ).
    duckdb_operators: list | None = None
    # ANALYZE of a MaterializedCte: how often each rank computed it (once) and what it kept,
    # {"computed", "rows", "bytes", "bytes_spilled", "per_rank": [...], "spread": {...}}.
    kept: dict | None = None
    children: list = field(default_factory=list)

    def to_json(self) -> dict:
        out = {"operator": self.operator, "text": self.text}
        if self.pattern is not None:
            out.update(pattern=self.pattern, estimate=self.estimate, note=self.note,
                       alternatives=self.alternatives)
        if self.exchange is not None:
            out["exchange"] = self.exchange
        if self.actual is not None:
            out["actual"] = self.actual
        if self.actual_rows is not None:
            out["actual_rows"] = self.actual_rows
        if self.actual_rows_detail is not None:
            out["actual_rows_detail"] = self.actual_rows_detail
        if self.duckdb_operators is not None:
            out["duckdb_operators"] = self.duckdb_operators
        if self.kept is not None:
            out["kept"] = self.kept
        out["children"] = [c.to_json() for c in self.children]
        return out


def _alternatives(d, verbose: bool) -> list[dict]:
    """The alternatives a decision beat, cheapest first. Verbose: every priced variant, each once.
    Otherwise one per pattern (its cheapest variant), leaving out the winner's own pattern (a
    costlier variant of the same choice, e.g. the other side broadcast)."""
    seen, out = set(), []
    for pattern, cost, note in sorted(d.beaten, key=lambda b: (b[1], b[0])):
        key = (pattern, round(cost, 12), note) if verbose else pattern
        if key in seen or (not verbose and pattern == d.pattern):
            continue
        seen.add(key)
        out.append({"pattern": pattern, "cost_seconds": cost, "note": note})
    return out


def _why_not_run(x: Exchange, nranks: int, inside_inline: int | None) -> str | None:
    if inside_inline is not None:
        return f"part of exchange #{inside_inline}'s input, which every rank computes from the files"
    if computed_everywhere(x):
        return "every rank computes its input from the files"
    if x.kind == "localize":
        return "rank 0 keeps its own copy of a replicated input"
    if nranks == 1:
        return "one rank: fused into its fragment"
    return None


def _spread(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def peak_memory_bytes(per_rank) -> list[int | None]:
    """Each rank's RSS high-water mark during the query (executors/memory.py); None where unknown."""
    return [rs.peak_rss_bytes or None if rs is not None else None for rs in per_rank or []]


def _actual(eid: int, per_rank) -> dict | None:
    ranks = []
    for r, rs in enumerate(per_rank):
        st = rs.stages.get(eid) if rs is not None else None
        if st is not None:
            ranks.append({"rank": r, "rows_in": st.rows_in, "rows_out": st.rows_out, "bytes_sent": st.bytes_out,
                          "bytes_spilled": st.bytes_spilled, "compute_seconds": st.compute_s,
                          "comm_seconds": st.comm_s, "wait_seconds": st.wait_s,
                          "finished_seconds": st.finished_s})
    if not ranks:
        return None
    total = {k: sum(r[k] for r in ranks) for k in ("rows_in", "rows_out", "bytes_sent", "bytes_spilled")}
    spread = {k: _spread([r[k] for r in ranks])
              for k in ("rows_in", "rows_out", "compute_seconds", "comm_seconds", "wait_seconds")}
    # The straggler is the rank that worked longest; the others' waiting is its doing.
    slowest = max(ranks, key=lambda r: r["compute_seconds"] + r["comm_seconds"])["rank"]
    return {**total, "per_rank": ranks, "spread": spread, "slowest_rank": slowest}


def _kept(name: str, per_rank) -> dict | None:
    """What each rank kept of the materialized CTE `name`, and how often it computed it."""
    ranks = []
    for r, rs in enumerate(per_rank):
        st = getattr(rs, "kept", {}).get(name) if rs is not None else None
        if st is not None:
            ranks.append({"rank": r, "computed": st.computed, "rows": st.rows, "bytes": st.bytes,
                          "bytes_spilled": st.bytes_spilled, "compute_seconds": st.compute_s})
    if not ranks:
        return None
    return {"computed": max(r["computed"] for r in ranks), "rows": sum(r["rows"] for r in ranks),
            "bytes": sum(r["bytes"] for r in ranks), "bytes_spilled": sum(r["bytes_spilled"] for r in ranks),
            "per_rank": ranks,
            "spread": {k: _spread([r[k] for r in ranks]) for k in ("rows", "compute_seconds")}}


def _operator_rows(per_rank) -> dict[int, dict]:
    """Operator number -> its rows on each rank that ran it, where every such rank's DuckDB count
    was matched to it (executors/profile.py)."""
    ran: dict[int, set] = {}
    counts: dict[int, dict] = {}
    for r, rs in enumerate(per_rank):
        for f in getattr(rs, "fragments", None) or []:
            for n in f.ops:
                ran.setdefault(n, set()).add(r)
            for n, rows in f.rows.items():
                mine = counts.setdefault(n, {})
                mine[r] = mine.get(r, 0) + rows  # an operator run twice on a rank counts twice
    return {n: by_rank for n, by_rank in counts.items() if set(by_rank) == ran.get(n)}


def _duckdb_operators(per_rank, nm: _Namer) -> dict[int, list]:
    """Fragment top operator number -> DuckDB's operators of it, rows summed over the ranks whose
    DuckDB plan had the same shape."""
    groups: dict[int, dict] = {}
    for r, rs in enumerate(per_rank):
        for f in getattr(rs, "fragments", None) or []:
            if not f.duckdb:
                continue
            shape = tuple((depth, name) for depth, name, _, _ in f.duckdb)
            g = groups.setdefault(f.root, {}).setdefault(shape, {"ranks": [], "operators": None})
            if r not in g["ranks"]:
                g["ranks"].append(r)
            if g["operators"] is None:
                g["operators"] = [{"depth": d, "name": name, "detail": nm.text(detail), "rows": rows}
                                  for d, name, detail, rows in f.duckdb]
            else:
                for op, (_, _, _, rows) in zip(g["operators"], f.duckdb):
                    op["rows"] += rows
    return {root: list(shapes.values()) for root, shapes in groups.items()}


def explain_tree(plan: PhysicalPlan, options: ExplainOptions = ExplainOptions(), per_rank=None) -> PlanNode:
    """The plan as PlanNodes; `per_rank` (one RunStats per rank, from ANALYZE) adds actuals."""
    decision_subjects = [d.subject for d in plan.decisions.values() if not isinstance(d.subject, str)]
    nm = _Namer(None if options.verbose else display_names([plan.root, *decision_subjects]))
    analyzed = per_rank is not None
    numbers = operator_numbers(plan.root) if analyzed else {}
    operator_rows = _operator_rows(per_rank) if analyzed else {}
    duckdb_lists = _duckdb_operators(per_rank, nm) if analyzed else {}

    def add_actuals(me: PlanNode, node, replicated: bool) -> None:
        n = numbers.get(id(node))
        by_rank = operator_rows.get(n)
        if by_rank:
            values = [by_rank[r] for r in sorted(by_rank)]
            # Every rank computes all of a replicated input: one rank's count is the operator's.
            me.actual_rows = max(values) if replicated else sum(values)
            me.actual_rows_detail = {"per_rank": [{"rank": r, "rows": by_rank[r]} for r in sorted(by_rank)],
                                     "spread": _spread(values), "each_rank": replicated}
        if n in duckdb_lists:
            me.duckdb_operators = duckdb_lists[n]

    def operator_node(d) -> PlanNode:
        label = d.subject if isinstance(d.subject, str) else _describe(d.subject, nm)
        return PlanNode(label.split()[0], label, d.pattern,
                        {"rows": d.rows, "bytes": d.bytes, "cost_seconds": d.cost}, nm.text(d.note),
                        _alternatives(d, options.verbose))

    def rec(node, inside_inline: int | None) -> PlanNode:
        d = plan.decisions.get(id(node))
        if isinstance(node, Exchange):
            why = _why_not_run(node, plan.nranks, inside_inline)
            actual = _actual(node.eid, per_rank) if analyzed and why is None else None
            if analyzed and why is None and actual is None:
                why = "did not run"
            keys = [nm.sql(k) for k in node.keys]
            text = f"Exchange #{node.eid} {node.kind}" + (f" [{', '.join(keys)}]" if keys else "")
            me = PlanNode("Exchange", text, exchange={"id": node.eid, "kind": node.kind, "keys": keys,
                                                      "runs": why is None, "why_not": why},
                          actual=actual)
            inner = inside_inline
            if inner is None and computed_everywhere(node) and plan.nranks > 1:
                inner = node.eid
            me.children = [rec(c, inner) for c in node.children]
            if actual is not None and me.children[0].exchange is None and me.children[0].actual_rows is None:
                me.children[0].actual_rows = actual["rows_in"]
            if d is not None:
                # An operator lowered to an exchange alone (a sorted window): its decision, then the step.
                top = operator_node(d)
                top.children = [me]
                return top
            return me
        me = operator_node(d) if d is not None else PlanNode(type(node).__name__, _describe(node, nm))
        if d is None:
            me.operator = me.text.split()[0]
        if analyzed:
            add_actuals(me, node, inside_inline is not None)
            if isinstance(node, MaterializedCte):
                me.kept = _kept(node.name, per_rank)
        me.children = [rec(c, inside_inline) for c in node.children]
        return me

    return rec(plan.root, None)


# ---------------------------------------------------------------------------------------- output

def _fmt(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return f"{n:.0f}"


def _fmt_s(s: float) -> str:
    return f"{s * 1000:.1f}ms" if s < 1 else f"{s:.2f}s"


def _spread_text(sp: dict, fmt) -> str:
    return f"{fmt(sp['min'])}/{fmt(sp['median'])}/{fmt(sp['max'])}"


def _alternative_text(a: dict, verbose: bool) -> str:
    note = f" ({a['note']})" if verbose and a["note"] else ""
    return f"{a['pattern']}{note} {a['cost_seconds'] * 1000:.2f}ms"


def _line(n: PlanNode, options: ExplainOptions) -> str:
    text = n.text
    if len(text) > MAX_LINE_CHARS:
        text = text[:MAX_LINE_CHARS - 3] + "..."
    if n.pattern is not None:
        e = n.estimate
        text += f"  [{n.pattern}] est rows={_fmt(e['rows'])} bytes={_fmt(e['bytes'])}B cost={e['cost_seconds'] * 1000:.2f}ms"
        if n.note:
            text += f" ({n.note})"
        if n.alternatives:
            text += "; beat " + ", ".join(_alternative_text(a, options.verbose) for a in n.alternatives)
    if n.actual_rows is not None:
        text += f"  actual rows={_fmt(n.actual_rows)}"
        detail = n.actual_rows_detail
        if detail is not None and detail["each_rank"]:
            text += " on each rank"
        elif detail is not None and len(detail["per_rank"]) > 1:
            text += f" (per rank min/median/max {_spread_text(detail['spread'], _fmt)})"
    if n.kept is not None:
        k = n.kept
        times = "once" if k["computed"] == 1 else f"{k['computed']} times"
        text += f"  actual: computed {times}, kept rows={_fmt(k['rows'])} bytes={_fmt(k['bytes'])}B"
        if k["bytes_spilled"]:
            text += f" spilled={_fmt(k['bytes_spilled'])}B"
        if len(k["per_rank"]) > 1:
            sp = k["spread"]
            text += (f"; per rank min/median/max: rows {_spread_text(sp['rows'], _fmt)},"
                     f" compute {_spread_text(sp['compute_seconds'], _fmt_s)}")
        else:
            text += f" compute={_fmt_s(k['spread']['compute_seconds']['max'])}"
    if n.exchange is not None:
        x = n.exchange
        if not x["runs"]:
            text += f"  (not run: {x['why_not']})"
        elif n.actual is not None:
            a, sp = n.actual, n.actual["spread"]
            text += (f"  actual: rows in={_fmt(a['rows_in'])} out={_fmt(a['rows_out'])} moved={_fmt(a['bytes_sent'])}B")
            if a["bytes_spilled"]:
                text += f" spilled={_fmt(a['bytes_spilled'])}B"
            if len(a["per_rank"]) > 1:
                # Skew of a shuffle is in what each rank receives; a gather's or broadcast's output
                # is uneven by design, so there it is what each rank sends.
                side = "rows_out" if x["kind"] in ("shuffle", "range") else "rows_in"
                text += (f"; per rank min/median/max: {side.replace('_', ' ')} {_spread_text(sp[side], _fmt)},"
                         f" compute {_spread_text(sp['compute_seconds'], _fmt_s)},"
                         f" comm {_spread_text(sp['comm_seconds'], _fmt_s)},"
                         f" wait {_spread_text(sp['wait_seconds'], _fmt_s)}; slowest rank {a['slowest_rank']}")
                busiest = max(a["per_rank"], key=lambda r: r[side])
                others = statistics.median(r[side] for r in a["per_rank"] if r is not busiest)
                if busiest[side] > SKEW_FACTOR * max(others, 1):
                    verb = "receives" if side == "rows_out" else "sends"
                    text += (f"; SKEW: rank {busiest['rank']} {verb} {busiest[side] / max(others, 1):.1f}x"
                             f" the rows of the other ranks' median")
            else:
                text += f" compute={_fmt_s(sp['compute_seconds']['max'])} comm={_fmt_s(sp['comm_seconds']['max'])}"
    return text


def render_explain(plan: PhysicalPlan, plan_seconds: float, analyze=None,
                   options: ExplainOptions | None = None) -> str:
    """EXPLAIN's answer. `analyze`: (RunStats per rank, total seconds, result rows) of a run."""
    options = options or ExplainOptions(analyze=analyze is not None)
    per_rank = analyze[0] or [] if analyze is not None else None
    tree = explain_tree(plan, options, per_rank)
    if options.format == "json":
        doc = {"ranks": plan.nranks, "planning_seconds": plan_seconds, "verbose": options.verbose,
               "plan": tree.to_json()}
        if plan.alone_of:
            doc["alone_of"] = plan.alone_of
        if analyze is not None:
            doc["analyze"] = {"total_seconds": analyze[1], "rows": analyze[2],
                              "final_compute_seconds": [rs.final_compute_s for rs in per_rank],
                              "final_wait_seconds": [rs.final_wait_s for rs in per_rank],
                              "peak_memory_bytes": peak_memory_bytes(per_rank)}
        return json.dumps(doc, indent=1)
    if options.format == "dot":
        return render_dot(tree, plan.nranks)
    if plan.alone_of:
        # planner/single_rank.py: cheaper on one rank than spread over the flock.
        head = (f"Plan for rank 0 alone, of {plan.alone_of} ranks (estimated {plan.cost * 1e3:.3g}ms against "
                f"{plan.distributed_cost * 1e3:.3g}ms distributed)")
    else:
        head = f"Distributed plan on {plan.nranks} rank{'s' if plan.nranks != 1 else ''}"
    lines = [f"{head} (planned in {_fmt_s(plan_seconds)})"]

    def rec(n: PlanNode, depth: int):
        lines.append("  " * depth + _line(n, options))
        for group in n.duckdb_operators or []:
            lines.extend(_duckdb_lines(group, "  " * (depth + 1)))
        for c in n.children:
            rec(c, depth + 1)
    rec(tree, 0)
    if analyze is not None:
        lines.append(f"Total: {_fmt_s(analyze[1])}, {analyze[2]} rows")
        peaks = peak_memory_bytes(per_rank)
        if any(p is not None for p in peaks):
            lines.append("Peak memory (process RSS) per rank: "
                         + ", ".join(f"rank {r} {'?' if p is None else _fmt(p) + 'B'}" for r, p in enumerate(peaks)))
    return "\n".join(lines)


def _duckdb_lines(group: dict, indent: str) -> list[str]:
    """A fragment's operators as DuckDB ran them, marked `~`, for when they could not all be
    matched to the plan's."""
    ranks = group["ranks"]
    who = f"rank {ranks[0]}" if len(ranks) == 1 else "ranks " + ", ".join(map(str, ranks)) + ", rows summed"
    out = [f"{indent}~ DuckDB's operators of this fragment, not all matched to the plan ({who}):"]
    for op in group["operators"]:
        detail = f" {op['detail']}" if op["detail"] else ""
        out.append(f"{indent}~ {'  ' * op['depth']}{op['name']}{detail}  rows={_fmt(op['rows'])}")
    return out


def _dot_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_dot(tree: PlanNode, nranks: int) -> str:
    """A Graphviz digraph: data flows up from the scans; exchanges are ellipses (dashed when they
    move nothing), edges carry the estimated rows, or the actual rows out of an exchange."""
    out = ["digraph plan {", "  rankdir=BT;", '  node [shape=box, fontname="Helvetica", fontsize=10];',
           f"  label={_dot_quote(f'Distributed plan on {nranks} rank' + ('s' if nranks != 1 else ''))};"]
    counter = [0]

    def rec(n: PlanNode) -> str:
        counter[0] += 1
        me = f"n{counter[0]}"
        label = n.text if len(n.text) <= 60 else n.text[:57] + "..."
        attrs = []
        if n.pattern is not None:
            label += f"\n[{n.pattern}] est rows {_fmt(n.estimate['rows'])}"
        if n.exchange is not None:
            attrs.append("shape=ellipse")
            if not n.exchange["runs"]:
                label += f"\nnot run: {n.exchange['why_not']}"
                attrs.append("style=dashed")
            elif n.actual is not None:
                label += f"\nmoved {_fmt(n.actual['bytes_sent'])}B"
        out.append(f"  {me} [label={_dot_quote(label)}{''.join(', ' + a for a in attrs)}];")
        for c in n.children:
            child = rec(c)
            edge = ""
            if c.actual is not None:
                edge = f" [label={_dot_quote(_fmt(c.actual['rows_out']) + ' rows')}]"
            elif c.actual_rows is not None:
                edge = f" [label={_dot_quote(_fmt(c.actual_rows) + ' rows')}]"
            elif c.estimate is not None:
                edge = f" [label={_dot_quote('~' + _fmt(c.estimate['rows']) + ' rows')}]"
            out.append(f"  {child} -> {me}{edge};")
        return me
    rec(tree)
    out.append("}")
    return "\n".join(out)
