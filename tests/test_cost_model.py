"""The cost model and pattern selection, planned on a fake catalog: no MPI, no DuckDB, no files.

Every case builds tables with chosen row counts and column statistics, plans SQL through the real
front end (qualify_statement → Builder → run_rules → PhysicalPlanner) at 1, 2 and 16 ranks and
checks which pattern won for one operator, and why.

Thresholds under the default CostParams (α = 50 µs, β = 1 ns/B, 30 ns per row shuffled, scan 25 ns/row, hash 30 ns/row,
aggregate 20 ns/row, broadcast_max_bytes = 512 MiB), stated here so a change to them is a
visible decision:
- Join: PATTERNS.md's rule of thumb is that broadcasting a side of S rows beats shuffling both
  sides when S·w < N·w/P for the big side of N rows. With N = 6M at P = 16 that is S < 375k rows:
  a 25-row or 100k-row side is broadcast, a 1.5M-row side is not (narrow or wide rows alike).
  A side over broadcast_max_bytes (1.5M rows × 408 B ≈ 584 MiB) is never broadcast.
- GROUP BY over 6M rows at P = 16: the combine step pays for itself while the group count stays
  well under rows/P (375k): 10, 1k and 100k groups pick combine-shuffle-reduce. From 300k groups
  on, each rank's partial aggregate barely shrinks its rows (the model takes min(rows/P, groups)
  as the partial size), so the extra aggregate pass and the wider partial states make
  shuffle-compute (shuffle raw rows, aggregate once) cheaper.
- ORDER BY of 6M rows at P = 16: a sample sort (one shuffle, P local sorts of N/P rows) beats
  sorting all N rows on rank 0 by an order of magnitude; 25 rows are cheaper gathered and merged.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pyarrow as pa
import pytest

from engine.catalog import ColumnStats, RowGroup, Table
from planner.build import Builder
from planner.cost import CostParams
from planner.estimate import Est, Estimator
from planner.logical import Scan
from planner.physical import PhysicalPlanner
from planner.qualify import parse, qualify_statement
from planner.rules import run_rules

BROADCAST = "broadcast-compute"
SHUFFLE = "shuffle-compute"
CSR = "combine-shuffle-reduce"
GLOBAL = "globally-reduce"
SAMPLE = "sample-shuffle-compute"
HALO = "halo-exchange"
PIO = "partitioned-io"
EP = "embarrassingly-parallel"


# ---------------------------------------------------------------------------- fake catalog
@dataclass(frozen=True)
class Col:
    type: pa.DataType
    ndv: int | None
    width: float = 8.0
    lo: object = None
    hi: object = None


def make_table(name: str, rows: int, cols: dict[str, Col]) -> Table:
    schema = pa.schema([(c, spec.type) for c, spec in cols.items()])
    stats = {c: ColumnStats(0, spec.lo, spec.hi, spec.ndv, False, spec.width) for c, spec in cols.items()}
    f = f"/nonexistent/{name}.parquet"
    groups = tuple(RowGroup(f, i, rows // 8 + (1 if i < rows % 8 else 0)) for i in range(8))
    return Table(name, (f,), groups, schema, rows, stats)


class FakeCatalog:
    """Just what the planner reads from engine.catalog.Catalog."""

    def __init__(self, *tables: Table):
        self._tables = {t.name: t for t in tables}
        self.views: dict[str, str] = {}

    def table(self, name: str) -> Table:
        return self._tables[name.lower()]

    def has_table(self, name: str) -> bool:
        return name.lower() in self._tables

    def table_schema(self, name: str) -> pa.Schema:
        return self.table(name).schema

    def table_names(self) -> list[str]:
        return sorted(self._tables)


I64, STR = pa.int64(), pa.string()
M = 1_000_000


def standard_catalog(big_width: float = 8.0, mid_width: float = 8.0) -> FakeCatalog:
    """big: 6M rows (lineitem at SF 1), mid: 1.5M rows (orders), tiny: 25 rows (nation).

    `pay` is a string column whose average width sets how wide a row is.
    """
    return FakeCatalog(
        make_table("big", 6 * M, {
            "k": Col(I64, 1_500_000, 8, 1, 1_500_000),   # join key into mid (4 rows per key)
            "u": Col(I64, 6 * M, 8, 1, 6 * M),           # unique
            "g10": Col(I64, 10, 8, 0, 9),
            "g1k": Col(I64, 1_000, 8, 0, 999),
            "g100k": Col(I64, 100_000, 8, 0, 99_999),
            "g300k": Col(I64, 300_000, 8, 0, 299_999),
            "v": Col(I64, 1_000, 8, 0, 999),
            "t": Col(I64, 25, 8, 0, 24),                 # join key into tiny
            "pay": Col(STR, 6 * M, big_width),
        }),
        make_table("mid", 1_500_000, {
            "k": Col(I64, 1_500_000, 8, 1, 1_500_000),
            "w": Col(I64, 1_000, 8, 0, 999),
            "pay": Col(STR, 1_500_000, mid_width),
        }),
        make_table("small", 100_000, {
            "k": Col(I64, 100_000, 8, 1, 100_000),
            "pay": Col(STR, 100_000, mid_width),
        }),
        make_table("tiny", 25, {
            "t": Col(I64, 25, 8, 0, 24),
            "name": Col(STR, 25, 12),
        }),
    )


# ---------------------------------------------------------------------------- planning
@dataclass
class Planned:
    plan: object
    params: CostParams

    def decisions(self, prefix: str):
        """Decisions whose operator text starts with prefix (e.g. 'HashJoin', 'Aggregate group by')."""
        return [d for d in self.plan.decisions.values() if d.operator.startswith(prefix)]

    def one(self, prefix: str):
        found = self.decisions(prefix)
        assert len(found) == 1, f"expected one {prefix!r} decision, got {[d.operator for d in found]}\n{self.text()}"
        return found[0]

    def exchanges(self, kind: str) -> int:
        return sum(1 for x in self.plan.exchanges if x.kind == kind)

    def text(self) -> str:
        from planner.explain import render_explain
        return render_explain(self.plan, 0.0)


def plan_sql(sql: str, nranks: int, catalog: FakeCatalog | None = None, params: CostParams | None = None,
             estimator_cls=Estimator, forced: dict | None = None) -> Planned:
    catalog = catalog or standard_catalog()
    params = params or CostParams()
    ast = parse(sql)
    est = estimator_cls(catalog)
    query = run_rules(Builder(catalog, est).build(qualify_statement(ast, catalog), original=ast))
    return Planned(PhysicalPlanner(est, params, nranks, forced).plan(query), params)


def beaten_cost(decision, pattern: str) -> float:
    costs = [c for p, c, _ in decision.beaten if p == pattern]
    assert costs, f"{pattern} was not priced for {decision.operator}: beaten={decision.beaten}"
    return min(costs)


# ---------------------------------------------------------------------------- pattern choice table
JOIN_TINY = "SELECT big.v, tiny.name FROM big JOIN tiny ON big.t = tiny.t"
JOIN_SMALL = "SELECT big.v, small.pay FROM big JOIN small ON big.k = small.k"
JOIN_MID = "SELECT big.v, big.pay, mid.pay FROM big JOIN mid ON big.k = mid.k"
GROUP_FEW = "SELECT g1k, count(*), sum(v) FROM big GROUP BY g1k"
GROUP_UNIQUE = "SELECT u, sum(v) FROM big GROUP BY u"
GLOBAL_AGG = "SELECT sum(v), count(*), min(u), avg(v) FROM big"
TOP_K = "SELECT u, v FROM big ORDER BY v DESC, u LIMIT 10"
BIG_SORT = "SELECT u, v FROM big ORDER BY v, u"
SMALL_SORT = "SELECT t, name FROM tiny ORDER BY name"
WINDOW_PARTITIONED = "SELECT u, sum(v) OVER (PARTITION BY g1k ORDER BY u) FROM big"
WINDOW_ROWS_SHORT = "SELECT u, sum(v) OVER (ORDER BY u ROWS 2 PRECEDING) FROM big"
WINDOW_ROWS_BETWEEN = "SELECT u, sum(v) OVER (ORDER BY u ROWS BETWEEN 2 PRECEDING AND 1 FOLLOWING) FROM big"
WINDOW_LAG_LEAD = "SELECT u, lag(v) OVER (ORDER BY u), lead(v, 3) OVER (ORDER BY u) FROM big"
SCAN = "SELECT u, v, pay FROM big"
FILTER = "SELECT u, v * 2 FROM big WHERE v > 10"


@dataclass(frozen=True)
class Case:
    id: str
    sql: str
    operator: str        # decision.operator prefix
    pattern: str
    ranks: tuple[int, ...]
    why: str


CASES = [
    Case("join-25-rows-broadcasts", JOIN_TINY, "HashJoin", BROADCAST, (2, 16),
         "25 rows are read whole by every rank; the 6M-row side stays where it is"),
    Case("join-100k-rows-broadcasts", JOIN_SMALL, "HashJoin", BROADCAST, (2, 16),
         "100k rows < 6M/16 = 375k: replicating it is cheaper than shuffling 6M rows"),
    Case("join-6M-with-1.5M-shuffles", JOIN_MID, "HashJoin", SHUFFLE, (16,),
         "1.5M rows > 6M/16: each rank would build a 1.5M-row hash table instead of 94k"),
    Case("group-by-1k-groups-combines", GROUP_FEW, "Aggregate group by", CSR, (2, 16),
         "1k groups over 6M rows: partial aggregates shrink the shuffle 375×"),
    Case("group-by-unique-key-shuffles-raw-rows", GROUP_UNIQUE, "Aggregate group by", SHUFFLE, (2, 16),
         "6M groups in 6M rows: the combine shrinks nothing and costs an extra aggregate pass"),
    Case("aggregate-without-group-by-reduces-globally", GLOBAL_AGG, "Aggregate [", GLOBAL, (1, 2, 16),
         "allreduce of one partial state per rank"),
    Case("order-by-limit-is-top-k", TOP_K, "TopK", GLOBAL, (1, 2, 16),
         "local top-k, gather k·P rows, final top-k: no global sort"),
    Case("big-order-by-sample-sorts", BIG_SORT, "Sort", SAMPLE, (2, 16),
         "6M rows: one range shuffle and P sorts of N/P rows beat one sort of N rows"),
    Case("small-order-by-gathers", SMALL_SORT, "Sort", GLOBAL, (2, 16),
         "25 rows: the sample round costs more than sorting them on rank 0"),
    Case("window-partition-by-shuffles", WINDOW_PARTITIONED, "Window", SHUFFLE, (1, 2, 16),
         "rows of one partition meet on one rank"),
    Case("window-rows-2-preceding-halo", WINDOW_ROWS_SHORT, "Window", HALO, (1, 2, 16),
         "ROWS 2 PRECEDING (= BETWEEN 2 PRECEDING AND CURRENT ROW) needs 2 rows of the previous rank"),
    Case("window-rows-between-halo", WINDOW_ROWS_BETWEEN, "Window", HALO, (1, 2, 16),
         "a bounded ROWS frame needs only the neighbours' boundary rows"),
    Case("window-lag-lead-halo", WINDOW_LAG_LEAD, "Window", HALO, (1, 2, 16),
         "lag/lead by a constant offset need only the neighbours' boundary rows"),
    Case("scan-is-partitioned-io", SCAN, "Scan big", PIO, (1, 2, 16),
         "each rank reads its own row groups"),
    Case("filter-is-embarrassingly-parallel", FILTER, "Filter", EP, (1, 2, 16),
         "row-wise work needs no communication"),
    Case("project-is-embarrassingly-parallel", FILTER, "Project", EP, (1, 2, 16),
         "row-wise work needs no communication"),
]


@pytest.mark.parametrize("case,nranks", [pytest.param(c, p, id=f"{c.id}-P{p}") for c in CASES for p in c.ranks])
def test_pattern_choice(case: Case, nranks: int):
    planned = plan_sql(case.sql, nranks)
    d = planned.one(case.operator)
    assert d.pattern == case.pattern, (
        f"{case.id} at P={nranks}: expected {case.pattern} ({case.why}), got {d.pattern} "
        f"cost={d.cost:.4g} beat={d.beaten}\n{planned.text()}")
    # The winner is never dearer than an alternative it beat (nothing was forced).
    for pattern, cost, _ in d.beaten:
        assert d.cost <= cost + 1e-12, f"{d.pattern} ({d.cost}) won over cheaper {pattern} ({cost})"


# ---------------------------------------------------------------------------- joins
@pytest.mark.parametrize("widths", [pytest.param((16.0, 16.0), id="narrow-rows"),
                                    pytest.param((120.0, 100.0), id="wide-rows-lineitem-orders")])
def test_big_join_at_16_ranks_shuffles_both_sides(widths):
    """6M ⋈ 1.5M at P=16: PATTERNS.md's rule (broadcast only while S < N/P = 375k rows) says
    shuffle, whatever the row width (width scales both the shuffle and the replicated bytes)."""
    planned = plan_sql(JOIN_MID, 16, catalog=standard_catalog(*widths))
    d = planned.one("HashJoin")
    assert d.pattern == SHUFFLE, (
        f"6M ⋈ 1.5M rows of {widths} B at P=16 picked {d.pattern} ({d.note}) cost={d.cost * 1e3:.2f}ms, "
        f"beat {[(p, round(c * 1e3, 2)) for p, c, _ in d.beaten]}\n{planned.text()}")
    assert planned.exchanges("shuffle") == 2
    assert planned.exchanges("broadcast") == 0


def test_broadcast_threshold_moves_with_the_small_side():
    """At P=16 against 6M rows: the small side is broadcast up to ~N/P rows, and not at 4·N/P."""
    chosen = {}
    for rows in (25, 10_000, 100_000, 1_500_000):
        cat = standard_catalog()
        cat._tables["side"] = make_table("side", rows, {"k": Col(I64, rows, 8, 1, rows), "pay": Col(STR, rows, 16)})
        planned = plan_sql("SELECT big.v, side.pay FROM big JOIN side ON big.k = side.k", 16, catalog=cat)
        chosen[rows] = planned.one("HashJoin").pattern
    assert chosen == {25: BROADCAST, 10_000: BROADCAST, 100_000: BROADCAST, 1_500_000: SHUFFLE}, chosen


def test_small_join_subtree_is_computed_whole_on_every_rank():
    """A join of two small tables, joined to a big one: every rank computes the small join from the
    files (no allgather, no exchange at all), as it reads a single small table whole."""
    cat = standard_catalog()
    cat._tables["side"] = make_table("side", 10_000, {"k": Col(I64, 10_000, 8, 1, 10_000), "t": Col(I64, 25, 8, 0, 24)})
    sql = ("SELECT big.v, s.name FROM big JOIN (SELECT side.k, tiny.name FROM side JOIN tiny ON side.t = tiny.t) s "
           "ON big.k = s.k")
    for nranks in (2, 16):
        planned = plan_sql(sql, nranks, catalog=cat)
        notes = {d.note for d in planned.decisions("HashJoin")}
        assert any("each rank computes it from the files" in n for n in notes), planned.text()
        # The only exchange is the final gather: the broadcasts are replicated reads.
        from planner.patterns.base import is_replicable
        broadcasts = [x for x in planned.plan.exchanges if x.kind == "broadcast"]
        assert broadcasts and all(is_replicable(x.input) for x in broadcasts), planned.text()
        assert planned.exchanges("shuffle") == 0


def test_recomputing_a_subtree_costs_its_work_on_every_other_rank():
    """Replicating a join subtree by recomputation costs (P-1) times its per-rank work, so a cheap
    subtree is recomputed and an expensive one is allgathered instead."""
    from planner.patterns.base import REPLICATED, Ctx, Phys, is_replicable, replicate_cost
    planned = plan_sql("SELECT mid.k, tiny.name FROM mid JOIN tiny ON mid.w = tiny.t", 16)
    join = planned.plan.root.input  # under the final gather
    assert is_replicable(join), planned.text()
    ctx = Ctx(Estimator(standard_catalog()), CostParams(), 16)
    gather = ctx.params.allgather(ctx.bytes(join), 16)
    cheap = gather / 100
    cost, how, sent = replicate_cost(Phys(join, REPLICATED, cheap), ctx)
    assert how == "each rank computes it from the files" and cost == pytest.approx(cheap * 15) and not sent
    assert replicate_cost(Phys(join, REPLICATED, cheap), Ctx(ctx.est, ctx.params, 1))[0] == 0.0
    # A subtree whose work on 15 more ranks costs more than sending its rows is allgathered.
    cost, how, sent = replicate_cost(Phys(join, REPLICATED, gather), ctx)
    assert how == "allgather" and sent and cost == pytest.approx(gather)


def test_an_allgathered_replicable_subtree_runs_partitioned_and_is_sent():
    """TPC-DS q25's shape: a join that every rank could compute from the files but that leaves few
    rows of a big table (there, two fact tables), joined with another big table. Every rank
    recomputing it would scan its tables whole; sent, it is computed once, in parts, and the other
    table is not shuffled."""
    from planner.patterns.base import ALLGATHER, Exchange, computed_everywhere
    planned = plan_sql("SELECT big.u, x.name FROM big JOIN (SELECT mid.k, tiny.name FROM mid JOIN tiny ON mid.w = tiny.t "
                       "WHERE mid.w = 5) x ON big.k = x.k", 2)
    from planner.logical import walk
    sent = [n for n in walk(planned.plan.root) if isinstance(n, Exchange) and n.fn == ALLGATHER]
    assert sent and not any(computed_everywhere(x) for x in sent), planned.text()
    assert "allgather" in planned.text()


NAN_CASES = [
    ("SELECT a.k FROM ints a JOIN ints b ON a.k = b.k", True),
    ("SELECT a.k FROM ints a JOIN floats b ON a.k = b.k", False),
    ("SELECT a.f FROM floats a JOIN floats b ON a.f = b.f", False),
    ("SELECT a.k FROM ints a JOIN (SELECT k, max(v) AS m FROM ints GROUP BY k) g ON a.k = g.k AND a.v = g.m", True),
    ("SELECT a.k FROM ints a JOIN (SELECT k, avg(v) AS m FROM ints GROUP BY k) g ON a.v = g.m", False),
    ("SELECT a.k FROM ints a JOIN (SELECT k + 1 AS k1 FROM ints) g ON a.k = g.k1", False),
    ("SELECT a.k FROM ints a WHERE a.k IN (SELECT k FROM ints WHERE v > 3)", True),
]


@pytest.mark.parametrize("sql,expected", NAN_CASES)
def test_nan_free_join_keys(sql, expected):
    """Plans whose join keys cannot hold NaN may let DuckDB prune Parquet row groups with join
    filters; a float key (or one computed by an expression) must not."""
    cat = FakeCatalog(
        make_table("ints", 1000, {"k": Col(I64, 1000, 8, 0, 999), "v": Col(I64, 10, 8, 0, 9)}),
        make_table("floats", 1000, {"k": Col(pa.float64(), 1000, 8, 0.0, 999.0), "f": Col(pa.float64(), 1000)}),
    )
    assert plan_sql(sql, 2, catalog=cat).plan.nan_free_join_keys is expected


def _priced_sides(decision) -> set[str]:
    """Which join sides a broadcast was priced for (chosen or beaten), from the notes."""
    notes = [decision.note] if decision.pattern == BROADCAST else []
    notes += [note for p, _, note in decision.beaten if p == BROADCAST]
    return {side for side in ("left", "right") for note in notes if f"replicate {side} side" in note}


@pytest.mark.parametrize("nranks", [2, 16])
def test_side_over_broadcast_max_bytes_is_never_broadcast(nranks):
    """mid: 1.5M rows × (8 + 400) B ≈ 584 MiB > broadcast_max_bytes (512 MiB): a broadcast of it
    is not even priced; big (6M × 24 B = 144 MB) still may be."""
    params = CostParams()
    cat = standard_catalog(mid_width=400.0)
    assert 1_500_000 * 408 > params.broadcast_max_bytes > 6 * M * 24
    d = plan_sql(JOIN_MID, nranks, catalog=cat, params=params).one("HashJoin")
    assert "right" not in _priced_sides(d), d
    # With a generous cap the same side is priced: the cap alone made the difference.
    relaxed = plan_sql(JOIN_MID, nranks, catalog=cat, params=replace(params, broadcast_max_bytes=2**40))
    assert "right" in _priced_sides(relaxed.one("HashJoin"))


class UnknownScans(Estimator):
    """Marks every scan of a table named `mystery*` as unknown-size (known=False).

    The catalog itself cannot say 'unknown' (Table.row_count is always a number from Parquet
    metadata), so the only way to reach the planner's guard is through the Estimator.
    """

    def _estimate(self, node):
        e = super()._estimate(node)
        if isinstance(node, Scan) and node.table.startswith("mystery"):
            return Est(e.rows, e.cols, False)
        return e


def _with_mystery(rows: int) -> FakeCatalog:
    cat = standard_catalog()
    cat._tables["mystery"] = make_table("mystery", rows, {"t": Col(I64, rows, 8, 0, rows), "name": Col(STR, rows, 12)})
    return cat


@pytest.mark.parametrize("nranks", [2, 16])
@pytest.mark.parametrize("kind", ["inner", "left", "semi"])
def test_unknown_size_side_is_never_broadcast(nranks, kind):
    sql = {"inner": "SELECT big.v, mystery.name FROM big JOIN mystery ON big.t = mystery.t",
           "left": "SELECT big.v, mystery.name FROM big LEFT JOIN mystery ON big.t = mystery.t",
           "semi": "SELECT big.v FROM big WHERE big.t IN (SELECT t FROM mystery)"}[kind]
    # Known, the 25-row side is broadcast (the same query on the known estimator) ...
    known = plan_sql(sql, nranks, catalog=_with_mystery(25)).one("HashJoin")
    assert known.pattern == BROADCAST, known
    # ... unknown, it is not, and a broadcast of it is not even priced.
    planned = plan_sql(sql, nranks, catalog=_with_mystery(25), estimator_cls=UnknownScans)
    d = planned.one("HashJoin")
    assert d.pattern == SHUFFLE, planned.text()
    assert "right" not in _priced_sides(d), d
    assert planned.exchanges("broadcast") == 0, planned.text()


def test_unknown_size_propagates_through_filters_and_joins():
    cat = _with_mystery(25)
    est = UnknownScans(cat)
    sql = "SELECT mystery.name FROM mystery JOIN tiny ON mystery.t = tiny.t WHERE mystery.t > 3"
    ast = parse(sql)
    q = run_rules(Builder(cat, est).build(qualify_statement(ast, cat), original=ast))
    assert est.estimate(q.root).known is False


def test_estimates_from_statistics_are_known():
    cat = standard_catalog()
    est = Estimator(cat)
    ast = parse(JOIN_TINY)
    q = run_rules(Builder(cat, est).build(qualify_statement(ast, cat), original=ast))
    e = est.estimate(q.root)
    assert e.known is True
    assert e.rows == pytest.approx(6 * M * 25 / 25)


# ---------------------------------------------------------------------------- aggregates
@pytest.mark.parametrize("column,groups,expected", [
    ("g10", 10, CSR), ("g1k", 1_000, CSR), ("g100k", 100_000, CSR),
    ("g300k", 300_000, SHUFFLE), ("k", 1_500_000, SHUFFLE), ("u", 6 * M, SHUFFLE),
])
def test_group_by_crossover_at_16_ranks(column, groups, expected):
    planned = plan_sql(f"SELECT {column}, sum(v) FROM big GROUP BY {column}", 16)
    d = planned.one("Aggregate group by")
    assert d.rows == pytest.approx(groups)
    assert d.pattern == expected, f"{groups} groups: {d.pattern} cost={d.cost} beat={d.beaten}"
    other = SHUFFLE if expected == CSR else CSR
    assert beaten_cost(d, other) > d.cost


def test_group_by_unique_key_reason():
    """Why shuffle-compute wins for a unique key: the combine step's partial states are as many as
    the rows (min(rows/P, groups) = rows/P) and wider (key + 16 B per state), so it shuffles at
    least as many bytes as the raw rows and pays an extra aggregate pass on top."""
    p = CostParams()
    planned = plan_sql(GROUP_UNIQUE, 16, params=p)
    d = planned.one("Aggregate group by")
    n, P = 6 * M, 16
    raw = p.shuffle(n * 16, P, n) + n / P * p.agg_row           # rows of (u, v): 16 B
    combined = n / P * p.agg_row + p.shuffle(n * 24, P, n) + n / P * p.agg_row
    assert d.pattern == SHUFFLE
    assert d.cost == pytest.approx(raw, rel=0.05)
    assert beaten_cost(d, CSR) == pytest.approx(combined, rel=0.05)
    assert planned.exchanges("shuffle") == 1


def test_group_by_on_a_partitioned_input_does_not_shuffle():
    """GROUP BY k over a join on k: the join output is already hashed on k."""
    sql = "SELECT big.k, count(*) FROM big JOIN mid ON big.k = mid.k GROUP BY big.k"
    planned = plan_sql(sql, 16)
    d = planned.one("Aggregate group by")
    assert "no shuffle" in d.note, d
    assert planned.exchanges("shuffle") == 2, planned.text()  # the join's two, nothing more


# ---------------------------------------------------------------------------- partitioning reuse
@pytest.mark.parametrize("nranks", [2, 16])
@pytest.mark.parametrize("keys", ["unique", "few"])
def test_join_of_subqueries_grouped_on_the_join_key_needs_no_shuffle(nranks, keys):
    if keys == "unique":  # both aggregates shuffle-compute on k
        sql = ("SELECT a.k, a.sv, b.sw FROM (SELECT k, sum(v) AS sv FROM big GROUP BY k) a "
               "JOIN (SELECT k, sum(w) AS sw FROM mid GROUP BY k) b ON a.k = b.k")
    else:                 # both aggregates combine-shuffle-reduce on a 1k-value key
        sql = ("SELECT a.v, a.c, b.c FROM (SELECT v, count(*) AS c FROM big GROUP BY v) a "
               "JOIN (SELECT w, count(*) AS c FROM mid GROUP BY w) b ON a.v = b.w")
    planned = plan_sql(sql, nranks)
    assert planned.exchanges("shuffle") == 2, planned.text()   # one per GROUP BY, none for the join
    assert planned.exchanges("broadcast") == 0, planned.text()
    d = planned.one("HashJoin")
    assert d.pattern == SHUFFLE and "no shuffle" in d.note, d


def test_join_on_a_different_key_than_the_grouping_shuffles_again():
    sql = ("SELECT a.v, b.w FROM (SELECT k, v, count(*) AS c FROM big GROUP BY k, v) a "
           "JOIN (SELECT k, w, count(*) AS c FROM mid GROUP BY k, w) b ON a.v = b.w")
    planned = plan_sql(sql, 16, forced={"Join": SHUFFLE})
    assert planned.exchanges("shuffle") == 4, planned.text()


# ---------------------------------------------------------------------------- one rank
def test_one_rank_join_alternatives_cost_the_same():
    """At P=1 no communication is priced: every join alternative costs its local compute."""
    d = plan_sql(JOIN_MID, 1).one("HashJoin")
    costs = [d.cost] + [c for _, c, _ in d.beaten]
    assert max(costs) == pytest.approx(min(costs)), d


def test_forced_pattern_wins_when_applicable_and_is_ignored_otherwise():
    forced = plan_sql(JOIN_TINY, 16, forced={"Join": SHUFFLE}).one("HashJoin")
    assert forced.pattern == SHUFFLE
    assert beaten_cost(forced, BROADCAST) < forced.cost  # it was dearer and still won
    # Halo exchange cannot run a PARTITION BY window: the forcing is ignored, not an error.
    ignored = plan_sql(WINDOW_PARTITIONED, 16, forced={"Window": HALO}).one("Window")
    assert ignored.pattern == SHUFFLE


# ---------------------------------------------------------------------------- CostParams helpers
HELPERS = ("shuffle", "allgather", "gather")


@pytest.mark.parametrize("helper", HELPERS)
def test_helpers_are_zero_at_one_rank(helper):
    p = CostParams()
    for nbytes in (0, 1, 1e6, 1e12):
        assert getattr(p, helper)(nbytes, 1) == 0.0


@pytest.mark.parametrize("helper", HELPERS)
@pytest.mark.parametrize("nranks", [2, 3, 16, 1024])
def test_helpers_are_monotone_in_bytes(helper, nranks):
    p = CostParams()
    sizes = [0, 1, 1e3, 1e6, 1e9, 1e12]
    costs = [getattr(p, helper)(b, nranks) for b in sizes]
    assert all(a < b for a, b in zip(costs, costs[1:])), costs
    assert costs[0] > 0  # a message costs its latency even when empty


def test_shuffle_latency_term_grows_with_ranks():
    """(P-1)·α: with nothing to send, a shuffle costs its messages' latency plus the fixed cost of
    one more exchange step."""
    p = CostParams()
    for P in (2, 3, 16, 1024):
        assert p.shuffle(0, P) == pytest.approx((P - 1) * p.alpha + p.fragment)
    costs = [p.shuffle(0, P) for P in (2, 4, 16, 256, 10_752)]
    assert all(a < b for a, b in zip(costs, costs[1:]))
    # Per-rank bytes fall with P, but at 10k ranks the α term dominates a 1 GB shuffle.
    assert p.shuffle(1e9, 10_752) > p.shuffle(1e9, 256)


def test_allgather_latency_is_logarithmic_and_gather_linear():
    p = CostParams()
    assert p.allgather(0, 16) == pytest.approx(4 * p.alpha + p.fragment)
    assert p.allgather(0, 17) == pytest.approx(5 * p.alpha + p.fragment)
    assert p.gather(0, 16) == pytest.approx(15 * p.alpha + p.fragment)
    assert p.shuffle(0, 1) == p.allgather(0, 1) == p.gather(0, 1) == 0.0


def test_shuffle_bytes_term_scales_inversely_with_ranks():
    p = CostParams(alpha=0.0)
    assert p.shuffle(1e9, 4) > p.shuffle(1e9, 16) > p.shuffle(1e9, 64)


def test_sort_cost():
    p = CostParams()
    assert p.sort(0) == 0.0
    assert p.sort(1024) == pytest.approx(1024 * 10 * p.sort_row)
    assert p.sort(2e6) > 2 * p.sort(1e6)  # n log n


def test_costparams_save_load_roundtrip(tmp_path):
    original = CostParams(alpha=3e-6, beta=2.5e-10, materialize_byte=1e-10, scan_row=7e-9, hash_row=4e-8,
                          agg_row=1.5e-8, sort_row=9e-9, broadcast_max_bytes=64 * 2**20)
    path = original.save(tmp_path / "sub" / "cost.json")
    assert path.exists()
    assert CostParams.load(path) == original
    # Unknown keys in the file are ignored; keys missing from it keep their defaults.
    path.write_text(json.dumps({"alpha": 1e-3, "not_a_param": 5}))
    loaded = CostParams.load(path)
    assert loaded.alpha == 1e-3
    assert loaded.beta == CostParams().beta


def test_costparams_load_missing_file_gives_defaults(tmp_path):
    assert CostParams.load(tmp_path / "absent.json") == CostParams()


def test_calibrated_params_change_the_choice():
    """Calibration matters: the 1.5M-row side that is shuffled at 16 ranks under the defaults is
    broadcast on a machine whose links are 100× slower (β = 100 ns/B)."""
    assert plan_sql(JOIN_MID, 16).one("HashJoin").pattern == SHUFFLE
    slow = plan_sql(JOIN_MID, 16, params=CostParams(beta=1e-7)).one("HashJoin")
    assert slow.pattern == BROADCAST, slow


def _joins(node):
    out = [node] if type(node).__name__ == "Join" else []
    for c in node.children:
        out += _joins(c)
    return out


@pytest.mark.parametrize("sql", [
    "SELECT big.v, tiny.name FROM tiny JOIN big ON big.t = tiny.t",
    "SELECT big.v, tiny.name FROM big JOIN tiny ON big.t = tiny.t",
])
def test_inner_join_builds_on_the_smaller_side(sql):
    """DuckDB builds on a join's right input: whichever order the query names them in, the
    planner puts the smaller estimate there."""
    planned = plan_sql(sql, 2)
    [join] = _joins(planned.plan.root)
    assert _tables(join.right) == {"tiny"} and _tables(join.left) == {"big"}, planned.text()


def _tables(node) -> set[str]:
    if isinstance(node, Scan):
        return {node.table}
    return set().union(*(_tables(c) for c in node.children)) if node.children else set()


def test_fragments_that_join_an_aggregate_keep_our_join_order():
    from executors.runner import _joins_an_aggregate
    joined = plan_sql("SELECT big.v FROM big WHERE big.k IN (SELECT k FROM mid GROUP BY k HAVING count(*) > 1)", 1)
    plain = plan_sql(JOIN_TINY, 1)
    grouped_only = plan_sql(GROUP_FEW, 1)
    # The runner asks about the fragment under the final gather.
    assert _joins_an_aggregate(joined.plan.root.input), joined.text()
    assert not _joins_an_aggregate(plain.plan.root.input)
    assert not _joins_an_aggregate(grouped_only.plan.root.input)


def test_repeated_statement_keeps_the_faster_instance_per_fragment():
    """First run: the rule's instance; second run: the other one; later runs: the faster."""
    from executors.runner import Runner
    from executors.scan import ScanSource

    class Con:
        def __init__(self, name):
            self.name = name
    arrow, parquet, ordered = Con("arrow"), Con("parquet"), Con("ordered")
    node = plan_sql(JOIN_TINY, 2).plan.root.input
    times: dict = {}

    def run(seconds: dict):
        r = Runner(arrow, None, None, ScanSource(arrow, 0, 2), parquet_con=parquet, ordered_con=ordered,
                   fragment_times=times, plan_key="q")
        query = "SELECT 1 FROM read_parquet('x.parquet')"
        (kind, con, text), record, _ = r._connection_for(query, node)
        assert text == query and kind == con.name
        record[kind] = seconds[kind]
        # Exchanged rows alone: the instance for Arrow views, no choice.
        exchanged = "SELECT * FROM _arrow_x1_0"
        assert r._connection_for(exchanged, node) == (("arrow", arrow, exchanged), None, None)
        return kind
    assert run({"parquet": 0.3, "ordered": 0.2}) == "parquet"
    assert run({"parquet": 0.3, "ordered": 0.2}) == "ordered"
    assert run({"parquet": 0.3, "ordered": 0.2}) == "ordered"
    times.clear()
    assert [run({"parquet": 0.1, "ordered": 0.2}) for _ in range(3)] == ["parquet", "ordered", "parquet"]


def test_a_fragment_over_a_share_in_memory_also_tries_reading_it_from_the_files(tmp_path):
    """A share of a Parquet file held in memory is scanned whole; read from the file, DuckDB's join
    filters skip row groups. The fragment runs from memory, then tries the files (on the instance
    with join filters when exchanged rows are in it too, registered there), then keeps the faster."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from engine.catalog import Catalog
    from executors.runner import Runner
    from executors.scan import ScanSource

    pq.write_table(pa.table({"k": list(range(4000))}), tmp_path / "t.parquet", row_group_size=500)
    catalog = Catalog(str(tmp_path))
    table = catalog.table("t")
    arrow, parquet, ordered = duckdb.connect(), duckdb.connect(), duckdb.connect()
    scans = ScanSource(arrow, 0, 2)
    first = scans.source(table, ["k"], False)                           # first read: from the file
    assert first.startswith("(SELECT")
    memory = scans.source(table, ["k"], False)                          # then from memory
    assert memory.startswith("_arrow_part_")
    node = plan_sql(JOIN_TINY, 2).plan.root.input
    times: dict = {}

    def choose(query, seconds):
        r = Runner(arrow, None, catalog, scans, parquet_con=parquet, ordered_con=ordered, fragment_times=times,
                   plan_key="q")
        r._view(pa.table({"k": [1, 2]}))                                 # _arrow_x0_0
        (kind, con, text), record, fallback = r._connection_for(query, node)
        r._on_instance(con, text)                                         # registered there too, if needed
        rows = sorted(con.sql(r._sql_on(con, text)).to_arrow_table().column("k").to_pylist())
        record[kind] = seconds[kind]
        r._unregister_views()
        return kind, rows, fallback is not None

    alone = f"SELECT k FROM {memory} WHERE k < 3"
    expected = [0, 1, 2]
    assert choose(alone, {"memory": 0.3, "parquet": 0.1}) == ("memory", expected, False)
    assert choose(alone, {"memory": 0.3, "parquet": 0.1}) == ("parquet", expected, True)   # the trial
    assert choose(alone, {"memory": 0.3, "parquet": 0.1}) == ("parquet", expected, False)  # far faster
    times.clear()
    # Memory stays unless the files are far faster: one run of each decides.
    assert [choose(alone, {"memory": 0.15, "parquet": 0.1})[0] for _ in range(3)] == ["memory", "parquet", "memory"]
    times.clear()
    joined = f"SELECT k FROM {memory} JOIN _arrow_x0_0 USING (k)"
    assert choose(joined, {"memory": 0.1, "ordered": 0.2}) == ("memory", [1, 2], False)
    assert choose(joined, {"memory": 0.1, "ordered": 0.2}) == ("ordered", [1, 2], True)
    assert choose(joined, {"memory": 0.1, "ordered": 0.2}) == ("memory", [1, 2], False)
    times.clear()
    # The share read from the file beside exchanged rows: the instance with join filters is tried.
    from_file = f"SELECT k FROM {first} JOIN _arrow_x0_0 USING (k)"
    assert choose(from_file, {"arrow": 0.1, "ordered": 0.01}) == ("arrow", [1, 2], False)
    assert choose(from_file, {"arrow": 0.1, "ordered": 0.01}) == ("ordered", [1, 2], True)
    assert choose(from_file, {"arrow": 0.1, "ordered": 0.01}) == ("ordered", [1, 2], False)
    # A whole file beside exchanged rows (no share whose row groups a filter can skip): no choice.
    r = Runner(arrow, None, catalog, scans, parquet_con=parquet, ordered_con=ordered, fragment_times=times, plan_key="q")
    whole = f"SELECT k FROM read_parquet('{tmp_path / 't.parquet'}') JOIN _arrow_x0_0 USING (k)"
    assert r._connection_for(whole, node) == (("arrow", arrow, whole), None, None)
    # A slice of rows has no form read from files: no choice.
    sliced = scans._register(("slice",), pa.table({"k": [1]}))
    r = Runner(arrow, None, catalog, scans, parquet_con=parquet, ordered_con=ordered, fragment_times=times, plan_key="q")
    assert r._connection_for(f"SELECT * FROM {sliced}", node) == (("arrow", arrow, f"SELECT * FROM {sliced}"), None, None)


@pytest.mark.parametrize("sql, nranks, expected, slices", [
    # Deep in a big sort at 16 ranks: gathering a top-3M from each rank would move 16 times the
    # window; a sample sort moves the table once and only the window goes to rank 0.
    ("SELECT u, pay FROM big ORDER BY u LIMIT 10 OFFSET 3000000", 16, SAMPLE, 1),
    # At 2 ranks the gathered top-k is only twice the window: cheaper than sorting everything twice.
    ("SELECT u, pay FROM big ORDER BY u LIMIT 10 OFFSET 3000000", 2, GLOBAL, 0),
    # A small top-k stays a gathered top-k at any scale.
    ("SELECT u, pay FROM big ORDER BY u LIMIT 10", 16, GLOBAL, 0),
])
def test_deep_limit_offset_chooses_the_sorted_window_at_scale(sql, nranks, expected, slices):
    planned = plan_sql(sql, nranks)
    d = planned.one("TopK")
    assert d.pattern == expected, planned.text()
    assert planned.exchanges("slice") == slices
    other = GLOBAL if expected == SAMPLE else SAMPLE
    assert beaten_cost(d, other) > d.cost


# ---------------------------------------------------------------------------- CTEs computed once
def _kept_ctes(planned: Planned) -> list:
    return planned.decisions("MaterializedCte")


SELF_JOIN_CTE = ("WITH t AS {hint}(SELECT g100k, sum(v) AS s, count(*) AS n FROM big GROUP BY g100k) "
                 "SELECT a.g100k, a.s, b.n FROM t a JOIN t b ON a.g100k = b.g100k WHERE a.n > 5")


def test_a_cte_grouped_by_its_join_key_is_kept_and_self_joined_without_a_shuffle():
    """q4/q11/q74's shape: the CTE is computed once (one combine-shuffle-reduce) and stays
    hash-partitioned on its group key, so the self-join on that key moves nothing."""
    planned = plan_sql(SELF_JOIN_CTE.format(hint=""), 16)
    [kept] = _kept_ctes(planned)
    assert "ends in an aggregate" in kept.note and "hash-partitioned" in kept.note, kept.note
    assert planned.exchanges("shuffle") == 1, planned.text()
    assert planned.one("HashJoin").pattern == SHUFFLE and "no shuffle" in planned.one("HashJoin").note
    assert planned.text().count("CteRef t") == 2


def test_not_materialized_plans_the_cte_again_at_each_reference():
    planned = plan_sql(SELF_JOIN_CTE.format(hint="NOT MATERIALIZED "), 16)
    assert not _kept_ctes(planned)
    assert planned.exchanges("shuffle") == 2, planned.text()


def test_materialized_keeps_a_cte_read_once_and_one_read_once_is_not_kept():
    once = "WITH t AS {hint}(SELECT g10, sum(v) AS s FROM big GROUP BY g10) SELECT * FROM t"
    assert not _kept_ctes(plan_sql(once.format(hint=""), 2))
    [kept] = _kept_ctes(plan_sql(once.format(hint="MATERIALIZED "), 2))
    assert "AS MATERIALIZED" in kept.note


@pytest.mark.parametrize("where,kept", [
    ("", True),                    # a big table read again: more work than holding its rows
    ("WHERE u < 1000", True),      # a few rows of a big scan: keeping them is cheap
])
def test_a_filtered_scan_read_three_times_is_kept_when_reading_it_again_costs_more(where, kept):
    sql = (f"WITH f AS (SELECT u, v FROM big {where}) "
           "SELECT count(*) FROM f a JOIN f b ON a.u = b.u JOIN f c ON b.u = c.u")
    decisions = _kept_ctes(plan_sql(sql, 2))
    assert bool(decisions) is kept, [d.note for d in decisions]


def test_a_small_scan_read_twice_is_read_again():
    planned = plan_sql("WITH t AS (SELECT t, name FROM tiny WHERE t > 3) "
                       "SELECT a.name, b.name FROM t a JOIN t b ON a.t = b.t + 1", 2)
    assert not _kept_ctes(planned), planned.text()


def test_a_volatile_cte_is_kept_however_cheap():
    [kept] = _kept_ctes(plan_sql("WITH r AS (SELECT t, random() AS x FROM tiny) "
                                 "SELECT count(*) FROM r a JOIN r b ON a.t = b.t AND a.x = b.x", 2))
    assert "volatile" in kept.note


# ---------------------------------------------------------------------------- join and group estimates
def _star_catalog() -> FakeCatalog:
    """A fact table whose date key takes 261 of a date dimension's 73,049 keys (TPC-DS inventory:
    weekly dates over five years), and an item dimension with four describing columns."""
    return FakeCatalog(
        make_table("fact", 11_745_000, {
            "date_sk": Col(I64, 261, 8, 2_450_815, 2_452_635),
            "item_sk": Col(I64, 18_000, 8, 1, 18_000),
            "qty": Col(I64, 1_000, 8, 0, 999),
        }),
        make_table("dates", 73_049, {
            "date_sk": Col(I64, 73_049, 8, 2_415_022, 2_488_070),
            "year": Col(I64, 200, 8, 1900, 2100),
            "month_seq": Col(I64, 2_400, 8, 0, 2_399),
        }),
        make_table("item", 18_000, {
            "item_sk": Col(I64, 18_000, 8, 1, 18_000),
            "name": Col(STR, 9_000, 20), "brand": Col(STR, 700, 20),
            "class": Col(STR, 100, 10), "category": Col(STR, 10, 10),
        }),
    )


def test_a_filtered_dimension_keeps_its_share_of_the_fact_rows_and_is_joined_first():
    """A date dimension filtered to one year keeps the share of the fact rows that a year is of the
    dates the facts span (1,820 of the dimension's 73,049 keys): a fifth, 2.35M. The distinct
    counts left after the filter (365 dates against the fact's 261) would say it keeps them all,
    and the year's join would come last, after the fact had been joined whole; the dimension's
    whole domain would say 1/200 (59k), 40 times too few (TPC-DS q39, q67)."""
    cat = _star_catalog()
    sql = ("SELECT item.name, fact.qty FROM fact, item, dates WHERE fact.item_sk = item.item_sk "
           "AND fact.date_sk = dates.date_sk AND dates.year = 2001")
    planned = plan_sql(sql, 2, catalog=cat)
    joins = {d.operator: d.rows for d in planned.decisions("HashJoin")}
    by_date = next(rows for op, rows in joins.items() if "date_sk" in op)
    spanned = 73_049 * (2_452_635 - 2_450_815) / (2_488_070 - 2_415_022)
    assert by_date == pytest.approx(11_745_000 * (73_049 / 200) / spanned, rel=0.01), planned.text()
    # The filtered dates are joined to the fact before the item is.
    text = planned.text()
    assert text.index("date_sk = date_sk") > text.index("item_sk = item_sk"), text


def test_groups_of_one_tables_columns_are_at_most_its_rows():
    """An item's name, brand, class and category make at most one group per item, whatever the
    product of their distinct counts: few groups for the rows, so partial aggregates first."""
    cat = _star_catalog()
    sql = ("SELECT name, brand, class, category, avg(qty) FROM fact JOIN item ON fact.item_sk = item.item_sk "
           "GROUP BY name, brand, class, category")
    d = plan_sql(sql, 2, catalog=cat).one("Aggregate group by")
    assert d.rows == pytest.approx(18_000)
    assert d.pattern == CSR


@pytest.mark.parametrize("where", ["month_seq BETWEEN 1200 AND 1200 + 11", "month_seq BETWEEN (1200) AND (1211)",
                                   "month_seq BETWEEN (1222 - 22) AND (1211)"])
def test_range_bounds_in_parentheses_or_sums_are_read(where):
    """TPC-DS writes its windows so (`d_month_seq BETWEEN 1200 AND 1200 + 11`, `d_date BETWEEN
    (CAST('2000-02-10' AS DATE)) AND …`): a year of 200 is a 200th of the dates, not the guess for
    a range."""
    est = Estimator(_star_catalog())
    ast = parse(f"SELECT date_sk FROM dates WHERE {where}")
    q = run_rules(Builder(est.catalog, est).build(qualify_statement(ast, est.catalog), original=ast))
    assert est.estimate(q.root).rows == pytest.approx(73_049 * 11 / 2_399, rel=0.05)


def test_a_union_column_has_the_distinct_values_of_both_inputs():
    """A column of literals over a UNION ALL (TPC-DS's year_total: 's', 'c', 'w') has three values,
    not one per row: an equality on it keeps a third of the rows, not one row."""
    cat = standard_catalog()
    est = Estimator(cat)
    ast = parse("SELECT * FROM (SELECT v, 's' AS kind FROM big UNION ALL SELECT w, 'c' FROM mid "
                "UNION ALL SELECT k, 'w' FROM small) WHERE kind = 'w'")
    built = Builder(cat, est).build(qualify_statement(ast, cat), original=ast)
    # (Left above the UNION: push_filters would move it into the branches, where it is decided.)
    q = run_rules(built, frozenset({"push_filters"}))
    assert est.estimate(q.root).rows == pytest.approx((6 * M + 1_500_000 + 100_000) / 3, rel=0.01)
    assert est.estimate(run_rules(built).root).rows == pytest.approx(100_000, rel=0.01)


def test_a_join_on_timestamps_at_the_calendars_ends_is_estimated():
    """Ranges of timestamp keys are compared in days: 0001-01-01 (which datetime.timestamp() cannot
    take) and 9999-12-31 are ordinary ends of a range (the fuzzer's adversarial data has both)."""
    import datetime as dt
    lo, hi = dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59)
    cat = FakeCatalog(
        make_table("a", 1_000, {"ts": Col(pa.timestamp("us"), 1_000, 8, lo, hi)}),
        make_table("b", 100, {"ts": Col(pa.timestamp("us"), 100, 8, lo, dt.datetime(2000, 1, 1))}),
    )
    planned = plan_sql("SELECT a.ts FROM a RIGHT JOIN b ON a.ts = b.ts", 2, catalog=cat)
    assert planned.one("HashJoin").rows >= 100


def test_a_trial_of_the_other_instance_stops_when_it_runs_far_longer():
    """The second run tries the other DuckDB instance; one that runs past a few times the first
    instance's time is interrupted, counted as slower, and the fragment runs on the first."""
    import threading

    import duckdb

    from executors.runner import Runner

    class Stalled:
        """An instance whose fragment never ends unless interrupted."""

        def __init__(self):
            self.interrupted = threading.Event()
            self.types = []

        def sql(self, query):
            return self

        def to_arrow_table(self):
            if self.interrupted.wait(60):
                raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")
            raise AssertionError("the trial was not interrupted")

        def interrupt(self):
            self.interrupted.set()

    fast, stalled = duckdb.connect(), Stalled()
    node = plan_sql(JOIN_TINY, 2).plan.root.input
    times: dict = {}
    query = "SELECT 42 AS x -- read_parquet"

    def run():
        r = Runner(duckdb.connect(), None, None, None, parquet_con=fast, ordered_con=stalled, fragment_times=times,
                   plan_key="q")
        return r.fetch(query, node).column("x").to_pylist()
    assert run() == [42]                      # the rule's instance
    assert run() == [42]                      # the trial: interrupted, then run on the other
    assert stalled.interrupted.is_set()
    (record,) = times.values()
    assert record["ordered"] == float("inf") and record["parquet"] < float("inf")
    stalled.interrupted.clear()
    assert run() == [42] and not stalled.interrupted.is_set()   # later runs keep the faster one
