"""Actual rows of the operators inside a fragment, for EXPLAIN ANALYZE, from DuckDB's profiler.

A fragment (every operator between exchanges) runs as one DuckDB query, so the only counts of
the operators inside it are DuckDB's, and DuckDB's operator tree is not our plan: it drops and
adds projections, pushes filters into scans, infers filters from join keys and statistics
(`c_custkey <= 1499`), reorders joins and swaps their sides, and at run time filters a probe
side's scan with the build side's keys ("Dynamic Filters"), so that scan yields fewer rows than
our Filter above it would.

How DuckDB's tree is mapped onto ours (`match`): both trees are first reduced to the operators
that change the row count: filter, join, aggregate, limit, union, leaf. Row-preserving ones
(our Project, Sort and Window; DuckDB's PROJECTION, ORDER_BY, WINDOW) take the count of the
operator below them; a DuckDB scan with pushed-down filters becomes a filter over a scan. The
two trees are then walked together from the top, kind against kind, and a node of ours gets
DuckDB's count only when its counterpart is certain:
- a filter when DuckDB's filters there (a run of them merged) read exactly the columns ours
  reads (compared by table column name: DuckDB shows a pushed-down filter on the file's names)
  and none is a run-time dynamic filter;
- a join when DuckDB's join conditions read exactly our keys' and residual's columns (our
  column ids are unique, so this also tells which input is which when DuckDB swapped them);
- an aggregate, limit or union when the same kind stands in the same place; a scan when
  DuckDB's scan filtered nothing.
Anywhere else the walk stops for that subtree: its operators get no count, because DuckDB may
have moved a predicate into it (a filter pushed below a join changes that join's count) or
reordered it. A fragment with any operator left without a count also keeps DuckDB's own
operators with their counts (`FragmentProfile.duckdb`), which EXPLAIN shows under the fragment:
better DuckDB's names with true counts than ours with guessed ones. A filter that DuckDB infers
on the very columns our filter reads (a range from a join key's statistics) is the one case
this cannot tell apart; it only removes rows the join above would remove anyway.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from sqlglot import exp

from planner.logical import Aggregate, Distinct, Filter, Join, Limit, Project, Scan, SetOp, Sort, Values, Window
from planner.patterns.base import Exchange, computed_everywhere

# A DuckDB operator's detail in EXPLAIN is cut to this many characters.
DETAIL_CHARS = 120

# DuckDB operator types (the profile's "type") by what they do to the row count.
_ROW_PRESERVING = {"PROJECTION", "RESULT_COLLECTOR", "ORDER_BY", "WINDOW", "STREAMING_WINDOW"}
_JOINS = {"HASH_JOIN", "NESTED_LOOP_JOIN", "PIECEWISE_MERGE_JOIN", "BLOCKWISE_NL_JOIN", "CROSS_PRODUCT",
          "IE_JOIN", "ASOF_JOIN", "POSITIONAL_JOIN"}
_LIMITS = {"LIMIT", "STREAMING_LIMIT", "TOP_N", "LIMIT_PERCENT"}
# Our join kinds and the join types DuckDB may run them as (it swaps a left join's inputs into a
# right join, and builds a semi join's left side as a right semi join).
_JOIN_TYPES = {"inner": {"INNER", "CROSS"}, "cross": {"INNER", "CROSS"}, "left": {"LEFT", "RIGHT"},
               "right": {"LEFT", "RIGHT"}, "full": {"OUTER", "FULL"}, "semi": {"SEMI", "RIGHT_SEMI"},
               "anti": {"ANTI", "RIGHT_ANTI"}, "asof": {"INNER"}, "asof_left": {"LEFT", "RIGHT"}}

_WORDS = frozenset("""AND OR NOT IS NULL IN LIKE ILIKE GLOB SIMILAR TO ESCAPE BETWEEN CASE WHEN THEN ELSE END
TRUE FALSE AS DISTINCT FROM CAST TRY_CAST DATE TIME TIMESTAMP INTERVAL ANY ALL SOME EXISTS COLLATE
BOOLEAN TINYINT SMALLINT INTEGER INT BIGINT HUGEINT UTINYINT USMALLINT UINTEGER UBIGINT UHUGEINT FLOAT
REAL DOUBLE DECIMAL VARCHAR BLOB UUID WITH ZONE""".split())
_STRING = re.compile(r"'(?:[^']|'')*'")
_CAST = re.compile(r"::\s*[A-Za-z_][A-Za-z0-9_ ]*(?:\([\d, ]*\))?")
_TOKEN = re.compile(r'"((?:[^"]|"")+)"|#\d+|([A-Za-z_][A-Za-z0-9_]*)(\s*\()?')
_ID_SUFFIX = re.compile(r"^(?P<base>.+?)(?:__p\d+|_\d+)$")
_COMPARISON = re.compile(r"\s(=|!=|<>|<=|>=|<|>|IS NOT DISTINCT FROM|IS DISTINCT FROM)\s")


@dataclass
class FragmentProfile:
    """What DuckDB counted of one fragment on one rank. Operators are named by their number in
    planner.physical.operator_numbers."""

    root: int                       # the fragment's top operator
    ops: tuple[int, ...]            # every operator of ours the fragment ran (not the exchanges it reads)
    rows: dict[int, int]            # rows out of those DuckDB's counts were matched to
    # DuckDB's operators in preorder: (depth, name, detail, rows out); empty when every operator matched.
    duckdb: tuple = ()


def columns_in(text: str) -> set[str] | None:
    """The column names an expression DuckDB printed reads (function, type and keyword names left
    out); None when it reads something unnamed (`#0`), which no column of ours can match."""
    text = _CAST.sub(" ", _STRING.sub("''", text))
    out = set()
    for m in _TOKEN.finditer(text):
        if m.group(0).startswith("#"):
            return None
        if m.group(1) is not None:
            out.add(m.group(1).replace('""', '"'))
        elif m.group(3) is None and m.group(2).upper() not in _WORDS:
            out.add(m.group(2))
    return out


def base_name(cid: str) -> str:
    """A column id without the binder's `_<n>` or the physical planner's `__p<n>`."""
    m = _ID_SUFFIX.match(cid)
    return m["base"] if m else cid


def _texts(value) -> list[str]:
    if value is None or value == "":
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _depths(text: str):
    """(position, parenthesis depth after the character) of each character outside '…' strings."""
    depth, quoted = 0, False
    for i, ch in enumerate(text):
        if ch == "'":
            quoted = not quoted
            continue
        if not quoted:
            depth += (ch == "(") - (ch == ")")
            yield i, depth


def _split_condition(cond: str) -> tuple[str, str] | None:
    """A join condition's two sides, at its first comparison outside parentheses and strings."""
    for i, depth in _depths(cond):
        m = _COMPARISON.match(cond, i) if depth == 0 else None
        if m:
            return cond[:i], cond[m.end():]
    return None


# ---------------------------------------------------------------------------------------- trees

@dataclass
class _Op:
    """An operator that changes the row count, of either tree. Ours: `nodes` are the plan nodes
    whose rows out are this operator's (it and the row-preserving ones right above it)."""

    kind: str                                   # filter, join, aggregate, limit, union, leaf, opaque
    children: list = field(default_factory=list)
    nodes: list = field(default_factory=list)   # ours
    node: object = None                         # ours: the plan node
    rows: int | None = None                     # DuckDB's: rows out, None when not the operator's own
    columns: set | None = None                  # filter: columns read (base names); join: condition ids
    sides: tuple = ()                           # DuckDB join: (ids left of each condition, ids right)
    join_type: str | None = None                # DuckDB join
    countable: bool = True                      # ours: a leaf whose rows DuckDB's scan counts
    dynamic: list = field(default_factory=list)  # DuckDB scan: its dynamic filters (_dynamic_filter)


def _duckdb_rows(d: dict) -> int | None:
    for key in ("operator_cardinality", "intermediate_rows", "cardinality"):
        if key in d:
            return int(d[key])
    return None


def _duckdb_type(d: dict) -> str:
    return str(d.get("type") or d.get("operator_type") or d.get("name") or d.get("operator_name") or "")


def _duckdb_name(d: dict) -> str:
    return str(d.get("name") or d.get("operator_name") or _duckdb_type(d))


def theirs(d: dict) -> _Op:
    """DuckDB's profile tree reduced to the operators that change the row count, without the
    counts that a dynamic filter changed (_without_dynamic_counts)."""
    top = _reduce(d)
    _without_dynamic_counts(top, [])
    return top


def _reduce(d: dict) -> _Op:
    t, kids, info = _duckdb_type(d), d.get("children") or [], d.get("extra_info") or {}
    if t in _ROW_PRESERVING and len(kids) == 1:
        return _reduce(kids[0])
    if t == "FILTER" and len(kids) == 1:
        below, cols = _reduce(kids[0]), columns_in(" AND ".join(_texts(info.get("Expression"))))
        cols = None if cols is None else {base_name(c) for c in cols}
        # Exact, even over a scan with optional filters (this applies them), unless a dynamic
        # filter below took rows away.
        rows = None if below.dynamic else _duckdb_rows(d)
        if below.kind == "filter":  # a run of filters (or one over a filtered scan) is one filter
            both = None if cols is None or below.columns is None else cols | below.columns
            return _Op("filter", below.children, rows=rows, columns=both, dynamic=below.dynamic)
        return _Op("filter", [below], rows=rows, columns=cols, dynamic=below.dynamic)
    if t in _JOINS and len(kids) == 2:
        conds = _texts(info.get("Conditions"))
        left, right, every = set(), set(), set()
        for c in conds:
            split = _split_condition(c)
            cols = [columns_in(s) for s in split] if split else [columns_in(c)]
            if any(x is None for x in cols):
                every = None
                break
            if split:
                left |= cols[0]
                right |= cols[1]
            every |= set().union(*cols)
        join_type = str(info.get("Join Type") or ("CROSS" if t == "CROSS_PRODUCT" else "")).upper() or None
        return _Op("join", [_reduce(k) for k in kids], rows=_duckdb_rows(d), columns=every,
                   sides=(left, right), join_type=join_type)
    if (t.endswith("GROUP_BY") or t.endswith("AGGREGATE")) and len(kids) == 1:
        return _Op("aggregate", [_reduce(kids[0])], rows=_duckdb_rows(d))
    if t in _LIMITS and len(kids) == 1:
        return _Op("limit", [_reduce(kids[0])], rows=_duckdb_rows(d))
    if t == "UNION" and len(kids) == 2:
        # DuckDB's UNION passes its inputs' chunks on and counts none itself: its rows are theirs.
        below = [_reduce(k) for k in kids]
        rows = None if any(b.rows is None for b in below) else sum(b.rows for b in below)
        return _Op("union", below, rows=rows)
    if not kids:
        return _scan(info, _duckdb_rows(d))
    return _Op("opaque", [_reduce(k) for k in kids])


def _scan(info: dict, rows: int | None) -> _Op:
    """A DuckDB scan: a filter over a leaf when filters were pushed into it. Its count is no
    operator's of ours when an optional filter (which DuckDB may or may not apply: a FILTER above
    applies it for sure) or a dynamic one (the build side's keys of a join above, at run time)
    took rows away."""
    static, optional = [], False
    for text in _texts(info.get("Filters")):
        for part in _conjuncts(text):
            if part.lower().startswith("optional:"):
                optional = True
            else:
                static.append(part)
    dynamic = [_dynamic_filter(text) for text in _texts(info.get("Dynamic Filters"))]
    exact = not optional and not dynamic
    if not static:
        return _Op("leaf", rows=rows if exact else None, dynamic=dynamic)
    cols = columns_in(" AND ".join(static))
    return _Op("filter", [_Op("leaf")], rows=rows if exact else None,
               columns=None if cols is None else {base_name(c) for c in cols}, dynamic=dynamic)


def _conjuncts(text: str) -> list[str]:
    """A filter's top-level AND-ed parts, outer parentheses taken off."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and all(d for i, d in _depths(text) if i < len(text) - 1):
        text = text[1:-1].strip()
    cuts = [i for i, d in _depths(text) if d == 0 and text.startswith(" AND ", i)]
    parts = [text[a:b] for a, b in zip([0] + [c + 5 for c in cuts], cuts + [len(text)])]
    return [p.strip() for p in parts if p.strip()]


_PRF = re.compile(r'PRF\(\s*"?([^)"]+?)"?\s*\)')


def _dynamic_filter(text: str) -> tuple[set, set]:
    """(probe columns' base names, build columns) of a dynamic filter: `l_orderkey IN
    PRF(o_orderkey_9)` names the build side's column; `l_suppkey IN (33, 44)` or a min/max range
    only the probe side's."""
    builds = set(_PRF.findall(text))
    cols = columns_in(_PRF.sub("", text)) or set()
    return {base_name(c) for c in cols} - {"optional"}, builds


def _without_dynamic_counts(op: _Op, above: list) -> None:
    """A dynamic filter on a scan keeps only rows that can meet the build side of the join that
    made it: that join's count is its own, but every operator between the scan and that join
    counts fewer rows than it would alone (TPC-H Q7: orders filtered by a join with customer two
    joins up). Their counts go. The join that made it is the highest join above whose condition
    reads the filter's build column (or, when the filter names none, a column of the probe
    column's name); with none found, every count above goes."""
    for probes, builds in op.dynamic:
        makers = [i for i, a in enumerate(above) if a.kind == "join" and a.columns and (
            builds & a.columns if builds else probes & {base_name(c) for c in a.columns})]
        for a in above[min(makers) + 1 if makers else 0:]:
            a.rows = None
    for c in op.children:
        _without_dynamic_counts(c, above + [op])


class _Ours:
    """Our fragment reduced like DuckDB's (see theirs), the way executors/runner.py renders it."""

    def __init__(self, rank: int, nranks: int, root_exchange):
        self.rank, self.nranks, self.root_exchange = rank, nranks, root_exchange
        self.ran: list = []  # every plan node the fragment runs, exchanges it reads left out

    def op(self, node) -> _Op:
        if isinstance(node, Exchange):
            return self._exchange(node)
        self.ran.append(node)
        if isinstance(node, (Project, Sort)) or (isinstance(node, Window) and not self._over_halo(node)):
            below = self.op(node.input)
            below.nodes.append(node)
            return below
        if isinstance(node, Filter):
            below = self.op(node.input)
            cols = {base_name(c.name) for c in node.predicate.find_all(exp.Column)}
            if below.kind == "filter" and below.nodes == [below.node] and isinstance(below.node, Filter):
                # Filter over Filter: DuckDB runs them as one; the upper one gets the count.
                return _Op("filter", below.children, [node], node, columns=below.columns | cols)
            return _Op("filter", [below], [node], node, columns=cols)
        if isinstance(node, Join):
            kids = [self.op(node.left), self.op(node.right)]
            return _Op("join", kids, [node], node)
        if isinstance(node, (Aggregate, Distinct)):
            return _Op("aggregate", [self.op(node.input)], [node], node)
        if isinstance(node, Limit):
            return _Op("limit", [self.op(node.input)], [node], node)
        if isinstance(node, SetOp) and node.kind == "union" and node.all:
            return _Op("union", [self.op(node.left), self.op(node.right)], [node], node)
        if isinstance(node, Scan):
            return _Op("leaf", [], [node], node)
        if isinstance(node, Values):
            return _Op("leaf", [], [node], node, countable=False)
        return _Op("opaque", [self.op(c) for c in node.children], [node], node)

    @staticmethod
    def _over_halo(node: Window) -> bool:
        # Rendered as a filter (the rank's own rows) over the window: no row-preserving step.
        return isinstance(node.input, Exchange) and node.input.kind == "halo"

    def _exchange(self, x: Exchange) -> _Op:
        if computed_everywhere(x):
            return self.op(x.input)  # every rank computes it in this fragment
        if x.kind == "localize":
            # Rank 0 computes the input here; the others render it empty and run none of it.
            return self.op(x.input) if self.rank == 0 else _Op("leaf", countable=False)
        if self.nranks == 1 and x is not self.root_exchange:
            below = self.op(x.input)  # one rank: the exchange is the identity, fused
            return _Op("limit", [below]) if x.kind == "slice" else below
        # An exchange's result (the exchange has counts of its own, but the row-preserving
        # operators right above it take DuckDB's count of the view).
        return _Op("leaf")


def match(ours: _Op, duck: _Op, rows: dict) -> None:
    """Gives ours DuckDB's counts where the counterpart is certain (the module's docstring);
    rows: plan node id -> rows out."""
    def record(count):
        if count is not None:
            for n in ours.nodes:
                rows[id(n)] = count

    if ours.kind != duck.kind or len(ours.children) != len(duck.children):
        return
    if ours.kind == "leaf":
        if ours.countable:
            record(duck.rows)
        return
    if ours.kind == "filter":
        if duck.rows is None or duck.columns is None or duck.columns != ours.columns:
            return  # DuckDB's filters are not ours alone: nothing below can be trusted either
        record(duck.rows)
        match(ours.children[0], duck.children[0], rows)
        return
    if ours.kind == "join":
        pairs = _join_pairs(ours, duck)
        if pairs is None:
            return
        record(duck.rows)
        for o, d in pairs:
            match(o, d, rows)
        return
    if ours.kind == "opaque":
        return
    record(duck.rows)
    for o, d in zip(ours.children, duck.children):
        match(o, d, rows)


def _join_pairs(ours: _Op, duck: _Op):
    """Which DuckDB input is which of ours, or None when DuckDB's join is not certainly ours."""
    node: Join = ours.node
    if node is None or duck.columns is None:
        return None
    if duck.join_type is not None and duck.join_type not in _JOIN_TYPES.get(node.kind, set()):
        return None
    left = {c.name for k in node.left_keys for c in k.find_all(exp.Column)}
    right = {c.name for k in node.right_keys for c in k.find_all(exp.Column)}
    every = left | right | ({c.name for c in node.residual.find_all(exp.Column)} if node.residual is not None else set())
    if every != duck.columns:
        return None
    straight = [(ours.children[0], duck.children[0]), (ours.children[1], duck.children[1])]
    swapped = [(ours.children[0], duck.children[1]), (ours.children[1], duck.children[0])]
    if not left and not right:
        # No keys (a cross join, or a residual alone): the count is certain; which input is which
        # only when the two inputs' shapes tell them apart.
        fits = [p for p in (straight, swapped) if all(_shape(o) == _shape(d) for o, d in p)]
        return fits[0] if len(fits) == 1 else []
    d_left, d_right = duck.sides
    if left <= d_left and right <= d_right:
        return straight
    if left <= d_right and right <= d_left:
        return swapped
    return []


def _shape(op: _Op) -> tuple:
    return (op.kind, tuple(_shape(c) for c in op.children))


def _detail(d: dict) -> str:
    info, t = d.get("extra_info") or {}, _duckdb_type(d)
    parts = []
    if t in _JOINS:
        parts = _texts(info.get("Join Type")) + [" AND ".join(_texts(info.get("Conditions")))]
    elif t == "FILTER":
        parts = _texts(info.get("Expression"))
    elif not d.get("children"):
        files = _texts(info.get("Filename(s)"))
        parts = [re.sub(r".*/", "", files[0])] if files else _texts(info.get("Table"))
        parts += ["filters: " + " AND ".join(_texts(info.get("Filters")))] if info.get("Filters") else []
        parts += ["dynamic filters: " + " AND ".join(_texts(info.get("Dynamic Filters")))] \
            if info.get("Dynamic Filters") else []
    text = " ".join(p for p in parts if p)
    return text if len(text) <= DETAIL_CHARS else text[:DETAIL_CHARS - 3] + "..."


def duckdb_operators(d: dict, depth: int = 0) -> list[tuple]:
    """DuckDB's operators in preorder, (depth, name, detail, rows out), projections left out."""
    kids = d.get("children") or []
    if _duckdb_type(d) in ("PROJECTION", "RESULT_COLLECTOR") and len(kids) == 1:
        return duckdb_operators(kids[0], depth)
    out = [(depth, _duckdb_name(d), _detail(d), _duckdb_rows(d) or 0)]
    for k in kids:
        out += duckdb_operators(k, depth + 1)
    return out


def _operator_tree(profile: dict) -> dict | None:
    """The top operator of DuckDB's JSON profile (DuckDB 1.x: the root's children; 2.x: its
    "operator" list)."""
    tops = profile.get("operator") or profile.get("children") or []
    return tops[0] if len(tops) == 1 else None


def fragment_profile(profile_json: str, node, numbers: dict, rank: int, nranks: int,
                     root_exchange=None) -> FragmentProfile | None:
    """The fragment rooted at `node` as DuckDB profiled it on this rank (see the module docstring);
    None when the profile has no operator tree."""
    try:
        tree = _operator_tree(json.loads(profile_json))
    except ValueError:
        return None
    if tree is None:
        return None
    ours = _Ours(rank, nranks, root_exchange)
    top = ours.op(node)
    counted: dict[int, int] = {}
    match(top, theirs(tree), counted)
    ran = tuple(dict.fromkeys(numbers[id(n)] for n in ours.ran if id(n) in numbers))
    rows = {numbers[i]: r for i, r in counted.items() if i in numbers}
    complete = all(n in rows for n in ran)
    return FragmentProfile(numbers[id(node)], ran, rows, () if complete else tuple(duckdb_operators(tree)))
