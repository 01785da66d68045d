"""TABLESAMPLE and USING SAMPLE (planner/rules/sample_clause.py) at 1, 2 and 3 ranks.

A sample cannot be compared with DuckDB's rows (each draws its own), so these tests check what makes
a sample right: its size (exact for a row count or a reservoir percentage, within six standard
deviations for a percentage), that every row it gives is a row of the table, that REPEATABLE gives
the same rows at every rank count, that a sample is one sample wherever it is read (a small table
replicated to every rank, or joined), and that a sample without REPEATABLE is drawn anew each run;
the same for samples of a derived table, a CTE and a table function.
"""
from __future__ import annotations

import math

import duckdb
import pytest

from engine.batch import run_queries
from tests.conftest import duckdb_oracle

LINEITEM_ROWS_SQL = "SELECT count(*) FROM lineitem"
SEEDED = "SELECT * FROM lineitem TABLESAMPLE bernoulli(5%) REPEATABLE (11)"
REPLICATED = (
    "SELECT count(*) AS n FROM lineitem JOIN (SELECT * FROM supplier TABLESAMPLE system(50%) REPEATABLE (5)) s "
    "ON l_suppkey = s_suppkey",
    "SELECT count(*) AS n FROM lineitem WHERE l_suppkey IN "
    "(SELECT s_suppkey FROM supplier TABLESAMPLE system(50%) REPEATABLE (5))",
)
FRESH = "SELECT count(*) AS n FROM lineitem TABLESAMPLE 10%"
ROWS = "SELECT * FROM lineitem USING SAMPLE 50 ROWS"
RESERVOIR_SHARE = "SELECT * FROM orders TABLESAMPLE reservoir(1%)"
JOINED = "SELECT count(*) AS n FROM lineitem l JOIN orders o ON l_orderkey = o_orderkey USING SAMPLE 5%"
# Samples of a derived table, a CTE and a table function: the rows they give, hashed.
DERIVED_ROWS_SQL = "SELECT l_orderkey, l_linenumber, l_quantity FROM lineitem WHERE l_quantity > 10"
DERIVED = f"SELECT * FROM ({DERIVED_ROWS_SQL}) AS d TABLESAMPLE bernoulli(5%) REPEATABLE (3)"
CTE_ROWS = ("WITH c AS (SELECT o_orderkey, o_custkey FROM orders WHERE o_orderstatus = 'F') "
            "SELECT * FROM c USING SAMPLE reservoir(40 ROWS) REPEATABLE (9)")
RANGE = "SELECT * FROM range(2000) AS r(v) TABLESAMPLE bernoulli(10%) REPEATABLE (1)"
DERIVED_REPLICATED = (
    "WITH s AS (SELECT s_suppkey, s_nationkey FROM supplier) SELECT count(*) AS n FROM lineitem "
    "JOIN (SELECT * FROM s TABLESAMPLE system(50%) REPEATABLE (5)) x ON l_suppkey = x.s_suppkey",
    "SELECT count(*) AS n FROM lineitem WHERE l_suppkey IN (SELECT s_suppkey FROM "
    "(SELECT s_suppkey, s_nationkey FROM supplier) AS s TABLESAMPLE system(50%) REPEATABLE (5))",
)


def _within(count: int, rows: int, percent: float) -> bool:
    p = percent / 100
    return abs(count - rows * p) <= 6 * math.sqrt(rows * p * (1 - p))


def _rows_of_table(result, table: str, con: duckdb.DuckDBPyConnection) -> bool:
    """Every row of result (with its repeats) is a row of the table."""
    con.register("result_rows", result)
    left = con.sql(f"SELECT count(*) FROM (SELECT * FROM result_rows EXCEPT ALL SELECT * FROM {table})").fetchall()[0][0]
    con.unregister("result_rows")
    return left == 0


@pytest.fixture(scope="module")
def answers(tpch_sf001):
    queries = [SEEDED, *REPLICATED, ROWS, RESERVOIR_SHARE, JOINED] + [FRESH] * 5 + [DERIVED, CTE_ROWS, RANGE,
                                                                                *DERIVED_REPLICATED]
    out = {}
    for ranks in (1, 2, 3):
        results = run_queries(str(tpch_sf001), queries, ranks)
        errors = [(q, r.error) for q, r in zip(queries, results) if r.error is not None]
        assert not errors, errors
        out[ranks] = [r.table for r in results]
    return out


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_samples_have_their_size_and_only_the_tables_rows(answers, tpch_sf001, ranks):
    con = duckdb_oracle(tpch_sf001)
    lineitem = con.sql(LINEITEM_ROWS_SQL).fetchall()[0][0]
    orders = con.sql("SELECT count(*) FROM orders").fetchall()[0][0]
    seeded, _, _, rows, reservoir, joined, *fresh = answers[ranks][:11]
    assert _within(seeded.num_rows, lineitem, 5) and _rows_of_table(seeded, "lineitem", con)
    assert rows.num_rows == 50 and _rows_of_table(rows, "lineitem", con)
    assert rows.num_rows == len(set(zip(*(c.to_pylist() for c in rows.columns))))  # no row twice
    # DuckDB's reservoir of a percentage: exactly that share of the rows.
    assert reservoir.num_rows == int(0.01 * orders) and _rows_of_table(reservoir, "orders", con)
    # USING SAMPLE samples the FROM clause's joined rows (each lineitem row has one order).
    assert _within(joined.column(0)[0].as_py(), lineitem, 5)
    assert all(_within(t.column(0)[0].as_py(), lineitem, 10) for t in fresh)


def test_repeatable_gives_the_same_rows_at_every_rank_count(answers):
    def key(table):
        return sorted(zip(*(c.to_pylist() for c in table.columns)))
    assert key(answers[1][0]) == key(answers[2][0]) == key(answers[3][0])


def test_a_sample_is_one_sample_wherever_it_is_read(answers):
    # A join with the sampled supplier rows and a filter on the same sample's keys agree, at each
    # rank count and across them (supplier is small: it may be read whole by every rank).
    counts = {ranks: [t.column(0)[0].as_py() for t in answers[ranks][1:3]] for ranks in (1, 2, 3)}
    assert all(a == b for a, b in counts.values()), counts
    assert len({a for a, _ in counts.values()}) == 1, counts


def test_a_sample_without_repeatable_is_drawn_again_each_run(answers):
    for ranks in (1, 2, 3):
        fresh = [t.column(0)[0].as_py() for t in answers[ranks][6:11]]
        assert len(set(fresh)) > 1, fresh


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_samples_of_derived_tables_ctes_and_table_functions(answers, tpch_sf001, ranks):
    con = duckdb_oracle(tpch_sf001)
    derived, cte_rows, range_rows, joined, filtered = answers[ranks][11:]
    con.sql(f"CREATE TEMP VIEW derived_rows AS {DERIVED_ROWS_SQL}")
    con.sql("CREATE TEMP VIEW cte_rows AS SELECT o_orderkey, o_custkey FROM orders WHERE o_orderstatus = 'F'")
    con.sql("CREATE TEMP VIEW range_rows AS SELECT range AS v FROM range(2000)")
    derived_count = con.sql("SELECT count(*) FROM derived_rows").fetchall()[0][0]
    assert derived.column_names == ["l_orderkey", "l_linenumber", "l_quantity"]
    assert _within(derived.num_rows, derived_count, 5) and _rows_of_table(derived, "derived_rows", con)
    assert cte_rows.num_rows == 40 and _rows_of_table(cte_rows, "cte_rows", con)
    assert range_rows.column_names == ["v"]
    assert _within(range_rows.num_rows, 2000, 10) and _rows_of_table(range_rows, "range_rows", con)
    assert joined.column(0)[0].as_py() == filtered.column(0)[0].as_py()
    whole = con.sql("SELECT count(*) FROM lineitem").fetchall()[0][0]
    assert 0 < joined.column(0)[0].as_py() < whole


def test_samples_of_derived_tables_repeat_at_every_rank_count(answers):
    def key(table):
        return sorted(zip(*(c.to_pylist() for c in table.columns)))
    for at in (11, 12, 13, 14):
        assert key(answers[1][at]) == key(answers[2][at]) == key(answers[3][at])
