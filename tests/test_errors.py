"""Errors: what the user is told, and that a failure on one rank neither hangs the job nor spoils
the next query. Plus the `flocksql` command's exit status and output formats.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from sqlglot import exp

from engine.batch import QueryList, run_query_lists
from engine.catalog import load_table
from engine.errors import CatalogError, FlockError, NotSupportedError, ParseError
from engine.session import Session
from executors.comm import LocalComm
from executors.scan import assign_row_groups
from tests.conftest import duckdb_oracle
from tpch.compare import compare_tables, ordering_of


@pytest.fixture(scope="module")
def session(tpch_sf001):
    s = Session(str(tpch_sf001), comm=LocalComm())
    yield s
    s.close()


def error_of(session, sql) -> FlockError:
    with pytest.raises(FlockError) as info:
        session.execute(sql)
    return info.value


# ---------------------------------------------------------------------------- parse errors
@pytest.mark.parametrize("sql,line", [
    ("SELECT n_name\nFROM nation WHERE FROM", 2),
    ("SELECT n_name,\n  n_regionkey +\nFROM nation", 3),
    ("SELECT 1\nFROM nation WHERE (n_name = 'x'", 2),
    ("SELECT n_name\nFRM nation", 2),
])
def test_syntax_error_has_line_and_column(session, sql, line):
    e = error_of(session, sql)
    assert isinstance(e, ParseError), repr(e)
    m = re.search(r"line (\d+), column (\d+)", str(e))
    assert m, f"no line/column in {str(e)!r}"
    assert int(m.group(1)) == line, str(e)
    col = int(m.group(2))
    assert 1 <= col <= len(sql.splitlines()[line - 1]) + 1, str(e)


def test_syntax_error_column_points_at_the_error(session):
    # "FROM" on line 2 starts at column 19 and ends at 22; any of those is a fair pointer.
    e = error_of(session, "SELECT n_name\nFROM nation WHERE FROM")
    col = int(re.search(r"column (\d+)", str(e)).group(1))
    assert 19 <= col <= 22, str(e)


def test_unterminated_string_has_line_and_column(session):
    """A tokenizer error (here an unterminated string starting on line 2) is a syntax error too:
    ParseError promises line and column."""
    e = error_of(session, "SELECT 1,\n  'abc FROM nation")
    assert isinstance(e, ParseError), repr(e)
    assert re.search(r"line 2, column \d+", str(e)), f"no line/column in {str(e)!r}"


@pytest.mark.parametrize("sql", ["bad sql", "hello", "SELEC bad", "nation"])
def test_words_that_are_no_statement_are_a_syntax_error(session, sql):
    """sqlglot parses bare words as an expression (an alias, a column): that is not a statement,
    so the user should hear 'syntax error', not 'not supported: statement ALIAS'."""
    e = error_of(session, sql)
    assert isinstance(e, ParseError), f"{type(e).__name__}: {e}"
    assert "syntax error" in str(e) and "line 1" in str(e), str(e)


def test_empty_statement(session):
    assert isinstance(error_of(session, "  ;  "), ParseError)


# ---------------------------------------------------------------------------- catalog errors
@pytest.mark.parametrize("sql,name", [
    ("SELECT * FROM no_such_table", "no_such_table"),
    ("SELECT n_name FROM nation JOIN missing_tbl ON true", "missing_tbl"),
    ("SELECT * FROM nation WHERE n_nationkey IN (SELECT x FROM ghost)", "ghost"),
])
def test_unknown_table_is_named(session, sql, name):
    e = error_of(session, sql)
    assert isinstance(e, CatalogError), repr(e)
    assert "unknown table" in str(e) and name in str(e), str(e)


@pytest.mark.parametrize("sql,name", [
    ("SELECT n_nosuch FROM nation", "n_nosuch"),
    ("SELECT n_name FROM nation WHERE r_bogus = 1", "r_bogus"),
    ("SELECT n_name FROM nation ORDER BY zzz_col", "zzz_col"),
    ("SELECT nation.l_orderkey FROM nation", "l_orderkey"),
])
def test_unknown_column_is_named(session, sql, name):
    e = error_of(session, sql)
    assert isinstance(e, CatalogError), repr(e)
    assert "unknown column" in str(e) and name in str(e), str(e)


# ---------------------------------------------------------------------------- not supported
UNSUPPORTED = [
    ("WITH RECURSIVE a(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM a WHERE x < (SELECT max(y) FROM b)), "
     "b(y) AS (SELECT 1 UNION ALL SELECT y + 1 FROM b WHERE y < 3) SELECT * FROM a", "defined after it"),
    ("COPY nation TO 'out.csv'", "copy"),
    ("ATTACH 'other.db'", "attach"),
    ("PRAGMA memory_limit = '1GB'", "pragma"),
    ("SET threads = 1", "set threads"),
    ("SET GLOBAL search_path = 'main'", "set global"),
    ("CREATE INDEX i ON nation (n_name)", "index"),
    ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
    ("SELECT getenv('HOME')", "getenv"),
    # Samples over joins (planner/rules/sample_clause.py).
    ("SELECT * FROM nation, (SELECT * FROM region) r USING SAMPLE 10%", "using sample over a join with a derived"),
    ("SELECT * FROM nation, region USING SAMPLE 3 ROWS", "rows over a join"),
    ("SELECT DISTINCT * FROM nation ORDER BY 2 LIMIT 40 PERCENT", "percent with distinct"),
    ("SELECT * FROM unnest([1], [2]) WITH ORDINALITY", "duckdb refuses it too"),
    ("SELECT COLUMNS(lambda c: c IN (SELECT 'n_name')) FROM nation", "lambda that runs a query"),
    ("SELECT COLUMNS(*) + n_nationkey FROM nation", "columns("),
    ("SELECT * FROM nation n RIGHT JOIN LATERAL (SELECT * FROM region WHERE r_regionkey = n.n_regionkey) r ON true",
     "right join lateral"),
    ("SELECT * FROM nation n ASOF JOIN region r ON r.r_regionkey <= n.n_regionkey AND EXISTS "
     "(SELECT 1 FROM supplier WHERE s_nationkey = n.n_nationkey)", "asof join that reads its sides"),
]


@pytest.mark.parametrize("sql,what", UNSUPPORTED, ids=[w for _, w in UNSUPPORTED])
def test_unsupported_construct_says_so(session, sql, what):
    e = error_of(session, sql)
    assert isinstance(e, NotSupportedError), f"{type(e).__name__}: {e}"
    assert str(e).startswith("not supported:"), str(e)
    assert what in str(e).lower(), f"the message should name {what!r}: {e}"


VALID_DUCKDB = [
    ("group-by-all", "SELECT l_returnflag, count(*) AS n FROM lineitem GROUP BY ALL"),
    ("aggregate-filter", "SELECT count(*) FILTER (WHERE n_regionkey > 1) AS c FROM nation"),
    ("grouped-aggregate-filter",
     "SELECT n_regionkey, sum(n_nationkey) FILTER (WHERE n_name < 'M') AS s FROM nation GROUP BY n_regionkey"),
    ("pivot-statement", "PIVOT nation ON n_regionkey USING count(*) GROUP BY n_name"),
    ("pivot-clause", "SELECT * FROM nation PIVOT (count(*) FOR n_regionkey IN (1, 2))"),
    ("exclude", "SELECT * EXCLUDE (n_comment) FROM nation"),
    # A subquery in a LATERAL that reads the outermost query; a derived table that reads the FROM
    # item before it (DuckDB makes it lateral).
    ("nested-in-lateral", "SELECT n.n_name, s.s_name FROM nation n, LATERAL (SELECT s_name FROM supplier s WHERE "
     "s.s_nationkey = n.n_nationkey AND EXISTS (SELECT 1 FROM partsupp WHERE ps_suppkey = s.s_suppkey AND "
     "ps_availqty > n.n_nationkey * 400)) s"),
    ("implicit-lateral", "SELECT n_name, c.n FROM nation, (SELECT count(*) AS n FROM customer WHERE c_nationkey = "
     "n_nationkey AND c_acctbal > 9000) c"),
    # Once refused by name.
    ("comma-full-join", "SELECT r_name, n_name, s_name FROM region, nation FULL JOIN supplier ON s_nationkey = "
     "n_nationkey AND n_regionkey = r_regionkey AND s_acctbal > 9500"),
    ("aliased-join-columns", "SELECT j.* FROM (nation JOIN region ON n_regionkey = r_regionkey JOIN supplier ON "
     "s_nationkey = n_nationkey) AS j(a, b, c, d, e, f, g, h) WHERE a < 3"),
    ("aliased-using-join-2", "SELECT * FROM (nation n JOIN (SELECT n_nationkey, count(*) AS c FROM customer JOIN nation "
     "ON c_nationkey = n_nationkey GROUP BY 1) x USING (n_nationkey)) AS j"),
    ("columns-lambda", "SELECT COLUMNS(lambda c: c LIKE 'n_%' AND c <> 'n_comment') FROM nation"),
    ("distinct-percent", "SELECT DISTINCT n_regionkey FROM nation ORDER BY 1 LIMIT 40 PERCENT"),
    ("semi-join-reading-both", "SELECT n_name FROM nation n SEMI JOIN region r ON r.r_regionkey = n.n_regionkey AND "
     "EXISTS (SELECT 1 FROM supplier WHERE s_nationkey = n.n_nationkey AND s_acctbal > r.r_regionkey * 1000)"),
    ("full-join-reading-both", "SELECT n_name, r_name FROM nation n FULL JOIN region r ON r.r_regionkey = "
     "n.n_regionkey AND EXISTS (SELECT 1 FROM supplier WHERE s_nationkey = n.n_nationkey AND s_acctbal > "
     "r.r_regionkey * 2000)"),
    ("anti-join-reading-both", "SELECT n_name FROM nation n ANTI JOIN region r ON r.r_regionkey = n.n_regionkey AND "
     "EXISTS (SELECT 1 FROM supplier WHERE s_nationkey = n.n_nationkey AND s_acctbal > r.r_regionkey * 1000)"),
]


@pytest.mark.parametrize("sql", [s for _, s in VALID_DUCKDB], ids=[i for i, _ in VALID_DUCKDB])
def test_valid_duckdb_sql_runs_or_is_refused_by_name(session, tpch_sf001, sql):
    """Valid DuckDB SQL either gives DuckDB's answer or a NotSupportedError, never a misleading
    catalog error about a column that exists."""
    try:
        got = session.execute(sql)
    except NotSupportedError:
        return
    except FlockError as e:
        pytest.fail(f"valid SQL refused with {type(e).__name__}: {e}")
    expected = duckdb_oracle(tpch_sf001).sql(sql).to_arrow_table()
    diff = compare_tables(got, expected, ordered=False)
    assert diff is None, diff


# ---------------------------------------------------------------------------- one failing rank
def rank_row_ranges(data_dir: Path, table: str, nranks: int) -> list[tuple[int, int]]:
    """The [lo, hi) global row ranges each rank scans (partitioned-io's assignment)."""
    t = load_table(table, [str(Path(data_dir) / f"{table}.parquet")])
    starts, pos = {}, 0
    for g in t.row_groups:
        starts[(g.file, g.index)] = (pos, pos + g.num_rows)
        pos += g.num_rows
    out = []
    for r in range(nranks):
        mode, share = assign_row_groups(t, r, nranks)
        if mode == "rows":
            out.append(share)
        else:
            spans = [starts[(f, i)] for f, gs in share for i in (gs if gs is not None else
                     [g.index for g in t.row_groups if g.file == f])]
            out.append((min(s for s, _ in spans), max(e for _, e in spans)) if spans else (0, 0))
    return out


def _last_rank_keys(data_dir: Path, ranks: int):
    """lineitem's l_orderkey column, the ranks' row ranges, and the last rank's highest key (a few
    rows of one order, on that rank only)."""
    keys = pq.read_table(Path(data_dir) / "lineitem.parquet", columns=["l_orderkey"]).column(0)
    spans = rank_row_ranges(data_dir, "lineitem", ranks)
    return keys, spans, keys[spans[-1][1] - 1].as_py()


GOOD = [
    "SELECT count(*) AS n FROM lineitem",
    "SELECT l_returnflag, l_linestatus, count(*) AS n, sum(l_quantity) AS q FROM lineitem GROUP BY 1, 2",
    "SELECT o_orderpriority, count(*) AS n FROM orders JOIN lineitem ON o_orderkey = l_orderkey GROUP BY 1",
    "SELECT l_orderkey, l_linenumber FROM lineitem ORDER BY l_extendedprice DESC, l_orderkey, l_linenumber LIMIT 5",
]


def _failing_rank_queries(data_dir: Path, ranks: int) -> tuple[list[str], list[str | None]]:
    """Good queries around ones that fail on one rank: (queries, what fails in each or None)."""
    keys, _, last_key = _last_rank_keys(data_dir, ranks)
    first_key = keys[0].as_py()
    bad = {
        "last rank, scan fragment":
            f"SELECT CASE WHEN l_orderkey >= {last_key} THEN error('boom') ELSE 1 END AS x FROM lineitem",
        "rank 0, scan fragment":
            f"SELECT CASE WHEN l_orderkey = {first_key} THEN error('boom') ELSE 1 END AS x FROM lineitem",
        "one rank, after a shuffle":
            f"SELECT l_orderkey, CASE WHEN l_orderkey = {last_key} AND sum(l_quantity) > 0 "
            f"THEN error('boom') ELSE sum(l_quantity) END AS q FROM lineitem GROUP BY l_orderkey",
        "last rank, inside an aggregate before the allreduce":
            f"SELECT sum(CASE WHEN l_orderkey >= {last_key} THEN error('boom') ELSE l_quantity END) AS s FROM lineitem",
    }
    queries, kinds = [], []
    for i, (what, q) in enumerate(bad.items()):
        queries += [GOOD[i % len(GOOD)], q]
        kinds += [None, what]
    queries += GOOD
    kinds += [None] * len(GOOD)
    return queries, kinds


RANGE_EXCHANGES = ("sample-sort-input", "halo-window-input")
RANGE_EXCHANGE_FORCED = {"Sort": "sample-shuffle-compute", "Window": "halo-exchange"}
# Seconds a failing-rank query may take before it counts as hung.
QUERY_TIMEOUT_S = 60


def _range_exchange_query(data_dir: Path, where: str) -> str:
    """A query that fails on the last rank while computing the input of a range exchange."""
    keys = pq.read_table(Path(data_dir) / "lineitem.parquet", columns=["l_orderkey"]).column(0)
    boom = f"CASE WHEN l_orderkey >= {pc.max(keys).as_py()} THEN error('boom') ELSE true END"
    return {"sample-sort-input": f"SELECT l_orderkey FROM lineitem WHERE {boom} ORDER BY l_orderkey, l_linenumber",
            "halo-window-input": f"SELECT l_orderkey, lag(l_orderkey) OVER (ORDER BY l_orderkey, l_linenumber) AS p "
                                 f"FROM lineitem WHERE {boom}"}[where]


@pytest.fixture(scope="module")
def failing_rank_results(tpch_sf001):
    """Per rank count, built on first use: the results of the failing-rank tests' lists (the
    next-query test's, and each range exchange's), all in one job. A query that hangs is cancelled
    after QUERY_TIMEOUT_S (its job killed and restarted after it if it does not stop), so it
    reports a timeout and the other lists still run."""
    cache = {}

    def get(ranks: int, test: str) -> list:
        if ranks not in cache:
            lists = {"next-query": QueryList(str(tpch_sf001), _failing_rank_queries(tpch_sf001, ranks)[0])}
            for where in RANGE_EXCHANGES:
                lists[where] = QueryList(str(tpch_sf001), [_range_exchange_query(tpch_sf001, where),
                                                           "SELECT count(*) AS n FROM nation"],
                                         forced_patterns=RANGE_EXCHANGE_FORCED)
            results = run_query_lists(list(lists.values()), ranks, timeout_s=240, query_timeout_s=QUERY_TIMEOUT_S)
            cache[ranks] = dict(zip(lists, results))
        return cache[ranks][test]

    return get


# A query's data that a cast or function cannot take, or an expression of types no function takes,
# is the client's error (INVALID_ARGUMENT), told with the query's own column names: not the plan's
# ids (`n_name_2`), nor DuckDB's pointer into a fragment's SQL that the user never wrote
# (`LINE 1: SELECT CAST('x' AS INT) AS "x_2"`).
DATA_ERRORS = [
    ("SELECT CAST(n_name AS INTEGER) FROM nation", "Conversion Error: Could not convert string", "column n_name"),
    ("SELECT CAST('x' AS INTEGER)", "Conversion Error: Could not convert string 'x' to INT32", None),
    ("SELECT n_nationkey::TINYINT * 100 FROM nation", "Out of Range Error: Overflow in multiplication", None),
    ("SELECT error('no ' || n_name) FROM nation WHERE n_nationkey = 3", "Invalid Input Error: no CANADA", None),
    ("SELECT sum(o_totalprice)::TINYINT FROM orders", "Conversion Error:", "column sum"),
    ("SELECT o_orderkey FROM orders WHERE o_orderkey = (SELECT n_nationkey FROM nation)",
     "Invalid Input Error: more than one row returned by a subquery", None),
    ("SELECT n_name FROM nation WHERE n_name LIKE 'b' ESCAPE 'cc'", "Syntax Error: Invalid escape string", None),
    # A type error of the user's own expression, found when a rank binds its fragment.
    ("SELECT n_name + 1 FROM nation", "Binder Error: No function matches", None),
    ("SELECT n_name FROM nation JOIN region ON n_regionkey = r_regionkey WHERE n_name > 5",
     "Binder Error: Cannot compare values of type VARCHAR", None),
]


@pytest.mark.parametrize("ranks", [1, 2])
def test_errors_of_the_data_are_the_clients_and_in_the_querys_names(tpch_sf001, ranks):
    from engine.batch import run_queries
    results = run_queries(str(tpch_sf001), [sql for sql, _, _ in DATA_ERRORS] + ["SELECT 1 AS one"], ranks,
                          timeout_s=300)
    for (sql, says, names), got in zip(DATA_ERRORS, results):
        kind = "PlanError" if says.startswith("Binder") else "InvalidValueError"
        assert got.error_type == kind, (sql, got.error_type, got.error)
        assert says in got.error and "LINE" not in got.error, (sql, got.error)
        assert not re.search(r"\b[a-z]+_\d+\b", got.error), (sql, got.error)
        if names:
            assert names in got.error, (sql, got.error)
    assert results[-1].table.to_pylist() == [{"one": 1}]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("ranks", [2, 3])
def test_error_on_one_rank_is_reported_and_the_next_query_works(tpch_sf001, failing_rank_results, ranks):
    keys, spans, last_key = _last_rank_keys(tpch_sf001, ranks)
    assert pc.all(pc.greater_equal(keys.slice(1), keys.slice(0, len(keys) - 1))).as_py(), "lineitem not sorted"
    assert keys[spans[-1][0]].as_py() < last_key, "the failing rows must not start a rank's range"
    assert keys[spans[0][1]].as_py() > keys[0].as_py(), "rank 0's first key must be its own"
    oracle = duckdb_oracle(tpch_sf001)
    queries, kinds = _failing_rank_queries(tpch_sf001, ranks)

    results = failing_rank_results(ranks, "next-query")
    assert not any(r.error_type == "Timeout" for r in results), "the batch hung"
    problems = []
    for q, what, r in zip(queries, kinds, results):
        if what is not None:
            if r.error is None or "boom" not in r.error:
                problems.append(f"{what}: expected an error with 'boom', got {r.error_type}: {r.error}")
            elif what.startswith("last rank") and f"rank {ranks - 1}" not in r.error:
                problems.append(f"{what}: the error should say it came from rank {ranks - 1}: {r.error}")
            continue
        if r.error is not None:
            problems.append(f"{q}: {r.error_type}: {r.error}")
            continue
        o = ordering_of(q)
        diff = compare_tables(r.table, oracle.sql(q).to_arrow_table(), ordered=o.ordered, order_keys=o.keys)
        if diff:
            problems.append(f"{q}: {diff}")
    assert not problems, "\n".join(problems)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("ranks", [2, 3])
@pytest.mark.parametrize("where", RANGE_EXCHANGES)
def test_error_on_one_rank_before_a_range_exchange_does_not_hang(tpch_sf001, failing_rank_results, ranks, where):
    """A rank that fails while computing the input of a range exchange (sample sort, and the
    range step of a halo window) must still meet the others at the error agreement."""
    keys = pq.read_table(Path(tpch_sf001) / "lineitem.parquet", columns=["l_orderkey"]).column(0)
    assert keys[rank_row_ranges(tpch_sf001, "lineitem", ranks)[-1][0]].as_py() < pc.max(keys).as_py()
    results = failing_rank_results(ranks, where)
    assert results[0].error_type != "Timeout", f"{where} at {ranks} ranks: the job hung"
    assert results[0].error is not None and "boom" in results[0].error, results[0]
    assert results[1].error is None and results[1].table.column(0).to_pylist() == [25], results[1]


def test_error_at_one_rank_then_next_query(session):
    with pytest.raises(FlockError, match="boom"):
        session.execute("SELECT CASE WHEN n_nationkey = 24 THEN error('boom') ELSE 1 END FROM nation")
    assert session.execute("SELECT count(*) AS n FROM nation").column(0).to_pylist() == [25]


# ---------------------------------------------------------------------------- the CLI
def flocksql() -> list[str]:
    beside = Path(sys.executable).parent / "flocksql"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("flocksql")
    return [found] if found else [sys.executable, "-m", "cli"]


def cli(*args, timeout=120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FLOCKSQL_LAUNCHED"}
    return subprocess.run(flocksql() + list(args), capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("ranks", [1, 2])
def test_cli_bad_sql_exits_nonzero_with_message(tpch_sf001, ranks):
    p = cli("query", "--ranks", str(ranks), "--data", str(tpch_sf001), "SELEC n_name FROM nation")
    assert p.returncode != 0, p
    assert "syntax error" in p.stderr and "line 1" in p.stderr, p.stderr


@pytest.mark.timeout(180)
def test_cli_literal_bad_sql_exits_nonzero(tpch_sf001):
    p = cli("query", "--data", str(tpch_sf001), "bad sql")
    assert p.returncode != 0, p
    assert p.stderr.startswith("Error: "), p.stderr
    assert p.stdout == "", p.stdout


@pytest.mark.timeout(180)
def test_cli_unknown_table_exits_nonzero(tpch_sf001):
    p = cli("query", "--data", str(tpch_sf001), "SELECT * FROM wibble")
    assert p.returncode != 0
    assert "unknown table" in p.stderr and "wibble" in p.stderr, p.stderr


@pytest.mark.timeout(180)
def test_cli_query_at_two_ranks_prints_the_count(tpch_sf001):
    p = cli("query", "--ranks", "2", "--data", str(tpch_sf001), "SELECT count(*) FROM nation")
    assert p.returncode == 0, p.stderr
    assert re.search(r"(?<![\d.])25(?![\d.])", p.stdout), p.stdout
    assert "1 row" in p.stdout, p.stdout


@pytest.mark.timeout(180)
def test_cli_csv_output_parses(tpch_sf001):
    p = cli("query", "--data", str(tpch_sf001), "--format", "csv",
            "SELECT n_nationkey, n_name FROM nation WHERE n_regionkey = 1 ORDER BY n_nationkey")
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert [r["n_name"] for r in rows] == ["ARGENTINA", "BRAZIL", "CANADA", "PERU", "UNITED STATES"]
    assert [int(r["n_nationkey"]) for r in rows] == [1, 2, 3, 17, 24]


@pytest.mark.timeout(180)
def test_cli_json_output_parses(tpch_sf001):
    p = cli("query", "--data", str(tpch_sf001), "--format", "json",
            "SELECT r_regionkey, r_name, 1.5 AS x FROM region ORDER BY r_regionkey")
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    assert [r["r_name"] for r in rows] == ["AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"]
    assert [r["r_regionkey"] for r in rows] == [0, 1, 2, 3, 4]
    assert all(float(r["x"]) == 1.5 for r in rows)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("ranks", [1, 2])
def test_cli_explain_names_patterns(tpch_sf001, ranks):
    sql = ("SELECT n_name, count(*) FROM supplier JOIN nation ON s_nationkey = n_nationkey "
           "WHERE s_acctbal > 0 GROUP BY n_name ORDER BY 2 DESC LIMIT 3")
    p = cli("explain", "--ranks", str(ranks), "--data", str(tpch_sf001), sql)
    assert p.returncode == 0, p.stderr
    assert f"on {ranks} rank" in p.stdout, p.stdout
    for pattern in ("partitioned-io", "embarrassingly-parallel", "globally-reduce"):
        assert f"[{pattern}]" in p.stdout, p.stdout
    assert re.search(r"HashJoin .*\[(broadcast|shuffle)-compute\]", p.stdout), p.stdout
    assert re.search(r"Aggregate group by .*\[(combine-shuffle-reduce|shuffle-compute)\]", p.stdout), p.stdout


@pytest.mark.timeout(180)
def test_cli_pattern_hint_changes_the_plan_and_keeps_the_answer(tpch_sf001):
    """--pattern Join=shuffle-compute turns the cost-based broadcast of a small side into shuffles
    of both sides; the answer stays DuckDB's."""
    sql = ("SELECT n_name, count(*) AS n FROM supplier JOIN nation ON s_nationkey = n_nationkey "
           "GROUP BY n_name ORDER BY n DESC, n_name")
    plain = cli("explain", "--ranks", "2", "--data", str(tpch_sf001), sql)
    hinted = cli("explain", "--ranks", "2", "--pattern", "Join=shuffle-compute", "--data", str(tpch_sf001), sql)
    assert plain.returncode == 0 and hinted.returncode == 0, plain.stderr + hinted.stderr
    assert re.search(r"HashJoin .*\[broadcast-compute\]", plain.stdout), plain.stdout
    assert re.search(r"HashJoin .*\[shuffle-compute\]", hinted.stdout), hinted.stdout
    answer = cli("query", "--ranks", "2", "--pattern", "Join=shuffle-compute", "--format", "json",
                 "--data", str(tpch_sf001), sql)
    assert answer.returncode == 0, answer.stderr
    got = [json.loads(line) for line in answer.stdout.splitlines() if line.strip()]
    expected = duckdb_oracle(tpch_sf001).sql(sql).fetchall()
    assert [(r["n_name"], r["n"]) for r in got] == expected
    bad = cli("explain", "--pattern", "Join=teleport", "--data", str(tpch_sf001), sql)
    assert bad.returncode != 0 and "unknown pattern 'teleport'" in bad.stderr, bad.stderr


@pytest.mark.timeout(180)
def test_cli_explain_bad_sql_exits_nonzero(tpch_sf001):
    p = cli("explain", "--data", str(tpch_sf001), "SELECT n_name FROM nation WHERE")
    assert p.returncode != 0
    assert "syntax error" in p.stderr, p.stderr


# --- big SQL: deep nesting and long IN lists --------------------------------------------------


@pytest.mark.parametrize("depth", [97, 999])
def test_deeply_nested_derived_tables_answer(session, depth):
    sql = "SELECT count(*) AS n FROM " + "(SELECT * FROM " * depth + "nation" + ") AS x" * depth
    assert session.execute(sql).column("n").to_pylist() == [25]


def test_nesting_past_the_planners_stack_is_refused_and_the_next_query_works(session):
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(400)  # what a deeper statement meets at the real limit
    try:
        error = error_of(session, "SELECT * FROM " + "(SELECT * FROM " * 300 + "nation" + ") AS x" * 300)
    finally:
        sys.setrecursionlimit(limit)
    assert isinstance(error, NotSupportedError) and "nested" in str(error)
    assert session.execute("SELECT count(*) AS n FROM region").column("n").to_pylist() == [5]


def test_long_in_lists_answer_like_duckdb(session, tpch_sf001):
    keys = ", ".join(str(k if k % 3 else -k) for k in range(30_000))
    names = ", ".join(f"'MFGR#{k}'" for k in range(400))
    queries = [
        f"SELECT count(*) AS n FROM lineitem WHERE l_orderkey IN ({keys})",
        f"SELECT count(*) AS n FROM lineitem WHERE l_orderkey NOT IN ({keys}, NULL)",
        # A string that looks like a list is text, not a list.
        f"SELECT count(*) AS n, min('IN ({keys[:40]})') AS s FROM part WHERE p_brand NOT IN ({names}, 'Brand#13')",
    ]
    oracle = duckdb_oracle(tpch_sf001)
    for sql in queries:
        got, want = session.execute(sql), oracle.sql(sql).to_arrow_table()
        assert compare_tables(got, want, ordered=False) is None, sql[:80]


def test_long_in_lists_are_one_node_for_the_planner():
    from planner.qualify import LONG_IN_LIST, parse
    items = ", ".join(str(k) for k in range(LONG_IN_LIST * 4))
    ast = parse(f"SELECT 'x IN ({items})' AS s FROM t WHERE a IN ({items}) AND b IN (1, 2)")
    lists = list(ast.find_all(exp.In))
    assert sorted(len(n.expressions) for n in lists) == [1, 2]
    assert ast.find(exp.Literal).this == f"x IN ({items})"


def test_long_in_lists_keep_duckdbs_column_names(session, tpch_sf001):
    # DuckDB's binder names the columns; a long list outside the select list is shortened for it
    # (binding 100,000 items took it over a second), one inside keeps every item in the name.
    from planner.qualify import LONG_IN_LIST, parse, with_short_in_lists
    keys = ", ".join(str(k) for k in range(LONG_IN_LIST * 2))
    oracle = duckdb_oracle(tpch_sf001)
    for sql in (f"SELECT count(*), max(n_name) FROM nation WHERE n_nationkey IN ({keys}) AND n_regionkey NOT IN ({keys})",
                f"SELECT n_nationkey IN ({keys}), n_name FROM nation ORDER BY n_name LIMIT 2"):
        assert session.execute(sql).column_names == oracle.sql(sql).columns, sql[:60]
    short = with_short_in_lists(parse(f"SELECT a FROM t WHERE a IN ({keys}) AND b NOT IN (-7, {keys})"))
    assert short.sql("duckdb") == "SELECT a FROM t WHERE a IN (0) AND NOT b IN (-7)"
    assert with_short_in_lists(parse(f"SELECT a IN ({keys}) FROM t")) is None
