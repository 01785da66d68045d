"""What a cached plan's later runs reuse: the plan the workers already hold (sent once, then named
by its key: Session._shipped) and the types of its hash-exchange keys (Runner._key_types).

Every other test runs most statements once; here statements whose exchanges hash keys of mixed
types (VARCHAR against BIGINT, BOOLEAN against INTEGER), read Arrow views or read a rank's share
of a file from the file, then from memory, then the faster way (share_reads.test) run three times
in one job at 2 and 3 ranks, and every run must give DuckDB's answer. The hand-over of plans to
the workers is checked as a protocol too, with refreshes and the cache's resets in between.
"""
from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.batch import run_query_lists
from engine.session import PLAN_CACHE_SIZE, Session
from tests.sqllogic import check_results, engine_statements, expected_answers, parse_test_file, write_data

SQL_DIR = Path(__file__).parent / "sql"
FILES = ("regressions.test", "joins.test", "setops.test", "share_reads.test")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    out = {}
    for name in FILES:
        test = parse_test_file(SQL_DIR / name)
        data_dir = tmp_path_factory.mktemp(f"reuse-{Path(name).stem}")
        files = write_data(test, data_dir)
        statements, checked = engine_statements(test)
        out[name] = (test, data_dir, statements, checked, expected_answers(checked, files))
    return out


@pytest.mark.timeout(540)
# The second run tries each fragment's other way (the other DuckDB instance, a share read from
# memory or from its file), the third runs the faster: the answers of all three are checked.
@pytest.mark.parametrize("ranks", [2, 3])
def test_later_runs_of_each_statement_still_give_duckdbs_answer(prepared, ranks):
    runs = 3
    lists = [(str(prepared[name][1]), prepared[name][2]) for name in FILES]
    results = run_query_lists(lists, ranks, timeout_s=480, repeat=runs, query_timeout_s=120, every_run=True)
    failures = []
    for name, got in zip(FILES, results):
        test, _, _, checked, expected = prepared[name]
        assert all(len(r.seconds) == runs and len(r.earlier_tables) == runs - 1 for r in got if r.error is None), \
            f"each statement ran {runs} times"
        for run in range(runs):
            # The answer of this run, for each statement (an error is every run's).
            answers = [r if r.error is not None else replace(r, table=(r.earlier_tables + [r.table])[run]) for r in got]
            failures += [f"{name}, run {run + 1}: {f}" for f in check_results(test, checked, expected, answers)]
    assert not failures, "\n\n".join(failures)


def _rank0_and_worker():
    fields = dict(_plans_at_workers=set(), _plans_from_rank0={})
    return SimpleNamespace(**fields), SimpleNamespace(**fields)


@pytest.mark.parametrize("distinct_plans", [20, PLAN_CACHE_SIZE + 40])
def test_workers_always_hold_the_plan_rank0_names_by_its_key(distinct_plans):
    rank0, worker = _rank0_and_worker()
    plans = [SimpleNamespace(key=f"k{i}", n=i) for i in range(distinct_plans)]
    rnd = random.Random(5)
    sent_whole = forgotten = 0
    for step in range(6000):
        if rnd.random() < 0.002:  # a write: both sides forget (Session.refresh on every rank)
            rank0._plans_at_workers.clear()
            worker._plans_from_rank0.clear()
            forgotten += 1
            continue
        if rnd.random() < 0.001:  # rank 0 alone forgets (its refresh without the workers')
            rank0._plans_at_workers.clear()
            forgotten += 1
            continue
        phys = rnd.choice(plans) if rnd.random() < 0.95 else SimpleNamespace(key=None, n=-1)
        shipped = Session._shipped(rank0, phys)
        sent_whole += shipped[1] is not None and phys.key is not None
        assert Session._received(worker, shipped) is phys
        assert len(rank0._plans_at_workers) <= PLAN_CACHE_SIZE
        assert len(worker._plans_from_rank0) <= 2 * PLAN_CACHE_SIZE
    if distinct_plans < PLAN_CACHE_SIZE:
        # A plan travels whole once, and again only after a refresh.
        assert sent_whole <= distinct_plans * (1 + forgotten)


def test_a_plan_without_a_key_always_travels_whole():
    rank0, worker = _rank0_and_worker()
    phys = SimpleNamespace(key=None)
    for _ in range(3):
        shipped = Session._shipped(rank0, phys)
        assert shipped[1] is phys and Session._received(worker, shipped) is phys
    # A run with no plan (every rank's peak memory).
    assert Session._received(worker, Session._shipped(rank0, None)) is None
