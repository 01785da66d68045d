"""tpch/model.py: the scale model is built from the planner's own plans and keeps the invariants any
α–β model must (no bytes at one rank, finite positive times, more data never predicted faster).

These check the model's structure, not its accuracy: the README's "On a cluster" section puts its
1/2/3/6-rank predictions next to measured times; the last test checks that comparison's bookkeeping
against a real benchmark run."""
from __future__ import annotations

import csv
import math

import pytest
from click.testing import CliRunner

from engine.catalog import Catalog
from engine.session import Session
from executors.comm import LocalComm
from planner.cost import CostParams
from tpch import QUERY_NUMBERS, query_text
from tpch.cli import tpch
from tpch.model import BASE_SF, Machine, ScaledCatalog, plan, predict
from tpch.model_check import read_measured

QUERIES = {f"q{n}": query_text(n) for n in QUERY_NUMBERS}
RANKS = (1, 2, 3)


@pytest.fixture(scope="module")
def catalog(tpch_sf001):
    return Catalog(tpch_sf001, statistics=True)


@pytest.fixture(scope="module")
def predictions(catalog):
    params = CostParams()
    return predict(catalog, QUERIES, RANKS, (BASE_SF, 2 * BASE_SF, 4 * BASE_SF), Machine.from_params(params), params)


def test_a_prediction_for_every_query_rank_count_and_scale_factor(predictions):
    keys = {(p.sf, p.nranks, p.query) for p in predictions}
    assert len(keys) == len(predictions) == 3 * len(RANKS) * len(QUERIES)


def test_nothing_moves_at_one_rank(predictions):
    for p in predictions:
        if p.nranks == 1:
            assert (p.bytes_moved, p.comm_s) == (0.0, 0.0), p.query
            assert p.total_s == pytest.approx(p.compute_s)


def test_predictions_are_finite_and_positive(predictions):
    for p in predictions:
        for value in (p.total_s, p.compute_s, p.peak_rank_bytes):
            assert math.isfinite(value) and value > 0, (p.query, p.nranks, p.sf)
        if p.nranks > 1:
            # Every TPC-H plan exchanges something (at least its result, or partial states).
            assert p.comm_s > 0 and p.bytes_moved > 0, (p.query, p.nranks, p.sf)


def test_the_split_adds_up_to_the_planners_cost(predictions):
    """compute + communication is the chosen plan's cost, plus the final gather where no pattern
    priced it: never less."""
    for p in predictions:
        assert p.total_s >= p.planner_cost_s * (1 - 1e-9), (p.query, p.nranks)
        assert p.total_s <= p.planner_cost_s + p.comm_s + 1e-12, (p.query, p.nranks)


def test_doubling_the_scale_factor_never_lowers_predicted_time(predictions):
    by = {(p.query, p.nranks, p.sf): p for p in predictions}
    for (q, P, sf), p in by.items():
        bigger = by.get((q, P, sf * 2))
        if bigger is not None:
            assert bigger.total_s >= p.total_s * (1 - 1e-9), (q, P, sf)


@pytest.mark.parametrize("nranks", RANKS)
def test_the_plan_is_the_one_the_session_makes(tpch_sf001, nranks):
    """The model plans through the same steps as Session._plan_query: same patterns, same cost."""
    with Session(str(tpch_sf001), comm=LocalComm()) as s:
        s.nranks = nranks  # plan as the planning rank of an nranks job would (nothing runs)
        for n in (3, 5, 9, 13, 18, 21, 22):
            sql = query_text(n)
            ours, _ = plan(sql, s.catalog, s.params, nranks)
            theirs = s.plan(sql)
            assert theirs.nranks == nranks
            assert [(d.operator, d.pattern) for d in ours.decisions.values()] == \
                [(d.operator, d.pattern) for d in theirs.decisions.values()], f"q{n} at {nranks} ranks"
            assert ours.cost == pytest.approx(theirs.cost), f"q{n} at {nranks} ranks"


def test_scaled_catalog_grows_rows_and_keys_not_bounded_domains(catalog):
    big = ScaledCatalog(catalog, 100)
    base, scaled = catalog.table("lineitem"), big.table("lineitem")
    assert scaled.row_count == pytest.approx(100 * base.row_count, rel=1e-6)
    assert scaled.column("l_orderkey").distinct == pytest.approx(100 * base.column("l_orderkey").distinct, rel=1e-6)
    assert scaled.column("l_returnflag").distinct == base.column("l_returnflag").distinct
    assert scaled.column("l_shipdate").distinct == base.column("l_shipdate").distinct
    same = ScaledCatalog(catalog, 1).table("orders")
    assert same.row_count == catalog.table("orders").row_count
    assert same.columns == catalog.table("orders").columns


def test_machine_sets_alpha_beta_and_compute_rates():
    params = CostParams()
    m = Machine(cores_per_rank=4, bandwidth_gbs=10.0, latency_us=2.0)
    got = m.cost_params(params)
    assert got.alpha == pytest.approx(2e-6) and got.beta == pytest.approx(1e-10)
    assert got.hash_row == pytest.approx(params.hash_row / 4)
    assert got.fragment == params.fragment and got.broadcast_max_bytes == params.broadcast_max_bytes
    same = Machine.from_params(params).cost_params(params)
    assert same.alpha == pytest.approx(params.alpha) and same.beta == pytest.approx(params.beta)


def test_cli_prints_a_table_and_writes_csv(tpch_sf001, tmp_path):
    out = tmp_path / "model.csv"
    result = CliRunner().invoke(tpch, ["model", "--data", str(tpch_sf001), "--ranks", "1,4", "--sf", "0.01,1",
                                       "--queries", "1,6", "--csv", str(out)])
    assert result.exit_code == 0, result.output
    assert "not measurements" in result.output
    totals = [line for line in result.output.splitlines() if line.split()[2:3] == ["all"]]
    assert len(totals) == 4  # a total row per (SF, ranks)
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 * 2 * 2
    assert {r["query"] for r in rows} == {"q1", "q6"}


def test_ranks_sharing_one_machine_share_its_cores():
    """With --shared-cores, ranks beyond the cores time-share them: each computes proportionally slower."""
    params = CostParams()
    m = Machine(cores_per_rank=1, shared_cores=2)
    assert m.cost_params(params, 1).hash_row == pytest.approx(params.hash_row)
    assert m.cost_params(params, 2).hash_row == pytest.approx(params.hash_row)
    assert m.cost_params(params, 6).hash_row == pytest.approx(3 * params.hash_row)
    assert Machine(cores_per_rank=1).cost_params(params, 6).hash_row == pytest.approx(params.hash_row)


def test_model_beside_a_real_benchmark_run(tpch_sf001, tmp_path):
    """`tpch model --measured` reads a real `tpch bench` results file and compares like with like."""
    import json

    out = tmp_path / "bench"
    bench = CliRunner().invoke(tpch, ["bench", "--data", str(tpch_sf001), "--queries", "1,3,6", "--ranks", "1,2",
                                      "--repeat", "1", "--batch", "--rank-threads", "1", "--out", str(out)])
    assert bench.exit_code == 0, bench.output
    results = out / "results.json"
    chart = tmp_path / "model.png"
    shown = CliRunner().invoke(tpch, ["model", "--data", str(tpch_sf001), "--sf", "0.01", "--ranks", "1,2,4",
                                      "--queries", "1,3,6", "--shared-cores", "2", "--measured", str(results),
                                      "--chart", str(chart), "--totals"])
    assert shown.exit_code == 0, shown.output
    table = shown.output.split(f"{results}:")[1]
    rows = [line.split() for line in table.splitlines() if line.split()[:1] in (["1"], ["2"])]
    assert [r[0] for r in rows] == ["1", "2"], table  # 4 ranks were not measured: no row
    data = json.loads(results.read_text())
    for r in rows:
        label = f"flocksql@{r[0]}"
        measured = sum(q["results"][label]["median"] for q in data["queries"])
        assert float(r[2]) == pytest.approx(measured, abs=1e-3), (r, measured)
        assert r[-1].endswith("/3"), r  # three queries compared
    assert chart.stat().st_size > 1000
    moved = {(m.nranks, m.query): m.moved_bytes for m in read_measured(results)}
    assert all(moved[(1, q)] == 0 for q in ("q1", "q3", "q6")), moved  # one rank sends nothing
    assert moved[(2, "q3")] > 0, moved  # q3's joins and top-k move rows at two ranks

    wrong_sf = CliRunner().invoke(tpch, ["model", "--data", str(tpch_sf001), "--sf", "1", "--ranks", "1",
                                         "--measured", str(results)])
    assert wrong_sf.exit_code != 0 and "SF 0.01" in wrong_sf.output, wrong_sf.output
