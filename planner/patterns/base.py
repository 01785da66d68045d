"""What every pattern module shares: data distributions, the exchange node, and alternatives.

A pattern module exposes NAME and `alternatives(node, kids, ctx) -> list[Alternative]`: for the
logical node (with its children already planned), each way the pattern can run it, priced by
`cost` (seconds per rank, this operator only) and built lazily by `lower()` into physical nodes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from sqlglot import exp

from planner.cost import CostParams
from planner.estimate import Estimator
from planner.logical import Node, Project, SameColumns, col

EMBARRASSINGLY_PARALLEL = "embarrassingly-parallel"
SHUFFLE_COMPUTE = "shuffle-compute"
SAMPLE_SHUFFLE_COMPUTE = "sample-shuffle-compute"
COMBINE_SHUFFLE_REDUCE = "combine-shuffle-reduce"
BROADCAST_COMPUTE = "broadcast-compute"
GLOBALLY_REDUCE = "globally-reduce"
HALO_EXCHANGE = "halo-exchange"
PARTITIONED_IO = "partitioned-io"


@dataclass(frozen=True, slots=True)
class Dist:
    """How a relation is spread over the ranks.

    hash: rows with equal keys are on the same rank (keys: one set of equivalent column ids per
          hashed position, in hash order); any: arbitrary (some ranks may be empty);
    replicated: every rank holds all rows; range: globally ordered by rank (after a sample sort);
    single: all rows on rank 0 (after a gather), so the result needs no final gather.
    """

    kind: str
    keys: tuple[frozenset, ...] = ()
    # The partition function for kind 'hash': () is a hash of the keys; ("range", splitters) is
    # a range partition of one key (co-partitioned reads). Two inputs are co-located only if
    # their functions are equal.
    fn: tuple = ()

    def hashed_on(self, ids, fn: tuple = ()) -> bool:
        """True when partitioned by fn of exactly these column ids, in this order."""
        ids = list(ids)
        return self.kind == "hash" and self.fn == fn and len(ids) == len(self.keys) and \
            all(i in k for i, k in zip(ids, self.keys))

    def hashed_within(self, ids) -> bool:
        """True when every hash key is one of ids (so equal ids imply the same rank)."""
        ids = set(ids)
        return self.kind == "hash" and bool(self.keys) and all(k & ids for k in self.keys)

    def rename(self, mapping: dict[str, set[str]]) -> "Dist":
        """Follow columns through a projection: mapping sends an input id to its output ids."""
        if self.kind != "hash":
            return self
        new = []
        for k in self.keys:
            out = set()
            for i in k:
                out |= mapping.get(i, set())
            if not out:
                return ANY
            new.append(frozenset(out))
        return Dist("hash", tuple(new), self.fn)


ANY = Dist("any")
REPLICATED = Dist("replicated")
SINGLE = Dist("single")


def hash_dist(ids, fn: tuple = ()) -> Dist:
    return Dist("hash", tuple(frozenset([i]) for i in ids), fn)


@dataclass(frozen=True, slots=True, eq=False)
class Exchange(SameColumns):
    """A communication step between local fragments.

    kind: shuffle (hash of keys) | broadcast (every rank gets all rows) | gather (rank 0 gets all
    rows, in rank order) | range (sample sort by the Ordered keys) | localize (a replicated input
    keeps only rank 0's copy: no communication) | slice (fn = (offset, limit): rank 0 gets the
    rows at those global positions of the input in rank order, limit None for all after offset).
    """

    input: Node
    kind: str
    keys: tuple[exp.Expression, ...] = ()
    eid: int = 0
    fn: tuple = ()  # for shuffle: () hash, ("range", splitters) by key range; for slice: (offset, limit)


@dataclass(slots=True)
class Phys:
    node: Node
    dist: Dist
    cost: float  # cumulative, seconds per rank


@dataclass(slots=True)
class Alternative:
    pattern: str
    cost: float
    lower: Callable[[], tuple[Node, Dist]]
    note: str = ""


@dataclass(slots=True)
class Ctx:
    est: Estimator
    params: CostParams
    nranks: int
    forced: dict = field(default_factory=dict)  # pattern name to prefer for an operator kind
    new_id: Callable[[str], str] = str  # fresh column ids for the nodes a lowering adds

    def bytes(self, node: Node) -> float:
        return self.est.estimate(node).bytes

    def rows(self, node: Node) -> float:
        return self.est.estimate(node).rows

    def known(self, node: Node) -> bool:
        return self.est.estimate(node).known


def is_scan_pipeline(node: Node) -> bool:
    """A Scan (or generated rows) under filters and projections only: replicating it means each
    rank reads (or makes) it whole."""
    from planner.logical import Filter, Generate, Scan
    while isinstance(node, (Filter, Project)):
        node = node.input
    return isinstance(node, (Scan, Generate))


# Rows of this many bytes cost CostParams.scan_row each to read; wider rows cost proportionally more.
SCAN_REFERENCE_WIDTH = 16.0


def scan_cost(node: Node, ctx: Ctx) -> float:
    """Seconds for one rank to read its 1/P share of the scan under node (or make its share of
    generated rows: about what reading them costs)."""
    from planner.logical import Filter, Generate, Scan
    while isinstance(node, (Filter, Project)):
        node = node.input
    if not isinstance(node, (Scan, Generate)):
        return 0.0
    est = ctx.est.estimate(node)
    return est.rows / ctx.nranks * ctx.params.scan_row * max(1.0, est.width / SCAN_REFERENCE_WIDTH)


def scan_rows(node: Node, ctx: Ctx) -> float:
    from planner.logical import Filter, Generate, Scan
    while isinstance(node, (Filter, Project)):
        node = node.input
    return ctx.rows(node) if isinstance(node, (Scan, Generate)) else 0.0


# A broadcast Exchange's fn when its rows are sent (allgathered) although every rank could compute
# them from the files: chosen where that work costs more than the message (see replicate_cost).
ALLGATHER = ("allgather",)


def computed_everywhere(x: Exchange) -> bool:
    """A broadcast whose input every rank computes from the files, in the fragment that reads it."""
    return x.kind == "broadcast" and x.fn != ALLGATHER and is_replicable(x.input)


def is_replicable(node: Node) -> bool:
    """A physical subtree every rank can compute whole from the files alone: scans, filters,
    projections and joins whose only exchanges are broadcasts (identities once every scan in it is
    read whole). Replicating it costs local work on every rank and no messages, and the fragment
    that uses it still reads Parquet only, so DuckDB keeps its statistics."""
    from planner.logical import Filter, Generate, Join, Scan
    if isinstance(node, Exchange):
        return computed_everywhere(node)
    if isinstance(node, (Scan, Generate)):
        return True
    if isinstance(node, (Filter, Project, Join)):
        return all(is_replicable(c) for c in node.children)
    return False


def replicate_cost(small: Phys, ctx: Ctx) -> tuple[float, str, bool]:
    """Cost of making every rank hold all of small's rows: (seconds, how, sent), sent when the rows
    are allgathered rather than computed by every rank."""
    p = ctx.params
    if ctx.nranks <= 1:
        return 0.0, "", False
    gather = p.allgather(ctx.bytes(small.node), ctx.nranks)
    if is_scan_pipeline(small.node):
        # Every rank reads the whole table instead of its share: more reading (and decoding, which
        # grows with the width of the rows read), no messages.
        return scan_cost(small.node, ctx) * (ctx.nranks - 1), "each rank reads it whole", False
    if is_replicable(small.node):
        # Every rank does all of the subtree's work instead of its 1/P share, unless its few
        # result rows cost less to send (a join of two fact tables that leaves 400 rows).
        recompute = small.cost * (ctx.nranks - 1)
        if recompute <= gather:
            return recompute, "each rank computes it from the files", False
    return gather, "allgather", True


# Group keys with fewer distinct values than this per rank are not hashed on alone: the ranks'
# shares would be too uneven (11 categories over 2 ranks split at worst 8:3, mostly 6:5 or 7:4).
PARTITION_ON_VALUES_PER_RANK = 4


def aggregate_hash_positions(node, ctx: Ctx) -> list[int]:
    """Positions of the group keys an aggregate's shuffle hashes on: those of node.partition_on
    where together they have enough distinct values for the ranks, else all."""
    everything = list(range(len(node.groups)))
    if not node.partition_on or ctx.nranks <= 1:
        return everything
    source = ctx.est.estimate(node.input)
    groups = dict(node.groups)
    values = 1.0
    for g in node.partition_on:
        # Only a column whose distinct values the statistics count: an expression's estimate is a
        # guess (`ROLLUP (a % 2, …)` would put every row on two ranks at most).
        key = groups[g]
        if not isinstance(key, exp.Column) or key.name not in source.cols:
            return everything
        values *= source.cols[key.name].ndv
    if values < PARTITION_ON_VALUES_PER_RANK * ctx.nranks:
        return everything
    gids = [g for g, _ in node.groups]
    return [gids.index(g) for g in node.partition_on]


def local_top(rows: Node, window, ctx: Ctx) -> Node:
    """rows without those this rank already places past N among its own rows, in the window
    function that window.top bounds (planner/rules/window_top_n.py): what each rank sends on."""
    from planner.logical import Filter, Window
    fid, n = window.top
    local = ctx.new_id("local_rank")
    ranked = Window(rows, ((local, dict(window.funcs)[fid]),))
    kept = Filter(ranked, exp.LTE(this=col(local), expression=exp.Literal.number(n)))
    return Project(kept, tuple((c, col(c)) for c in rows.columns))


def key_ids(keys) -> list[str] | None:
    """Column ids of keys that are all bare columns, else None."""
    out = []
    for k in keys:
        if not isinstance(k, exp.Column):
            return None
        out.append(k.name)
    return out


def columns_of(node: Node):
    return [col(c) for c in node.columns]
