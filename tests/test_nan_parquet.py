"""NaN in Parquet files written by pyarrow, whose min/max leave NaN out: DuckDB orders NaN above
every number, so `x > 100` holds for it, and a reader that skips row groups by min/max drops it
(duckdb/duckdb#25521; the fuzzer met it as a comma join whose ON filtered on such a column). Every
query gives the answer of DuckDB holding the rows in a table of its own, at 1, 2 and 3 ranks."""
from __future__ import annotations

import math
from collections import Counter

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.batch import run_query_lists
from tests.conftest import duckdb_oracle

# Row groups of two rows, each with a finite value beside the NaN, so its min/max are finite.
X = [1.0, float("nan"), None, 2.0, float("inf"), 3.0, float("nan"), -1.0]
QUERIES = [
    "SELECT id FROM f WHERE x > 100",
    "SELECT id FROM f WHERE x > 2.5",
    "SELECT id FROM f WHERE x >= 3",
    "SELECT id FROM f WHERE x <> 1.0",
    "SELECT id FROM f WHERE x <= 2.0",
    "SELECT id FROM f WHERE x < 1.5 OR x > 1000",
    "SELECT count(*) FROM f WHERE x > 2",
    "SELECT a.id, b.id FROM f a, f b JOIN g c ON b.id = c.id AND a.x > 100 WHERE b.x < 2.5",
    "SELECT a.id, c.id FROM f a JOIN g c ON a.x = c.x",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nan")
    f = pa.table({"id": pa.array(range(1, len(X) + 1), pa.int64()), "x": pa.array(X, pa.float64())})
    pq.write_table(f, folder / "f.parquet", row_group_size=2)
    (folder / "g").mkdir()
    g = pa.table({"id": pa.array([1, 2, 4, 7], pa.int64()), "x": pa.array([float("nan"), 2.0, 2.0, 5.0])})
    pq.write_table(g.slice(0, 2), folder / "g" / "part-0.parquet", row_group_size=2)
    pq.write_table(g.slice(2), folder / "g" / "part-1.parquet", row_group_size=2)
    return folder


def _rows(table: pa.Table) -> Counter:
    return Counter(zip(*[c.to_pylist() for c in table.columns]))


def _in_memory(folder) -> duckdb.DuckDBPyConnection:
    """DuckDB with the rows in its own tables: no Parquet statistics to skip by."""
    con = duckdb.connect()
    con.execute(f"CREATE TABLE f AS SELECT * FROM read_parquet('{folder / 'f.parquet'}')")
    con.execute(f"CREATE TABLE g AS SELECT * FROM read_parquet('{folder / 'g'}/*.parquet')")
    return con


def test_the_files_leave_nan_out_of_their_bounds(data):
    """The case this file is about: a row group holding NaN whose max is finite."""
    meta = pq.ParquetFile(data / "f.parquet").metadata
    st = meta.row_group(0).column(1).statistics
    assert st.has_min_max and not math.isnan(st.max) and st.max == 1.0


def test_the_oracle_reads_the_files_as_duckdb_holds_the_rows(data):
    tables, oracle = _in_memory(data), duckdb_oracle(data)
    for sql in QUERIES:
        assert _rows(oracle.sql(sql).to_arrow_table()) == _rows(tables.sql(sql).to_arrow_table()), sql


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_nan_rows_are_kept_at_every_rank_count(data, ranks):
    tables = _in_memory(data)
    [results] = run_query_lists([(str(data), QUERIES)], ranks)
    for sql, result in zip(QUERIES, results):
        assert result.error is None, (sql, result.error)
        assert _rows(result.table) == _rows(tables.sql(sql).to_arrow_table()), sql
