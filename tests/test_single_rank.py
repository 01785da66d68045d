"""planner/single_rank.py: small queries answered by rank 0 alone, over whole tables.

Every other test runs with this off (tests/conftest.py), since their tables are small; here it is on,
as a server has it by default: the answers must still be DuckDB's at 2 and 3 ranks, through the
batch runner (collect) and a real server (streams), and EXPLAIN says which plan runs.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.batch import run_queries, run_query_lists
from engine.session import Session
from executors.comm import LocalComm
from planner.single_rank import ALONE_MAX_COST_ENV, ALONE_MAX_COST_S
from tests.conftest import duckdb_oracle, tpch_mismatches
from tests.fuzz.run import answer
from tests.fuzz.run import oracle as fuzz_oracle
from tests.server_fixtures import copy_data, start_server, stop_server
from tests.sqllogic import ErrorBlock, parse_test_file, write_data
from tpch import QUERY_NUMBERS, query_text
from tpch.compare import compare_tables, ordering_of

ON = str(ALONE_MAX_COST_S)
# Small tables read whole by rank 0 (joins, aggregates, a window, ORDER BY with LIMIT, a subquery,
# set operations), and one over lineitem with a filter.
SMALL = (
    "SELECT count(*) FROM nation",
    "SELECT r_name, count(*) AS n, sum(n_nationkey) FROM nation JOIN region ON n_regionkey = r_regionkey "
    "GROUP BY r_name ORDER BY r_name",
    "SELECT n_name, rank() OVER (PARTITION BY n_regionkey ORDER BY n_name DESC) AS r FROM nation ORDER BY n_name",
    "SELECT s_name, s_acctbal FROM supplier ORDER BY s_acctbal DESC, s_name LIMIT 7 OFFSET 3",
    "SELECT n_name FROM nation WHERE n_nationkey IN (SELECT s_nationkey FROM supplier WHERE s_acctbal > 9000) "
    "ORDER BY 1",
    "SELECT n_regionkey FROM nation UNION SELECT r_regionkey + 3 FROM region EXCEPT SELECT 2 ORDER BY 1",
    "SELECT count(*), sum(l_quantity) FROM lineitem WHERE l_orderkey < 100",
)


@pytest.fixture
def alone_on(monkeypatch):
    monkeypatch.setenv(ALONE_MAX_COST_ENV, ON)


def _plan(data, sql: str, nranks: int):
    with Session(str(data), comm=LocalComm()) as s:
        s.nranks = nranks  # plan as rank 0 of an nranks flock would (nothing runs)
        return s.plan(sql)


def test_the_planner_keeps_a_one_rank_plan_only_where_it_is_cheaper(tpch_sf001, alone_on):
    small = _plan(tpch_sf001, "SELECT count(*) FROM nation", 2)
    assert small.nranks == 2 and small.single is not None
    assert small.single.nranks == 1 and small.single.alone_of == 2
    assert small.single.cost < small.single.distributed_cost
    assert small.single.names == small.names
    # Sent to the other ranks, a plan never carries its one-rank alternative.
    import pickle
    assert pickle.loads(pickle.dumps(small)).single is None
    assert _plan(tpch_sf001, "SELECT count(*) FROM nation", 1).single is None  # one rank: nothing to save


def test_off_and_over_the_limit_nothing_runs_alone(tpch_sf001, monkeypatch):
    monkeypatch.setenv(ALONE_MAX_COST_ENV, "0")
    assert _plan(tpch_sf001, "SELECT count(*) FROM nation", 2).single is None
    monkeypatch.setenv(ALONE_MAX_COST_ENV, "1e-9")
    assert _plan(tpch_sf001, "SELECT count(*) FROM nation", 2).single is None
    monkeypatch.setenv(ALONE_MAX_COST_ENV, "soon")
    with pytest.raises(ValueError, match=ALONE_MAX_COST_ENV):
        _plan(tpch_sf001, "SELECT 1", 2)


@pytest.mark.parametrize("ranks", (2, 3))
def test_answers_are_duckdbs_when_rank0_answers_alone(tpch_sf001, alone_on, ranks):
    explain = ["EXPLAIN SELECT count(*) FROM nation", "EXPLAIN (FORMAT JSON) SELECT count(*) FROM nation",
               "EXPLAIN ANALYZE SELECT count(*) FROM nation"]
    tpch = [query_text(n) for n in QUERY_NUMBERS]
    results = run_queries(str(tpch_sf001), [*explain, *SMALL, *tpch], ranks, timeout_s=400)
    texts = ["\n".join(r.table.column(0).to_pylist()) if r.table is not None else r.error for r in results[:3]]
    assert texts[0].startswith(f"Plan for rank 0 alone, of {ranks} ranks"), texts[0]
    assert f'"alone_of": {ranks}' in texts[1], texts[1]
    assert texts[2].startswith(f"Plan for rank 0 alone, of {ranks} ranks") and "Total:" in texts[2], texts[2]
    oracle = duckdb_oracle(tpch_sf001)
    for sql, r in zip(SMALL, results[3:]):
        assert r.error is None, (sql, r.error)
        o = ordering_of(sql)
        diff = compare_tables(r.table, oracle.sql(sql).to_arrow_table(), ordered=o.ordered, order_keys=o.keys)
        assert diff is None, (sql, diff)
    answers = {n: r.table if r.error is None else r.error for n, r in zip(QUERY_NUMBERS, results[3 + len(SMALL):])}
    assert not tpch_mismatches(answers, tpch_sf001)


def test_a_server_streams_what_rank0_answers_alone(tpch_sf001, alone_on, tmp_path):
    """Through a real 2-rank server and ADBC: the stream of a one-rank plan, and the catalog's
    EXPLAIN saying so."""
    server = start_server("engine", copy_data(tmp_path / "data"), tmp_path / "server.log", ranks=2)
    try:
        with server.connect() as conn, conn.cursor() as cur:
            oracle = duckdb_oracle(server.data_dir)
            # and, prepared then run as ADBC does, what rank 0's DuckDB answers whole (a recursion,
            # a grouping key written two ways, which the planner refuses): engine/rank0_duckdb.py.
            rank0 = ["WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 20) "
                     "SELECT count(*), sum(n) FROM r JOIN nation ON n = n_nationkey",
                     "SELECT n_regionkey, count(*) AS c FROM nation GROUP BY ROLLUP (nation.n_regionkey, n_regionkey) "
                     "ORDER BY 1 NULLS FIRST, 2"]
            for sql in [*SMALL, query_text(2), query_text(11), *rank0]:
                cur.execute(sql)
                o = ordering_of(sql)
                diff = compare_tables(cur.fetch_arrow_table(), oracle.sql(sql).to_arrow_table(), ordered=o.ordered,
                                      order_keys=o.keys)
                assert diff is None, (sql, diff)
            cur.execute("EXPLAIN SELECT count(*) FROM nation")
            assert cur.fetch_arrow_table().column(0)[0].as_py().startswith("Plan for rank 0 alone, of 2 ranks")
    finally:
        stop_server(server)


RECURSIVE_FILE = Path(__file__).parent / "sql" / "recursive.test"


@pytest.fixture(scope="module")
def recursive_file(tmp_path_factory):
    """tests/sql/recursive.test's tables, and each of its statements with DuckDB's answer (or error)."""
    test = parse_test_file(RECURSIVE_FILE)
    data = tmp_path_factory.mktemp("recursive")
    write_data(test, data)
    con = fuzz_oracle(data)
    try:
        return data, [(b.sql, answer(con, b.sql)) for b in test.blocks]
    finally:
        con.close()


def test_which_queries_rank0s_duckdb_may_run(recursive_file, alone_on, monkeypatch):
    """text_for_rank0 gives a text for plain tables and CTEs, and none where the ranks must run the
    query: a view, a table function, a CTE named like a table, a client with a temporary table,
    functions that reach outside the catalog, tables over the row limit, rank-0-alone plans off."""
    from engine import rank0_duckdb
    from engine.client_session import ClientSession
    from planner.qualify import parse
    data, _ = recursive_file
    step = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) "
    with Session(str(data), comm=LocalComm()) as s:
        s.execute("CREATE VIEW some_edges AS SELECT * FROM edges WHERE src < 3")

        def alone(sql, client=None):
            return rank0_duckdb.text_for_rank0(s, parse(sql), client or ClientSession())

        text = alone(step + "SELECT e.src, r.n FROM main.edges AS e, r WHERE e.src = r.n")
        assert text is not None and "READ_PARQUET([" in text.upper() and "main.edges" not in text
        assert alone(step + "SELECT * FROM r, edges") is not None
        assert alone(step + "SELECT * FROM r, some_edges") is None
        assert alone(step + "SELECT * FROM r, range(3)") is None
        assert alone("WITH RECURSIVE edges(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM edges WHERE n < 3) "
                     "SELECT * FROM edges") is None
        assert alone(step + "SELECT n, getenv('HOME') FROM r") is None
        client = ClientSession()
        s.execute("CREATE TEMP TABLE tt AS SELECT 1 AS x", client=client)
        assert alone(step + "SELECT * FROM r", client) is None
        monkeypatch.setattr(rank0_duckdb, "MAX_ROWS", 0)
        assert alone(step + "SELECT * FROM r, edges") is None
        s.alone_max_cost = 0
        monkeypatch.setattr(rank0_duckdb, "MAX_ROWS", 10**9)
        assert alone(step + "SELECT * FROM r") is None


@pytest.fixture(scope="module")
def rank0_statements(tmp_path_factory, recursive_file):
    """(data folder, [(sql, DuckDB's answer or error, whether it may still be refused)]): every
    statement of the recursive suite, and each query the SQL suite expects `not supported` for (with
    rank-0-alone plans off), per file."""
    data, statements = recursive_file
    out = [(data, [(sql, want, False) for sql, want in statements])]
    for path in sorted((Path(__file__).parent / "sql").glob("*.test")):
        test = parse_test_file(path)
        refused = [b.sql for b in test.blocks if isinstance(b, ErrorBlock) and b.pattern.startswith("not supported")
                   and b.sql.lstrip().upper().startswith(("SELECT", "WITH", "FROM", "("))]
        if not refused or path == RECURSIVE_FILE:
            continue
        folder = tmp_path_factory.mktemp(f"refused-{path.stem}")
        write_data(test, folder)
        con = fuzz_oracle(folder)
        try:
            out.append((folder, [(sql, answer(con, sql), True) for sql in refused]))
        finally:
            con.close()
    return out


@pytest.mark.parametrize("ranks", (1, 2, 3))
def test_rank0s_duckdb_answers_small_recursions_and_what_the_planner_refuses(rank0_statements, alone_on, ranks):
    """Over small tables rank 0's DuckDB runs (engine/rank0_duckdb.py) every recursive query of the
    recursive suite, with DuckDB's answer or DuckDB's error (the two the iterations refuse answer),
    and each query the planner refuses: DuckDB's answer, DuckDB's error, or still the refusal where it
    may not run there (a table function, a function reaching outside the catalog)."""
    lists = [(str(data), [sql for sql, _, _ in statements]) for data, statements in rank0_statements]
    results = run_query_lists(lists, ranks, timeout_s=300, query_timeout_s=60)
    failures, answered_refused = [], 0
    for (_, statements), got_list in zip(rank0_statements, results):
        for (sql, want, may_refuse), got in zip(statements, got_list):
            if got.error is not None:
                refused = may_refuse and got.error.startswith("not supported")
                if not isinstance(want, str) and not refused:
                    failures.append(f"{sql}\n  DuckDB answers; FlockSQL: {got.error_type}: {got.error.splitlines()[0]}")
                continue
            if isinstance(want, str):
                failures.append(f"{sql}\n  DuckDB fails ({want.splitlines()[0]}), FlockSQL answers")
                continue
            answered_refused += may_refuse
            o = ordering_of(sql)
            diff = compare_tables(got.table, want, ordered=o.ordered, order_keys=o.keys, limited=o.limited)
            if diff is not None:
                failures.append(f"{sql}\n  {diff}")
    assert not failures, "\n\n".join(failures)
    assert answered_refused >= 10, f"only {answered_refused} refused queries answered in rank 0's DuckDB"
