"""Logical plan nodes: small immutable values.

Every column a node produces has a plan-wide unique id (a string such as ``l_orderkey_7``), so
expressions are sqlglot trees whose columns are bare quoted ids: a fragment can be rendered from any
subtree without name clashes, and rewrites never need to re-qualify anything.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from sqlglot import exp

from engine.errors import PlanError

JOIN_KINDS = ("inner", "left", "right", "full", "semi", "anti", "cross", "asof", "asof_left")
# ASOF joins (DuckDB's semantics): each left row meets the one right row with equal keys whose value
# is nearest by the inequality, which the Join holds as its residual.
ASOF_KINDS = ("asof", "asof_left")
SETOP_KINDS = ("union", "intersect", "except")
DEPENDENT_JOIN_KINDS = ("inner", "left", "semi", "anti")


def col(cid: str) -> exp.Column:
    return exp.Column(this=exp.Identifier(this=cid, quoted=True))


def column_ids(e: exp.Expression) -> set[str]:
    return {c.name for c in e.find_all(exp.Column)}


def conjuncts(e: exp.Expression | None) -> list[exp.Expression]:
    if e is None:
        return []
    while isinstance(e, (exp.Paren, exp.Where)):
        e = e.this
    if isinstance(e, exp.And):
        return conjuncts(e.left) + conjuncts(e.right)
    return [e]


def and_all(parts: list[exp.Expression]) -> exp.Expression | None:
    # sqlglot renders a tree as it is, without adding parentheses: an OR under an AND must carry
    # its own, or `a AND (b OR c)` would run as `(a AND b) OR c`.
    parts = [exp.Paren(this=p) if isinstance(p, exp.Connector) and not isinstance(p, exp.And) else p
             for p in parts]
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = exp.And(this=out, expression=p)
    return out


class Node:
    """Base for plan nodes. Subclasses define `children` and `columns` (output column ids)."""

    __slots__ = ()
    children: tuple

    @property
    def columns(self) -> tuple[str, ...]:
        raise NotImplementedError

    def with_children(self, *children):
        raise NotImplementedError


class Unary(Node):
    """A node with one input, held in the field `input`."""

    __slots__ = ()

    @property
    def children(self):
        return (self.input,)

    def with_children(self, input):
        return replace(self, input=input)


class SameColumns(Unary):
    """A one-input node whose output columns are its input's."""

    __slots__ = ()

    @property
    def columns(self):
        return self.input.columns


class Leaf(Node):
    """A node without inputs (scans, constants, generated rows, a CTE reference)."""

    __slots__ = ()

    @property
    def children(self):
        return ()

    def with_children(self):
        return self


@dataclass(frozen=True, slots=True, eq=False)
class Scan(Leaf):
    table: str
    # (column id, column name in the table)
    fields: tuple[tuple[str, str], ...]
    # Physical choice (set by planner/copartition.py): read range-partitioned on this column with
    # these splitters (rank r reads values in [splitters[r-1], splitters[r])), else by row groups.
    key_range: tuple | None = None
    # Each rank reads a consecutive run of the table, so that rank order is the files' order (a
    # side of a POSITIONAL JOIN); otherwise the row groups are dealt out across the table.
    in_order: bool = False

    @property
    def columns(self):
        return tuple(cid for cid, _ in self.fields)

    def key_range_id(self) -> str | None:
        """The column id the scan is range-partitioned on, if it is."""
        if self.key_range is None:
            return None
        return next((cid for cid, name in self.fields if name == self.key_range[0]), None)


@dataclass(frozen=True, slots=True, eq=False)
class Values(Leaf):
    ids: tuple[str, ...]
    rows: tuple[tuple[exp.Expression, ...], ...]

    def __post_init__(self):
        if any(len(r) != len(self.ids) for r in self.rows):
            raise PlanError("VALUES rows must all have the same number of columns")

    @property
    def columns(self):
        return self.ids



@dataclass(frozen=True, slots=True, eq=False)
class Generate(Leaf):
    """Rows that a table function makes from constant arguments: `range`, `generate_series` and
    `unnest` of a list, in FROM (planner/table_functions.py binds them). The number of rows is
    known exactly when the plan is made, so each rank can make its own slice of them: rows
    [r·n/P, (r+1)·n/P) in the function's order. `series` is (first value, step) for an integer
    series, whose slices are computed directly; other functions' slices skip rows."""

    id: str
    call: str  # DuckDB's text of the call, as a FROM item
    rows: int
    series: tuple[int, int] | None = None
    lo: object = None  # the smallest and largest value, where known (statistics)
    hi: object = None

    def __post_init__(self):
        if self.rows < 0:
            raise PlanError("a table function cannot make a negative number of rows")

    @property
    def columns(self):
        return (self.id,)


    def slice(self, rank: int, nranks: int) -> tuple[int, int]:
        """The rows [start, stop) that rank makes of the function's rows."""
        return self.rows * rank // nranks, self.rows * (rank + 1) // nranks


# Functions that turn one row into as many rows as a list has elements, wherever they stand in a
# select list (DuckDB's UNNEST in the select list).
ROW_MULTIPLYING = (exp.Explode, exp.Unnest)


def multiplies_rows(e: exp.Expression) -> bool:
    """Whether an expression of a projection makes several rows of one (it holds an UNNEST), so
    the projection's row count depends on it: it must be computed even if nobody reads it."""
    return any(isinstance(n, ROW_MULTIPLYING) or (isinstance(n, exp.Anonymous) and n.name.lower() == "unnest")
               for n in e.walk())


@dataclass(frozen=True, slots=True, eq=False)
class Filter(SameColumns):
    input: Node
    predicate: exp.Expression

    def __post_init__(self):
        if isinstance(self.predicate, (exp.Literal,)) and not self.predicate.is_string:
            raise PlanError("a filter predicate must be boolean")


@dataclass(frozen=True, slots=True, eq=False)
class Project(Unary):
    input: Node
    exprs: tuple[tuple[str, exp.Expression], ...]

    @property
    def columns(self):
        return tuple(cid for cid, _ in self.exprs)


class _JoinShape(Node):
    """Two inputs, `left` and `right`, joined by `kind`: a semi or anti join keeps the left
    side's columns only (Join and DependentJoin)."""

    __slots__ = ()

    @property
    def children(self):
        return (self.left, self.right)

    @property
    def columns(self):
        if self.kind in ("semi", "anti"):
            return self.left.columns
        return self.left.columns + self.right.columns


@dataclass(frozen=True, slots=True, eq=False)
class Join(_JoinShape):
    left: Node
    right: Node
    kind: str
    left_keys: tuple[exp.Expression, ...] = ()
    right_keys: tuple[exp.Expression, ...] = ()
    residual: exp.Expression | None = None

    def __post_init__(self):
        if self.kind not in JOIN_KINDS:
            raise PlanError(f"unknown join kind {self.kind}")
        if len(self.left_keys) != len(self.right_keys):
            raise PlanError("join keys must pair up")
        if self.kind in ASOF_KINDS and self.residual is None:
            raise PlanError("an ASOF join needs an inequality")


    def with_children(self, left, right):
        return Join(left, right, self.kind, self.left_keys, self.right_keys, self.residual)


@dataclass(frozen=True, slots=True, eq=False)
class Aggregate(Unary):
    input: Node
    groups: tuple[tuple[str, exp.Expression], ...]
    aggs: tuple[tuple[str, exp.Expression], ...]
    # Group ids that a later stage also groups by (the keys every grouping set keeps): where they
    # have enough values, the rows are partitioned on them alone, so that stage needs no shuffle.
    partition_on: tuple[str, ...] = ()
    # A pre-aggregation that each rank may compute over its own rows alone: an aggregate above
    # merges its states (planner/rules/eager_aggregation.py).
    local: bool = False

    @property
    def columns(self):
        return tuple(c for c, _ in self.groups) + tuple(c for c, _ in self.aggs)


# Aggregates whose value over no rows is 0, not NULL.
ZERO_ON_EMPTY = (exp.Count, exp.CountIf, exp.ApproxDistinct)


@dataclass(frozen=True, slots=True, eq=False)
class Distinct(SameColumns):
    input: Node


@dataclass(frozen=True, slots=True, eq=False)
class Window(Unary):
    input: Node
    funcs: tuple[tuple[str, exp.Expression], ...]  # each an exp.Window
    # (function id, N): only rows whose value of that ranking function is at most N are read
    # above (planner/rules/window_top_n.py), so each rank may drop its own rows ranked past N.
    top: tuple[str, int] | None = None

    @property
    def columns(self):
        return self.input.columns + tuple(c for c, _ in self.funcs)


@dataclass(frozen=True, slots=True, eq=False)
class Sort(SameColumns):
    input: Node
    keys: tuple[exp.Ordered, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Limit(SameColumns):
    input: Node
    limit: int | None
    offset: int = 0

    def __post_init__(self):
        if (self.limit is not None and self.limit < 0) or self.offset < 0:
            raise PlanError("LIMIT and OFFSET must not be negative")


@dataclass(frozen=True, slots=True, eq=False)
class SetOp(Node):
    kind: str
    all: bool
    left: Node
    right: Node
    ids: tuple[str, ...]

    def __post_init__(self):
        if self.kind not in SETOP_KINDS:
            raise PlanError(f"unknown set operation {self.kind}")
        if not (len(self.left.columns) == len(self.right.columns) == len(self.ids)):
            raise PlanError(f"{self.kind.upper()} inputs have different numbers of columns")

    @property
    def children(self):
        return (self.left, self.right)

    @property
    def columns(self):
        return self.ids

    def with_children(self, left, right):
        return SetOp(self.kind, self.all, left, right, self.ids)


@dataclass(frozen=True, slots=True, eq=False)
class SingleRow(SameColumns):
    """Checks that a scalar subquery returned at most one row (DuckDB raises otherwise)."""

    input: Node


@dataclass(frozen=True, slots=True, eq=False)
class DependentJoin(_JoinShape):
    """A join whose right side reads columns of its left side: LATERAL, and a correlated subquery
    that the binder's own decorrelation does not cover. For each left row, the right side is
    evaluated with the `outer` column ids bound to that row's values, and the rows it gives are
    joined to that left row (kind inner or left; `condition` is the ON clause, reading both sides),
    or decide whether the left row is kept (semi: EXISTS / IN, some row meets the condition; anti:
    NOT EXISTS / NOT IN, none does). With `scalar`, the right side is a scalar subquery: more than
    one row for a left row is an error. The right side may also read columns of enclosing queries
    (not in `outer`): a dependent join further out binds them.

    Nothing executes this node: planner/rules/flatten_dependent_joins.py rewrites it into ordinary
    joins, aggregates and windows before anything else looks at the plan."""

    left: Node
    right: Node
    kind: str
    outer: tuple[str, ...]
    condition: exp.Expression | None = None
    scalar: bool = False

    def __post_init__(self):
        if self.kind not in DEPENDENT_JOIN_KINDS:
            raise PlanError(f"a dependent join is inner, left, semi or anti, not {self.kind}")
        if not set(self.outer) <= set(self.left.columns):
            raise PlanError("a dependent join's outer columns must come from its left side")


    def with_children(self, left, right):
        return DependentJoin(left, right, self.kind, self.outer, self.condition, self.scalar)


@dataclass(frozen=True, slots=True, eq=False)
class MaterializedCte(Node):
    """A CTE computed once per execution of its statement (DuckDB's LogicalMaterializedCTE):
    `definition` runs first and each rank keeps its own partition of the result, in the
    distribution the definition left it (a CTE grouped by a key stays hash-partitioned on it);
    then `input`, the rest of the statement, reads that partition through CteRef leaves of the
    same `name` as often as it likes. The kept partitions live until the statement ends.
    planner/cte_materialization.py decides which CTEs are kept and which are planned again at
    each reference; `refs` (how often the statement names the CTE) and `reason` say why."""

    name: str          # unique in the plan; CteRef.name points here
    label: str         # the CTE's name in the statement, for EXPLAIN
    definition: Node
    input: Node
    refs: int = 0
    reason: str = ""

    def __post_init__(self):
        if len(set(self.definition.columns)) != len(self.definition.columns):
            raise PlanError("a materialized CTE's definition must name each column once")

    @property
    def children(self):
        return (self.definition, self.input)

    @property
    def columns(self):
        return self.input.columns

    def with_children(self, definition, input):
        return replace(self, definition=definition, input=input)


@dataclass(frozen=True, slots=True, eq=False)
class CteRef(Leaf):
    """One reference to a MaterializedCte of the same `name`: this rank's kept partition of the
    definition's columns `sources`, under this reference's own column ids `ids` (fresh for each
    reference, as each scan of one table gets its own)."""

    name: str
    label: str
    ids: tuple[str, ...]
    sources: tuple[str, ...]

    def __post_init__(self):
        if len(self.ids) != len(self.sources) or not self.ids:
            raise PlanError("a CTE reference must read at least one column, each under an id of its own")

    @property
    def columns(self):
        return self.ids


def cte_refs(node: Node, name: str) -> list[CteRef]:
    """The references to the materialized CTE `name` in node's tree."""
    return [n for n in walk(node) if isinstance(n, CteRef) and n.name == name]


@dataclass(frozen=True, slots=True, eq=False)
class Query:
    """A planned SELECT: the root node, the user-visible output names, and the SQL types of the
    column ids where the binder knew them."""

    root: Node
    names: tuple[str, ...]
    types: dict = field(default_factory=dict, compare=False)


def walk(node: Node):
    yield node
    for c in node.children:
        yield from walk(c)


def column_origin(node: Node, cid: str):
    """(leaf, its column id) that column `cid` of `node` comes from unchanged (through filters,
    projections of a bare column and joins), or None."""
    while True:
        if isinstance(node, (Scan, CteRef)):
            return (node, cid) if cid in node.columns else None
        if isinstance(node, Filter):
            node = node.input
        elif isinstance(node, Project):
            e = dict(node.exprs).get(cid)
            if not isinstance(e, exp.Column):
                return None
            node, cid = node.input, e.name
        elif isinstance(node, Join):
            node = node.left if cid in node.left.columns else node.right
        else:
            return None


def replace_nodes(node: Node, new) -> Node:
    """`node` with each node n for which new(n) gives a node (of the same columns) replaced by it,
    and the rest as it is (new(n) None); the nodes above an unchanged part stay the same objects."""
    made = new(node)
    if made is not None:
        return made
    kids = [replace_nodes(c, new) for c in node.children]
    if all(a is b for a, b in zip(kids, node.children)):
        return node
    return node.with_children(*kids)


def replace_scans(node: Node, new) -> Node:
    """`node` with each Scan s replaced by new(s)."""
    return replace_nodes(node, lambda n: new(n) if isinstance(n, Scan) else None)
