"""The SQL suite: every `tests/sql/*.test` file at 1, 2 and 3 ranks, DuckDB as the oracle.

Each file's data folder and DuckDB's answers are built once and shared by the three rank counts;
each rank count runs every file in one `run_query_lists` call (one MPI launch, a Session per file:
start-up costs more than most files' queries), made by the first test of that rank count. Each
(file, rank count) is still a test of its own. A failing test lists every failed statement of the
file with its difference, not just the first. The format of the files is described in
`tests/sqllogic.py`.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.batch import run_query_lists
from tests.sqllogic import (ErrorBlock, QueryBlock, TestFileError, check_results, engine_statements, error_matches,
                             expected_answers, parse_test_file, write_data)

SQL_DIR = Path(__file__).parent / "sql"
TEST_FILES = sorted(SQL_DIR.glob("*.test"))
RANKS = (1, 2, 3)
# Seconds one statement may take (it is then cancelled, and its job restarted after it if it does
# not stop), the whole suite at one rank count inside its MPI job, and the pytest limit around the
# test that runs that job.
QUERY_TIMEOUT_S = 120
BATCH_TIMEOUT_S = 480
MULTI_RANK_TIMEOUT_S = 540


def _params():
    for path in TEST_FILES:
        for ranks in RANKS:
            marks = [pytest.mark.timeout(MULTI_RANK_TIMEOUT_S)] if ranks > 1 else []
            yield pytest.param(path, ranks, id=f"{path.stem}-r{ranks}", marks=marks)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Per test file, built on first use: (parsed file, data dir, statements, checked blocks, answers)."""
    cache = {}

    def get(path: Path):
        if path not in cache:
            test = parse_test_file(path)
            data_dir = tmp_path_factory.mktemp(f"sql-{path.stem}")
            files = write_data(test, data_dir)
            statements, checked = engine_statements(test)
            cache[path] = (test, data_dir, statements, checked, expected_answers(checked, files))
        return cache[path]

    return get


@pytest.fixture(scope="module")
def suite_results(prepared, request):
    """Per rank count, built on first use: {file: its results}, every selected file run in one job.

    Only the files whose tests this pytest run selected (`-k asof`) are run, so that working on one
    file does not wait for the whole suite."""
    cache = {}
    selected = {item.callspec.params["path"] for item in request.session.items
                if item.originalname == "test_sql_file" and hasattr(item, "callspec")}

    def get(ranks: int) -> dict[Path, list]:
        if ranks not in cache:
            paths = [path for path in TEST_FILES if path in selected]
            lists = [(str(prepared(path)[1]), prepared(path)[2]) for path in paths]
            results = run_query_lists(lists, ranks, timeout_s=BATCH_TIMEOUT_S, query_timeout_s=QUERY_TIMEOUT_S)
            cache[ranks] = dict(zip(paths, results))
        return cache[ranks]

    return get


@pytest.mark.parametrize("path, ranks", list(_params()))
def test_sql_file(path, ranks, prepared, suite_results):
    test, data_dir, statements, checked, expected = prepared(path)
    results = suite_results(ranks)[path]
    failures = check_results(test, checked, expected, results)
    assert not failures, (
        f"{path.name} at {ranks} rank(s): {len(failures)} of {len(statements)} statements failed\n\n"
        + "\n\n".join(failures)
    )


def test_suite_has_files():
    assert TEST_FILES, f"no .test files in {SQL_DIR}"
    assert sum(len(parse_test_file(p).blocks) for p in TEST_FILES) >= 150


# --- the file format itself (no engine) ---------------------------------------------------------


def test_parse_blocks_and_probe(tmp_path):
    path = tmp_path / "x.test"
    path.write_text(
        "# comment\ndata row_group_size=7 folder=t:2\nCREATE TABLE t AS SELECT range AS a FROM range(20);\n\n"
        "query\nSELECT a\n# inside\nFROM t\n\nerror unknown column*zz\nSELECT zz FROM t\n\n"
        "error not supported:\nWITH RECURSIVE r AS (SELECT 1) SELECT * FROM r\n\nquery\nSELECT 1\n"
    )
    test = parse_test_file(path)
    assert test.data.row_group_size == 7 and test.data.folders == {"t": 2}
    assert [type(b) for b in test.blocks] == [QueryBlock, ErrorBlock, ErrorBlock, QueryBlock]
    assert test.blocks[0].sql == "SELECT a\nFROM t" and test.blocks[1].pattern == "unknown column*zz"
    statements, checked = engine_statements(test)
    # A probe follows the first error (another error comes next); the second is followed by a query.
    assert statements[2] == "SELECT count(*) AS probe FROM t" and len(statements) == 5
    files = write_data(test, tmp_path / "data")
    assert [p.name for p in files["t"]] == ["part-0.parquet", "part-1.parquet"]
    answers = expected_answers(checked, files)
    assert answers[0].num_rows == 20 and answers[1] is None and answers[2].column(0).to_pylist() == [20]


def test_a_query_block_may_name_what_duckdb_answers_instead(tmp_path):
    path = tmp_path / "x.test"
    path.write_text("data\nCREATE TABLE t AS SELECT range AS a FROM range(5);\n\n"
                    "query\nSELECT a FROM t WHERE a < 2\n----\nSELECT range AS a FROM range(2)\n")
    test = parse_test_file(path)
    block = test.blocks[0]
    assert block.sql == "SELECT a FROM t WHERE a < 2" and block.oracle_sql == "SELECT range AS a FROM range(2)"
    statements, checked = engine_statements(test)
    assert statements == ["SELECT a FROM t WHERE a < 2"]  # the engine never sees the oracle's text
    files = write_data(test, tmp_path / "data")
    assert expected_answers(checked, files)[0].column(0).to_pylist() == [0, 1]


@pytest.mark.parametrize("text", [
    "query\nSELECT 1\n",                                   # no data block
    "data\nCREATE TABLE t (a INT);\n\nquery extra\nSELECT 1\n",
    "data\nCREATE TABLE t (a INT);\n\nerror\nSELECT 1\n",   # error needs a pattern
    "data folder=t:0\nCREATE TABLE t (a INT);\n",
])
def test_parse_rejects_malformed(tmp_path, text):
    path = tmp_path / "bad.test"
    path.write_text(text)
    with pytest.raises(TestFileError):
        parse_test_file(path)


def test_error_matches():
    assert error_matches("unknown column*zz", "CatalogError: Unknown Column: 'zz' could not be resolved")
    assert not error_matches("unknown column*zz", "zz: unknown column")
    assert error_matches("not supported:", "not supported: WITH RECURSIVE")
    assert error_matches("*", "anything at all")
    assert error_matches("50%[x]?", "a 50%[x]? b")
