"""Shared fixtures: TPC-H samples generated once per test session with tpchgen-cli."""
from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from engine.leftovers import TEMP_MARK
from executors.scan import read_parquet_nan_aware
from planner.filtered_ranges import BALANCED_MIN_ROWS_ENV
from planner.single_rank import ALONE_MAX_COST_ENV
from tests.sample_data import tpch_sample
from tpch.generate import ensure_sample

TPCH_TABLES = ("lineitem", "orders", "customer", "part", "partsupp", "supplier", "nation", "region")


REPO = Path(__file__).resolve().parents[1]

# The test data are small, so most multi-rank queries would be answered by rank 0 alone
# (planner/single_rank.py) and the exchanges go untested. Off for every test and every process the
# tests start; tests/test_single_rank.py turns it on where it is the subject.
os.environ[ALONE_MAX_COST_ENV] = "0"
# Likewise, tables of any size filtered to a range of a column they are ordered by are read by
# ranges of it (planner/filtered_ranges.py), not only those over a million rows.
os.environ[BALANCED_MIN_ROWS_ENV] = "0"


@pytest.fixture(scope="session")
def tpch_sf001() -> Path:
    """TPC-H SF 0.01 ($FLOCKSQL_TEST_DATA if it holds one, else generated once into .test-data/)."""
    return tpch_sample()


@pytest.fixture(scope="session")
def tpch_sf01(tmp_path_factory) -> Path:
    return Path(ensure_sample(tmp_path_factory.mktemp("tpch-sf01"), sf=0.1))


def duckdb_oracle(data_dir: Path) -> duckdb.DuckDBPyConnection:
    """DuckDB with one view per table of the data folder: the answer every query must match."""
    con = duckdb.connect()
    read_parquet_nan_aware(con)  # as the engine reads Parquet: NaN beyond a column's min/max
    for entry in sorted(Path(data_dir).iterdir()):
        if TEMP_MARK in entry.name:
            continue  # a running flock's temporary table, private to its client session
        if entry.suffix == ".parquet":
            con.execute(f"CREATE VIEW {entry.stem} AS SELECT * FROM read_parquet('{entry}')")
        elif entry.is_dir() and not entry.name.startswith((".", "_")):
            con.execute(f"CREATE VIEW {entry.name} AS SELECT * FROM read_parquet('{entry}/**/*.parquet')")
    return con


def tpch_mismatches(answers: dict, data_dir: Path) -> list[str]:
    """What differs from DuckDB's answers: `answers` maps a TPC-H query number to the flock's
    Arrow table, or to the error text it gave instead."""
    from tpch import query_text
    from tpch.compare import compare_tables, ordering_of
    oracle, failures = duckdb_oracle(data_dir), []
    for n, actual in sorted(answers.items()):
        if isinstance(actual, str):
            failures.append(f"Q{n}: {actual}")
            continue
        sql = query_text(n)
        o = ordering_of(sql)
        diff = compare_tables(actual, oracle.sql(sql).to_arrow_table(), ordered=o.ordered, order_keys=o.keys)
        if diff is not None:
            failures.append(f"Q{n}: {diff}")
    return failures


# The longest test files, started first so that the parallel run (pytest-xdist hands out whole files
# in collection order) does not end with one of them running alone.
LONGEST_FIRST = ("test_sql_suite.py", "test_fuzz.py", "test_tpcds.py", "test_clients.py", "test_multihost.py",
                 "test_patterns.py", "test_server_supervision.py", "test_tpch_oracle.py", "test_launch.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
    items.sort(key=rank)  # stable: each file keeps its own order
