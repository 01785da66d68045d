"""`flocksql tpch model`: predict TPC-H at cluster scale from the plans the planner makes there.

For each query, rank count P and scale factor SF the model
  1. scales the catalog of a small data set (SF 0.01) to SF: row counts grow by SF/base; distinct
     counts grow too for key columns (…key) and nearly unique ones, and stay put for bounded
     domains (flags, dates, nation names); value widths do not change;
  2. plans the query exactly as engine/session.py `_plan_query` does (qualify → Builder →
     run_rules → copartition → PhysicalPlanner) at P ranks, with the cost constants of the machine;
  3. walks the chosen physical plan: every Exchange is priced with the α–β functions of
     planner/cost.py (its bytes from the same estimates the planner used) and counted as
     communication; the rest of each chosen alternative's cost is compute.

All times are seconds per rank on the critical path of a bulk-synchronous run (the planner's unit):
the total is compute + communication, with no overlap between them. They are predictions of our own
cost model, not measurements; the model is only as good as the estimates and CostParams behind it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from planner.build import Builder
from planner.copartition import copartition
from planner.filtered_ranges import balance_filtered_scans
from planner.cost import CostParams
from planner.estimate import Estimator
from planner.logical import Aggregate, Distinct, Limit
from planner.patterns.base import SAMPLE_SHUFFLE_COMPUTE, Exchange, computed_everywhere
from planner.patterns.sample_shuffle_compute import SAMPLE_ROWS_PER_RANK
from planner.physical import PhysicalPlan, PhysicalPlanner
from planner.qualify import parse, qualify_statement
from planner.rules import run_rules

# Scale factor of the data set whose statistics are scaled (`.test-data/tpch-sf0.01`).
BASE_SF = 0.01
# A column with at least this many distinct values per row is (nearly) unique: its distinct count
# grows with the rows (names, phone numbers, comments). Bounded domains stay far below it.
UNIQUE_FRACTION = 0.5
# The CostParams rates that are local work of one DuckDB thread (engine/calibrate.py measures them
# with threads=1): a rank with c cores is modelled as doing them c times faster.
COMPUTE_RATES = ("materialize_byte", "scan_row", "hash_row", "shuffle_row", "agg_row", "sort_row")


@dataclass(frozen=True)
class Machine:
    """What one rank of the modelled cluster has.

    cores_per_rank: DuckDB threads of a rank; local rates are divided by it (perfect scaling, an
        optimistic assumption). Default 1: the calibrated rates are one-thread rates.
    memory_per_rank_gib: only reported against (a query whose per-rank peak exceeds it would
        spill; the model does not charge for spilling).
    bandwidth_gbs: GB/s one rank sends at (1/β); latency_us: µs per message (α).
    shared_cores: all ranks share one machine with this many cores (a run on one box, or hosts
        emulated on it): a rank then gets at most shared_cores / ranks of a core, so more ranks than
        cores are modelled as time-sharing them. None: every rank has cores of its own (a cluster).
    """

    cores_per_rank: float = 1
    memory_per_rank_gib: float = 16.0
    bandwidth_gbs: float = 1.0
    latency_us: float = 50.0
    shared_cores: float | None = None

    @classmethod
    def from_params(cls, params: CostParams, **overrides) -> "Machine":
        """The machine `flocksql calibrate` measured (or CostParams' defaults), with overrides."""
        base = cls(bandwidth_gbs=1e-9 / params.beta, latency_us=params.alpha * 1e6)
        return replace(base, **{k: v for k, v in overrides.items() if v is not None})

    def cores(self, nranks: int) -> float:
        """The cores one rank computes with in a job of nranks."""
        if self.shared_cores is None:
            return self.cores_per_rank
        return min(self.cores_per_rank, self.shared_cores / nranks)

    def cost_params(self, params: CostParams, nranks: int = 1) -> CostParams:
        """params with this machine's α, β and per-rank compute rates at nranks."""
        cores = self.cores(nranks)
        rates = {name: getattr(params, name) / cores for name in COMPUTE_RATES}
        return replace(params, alpha=self.latency_us * 1e-6, beta=1e-9 / self.bandwidth_gbs, **rates)

    def describe(self) -> str:
        cores = f"{self.cores_per_rank:g} core(s)/rank"
        if self.shared_cores is not None:
            cores += f" of {self.shared_cores:g} cores all ranks share"
        return (f"{cores}, {self.memory_per_rank_gib:g} GiB/rank, "
                f"{self.bandwidth_gbs:g} GB/s, {self.latency_us:g} µs latency")


def _scales_with_rows(name: str, distinct: float, rows: float) -> bool:
    return name.endswith("key") or distinct >= UNIQUE_FRACTION * rows


class ScaledCatalog:
    """A read-only view of a catalog whose tables hold `factor` times the rows (see module doc).
    Everything but `table` is the base catalog's."""

    def __init__(self, base, factor: float):
        self.base = base
        self.factor = factor
        self._tables: dict[str, object] = {}

    def __getattr__(self, name):
        return getattr(self.base, name)

    def table(self, name: str):
        key = name.lower()
        if key not in self._tables:
            self._tables[key] = self._scaled(self.base.table(name))
        return self._tables[key]

    def _scaled(self, t):
        f = self.factor
        rows = max(1, round(t.row_count * f))
        cols = {}
        for name, s in t.columns.items():
            distinct, lo, hi = s.distinct, s.min, s.max
            if distinct is not None and _scales_with_rows(name, distinct, t.row_count):
                distinct = max(1, min(rows, round(distinct * f)))
                if isinstance(lo, int) and isinstance(hi, int) and name.endswith("key"):
                    hi = lo + round((hi - lo + 1) * f) - 1  # keys are dense: their range grows too
            nulls = None if s.null_count is None else round(s.null_count * f)
            cols[name] = replace(s, null_count=nulls, min=lo, max=hi, distinct=distinct)
        clustered = {c: tuple((lo, hi, n * f) for lo, hi, n in ranges) for c, ranges in t.clustered.items()}
        return replace(t, row_count=rows, columns=cols, clustered=clustered)


def plan(sql: str, catalog, params: CostParams, nranks: int) -> tuple[PhysicalPlan, Estimator]:
    """The physical plan engine/session.py's `_plan_query` makes for sql (without running it)."""
    ast = parse(sql)
    est = Estimator(catalog)
    query = run_rules(Builder(catalog, est, params).build(qualify_statement(ast, catalog), original=ast), estimator=est)
    query = balance_filtered_scans(copartition(query, catalog, nranks), catalog, nranks)
    return PhysicalPlanner(est, params, nranks).plan(query), est


@dataclass
class Prediction:
    query: str
    nranks: int
    sf: float
    compute_s: float        # per rank
    comm_s: float           # per rank
    bytes_moved: float      # between ranks, all ranks together
    peak_rank_bytes: float  # the most one rank holds at one exchange or scan
    patterns: list = field(default_factory=list)  # (operator, pattern) of every decision, plan order
    planner_cost_s: float = 0.0  # PhysicalPlan.cost (without the final gather)

    @property
    def total_s(self) -> float:
        return self.compute_s + self.comm_s


def _moved(x: Exchange, est: Estimator, P: int) -> tuple[float, float]:
    """(rows, bytes) an exchange takes in from all ranks together, as the planner priced them: a
    local aggregate or DISTINCT under it sends at most its groups from each rank, a local LIMIT
    its k rows from each rank."""
    inp = x.input
    e = est.estimate(inp)
    rows = e.rows
    if isinstance(inp, (Aggregate, Distinct)):
        rows = P * min(est.rows(inp.children[0]) / P, e.rows)
    elif isinstance(inp, Limit) and inp.limit is not None and x.kind == "gather":
        rows = P * min(est.rows(inp.input) / P, inp.limit + inp.offset)
    elif x.kind == "slice":
        offset, limit = x.fn
        rows = e.rows if limit is None else min(e.rows, limit)
    return rows, rows * e.width


def exchange_cost(x: Exchange, est: Estimator, params: CostParams, P: int) -> tuple[float, float, float]:
    """(seconds per rank, bytes between ranks, bytes held by the busiest rank) of one exchange."""
    if P <= 1 or x.kind == "localize":
        return 0.0, 0.0, 0.0
    rows, nbytes = _moved(x, est, P)
    if x.kind == "shuffle":
        return params.shuffle(nbytes, P, rows), nbytes * (P - 1) / P, nbytes / P
    if x.kind == "range":
        sample = params.allgather(SAMPLE_ROWS_PER_RANK * P * 16, P)
        return params.shuffle(nbytes, P, rows) + sample, nbytes * (P - 1) / P, nbytes / P
    if x.kind == "broadcast":
        if computed_everywhere(x):
            return 0.0, 0.0, nbytes  # every rank computes it from the files: work, not messages
        return params.allgather(nbytes, P), nbytes * (P - 1), nbytes
    # gather, slice: rank 0 receives everything
    return params.gather(nbytes, P), nbytes * (P - 1) / P, nbytes


def account(phys: PhysicalPlan, est: Estimator, params: CostParams, name: str, sf: float) -> Prediction:
    """Split the chosen plan's cost into compute and communication (module doc, step 3)."""
    P = phys.nranks
    pred = Prediction(name, P, sf, 0.0, 0.0, 0.0, 0.0, planner_cost_s=phys.cost)
    # Each decision's chosen cost less the exchanges its lowering added is its compute.
    owned: dict[int, float] = {}

    def walk(node, owner):
        d = phys.decisions.get(id(node))
        if d is not None:
            owner = id(node)
            owned.setdefault(owner, 0.0)
            pred.patterns.append((d.operator, d.pattern))
        if isinstance(node, Exchange):
            seconds, moved, held = exchange_cost(node, est, params, P)
            pred.comm_s += seconds
            pred.bytes_moved += moved
            pred.peak_rank_bytes = max(pred.peak_rank_bytes, held)
            if owner is not None:
                owned[owner] += seconds
        elif not node.children:
            pred.peak_rank_bytes = max(pred.peak_rank_bytes, est.estimate(node).bytes / P)
        for c in node.children:
            walk(c, owner)

    root = phys.root
    if isinstance(root, Exchange) and root.kind == "gather" and id(root.input) in phys.decisions \
            and phys.decisions[id(root.input)].pattern == SAMPLE_SHUFFLE_COMPUTE:
        # The gather PhysicalPlanner adds above a sample sort: the sort's cost priced it already
        # ("the sorted ranges still travel to rank 0"), so it is that decision's communication.
        owned[id(root.input)] = 0.0
        seconds, moved, held = exchange_cost(root, est, params, P)
        pred.comm_s += seconds
        pred.bytes_moved += moved
        pred.peak_rank_bytes = max(pred.peak_rank_bytes, held)
        owned[id(root.input)] += seconds
        root = root.input
    walk(root, None)
    pred.patterns.reverse()  # bottom-up, the order in which the planner decided
    for key, comm in owned.items():
        pred.compute_s += max(0.0, phys.decisions[key].cost - comm)
    return pred


def predict(catalog, queries: dict[str, str], ranks, sfs, machine: Machine, params: CostParams,
            base_sf: float = BASE_SF) -> list[Prediction]:
    """A Prediction for every (sf, nranks, query), in that nesting order."""
    out = []
    for sf in sfs:
        scaled = ScaledCatalog(catalog, sf / base_sf)
        for P in ranks:
            costs = machine.cost_params(params, P)
            for name, sql in queries.items():
                phys, est = plan(sql, scaled, costs, P)
                out.append(account(phys, est, costs, name, sf))
    return out


def human_bytes(n: float) -> str:
    if math.isnan(n):
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f}"


def render_table(preds: list[Prediction], machine: Machine, per_query: bool = True) -> str:
    """Per (SF, ranks): one row per query (when per_query) and a total row."""
    lines = [f"Model predictions (not measurements). Machine: {machine.describe()}."]
    head = f"{'SF':>6} {'ranks':>6} {'query':>6} {'total s':>10} {'compute s':>10} {'comm s':>10} " \
           f"{'comm %':>6} {'moved':>10} {'peak/rank':>10}"
    lines.append(head)
    lines.append("-" * len(head))
    groups: dict[tuple, list[Prediction]] = {}
    for p in preds:
        groups.setdefault((p.sf, p.nranks), []).append(p)
    limit = machine.memory_per_rank_gib * 2**30
    for (sf, P), ps in groups.items():
        rows = ps if per_query else []
        for p in rows + [None]:
            if p is None:
                name = "all"
                total = sum(x.total_s for x in ps)
                comp, comm = sum(x.compute_s for x in ps), sum(x.comm_s for x in ps)
                moved, peak = sum(x.bytes_moved for x in ps), max(x.peak_rank_bytes for x in ps)
            else:
                name, total, comp, comm, moved, peak = p.query, p.total_s, p.compute_s, p.comm_s, \
                    p.bytes_moved, p.peak_rank_bytes
            share = 100 * comm / total if total > 0 else 0.0
            flag = "*" if peak > limit else ""
            lines.append(f"{sf:>6g} {P:>6} {name:>6} {total:>10.3f} {comp:>10.3f} {comm:>10.3f} {share:>5.0f}% "
                         f"{human_bytes(moved):>10} {human_bytes(peak) + flag:>10}")
    lines.append("times: seconds per rank; moved: bytes between ranks, all ranks together; peak/rank: the most "
                 "one rank holds at a scan or exchange (* over memory per rank: it would spill, not charged).")
    return "\n".join(lines)


CSV_FIELDS = ("sf", "ranks", "query", "total_s", "compute_s", "comm_s", "bytes_moved", "peak_rank_bytes", "patterns")


def csv_rows(preds: list[Prediction]):
    for p in preds:
        yield {"sf": p.sf, "ranks": p.nranks, "query": p.query, "total_s": f"{p.total_s:.6g}",
               "compute_s": f"{p.compute_s:.6g}", "comm_s": f"{p.comm_s:.6g}", "bytes_moved": f"{p.bytes_moved:.6g}",
               "peak_rank_bytes": f"{p.peak_rank_bytes:.6g}",
               "patterns": ";".join(sorted({pat for _, pat in p.patterns}))}


def is_finite_positive(x: float) -> bool:
    return math.isfinite(x) and x > 0
