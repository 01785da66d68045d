"""Per-rank memory limits: a query whose working set exceeds the limit spills to DuckDB's temporary
folder and still gives DuckDB's answer; a limit too small even for spilling is a clean error on
every rank, and the next query works.

The 2-rank lists of every test run in one job (`two_rank_results`), each in a Session with its
own memory limit."""
from __future__ import annotations

import duckdb
import pytest

from engine.batch import QueryList, run_queries, run_query_lists
from tests.conftest import duckdb_oracle
from tpch.compare import compare_tables

# About 600k groups of wide keys over lineitem at SF 0.1: a hash table of well over 64 MB.
BIG_AGGREGATE = ("SELECT l_orderkey, l_linenumber, l_comment, sum(l_quantity) AS q, count(*) AS n "
                 "FROM lineitem GROUP BY ALL")
# Per-rank memory budgets, and the smallest share of one that a DuckDB instance runs a fragment
# under: one rank has one instance with all of it; at several ranks two instances have a quarter
# each and the third half (engine/session.py). Under that share one rank's part of the hash table
# does not fit.
LIMIT = {1: "48MB", 2: "96MB"}
INSTANCE_SHARE = {1: "48MB", 2: "24MB"}


@pytest.mark.parametrize("ranks", [1, 2])
def test_the_working_set_exceeds_the_limit_without_spilling(tpch_sf01, ranks):
    """The premise: DuckDB itself, held to the same limit with spilling turned off, runs out of
    memory on one rank's share of this query, so an answer under the limit means the ranks spilled."""
    con = duckdb.connect(config={"threads": 1})
    con.execute(f"SET memory_limit='{INSTANCE_SHARE[ranks]}'")
    con.execute("SET temp_directory=''")
    con.execute(f"CREATE VIEW lineitem AS SELECT * FROM read_parquet('{tpch_sf01}/lineitem.parquet') "
                f"WHERE l_orderkey % {ranks} = 0")
    with pytest.raises(duckdb.OutOfMemoryException):
        con.sql(f"SELECT count(*), sum(q) FROM ({BIG_AGGREGATE})").fetchall()


SPILLING_AGGREGATE = f"SELECT count(*) AS groups, sum(q) AS q, sum(n) AS n, max(l_comment) AS c FROM ({BIG_AGGREGATE})"


@pytest.mark.parametrize("ranks", [1, 2])
def test_query_over_the_memory_limit_spills_and_answers(tpch_sf01, two_rank_results, ranks):
    query = SPILLING_AGGREGATE
    if ranks == 1:
        [res] = run_queries(str(tpch_sf01), [query], ranks, memory_limit=LIMIT[ranks], threads=1)
    else:
        [res] = two_rank_results("spill")
    assert res.error is None, res.error
    expected = duckdb_oracle(tpch_sf01).sql(query).to_arrow_table()
    assert compare_tables(res.table, expected, ordered=False) is None
    assert res.table.column("groups")[0].as_py() > 500_000


# A raw-row shuffle of about 21 MB (l_comment is nearly unique, so the planner ships rows, not
# partial groups): more than an eighth of 64MB per rank, the part of the budget exchanges may hold.
SHUFFLED_AGGREGATE = ("SELECT count(*) AS groups, sum(n) AS n, max(i) AS i, min(o) AS o, sum(p) AS p FROM ("
                      "SELECT l_comment, count(*) AS n, max(l_shipinstruct) AS i, min(l_orderkey) AS o, "
                      "sum(l_extendedprice) AS p FROM lineitem GROUP BY l_comment)")


@pytest.fixture(scope="module")
def two_rank_results(tpch_sf01):
    """Built on first use: {test: its results}, the 2-rank lists of this file's tests in one job
    (threads=1 as each test had), the one that runs out of memory last."""
    cache = {}

    def get(test: str) -> list:
        if not cache:
            lists = {
                "spill": QueryList(str(tpch_sf01), [SPILLING_AGGREGATE], memory_limit=LIMIT[2]),
                "exchange-over-budget": QueryList(str(tpch_sf01), [SHUFFLED_AGGREGATE,
                                                                   "EXPLAIN ANALYZE " + SHUFFLED_AGGREGATE],
                                                  memory_limit="64MB"),
                "exchange-within-budget": QueryList(str(tpch_sf01), [SHUFFLED_AGGREGATE], memory_limit="2GB"),
                "too-small": QueryList(str(tpch_sf01), TOO_SMALL_QUERIES, memory_limit="4MB"),
            }
            cache.update(zip(lists, run_query_lists(list(lists.values()), 2, threads=1)))
        return cache[test]

    return get


def test_exchange_over_its_budget_spills_to_files_and_answers(tpch_sf01, two_rank_results):
    res, explain = two_rank_results("exchange-over-budget")
    assert res.error is None, res.error
    assert res.spilled_bytes and res.spilled_bytes[0] > 1_000_000, res.spilled_bytes
    expected = duckdb_oracle(tpch_sf01).sql(SHUFFLED_AGGREGATE).to_arrow_table()
    assert compare_tables(res.table, expected, ordered=False) is None
    assert explain.error is None, explain.error
    shuffle = [line for line in explain.table.column("explain").to_pylist() if "Exchange" in line and "shuffle" in line]
    assert len(shuffle) == 1 and "spilled=" in shuffle[0], shuffle


def test_exchange_within_its_budget_stays_in_memory(two_rank_results):
    [res] = two_rank_results("exchange-within-budget")
    assert res.error is None, res.error
    assert res.spilled_bytes == [0]


TOO_SMALL_QUERIES = [BIG_AGGREGATE, "SELECT count(*) AS n FROM lineitem"]


def test_limit_too_small_is_a_clean_error_and_the_next_query_works(tpch_sf01, two_rank_results):
    oom, after = two_rank_results("too-small")
    assert oom.error is not None and "memory" in oom.error.lower(), oom.error
    assert after.error is None, after.error
    expected = duckdb_oracle(tpch_sf01).sql("SELECT count(*) AS n FROM lineitem").to_arrow_table()
    assert compare_tables(after.table, expected, ordered=False) is None


def test_one_rank_batch_in_a_process_of_its_own(tpch_sf01):
    """isolated=True (the benchmark's setting) runs one rank outside the caller's process: the same
    answer, and a peak RSS that is that process's own."""
    query = "SELECT l_returnflag, count(*) AS n, sum(l_extendedprice) AS p FROM lineitem GROUP BY 1"
    [res] = run_queries(str(tpch_sf01), [query], 1, isolated=True, threads=1)
    assert res.error is None, res.error
    expected = duckdb_oracle(tpch_sf01).sql(query).to_arrow_table()
    assert compare_tables(res.table, expected, ordered=False) is None
    assert len(res.peak_rss_mb) == 1 and res.peak_rss_mb[0] > 0
