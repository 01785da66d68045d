"""What a rank measures of each stage (executors/runner.py): local compute, waiting for slower ranks
and communication, kept apart; and a query's peak memory (executors/memory.py) as the query log
keeps it. The times come from a fake clock that only the fake communicator and the fragments
advance, so the split is checked exactly, without any wall-clock time."""
from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from sqlglot import exp

import executors.runner as runner_module
from executors.memory import RssWatch, lifetime_peak_rss_bytes, watch_memory
from executors.runner import RunStats, Runner
from planner.logical import Filter, Values
from planner.patterns.base import Exchange
from server.query_log import QueryLog

FRAGMENT_S, AGREE_WAIT_S, SIZE_WAIT_S, TRANSFER_S = 2.0, 3.0, 5.0, 7.0


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SlowPeerComm:
    """Rank 0 of 2 whose peer is always late: every agree round waits AGREE_WAIT_S, every exchange's
    size round SIZE_WAIT_S (counted in wait_s, as MpiComm does) and its transfer TRANSFER_S."""

    rank, size = 0, 2

    def __init__(self, clock: FakeClock):
        self.clock = clock
        self.wait_s = 0.0
        self.bytes_sent = self.bytes_spilled = 0

    def agree(self, flag: int) -> list[int]:
        self.clock.advance(AGREE_WAIT_S)
        return [flag, 0]

    def _move(self) -> None:
        self.wait_s += SIZE_WAIT_S
        self.clock.advance(SIZE_WAIT_S + TRANSFER_S)

    def alltoall_tables(self, parts, consume=False):
        out = list(parts)
        self._move()
        return out

    def gather_tables(self, table, root=0):
        self._move()
        return [table, table.schema.empty_table()]


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(runner_module.time, "perf_counter", fake)
    return fake


def timed_runner(clock: FakeClock) -> Runner:
    """A runner on rank 0 of SlowPeerComm whose every fragment takes FRAGMENT_S."""
    runner = Runner(duckdb.connect(), SlowPeerComm(clock), catalog=None, scans=None)
    fetch = runner.fetch

    def timed_fetch(*args, **kwargs):
        clock.advance(FRAGMENT_S)
        return fetch(*args, **kwargs)
    runner.fetch = timed_fetch
    return runner


def test_a_stage_splits_into_compute_waiting_and_communication(clock):
    values = Values(("k",), tuple((exp.Literal.number(i),) for i in range(6)))
    shuffle = Exchange(values, "shuffle", (exp.column("k"),), eid=1)
    plan = Exchange(shuffle, "gather", eid=2)
    runner = timed_runner(clock)

    result = runner.run_plan(plan)
    assert result.num_rows == 6
    inner, outer = runner.stats.stages[1], runner.stats.stages[2]
    for stage in (inner, outer):
        assert stage.compute_s == FRAGMENT_S       # the fragment alone: no nested stage, no waiting
        assert stage.wait_s == AGREE_WAIT_S + SIZE_WAIT_S
        assert stage.comm_s == TRANSFER_S           # the transfer alone: the size round is waiting
    # The gather's fragment read the shuffle's output: the shuffle ended first.
    assert inner.finished_s < outer.finished_s
    assert outer.finished_s == 2 * (FRAGMENT_S + AGREE_WAIT_S + SIZE_WAIT_S + TRANSFER_S)


def test_the_final_fragment_s_times_leave_out_its_stages(clock):
    values = Values(("k",), tuple((exp.Literal.number(i),) for i in range(4)))
    # A replicated result over a shuffle: rank 0's final fragment reads the shuffled rows.
    plan = Filter(Exchange(values, "shuffle", (exp.column("k"),), eid=1), exp.true())
    runner = timed_runner(clock)
    assert runner.run_plan(plan).num_rows == 4
    assert runner.stats.final_wait_s == AGREE_WAIT_S
    assert runner.stats.final_compute_s == FRAGMENT_S
    assert runner.stats.stages[1].compute_s == FRAGMENT_S


def test_peak_memory_covers_what_the_query_held():
    size = 64 * 1024 * 1024
    with RssWatch() as watch:
        held = np.ones(size, dtype=np.uint8)  # ones: every page touched, so resident
    assert watch.peak_bytes >= watch.start_bytes + size * 0.9
    del held


def test_a_short_spike_after_a_higher_one_is_each_query_s_own_peak():
    """Peaks that the lifetime mark hides (an earlier query went higher) and that last too briefly
    for any sampling: two overlapping watches each see the spike inside them, the first also the
    one before the second started; the process's lifetime peak stays the first, highest one."""
    mib = 1024 * 1024
    with RssWatch():
        big = np.ones(256 * mib, dtype=np.uint8)
        del big
    lifetime = lifetime_peak_rss_bytes()
    with RssWatch() as first:
        spike = np.ones(96 * mib, dtype=np.uint8)
        del spike
        with RssWatch() as second:
            spike = np.ones(64 * mib, dtype=np.uint8)
            del spike
    assert first.peak_bytes >= first.start_bytes + 90 * mib
    assert second.peak_bytes >= second.start_bytes + 60 * mib
    assert second.peak_bytes < second.start_bytes + 90 * mib  # not the first's earlier spike
    assert lifetime_peak_rss_bytes() >= lifetime >= first.start_bytes + 250 * mib


def test_the_query_log_keeps_each_rank_s_peak_memory():
    stats = [RunStats(), RunStats(), None]
    with watch_memory(stats[0]):
        pass
    stats[1].peak_rss_bytes = 123 << 20
    log = QueryLog()
    record = log.queued("q", sql="SELECT 1")
    log.running(record)
    log.ended(record, stats, result=[pa.table({"x": [1]})])
    assert record.peak_memory_bytes[0] >= stats[0].start_rss_bytes > 0
    assert record.peak_memory_bytes[1:] == [123 << 20, None]
