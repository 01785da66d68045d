"""engine/batch.py: several lists of queries over different data folders in one job."""
from __future__ import annotations

import tempfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine import batch
from engine.batch import BatchResult, QueryList, run_query_lists


def _folder(path, **tables):
    """A data folder with one Parquet file per table, a column `a` of `rows` numbers each."""
    path.mkdir()
    for name, rows in tables.items():
        pq.write_table(pa.table({"a": list(range(rows))}), path / f"{name}.parquet")
    return str(path)


def _counts(results: list[BatchResult]):
    return [r.table.column(0).to_pylist()[0] if r.error is None else r.error_type for r in results]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("ranks", [1, 3])
def test_each_list_runs_over_its_own_folder_and_settings(tmp_path, monkeypatch, ranks):
    """The job opens a Session per folder and goes back to an earlier one: each sees its own
    tables only (a table created in one folder is not in the other), patterns forced for one list
    are not for the next, and every rank's temporary folder is removed (a Session left open would
    keep its own)."""
    a = _folder(tmp_path / "a", t=3)
    b = _folder(tmp_path / "b", t=5, u=7)
    rank_tmp = tmp_path / "rank-tmp"
    rank_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(rank_tmp))  # the job's ranks
    monkeypatch.setattr(tempfile, "tempdir", str(rank_tmp))  # one rank, in this process
    count = "SELECT count(*) AS n FROM {}"
    join = "EXPLAIN SELECT count(*) AS n FROM t JOIN u USING (a)"
    lists = [
        (a, [count.format("t"), "CREATE TABLE w AS SELECT 1 AS x", count.format("w")]),
        (b, [count.format("t"), count.format("u"), count.format("w")]),
        (a, [count.format("u"), count.format("t")]),
        (b, []),
        QueryList(b, [join], forced_patterns={"Join": "broadcast-compute"}),
        QueryList(b, [join], forced_patterns={"Join": "shuffle-compute"}),
        (a, [count.format("w")]),
    ]
    results = run_query_lists(lists, ranks, timeout_s=150)
    explains = ["\n".join(r.table.column(0).to_pylist()) for r, in results[4:6]]
    assert "[broadcast-compute]" in explains[0] and "[shuffle-compute]" in explains[1], explains
    assert [_counts(r) for r in results[:4] + results[6:]] == [
        [3, 1, 1], [5, 7, "CatalogError"], ["CatalogError", 3], [], [1]], [[r.error for r in rs] for rs in results]
    assert not list(rank_tmp.iterdir())


def test_a_crashed_job_fails_the_rest_of_its_list_and_a_new_job_runs_the_next(monkeypatch):
    """No MPI here: the jobs are stand-ins that finish what they are told to."""
    jobs = []

    def job(ranks, spec, deadline, stuck_after, timeout_s):
        jobs.append([sql for _, _, sql in spec["items"]])
        if len(jobs) == 1:  # finishes one query, then crashes
            return [BatchResult(pa.table({"n": [1]}), None)], "MPI job failed (exit 1): boom", False
        return [BatchResult(pa.table({"n": [2]}), None) for _ in spec["items"]], None, False

    monkeypatch.setattr(batch, "_run_job", job)
    results = run_query_lists([("a", ["q1", "q2", "q3"]), ("b", ["q4"]), ("c", ["q5"])], 2)
    assert jobs == [["q1", "q2", "q3", "q4", "q5"], ["q4", "q5"]]
    assert [_counts(r) for r in results] == [[1, "CommError", "CommError"], [2], [2]]
    assert "boom" in results[0][1].error


def test_a_timeout_fails_every_list_left(monkeypatch):
    def job(ranks, spec, deadline, stuck_after, timeout_s):
        return [BatchResult(pa.table({"n": [1]}), None)], f"timeout after {timeout_s}s", False

    monkeypatch.setattr(batch, "_run_job", job)
    results = run_query_lists([("a", ["q1", "q2"]), ("b", ["q3"])], 2, timeout_s=5)
    assert [_counts(r) for r in results] == [[1, "Timeout"], ["Timeout"]]


def test_a_stuck_query_alone_is_lost(monkeypatch):
    calls = []

    def job(ranks, spec, deadline, stuck_after, timeout_s):
        calls.append(len(spec["items"]))
        if len(calls) == 1:
            return [], "stuck", True
        return [BatchResult(pa.table({"n": [1]}), None) for _ in spec["items"]], None, False

    monkeypatch.setattr(batch, "_run_job", job)
    results = run_query_lists([("a", ["q1", "q2"]), ("b", ["q3"])], 2, query_timeout_s=1)
    assert calls == [3, 2]
    assert [_counts(r) for r in results] == [["Timeout", 1], [1]]


def test_a_job_opens_at_most_sessions_per_job_sessions(monkeypatch):
    jobs = []

    def job(ranks, spec, deadline, stuck_after, timeout_s):
        jobs.append([sql for _, _, sql in spec["items"]])
        return [BatchResult(pa.table({"n": [1]}), None) for _ in spec["items"]], None, False

    monkeypatch.setattr(batch, "_run_job", job)
    monkeypatch.setattr(batch, "SESSIONS_PER_JOB", 2)
    results = run_query_lists([("a", ["q1", "q2"]), ("a", ["q3"]), ("b", ["q4"]), ("c", ["q5"])], 2)
    assert jobs == [["q1", "q2", "q3", "q4"], ["q5"]]
    assert [_counts(r) for r in results] == [[1, 1], [1], [1], [1]]


def test_results_are_read_back_as_written_a_line_at_a_time(tmp_path):
    """A job appends a line per finished query and, at its end, the ranks' peak memory; a reader
    that looks while a line is half written counts only the whole ones."""
    done = [BatchResult(pa.table({"a": [i]}), None, [0.1 * i]) for i in range(3)]
    for i in range(len(done)):
        batch._write_results(tmp_path, done[:i + 1], [], i)
    meta = tmp_path / batch.RESULTS_FILE
    with open(meta, "a") as f:
        f.write('{"error": nul')  # the next line, caught half written
    read = batch._read_meta(meta)
    assert [m["seconds"] for m in read] == [[0.0], [0.1], [0.2]]
    assert all("peak_rss_mb" not in m for m in read)
    meta.write_text(meta.read_text().rsplit("\n", 1)[0] + "\n")
    batch._write_results(tmp_path, done, [11.0, 12.0], len(done))
    loaded = [batch._load_result(tmp_path, i, m) for i, m in enumerate(batch._read_meta(meta))]
    assert [r.table.column(0).to_pylist() for r in loaded] == [[0], [1], [2]]
    assert all(r.peak_rss_mb == [11.0, 12.0] for r in loaded)
