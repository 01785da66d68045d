"""All 22 TPC-H queries against DuckDB's answers on the same files, at 1, 2 and 3 ranks."""
from __future__ import annotations

import pytest

from engine.batch import run_queries
from tests.conftest import duckdb_oracle
from tpch import QUERY_NUMBERS, query_text
from tpch.compare import compare_tables, ordering_of


def check_all(data_dir, ranks, numbers=QUERY_NUMBERS):
    texts = [query_text(n) for n in numbers]
    results = run_queries(str(data_dir), texts, ranks, timeout_s=600)
    oracle = duckdb_oracle(data_dir)
    failures = []
    for n, sql, res in zip(numbers, texts, results):
        if res.error is not None:
            failures.append(f"Q{n}: {res.error_type}: {res.error}")
            continue
        expected = oracle.sql(sql).to_arrow_table()
        o = ordering_of(sql)
        diff = compare_tables(res.table, expected, ordered=o.ordered, order_keys=o.keys)
        if diff is not None:
            failures.append(f"Q{n}: {diff}")
    assert not failures, f"{len(failures)} of {len(texts)} TPC-H queries differ from DuckDB at {ranks} ranks:\n" + "\n".join(failures)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_tpch_sf001_matches_duckdb(tpch_sf001, ranks):
    check_all(tpch_sf001, ranks)


@pytest.mark.timeout(1200)
def test_tpch_sf01_matches_duckdb_at_2_ranks(tpch_sf01):
    check_all(tpch_sf01, 2)
