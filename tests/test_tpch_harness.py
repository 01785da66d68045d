"""Fast tests of the TPC-H package: query files, data generation, the answer comparator, the bench harness.

No MPI and no big data: SF 0.01 is generated once per session into a temporary
folder. FlockSQL is stood in for by a fake `engine.batch` module, so the
harness is tested end to end whether or not the engine is there.
"""

import datetime
import decimal
import json
import os
import sys
import types
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import sqlglot
from click.testing import CliRunner

import tpch
from tpch import engines
from tpch.bench import BenchConfig, BenchError, plan_runs, run_benchmark
from tpch.cli import parse_int_list
from tpch.cli import tpch as tpch_cli
from tpch.compare import Ordering, compare_tables, ordering_of
from tpch.generate import discover_tables, ensure_sample, generate, scale_factor_of
from tpch.micro import generate_micro_data, micro_queries, parse_rows
from tpch.report import markdown, write_results

# Rows each query returns at SF 0.01 (tpchgen-cli's data), guarding the query texts.
SF001_ROWS = {1: 4, 2: 4, 3: 10, 4: 5, 5: 5, 6: 1, 7: 4, 8: 2, 9: 173, 10: 20, 11: 359, 12: 2, 13: 33, 14: 1,
              15: 1, 16: 296, 17: 1, 18: 2, 19: 1, 20: 1, 21: 1, 22: 7}


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    return ensure_sample(tmp_path_factory.mktemp("tpch") / "sf001")


@pytest.fixture(scope="session")
def sample_con(sample):
    con = duckdb.connect()
    for name, source in discover_tables(sample).items():
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{source}')")
    yield con
    con.close()


# --- queries and data -------------------------------------------------------------------------


def test_query_helpers():
    assert list(tpch.QUERY_NUMBERS) == list(range(1, 23))
    assert len(tpch.TABLES) == 8 and "lineitem" in tpch.TABLES
    assert tpch.query_text(1).lstrip().lower().startswith("select")
    assert not tpch.query_text(22).rstrip().endswith(";")
    with pytest.raises(ValueError):
        tpch.query_text(23)


@pytest.mark.parametrize("n", tpch.QUERY_NUMBERS)
def test_query_parses_in_duckdb_dialect(n):
    tree = sqlglot.parse_one(tpch.query_text(n), read="duckdb")
    assert tree.find(sqlglot.exp.Select) is not None


@pytest.mark.parametrize("n", tpch.QUERY_NUMBERS)
def test_query_runs_on_sample(sample_con, n):
    answer = sample_con.sql(tpch.query_text(n)).to_arrow_table()
    assert answer.num_rows == SF001_ROWS[n]


def test_query_limits_follow_the_spec():
    limits = {n: sqlglot.parse_one(tpch.query_text(n), read="duckdb").args.get("limit") for n in tpch.QUERY_NUMBERS}
    assert {n: int(lim.expression.this) for n, lim in limits.items() if lim} == {2: 100, 3: 10, 10: 20, 18: 100, 21: 100}


def test_sample_layout(sample):
    tables = discover_tables(sample)
    assert sorted(tables) == sorted(tpch.TABLES)
    assert all(src.endswith(".parquet") for src in tables.values())
    assert scale_factor_of(sample) == 0.01


def test_generate_parts_is_idempotent(tmp_path):
    generate(0.01, tmp_path, parts=2, progress=False)
    tables = discover_tables(tmp_path)
    assert tables["lineitem"] == str(tmp_path / "lineitem" / "*.parquet")
    assert tables["nation"] == str(tmp_path / "nation.parquet")
    assert sorted(p.name for p in (tmp_path / "orders").iterdir()) == ["orders.1.parquet", "orders.2.parquet"]
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.parquet")}
    generate(0.01, tmp_path, parts=2, progress=False)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.parquet")} == before  # nothing regenerated
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch left behind
    with pytest.raises(ValueError, match="parts"):
        generate(0.01, tmp_path, parts=3, progress=False)


# --- compare_tables -------------------------------------------------------------------------------


def _t(**cols):
    return pa.table(cols)


def test_identical_tables_match():
    t = _t(a=[1, 2, 3], b=["x", "y", None], c=[1.5, None, 2.5])
    assert compare_tables(t, t, ordered=True) is None
    assert compare_tables(t, t, ordered=False) is None


def test_column_and_row_counts():
    assert "column count" in compare_tables(_t(a=[1]), _t(a=[1], b=[2]), ordered=False)
    assert "row count: actual 2 != expected 1" in compare_tables(_t(a=[1, 1]), _t(a=[1]), ordered=False)


def test_names_are_ignored_unless_asked():
    assert compare_tables(_t(x=[1]), _t(y=[1]), ordered=True) is None
    assert "column names" in compare_tables(_t(x=[1]), _t(y=[1]), ordered=True, check_names=True)
    assert compare_tables(_t(X=[1]), _t(x=[1]), ordered=True, check_names=True) is None


def test_decimal_against_double_numerically():
    expected = pa.table({"s": pa.array([decimal.Decimal("1234567.8901"), decimal.Decimal("0.0000")],
                                       pa.decimal128(18, 4))})
    close = _t(s=[1234567.8901000001, 1e-15])
    far = _t(s=[1234580.0, 0.0])
    assert compare_tables(close, expected, ordered=True) is None
    diff = compare_tables(far, expected, ordered=True)
    assert diff.startswith("row 0, column 0 (s): actual 1234580.0 != expected")


def test_relative_tolerance_is_honoured():
    assert compare_tables(_t(v=[100.001]), _t(v=[100.0]), ordered=True, rel_tol=1e-6) is not None
    assert compare_tables(_t(v=[100.001]), _t(v=[100.0]), ordered=True, rel_tol=1e-4) is None


def test_integer_widths_and_exactness():
    assert compare_tables(pa.table({"n": pa.array([1, 2], pa.int32())}), _t(n=[1, 2]), ordered=True) is None
    assert "actual 3 != expected 2" in compare_tables(_t(n=[1, 3]), _t(n=[1, 2]), ordered=True)
    big = 2**62
    assert compare_tables(_t(n=[big + 1]), _t(n=[big]), ordered=True) is not None  # no float rounding
    assert compare_tables(_t(n=[2.0]), _t(n=[2]), ordered=True) is None  # int against float: numeric
    # A UBIGINT (hash()) past int64's range compares exactly, against a UBIGINT or a smaller integer.
    huge = pa.array([2**64 - 1, 2**63 + 5], pa.uint64())
    assert compare_tables(pa.table({"h": huge}), pa.table({"h": huge}), ordered=True) is None
    off = pa.array([2**64 - 1, 2**63 + 4], pa.uint64())
    assert "9223372036854775813') != expected Decimal('9223372036854775812" in compare_tables(
        pa.table({"h": huge}), pa.table({"h": off}), ordered=True)
    assert compare_tables(pa.table({"h": pa.array([7], pa.uint64())}), _t(h=[7]), ordered=True) is None


def test_string_flavours_match():
    expected = _t(s=["a", "b", None])
    assert compare_tables(pa.table({"s": pa.array(["a", "b", None], pa.large_string())}), expected, True) is None
    assert compare_tables(pa.table({"s": pa.array(["a", "b", None]).dictionary_encode()}), expected, True) is None
    assert compare_tables(pa.table({"s": pa.array(["a", "b", None], pa.string_view())}), expected, True) is None
    assert "actual 'c' != expected 'b'" in compare_tables(_t(s=["a", "c", None]), expected, True)


def test_dates_against_timestamps():
    dates = pa.table({"d": pa.array([datetime.date(1995, 3, 15), None])})
    stamps = pa.table({"d": pa.array([datetime.datetime(1995, 3, 15), None], pa.timestamp("ns"))})
    assert compare_tables(stamps, dates, ordered=True) is None
    later = pa.table({"d": pa.array([datetime.date(1995, 3, 16), None])})
    assert "1995, 3, 16" in compare_tables(later, dates, ordered=True)


def test_nulls_must_line_up():
    assert "actual None != expected 1" in compare_tables(_t(a=[None, 2]), _t(a=[1, 2]), ordered=True)
    assert "actual 1.0 != expected None" in compare_tables(_t(a=[1.0]), _t(a=pa.array([None], pa.float64())), True)
    all_null = pa.table({"a": pa.nulls(2)})
    assert compare_tables(all_null, pa.table({"a": pa.array([None, None], pa.int64())}), ordered=True) is None
    assert compare_tables(all_null, _t(a=[None, 5]), ordered=True) is not None


def test_nan_equals_nan():
    assert compare_tables(_t(v=[float("nan"), float("inf")]), _t(v=[float("nan"), float("inf")]), True) is None
    assert compare_tables(_t(v=[float("inf")]), _t(v=[float("-inf")]), True) is not None


def test_incomparable_types():
    assert "types differ" in compare_tables(_t(a=["1"]), _t(a=[1]), ordered=True)


def test_unordered_is_a_multiset_comparison():
    expected = _t(k=[1, 2, 2, None], s=["a", None, "b", "c"], v=[0.5, 1.5, None, 2.5])
    permuted = _t(k=[None, 2, 1, 2], s=["c", "b", "a", None], v=[2.5, None, 0.5, 1.5])
    assert compare_tables(permuted, expected, ordered=False) is None
    assert compare_tables(permuted, expected, ordered=True) is not None
    duplicated = _t(k=[1, 1, 2, None], s=["a", "a", "b", "c"], v=[0.5, 0.5, None, 2.5])
    assert "after sorting" in compare_tables(duplicated, expected, ordered=False)


def test_float_noise_does_not_reorder_rows():
    # Exact columns sort first, so the tiny float difference cannot swap the two rows.
    expected = _t(v=[1.0, 1.0000000001], k=[2, 1])
    actual = _t(v=[1.0000000001, 1.0], k=[1, 2])
    assert compare_tables(actual, expected, ordered=False) is None


def test_ties_in_order_keys_may_come_in_any_order():
    expected = _t(revenue=[10.0, 5.0, 5.0, 1.0], name=["a", "b", "c", "d"])
    swapped = _t(revenue=[10.0, 5.0, 5.0, 1.0], name=["a", "c", "b", "d"])
    assert compare_tables(swapped, expected, ordered=True) is not None
    assert compare_tables(swapped, expected, ordered=True, order_keys=["revenue"]) is None
    assert compare_tables(swapped, expected, ordered=True, order_keys=[0]) is None
    misordered = _t(revenue=[5.0, 10.0, 5.0, 1.0], name=["b", "a", "c", "d"])
    assert "row 0, column 0 (revenue)" in compare_tables(misordered, expected, ordered=True, order_keys=["revenue"])
    wrong_tie = _t(revenue=[10.0, 5.0, 5.0, 1.0], name=["a", "c", "x", "d"])
    assert "ORDER BY keys tie" in compare_tables(wrong_tie, expected, ordered=True, order_keys=["revenue"])
    with pytest.raises(ValueError):
        compare_tables(swapped, expected, ordered=True, order_keys=["nope"])


def test_a_float_order_key_equal_within_the_tolerance_ties():
    # A variance 6.0 in one engine, 5.999999999999999 in the other: the key after it (flag DESC)
    # then orders the rows differently, and both orders are right.
    expected = _t(v=[5.999999999999999, 5.999999999999999, 6.0, 1.0], flag=["b", "a", "c", "d"])
    actual = _t(v=[6.0, 6.0, 5.999999999999999, 1.0], flag=["c", "b", "a", "d"])
    assert compare_tables(actual, expected, ordered=True, order_keys=["v", "flag"]) is None
    # Beyond the tolerance the keys are not tied: the rows must keep DuckDB's order.
    apart = _t(v=[5.9, 5.9, 6.0, 1.0], flag=["b", "a", "c", "d"])
    moved = _t(v=[6.0, 5.9, 5.9, 1.0], flag=["c", "b", "a", "d"])
    assert compare_tables(moved, apart, ordered=True, order_keys=["v", "flag"]) is not None
    # A row outside the tie is still a difference.
    other = _t(v=[6.0, 6.0, 5.999999999999999, 1.0], flag=["c", "b", "x", "d"])
    assert compare_tables(other, expected, ordered=True, order_keys=["v", "flag"]) is not None


def test_rows_tied_at_a_limit_may_be_any_of_the_ties():
    # ORDER BY k LIMIT 3 over k = 1, 2, 3, 3: either row with k = 3 is a right third row.
    expected = _t(k=[1, 2, 3], v=[10, 20, 30])
    other_tie = _t(k=[1, 2, 3], v=[10, 20, 31])
    assert compare_tables(other_tie, expected, ordered=True, order_keys=["k"], limited=True) is None
    assert compare_tables(other_tie, expected, ordered=True, order_keys=["k"]) is not None
    # Only the run at the cut: a row before it must still match, and so must the keys.
    before = _t(k=[1, 2, 3], v=[10, 21, 30])
    assert compare_tables(before, expected, ordered=True, order_keys=["k"], limited=True) is not None
    wrong_key = _t(k=[1, 2, 4], v=[10, 20, 30])
    assert compare_tables(wrong_key, expected, ordered=True, order_keys=["k"], limited=True) is not None
    assert ordering_of("SELECT k, v FROM t ORDER BY k LIMIT 3") == Ordering(True, ("k",), limited=True)
    assert ordering_of("SELECT k, v FROM t ORDER BY k").limited is False


def test_large_results_compare():
    n = 200_000
    expected = pa.table({
        "k": pa.array(range(n)),
        "s": pa.array([f"s{i % 997}" for i in range(n)]),
        "v": pa.array([i * 0.25 for i in range(n)]),
        "d": pa.array([decimal.Decimal(i) / 100 for i in range(n)], pa.decimal128(12, 2)),
    })
    actual = expected.take(pa.array(list(range(n - 1, -1, -1))))
    assert compare_tables(actual, expected, ordered=False) is None
    assert compare_tables(actual, expected, ordered=True) is not None


def test_ordering_of_a_key_named_by_what_its_select_item_computes():
    """TPC-DS q71 orders by `i_brand_id`, which the select list outputs as `brand_id`: rows tied on
    (ext_price, brand_id) may come in any order."""
    sql = "SELECT i_brand_id brand_id, t_hour, sum(p) ext_price FROM t GROUP BY 1, 2 ORDER BY ext_price DESC, i_brand_id"
    assert ordering_of(sql) == Ordering(True, ("ext_price", "brand_id"))
    assert ordering_of("SELECT a AS x FROM t ORDER BY b") == Ordering(True, None)


def test_ordering_of_queries():
    assert ordering_of(tpch.query_text(1)) == Ordering(True, ("l_returnflag", "l_linestatus"))
    assert ordering_of(tpch.query_text(6)) == Ordering(False)
    assert ordering_of(tpch.query_text(13)) == Ordering(True, ("custdist", "c_count"))
    assert ordering_of("select a, b as c from t order by 2") == Ordering(True, ("c",))
    assert ordering_of("select a from t order by a + 1") == Ordering(True, None)
    # ORDER BY a position at or after a *: the result column at that position (a fuzzer find, TPC-H seed 251).
    assert ordering_of("select * from (select 1 as c0) order by 1") == Ordering(True, (0,))
    assert ordering_of("select t.*, x from t order by 2, x") == Ordering(True, (1, "x"))


# --- the bench harness -----------------------------------------------------------------------------


def _fake_flocksql(monkeypatch, sample_con, corrupt: str | None = None):
    """Install an `engine.batch` whose run_queries answers with DuckDB, optionally corrupting one query."""
    calls = []

    class BatchResult:
        def __init__(self, table, error, seconds):
            self.table, self.error, self.seconds = table, error, seconds
            self.comm_seconds, self.compute_seconds = [0.001] * len(seconds), [0.003] * len(seconds)
            self.peak_rss_mb = []

    def run_queries(data_dir, queries, ranks, timeout_s=600, repeat=1, threads=None, isolated=False):
        calls.append((data_dir, len(queries), ranks, repeat, threads))
        out = []
        for sql in queries:
            if corrupt is not None and corrupt in sql:
                out.append(BatchResult(None, "ExecutionError: boom", []))
                continue
            table = sample_con.sql(sql).to_arrow_table()
            out.append(BatchResult(table, None, [0.01 * ranks] * repeat))
            # Per rank, growing with the query's length: the report keeps each run's largest.
            out[-1].peak_rss_mb = [float(len(sql)) * (r + 1) for r in range(ranks)]
        return out

    module = types.ModuleType("engine.batch")
    module.run_queries = run_queries
    monkeypatch.setitem(sys.modules, "engine.batch", module)
    return calls


def test_bench_duckdb_only(sample):
    config = BenchConfig(data_dir=str(sample), engines=("duckdb",), repeat=2, threads=1)
    results = run_benchmark({f"Q{n}": tpch.query_text(n) for n in (1, 6, 13)}, config, progress=False)
    assert [r["label"] for r in results["runs"]] == ["duckdb"]
    for q in results["queries"]:
        entry = q["results"]["duckdb"]
        assert entry["status"] == "ok" and len(entry["seconds"]) == 3 and entry["median"] > 0
    assert results["meta"]["scale_factor"] == 0.01
    json.dumps(results)


def test_missing_flocksql_is_an_error_and_missing_peers_are_skipped(sample, monkeypatch):
    warnings = []
    monkeypatch.setitem(engines._REQUIRED_MODULE, "flocksql", "engine.no_such_module")
    with pytest.raises(BenchError, match="engine.no_such_module"):
        plan_runs(BenchConfig(data_dir=str(sample), engines=("flocksql",)))
    runs = plan_runs(BenchConfig(data_dir=str(sample), engines=("duckdb", "no-such-peer")), warn=warnings.append)
    assert runs == [("duckdb", 1)] and warnings


@pytest.mark.parametrize("batch", [False, True])
def test_bench_with_fake_flocksql(sample, sample_con, monkeypatch, tmp_path, batch):
    calls = _fake_flocksql(monkeypatch, sample_con, corrupt="c_phone")  # Q22 fails
    queries = {f"Q{n}": tpch.query_text(n) for n in (1, 3, 22)}
    config = BenchConfig(data_dir=str(sample), engines=("flocksql", "duckdb"), ranks=(1, 2), repeat=2, batch=batch,
                         threads=4)
    results = run_benchmark(queries, config, progress=False)
    assert [r["label"] for r in results["runs"]] == ["duckdb", "flocksql@1", "flocksql@2"]
    assert len(calls) == (2 if batch else 6) and all(c[3] == 3 for c in calls)
    assert {(c[2], c[4]) for c in calls} == {(1, 4), (2, 2)}  # ranks share the threads by default
    by_name = {q["name"]: q["results"] for q in results["queries"]}
    assert by_name["Q1"]["flocksql@2"]["status"] == "ok"
    assert by_name["Q1"]["flocksql@2"]["median"] == pytest.approx(0.02)
    assert by_name["Q1"]["flocksql@2"]["extra"]["comm_seconds"] == [0.001] * 3
    assert by_name["Q22"]["flocksql@1"]["status"] == "error"

    written = write_results(results, tmp_path)
    text = (tmp_path / "results.md").read_text()
    assert "| Q1 |" in text and "**Total** (2/3)" in text and "**Geomean** (2/3)" in text
    assert "Q22 on flocksql@1: error: ExecutionError: boom" in text
    assert "## Scaling of flocksql" in text and "(comm 25%)" in text
    longest = max((tpch.query_text(n) for n in (1, 6)), key=len)  # Q22 failed on flocksql@1
    assert "## Peak memory" in text
    assert f"| flocksql@1 | 1 | {len(longest) / 1024:.2f} |" in text, text
    assert json.loads((tmp_path / "results.json").read_text())["kind"] == "tpch"
    assert all(p.exists() for p in written)


def test_wrong_answers_are_reported(sample, sample_con, monkeypatch):
    _fake_flocksql(monkeypatch, sample_con)
    fake = sys.modules["engine.batch"]
    honest = fake.run_queries

    def lying(data_dir, queries, ranks, **kw):
        results = honest(data_dir, queries, ranks, **kw)
        for r in results:
            r.table = r.table.slice(1)  # drop a row
        return results

    monkeypatch.setattr(fake, "run_queries", lying)
    config = BenchConfig(data_dir=str(sample), engines=("flocksql",), repeat=1)
    results = run_benchmark({"Q1": tpch.query_text(1)}, config, progress=False)
    entry = results["queries"][0]["results"]["flocksql@1"]
    assert entry["status"] == "wrong" and entry["diff"] == "row count: actual 3 != expected 4"
    assert "✗" in markdown(results)


def test_cli_bench_and_gen(sample, tmp_path):
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(tpch_cli, ["bench", "--data", str(sample), "--engines", "duckdb", "--queries", "1,6",
                                      "--repeat", "1", "--threads", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2/2 queries" in result.output
    assert (out / "results.md").exists() and (out / "results.json").exists()
    bad = runner.invoke(tpch_cli, ["bench", "--data", str(sample), "--queries", "23", "--engines", "duckdb"])
    assert bad.exit_code != 0
    gen = runner.invoke(tpch_cli, ["gen", "--sf", "0.01", "--out", str(sample)])  # all present: quick no-op
    assert gen.exit_code == 0, gen.output


def test_cli_bench_times_statements_from_files(sample, tmp_path):
    """--sql adds a statement named after its file; given alone, the 22 queries do not run."""
    extra = Path(tpch.__file__).parent / "extra" / "join_groupby.sql"
    mine = tmp_path / "orders_by_status.sql"
    mine.write_text("-- a comment line\nSELECT o_orderstatus, count(*) AS n FROM orders GROUP BY 1 ORDER BY 1;\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(tpch_cli, ["bench", "--data", str(sample), "--engines", "flocksql,duckdb",
                                           "--sql", str(extra), "--sql", str(mine), "--repeat", "1",
                                           "--threads", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2/2 queries answered correctly" in result.output
    names = [q["name"] for q in json.loads((out / "results.json").read_text())["queries"]]
    assert names == ["join_groupby", "orders_by_status"]
    empty = tmp_path / "empty.sql"
    empty.write_text("-- nothing here\n")
    bad = CliRunner().invoke(tpch_cli, ["bench", "--data", str(sample), "--engines", "duckdb", "--sql", str(empty)])
    assert bad.exit_code != 0 and "holds no statement" in bad.output


def test_parse_lists():
    assert parse_int_list("1-3,8,2") == [1, 2, 3, 8]
    assert parse_int_list("4") == [4]
    with pytest.raises(ValueError):
        parse_int_list("3-1")
    assert parse_rows("10M") == 10_000_000 and parse_rows("2.5k") == 2500 and parse_rows("1e6") == 10**6
    with pytest.raises(ValueError):
        parse_rows("ten")


# --- micro-benchmarks ------------------------------------------------------------------------------


def test_micro_data_and_queries(tmp_path, sample_con, monkeypatch):
    rows = 5000
    folder = generate_micro_data(rows, tmp_path / "micro", parts=2, progress=False)
    tables = discover_tables(folder)
    assert sorted(tables) == ["lhs", "rhs"]
    con = duckdb.connect()
    for name, source in tables.items():
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{source}')")
    assert con.sql("select count(*), count(distinct g) from lhs").fetchall()[0] == (rows, rows // 100)
    for op, sql in micro_queries(rows).items():
        assert con.sql(sql).to_arrow_table().num_rows >= 1, op
    with pytest.raises(ValueError):
        micro_queries(rows, ("teleport",))

    _fake_flocksql(monkeypatch, con)
    config = BenchConfig(data_dir=str(folder), engines=("flocksql", "duckdb"), ranks=(1, 2), repeat=1)
    results = run_benchmark(micro_queries(rows, ("join", "sort")), config, kind="micro", progress=False)
    assert all(e["status"] == "ok" for q in results["queries"] for e in q["results"].values())
    assert "Scaling of flocksql" in markdown(results)


def test_a_crashed_job_is_recorded_not_raised(sample, sample_con, monkeypatch):
    _fake_flocksql(monkeypatch, sample_con)

    def crash(*args, **kwargs):
        raise RuntimeError("mpiexec exited with code 1")

    monkeypatch.setattr(sys.modules["engine.batch"], "run_queries", crash)
    config = BenchConfig(data_dir=str(sample), engines=("flocksql",), repeat=1, batch=True)
    results = run_benchmark({"Q1": tpch.query_text(1), "Q6": tpch.query_text(6)}, config, progress=False)
    for q in results["queries"]:
        assert q["results"]["flocksql@1"]["error"] == "RuntimeError: mpiexec exited with code 1"
        assert q["results"]["duckdb"]["status"] == "ok"


def test_cpu_of_the_benchmarks_own_processes_is_not_counted_as_other_work():
    """A busy child process (as MPI ranks and Spark's JVM are) is the benchmark's own CPU time,
    while it runs and after it is reaped. Without /proc there is no measurement, and the report
    falls back to the load average. The child burns a fixed amount of its own CPU time, so the
    checks hold however loaded the machine is (a loaded machine only makes it take longer)."""
    import subprocess

    from tpch.bench import _cpu_seconds, _other_cpu_share
    if not Path("/proc/stat").exists():
        assert _cpu_seconds() is None and _other_cpu_share(None, None, 1.0) is None
        return
    work_s = 0.4
    burn = (f"import sys, time\nwhile time.process_time() < {work_s}: pass\n"
            "print('done', flush=True)\nsys.stdin.read()")
    before = _cpu_seconds()
    child = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "done"
    during = _cpu_seconds()  # the child is alive, its work done
    child.stdin.close()
    child.wait()
    after = _cpu_seconds()
    # /proc counts in clock ticks (10 ms): allow a tick or two.
    assert during[1] - before[1] >= work_s - 0.05, (before, during)
    assert after[1] - before[1] >= work_s - 0.05, (before, after)
    assert after[0] - before[0] >= work_s - 0.05  # the machine was busy for it too


def test_other_cpu_share_is_the_machines_busy_time_not_ours_per_core_second():
    from tpch.bench import _other_cpu_share
    cores = os.cpu_count() or 1
    # The machine was busy 6 CPU-seconds over 2 s, 4 of them ours: 2 by others.
    assert _other_cpu_share((100.0, 10.0), (106.0, 14.0), 2.0) == round(2.0 / (2.0 * cores), 3)
    # Ours can exceed the machine's counter by rounding: never a negative share.
    assert _other_cpu_share((100.0, 10.0), (101.0, 12.0), 1.0) == 0.0
    assert _other_cpu_share((1.0, 1.0), (2.0, 2.0), 0.0) is None


def test_report_warns_only_when_other_processes_took_cpu_time():
    meta = {"host": {"cpus": 2}, "load_average": {"before": 0.1, "after": 2.4}}
    from tpch.report import _load_warning
    assert _load_warning({**meta, "other_cpu_share": 0.01}) == []
    warning = " ".join(_load_warning({**meta, "other_cpu_share": 0.25}))
    assert "other processes used 25%" in warning
    # Without the measurement, a busy machine just before the run warns; the run's own load after it does not.
    assert _load_warning(meta) == []
    busy = {**meta, "load_average": {"before": 1.7, "after": 2.4}}
    assert _load_warning(busy) and "may have shared" in _load_warning(busy)[0]
