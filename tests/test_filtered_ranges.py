"""planner/filtered_ranges.py: a table in a column's order, filtered to a range of it, is read by
ranges that divide the kept rows evenly over the ranks. The answers are checked against DuckDB in
tests/sql/filtered_ranges.test; here, the plans and the balance of the ranges."""
from __future__ import annotations

import duckdb
import pytest

from engine.session import Session
from planner.build import Builder
from planner.copartition import copartition
from planner.estimate import Estimator
from planner.filtered_ranges import balance_filtered_scans
from planner.logical import Filter, Scan, walk
from planner.qualify import parse, qualify_statement
from planner.rules import run_rules


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    data = tmp_path_factory.mktemp("ordered")
    con = duckdb.connect()
    # 20,000 rows in key order (every 7th key NULL), row groups of 500 rows; a small calendar.
    con.execute("COPY (SELECT CASE WHEN range % 7 = 3 THEN NULL ELSE range // 4 END AS k, range % 13 AS v "
                f"FROM range(20000)) TO '{data}/fact.parquet' (ROW_GROUP_SIZE 500)")
    con.execute("COPY (SELECT range AS k, 2000 + range // 1000 AS year FROM range(5000)) "
                f"TO '{data}/dim.parquet'")
    s = Session(str(data))
    yield s
    s.close()


def _balanced(session, sql: str, nranks: int):
    catalog = session.catalog
    ast = parse(sql)
    est = Estimator(catalog)
    query = run_rules(Builder(catalog, est).build(qualify_statement(ast, catalog), original=ast), estimator=est)
    return balance_filtered_scans(copartition(query, catalog, nranks), catalog, nranks, session._key_range_of)


def _fact_scan(query) -> Scan:
    return next(n for n in walk(query.root) if isinstance(n, Scan) and n.table == "fact")


def _rows_per_rank(session, splitters, lo, hi) -> list[int]:
    bounds = [lo, *splitters, hi + 1]
    fact = session.catalog.table("fact").files[0]
    return [duckdb.execute(f"SELECT count(*) FROM '{fact}' WHERE k >= {a} AND k < {b}").fetchone()[0]
            for a, b in zip(bounds, bounds[1:])]


def test_a_filtered_range_is_divided_evenly_over_the_ranks(session):
    scan = _fact_scan(_balanced(session, "SELECT sum(v) FROM fact WHERE k BETWEEN 1000 AND 1300", 3))
    assert scan.key_range is not None and scan.key_range[0] == "k"
    splitters = scan.key_range[1]
    assert 1000 < splitters[0] < splitters[1] < 1300
    rows = _rows_per_rank(session, splitters, 1000, 1300)
    assert min(rows) >= 0.8 * max(rows), rows
    # Dealt out in runs, these 1,032 rows of 20,000 would sit in one rank's run.


def test_a_join_with_a_filtered_small_table_bounds_and_divides_the_big_one(session):
    query = _balanced(session, "SELECT count(*) FROM fact JOIN dim ON fact.k = dim.k WHERE dim.year = 2003", 2)
    scan = _fact_scan(query)
    assert scan.key_range is not None and scan.key_range[0] == "k"
    assert 3000 < scan.key_range[1][0] < 3999
    # The scan is also filtered to the small table's key range (3000..3999), read when planned.
    above = next(n for n in walk(query.root) if isinstance(n, Filter) and n.input is scan)
    assert "BETWEEN 3000 AND 3999" in above.predicate.sql()
    rows = _rows_per_rank(session, scan.key_range[1], 3000, 3999)
    assert min(rows) >= 0.8 * max(rows), rows


@pytest.mark.parametrize("sql", [
    "SELECT sum(v) FROM fact WHERE k > 10",                      # keeps most rows: dealt out as always
    "SELECT sum(v) FROM fact WHERE k > 10 OR v = 1",             # no range of k
    "SELECT count(*) FROM fact LEFT JOIN dim ON fact.k = dim.k AND dim.year = 2003",  # fact keeps its rows
    "SELECT sum(v) FROM fact WHERE k BETWEEN 100 AND 300",
])
def test_reads_that_stay_as_they_are(session, sql):
    query = _balanced(session, sql, 1 if "100 AND 300" in sql else 2)  # one rank: nothing to divide
    assert _fact_scan(query).key_range is None
