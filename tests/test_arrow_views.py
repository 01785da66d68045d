"""executors/arrow_views.py: the exchanged tables a fragment reads, on real DuckDB connections,
both as DuckDB 2's sources and as registered views (what other DuckDB versions get)."""
from __future__ import annotations

import re

import duckdb
import pyarrow as pa
import pytest

from executors.arrow_views import ArrowViews

NAMES = re.compile(r"_arrow_x\d+_\d+")
WAYS = [pytest.param(False, id="views")]
if hasattr(duckdb.connect(), "_register_source"):
    WAYS.append(pytest.param(True, id="sources"))


@pytest.mark.parametrize("sources", WAYS)
def test_a_fragment_reads_its_tables_by_the_callers_names(sources):
    con = duckdb.connect()
    views = ArrowViews(con, NAMES, sources)
    views.add("_arrow_x1_1", pa.table({"k": [1, 2, 3]}))
    views.add("_arrow_x1_10", pa.table({"k": [2, 3, 4], "v": ["b", "c", "d"]}))
    assert "_arrow_x1_1" in views and "_arrow_x1_2" not in views
    sql = "SELECT a.k, b.v FROM _arrow_x1_1 a JOIN _arrow_x1_10 b USING (k) ORDER BY a.k"
    assert con.sql(views.text(sql)).fetchall() == [(2, "b"), (3, "c")]


@pytest.mark.parametrize("sources", WAYS)
def test_two_connections_hold_the_same_name_apart_and_clear_forgets_them(sources):
    first, second = duckdb.connect(), duckdb.connect()
    on_first, on_second = ArrowViews(first, NAMES, sources), ArrowViews(second, NAMES, sources)
    on_first.add("_arrow_x1_0", pa.table({"k": [1]}))
    on_second.add("_arrow_x1_0", pa.table({"k": [1, 2]}))
    count = "SELECT count(*) FROM _arrow_x1_0"
    assert first.sql(on_first.text(count)).fetchall() == [(1,)]
    assert second.sql(on_second.text(count)).fetchall() == [(2,)]
    on_first.clear()
    assert "_arrow_x1_0" not in on_first
    with pytest.raises(duckdb.Error):
        first.sql(on_first.text(count)).fetchall()
    assert second.sql(on_second.text(count)).fetchall() == [(2,)]
