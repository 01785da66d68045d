"""Rank 0's admission of queries to lanes (engine/lanes.py LanePool): which kind of query may run
beside which, and in what order waiting queries are let in. Real threads wait on the pool; each
holds its lane until the test releases it."""
from __future__ import annotations

import threading
import time

import pytest

from engine.errors import CancelledError
from engine.lanes import LanePool, QueryToken, query_kind


class _Lane:
    def __init__(self, index: int):
        self.index = index


class _Query(threading.Thread):
    """A query that takes a lane of `kind` from `pool`, records when it got it, and holds it
    until `release` is set."""

    def __init__(self, pool: LanePool, kind: str, admitted: list, token: QueryToken | None = None):
        super().__init__(daemon=True)
        self.pool, self.kind, self.admitted, self.token = pool, kind, admitted, token
        self.got = threading.Event()
        self.release = threading.Event()
        self.error: BaseException | None = None

    def run(self):
        try:
            with self.pool.lane(self.kind, self.token):
                self.admitted.append(self)
                self.got.set()
                self.release.wait(30)
        except BaseException as e:  # noqa: BLE001 - the test reads it
            self.error = e
            self.got.set()


def _start(pool, kind, admitted, token=None) -> _Query:
    """Starts a query; returns once it holds a lane or waits for one."""
    before = pool.waiting()
    q = _Query(pool, kind, admitted, token)
    q.start()
    for _ in range(30_000):  # a bound on the polls, not a speed: the thread only has to get there
        if q.got.is_set() or pool.waiting() != before:
            return q
        time.sleep(0.001)
    pytest.fail("the query neither got a lane nor waits for one")


def _holding(pool, kind, admitted) -> _Query:
    """A query that holds a lane (the test releases it)."""
    q = _start(pool, kind, admitted)
    assert q.got.wait(10), f"a {kind} query got no lane"
    return q


def _settle():
    """Time for a waiting thread to be let in if it may (the pool wakes waiters at once)."""
    time.sleep(0.3)


def test_query_kinds_follow_the_planned_cost():
    assert query_kind(0.002) == "light"
    assert query_kind(0.1) == "small"
    assert query_kind(0.4) == "big"


def test_two_working_queries_at_most_where_one_big_one_may_run():
    pool = LanePool([_Lane(i) for i in range(4)], big_lanes=1)
    admitted: list = []
    big = _holding(pool, "big", admitted)
    small = _holding(pool, "small", admitted)
    # A second small one waits: two queries that work already share the cores.
    late_small = _start(pool, "small", admitted)
    _settle()
    assert not late_small.got.is_set()
    # A light one does not wait: a lane is free, and it takes little from the others.
    light = _start(pool, "light", admitted)
    assert light.got.wait(10)
    small.release.set()
    assert late_small.got.wait(10)
    for q in (big, late_small, light):
        q.release.set()
        q.join(10)
    assert [q.error for q in admitted] == [None] * 4


def test_a_waiting_big_query_does_not_hold_back_a_small_one_behind_it():
    pool = LanePool([_Lane(i) for i in range(4)], big_lanes=1)
    admitted: list = []
    big = _holding(pool, "big", admitted)
    second_big = _start(pool, "big", admitted)
    small = _holding(pool, "small", admitted)
    assert not second_big.got.is_set()
    big.release.set()
    small.release.set()
    assert second_big.got.wait(10)
    second_big.release.set()
    for q in (big, second_big, small):
        q.join(10)


def test_waiting_queries_of_one_kind_are_let_in_in_the_order_they_came():
    pool = LanePool([_Lane(i) for i in range(2)], big_lanes=1)
    admitted: list = []
    first = _holding(pool, "small", admitted)
    second = _holding(pool, "small", admitted)
    waiting = []
    for _ in range(5):
        waiting.append(_start(pool, "small", admitted))  # each is waiting before the next comes
    assert not any(q.got.is_set() for q in waiting)
    first.release.set()
    second.release.set()
    for q in waiting:
        assert q.got.wait(10)
        q.release.set()
    for q in [first, second, *waiting]:
        q.join(10)
    assert admitted[2:] == waiting


def test_a_cancelled_query_leaves_the_line_and_the_next_one_gets_its_turn():
    pool = LanePool([_Lane(i) for i in range(2)], big_lanes=1)
    admitted: list = []
    holders = [_holding(pool, "small", admitted) for _ in range(2)]
    token = QueryToken("test")
    cancelled = _start(pool, "small", admitted, token)
    after = _start(pool, "small", admitted)
    token.cancel("the client went away")
    cancelled.join(10)
    assert isinstance(cancelled.error, CancelledError)
    holders[0].release.set()
    assert after.got.wait(10)
    for q in [holders[1], after]:
        q.release.set()
        q.join(10)


@pytest.mark.parametrize("lanes", [1, 2])
def test_a_pool_of_few_lanes_still_runs_every_kind(lanes):
    pool = LanePool([_Lane(i) for i in range(lanes)], big_lanes=1)
    admitted: list = []
    for kind in ("big", "small", "light"):
        q = _start(pool, kind, admitted)
        assert q.got.wait(10), kind
        q.release.set()
        q.join(10)
    assert [q.kind for q in admitted] == ["big", "small", "light"]


def test_the_thread_holding_every_lane_runs_its_own_steps_in_its_lane_and_others_wait():
    """A write that computes a recursive query first runs that query's statements while it holds
    every lane (engine/recursive.py run): they take its lane at once instead of waiting for
    the write to end; another thread's query still waits until the write has released the lanes."""
    pool = LanePool([_Lane(0), _Lane(1), _Lane(2)])
    admitted = []
    with pool.exclusive() as held:
        with pool.lane("big") as step, pool.exclusive() as inner_write:
            assert step is held and inner_write is held
        other = _start(pool, "light", admitted)
        assert not other.got.is_set() and pool.waiting() == 1
    assert other.got.wait(10) and other.error is None
    other.release.set()
    other.join(10)


def test_a_query_that_came_during_a_write_runs_before_the_next_write():
    """Writes in a row (a recursive query's steps: one per iteration) take every lane in turn with
    the queries: one that came while a write ran is admitted before a write asked for after it (the
    next write used to take the lanes first, again and again)."""
    pool = LanePool([_Lane(0), _Lane(1)])
    admitted, order = [], []
    first = threading.Event()

    def writes():
        with pool.exclusive():
            first.set()
            while pool.waiting() == 0:  # until the query waits behind this write
                time.sleep(0.001)
        with pool.exclusive():
            order.append("second write")

    writer = threading.Thread(target=writes, daemon=True)
    writer.start()
    assert first.wait(10)
    query = _start(pool, "light", admitted)
    assert query.got.wait(10) and query.error is None
    order.append("query")
    query.release.set()
    writer.join(10)
    assert order == ["query", "second write"]
