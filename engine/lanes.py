"""Lanes: several queries in flight on the flock at once.

A lane is what one running query owns on a rank: its own MPI communicator (a Dup of COMM_WORLD
made when the flock starts, so two queries' exchanges never see each other's messages) and its own
DuckDB connections (cursors of the rank's DuckDB instances: they share the buffer pool and thread
pool but keep their registered Arrow views apart). Every rank has the same lanes; rank 0 decides
which lane runs a query and tells the other ranks, whose lane threads then run it in step.

Rank 0 admits queries with a `LanePool`, in the order they came, by the kind their planned cost
makes them (`query_kind`): a query waits for a free lane; big ones take at most `big_lanes` lanes
(never all: a small query never waits behind big ones, and big queries do not fight over the
cores: each already uses all of its rank's threads); big and small ones together take at most one
lane more than that: more only share the same cores among more queries, each slower by what they
take from the others' caches (8 clients of TPC-H at 2 ranks on 2 cores finished them in 31-32 s
with four at once, 27 s with two: tpch/service_bench.py --concurrency); light ones (look-ups of a
few milliseconds) take any free lane, so they are answered while others work. Statements that
change the catalog (CREATE TABLE AS, DROP, views) wait until no query runs and hold every lane.

A `QueryToken` is one query's cancellation: whoever holds it (a server call, a timeout) cancels
it, whatever the query is doing then: waiting for a lane, planning, running on the ranks.
"""
from __future__ import annotations

import itertools
import threading
import time
from contextlib import contextmanager
from typing import Callable

from engine.errors import CancelledError

# How often the ranks repeat a cancelled query's interrupt: DuckDB drops an interrupt that arrives
# between two fragments (no query running then), so the interrupt is sent again until the query ends.
REINTERRUPT_S = 0.02
# A query whose planned cost (planner/cost.py, seconds) is over BIG_QUERY_COST_S is big, one under
# LIGHT_QUERY_COST_S light (a look-up: a count of a dimension table, a constant), others small.
BIG_QUERY_COST_S, LIGHT_QUERY_COST_S = 0.25, 0.01
QUERY_KINDS = ("light", "small", "big")


def query_kind(cost_s: float) -> str:
    return "big" if cost_s > BIG_QUERY_COST_S else "light" if cost_s < LIGHT_QUERY_COST_S else "small"


class QueryToken:
    """Cancellation of one query, thread-safe. `on_cancel` hooks run once, on the cancelling thread."""

    def __init__(self, label: str = ""):
        self.label = label
        self.reason: str | None = None
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._hooks: list[Callable[[], None]] = []
        self.stats = None  # the run's statistics (per rank), once it ran

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self, reason: str = "cancelled") -> None:
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            hooks = list(self._hooks)
        for hook in hooks:
            hook()

    def check(self) -> None:
        if self._event.is_set():
            raise CancelledError(f"query cancelled: {self.reason}")

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    @contextmanager
    def hook(self, fn: Callable[[], None]):
        """Runs `fn` if the token is cancelled while inside the block (at once if it already is)."""
        with self._lock:
            already = self._event.is_set()
            if not already:
                self._hooks.append(fn)
        if already:
            fn()
        try:
            yield
        finally:
            with self._lock:
                if fn in self._hooks:
                    self._hooks.remove(fn)


class Lane:
    """One lane on one rank: its communicator, DuckDB connections and scan views, and which query
    runs in it now (`qid`) and whether that query is cancelled."""

    def __init__(self, index: int, comm, con, parquet_con, ordered_con, scans):
        self.index = index
        self.comm = comm
        self.con, self.parquet_con, self.ordered_con = con, parquet_con, ordered_con
        self.scans = scans
        self.qid: int | None = None
        self.cancelled = threading.Event()
        self._lock = threading.Lock()

    def connections(self) -> list:
        return list({id(c): c for c in (self.con, self.parquet_con, self.ordered_con)}.values())

    def start(self, qid: int, cancelled_before: bool) -> None:
        with self._lock:
            self.qid = qid
            if cancelled_before:
                self.cancelled.set()
            else:
                self.cancelled.clear()

    def finish(self) -> None:
        with self._lock:
            self.qid = None
            self.cancelled.clear()

    def cancel(self, qid: int) -> bool:
        """Cancel query `qid` if it runs in this lane: flag it, interrupt DuckDB. False if not here."""
        with self._lock:
            if self.qid != qid:
                return False
            self.cancelled.set()
            self.interrupt()
        return True

    def interrupt(self) -> None:
        for con in self.connections():
            try:
                con.interrupt()
            except Exception:  # noqa: BLE001 - nothing running, or closed
                pass

    def keep_interrupting(self, qid: int) -> None:
        """Repeat the interrupt on a thread of its own until query `qid` has left the lane."""
        def loop():
            while True:
                # Under the lock: an interrupt never reaches the lane's next query.
                with self._lock:
                    if self.qid != qid:
                        return
                    self.interrupt()
                time.sleep(REINTERRUPT_S)
        threading.Thread(target=loop, name=f"flocksql-interrupt-{self.index}", daemon=True).start()

    def close(self) -> None:
        for con in self.connections():
            try:
                con.close()
            except Exception:  # noqa: BLE001
                pass


class LanePool:
    """Rank 0's admission of queries to lanes (see the module docstring). Queries are admitted in
    the order they came among those that may run now: a big query waiting for a big lane does not
    hold back a small one behind it, and no query is passed by a later one of its own kind."""

    def __init__(self, lanes: list[Lane], big_lanes: int | None = None):
        self._free = list(lanes)
        self._count = len(lanes)
        self._big_limit = max(1, min(big_lanes or len(lanes), len(lanes) - 1))
        # Queries that are not light at once: the big ones and one small one beside them.
        self._working_limit = min(len(lanes), self._big_limit + 1)
        self._running = {kind: 0 for kind in QUERY_KINDS}
        self._exclusive = False
        self._holder: int | None = None  # the thread that holds every lane (exclusive), if one does
        self._cond = threading.Condition()
        self._tickets = itertools.count()
        self._waiting: list[tuple[int, str]] = []  # (ticket, kind) of each waiting query, in order

    def _wait(self, token: QueryToken | None, admissible: Callable[[], bool]) -> None:
        while not admissible():
            if token is not None:
                token.check()
            self._cond.wait(0.05)
        if token is not None:
            token.check()

    def waiting(self) -> int:
        """Queries waiting for a lane now."""
        with self._cond:
            return len(self._waiting)

    def _may_run(self, kind: str) -> bool:
        if kind == "exclusive":  # it then waits for the running queries to end
            return not self._exclusive
        if not self._free or self._exclusive:
            return False
        if kind == "light":
            return True
        working = self._running["small"] + self._running["big"]
        return working < self._working_limit and (kind != "big" or self._running["big"] < self._big_limit)

    def _turn(self, me: tuple[int, str]) -> bool:
        """Whether `me` is the first waiting query that may run now."""
        return next((w for w in self._waiting if self._may_run(w[1])), None) is me

    @contextmanager
    def lane(self, kind: str, token: QueryToken | None = None):
        """A lane for a query of `kind` (QUERY_KINDS), once it may run."""
        if self._holder == threading.get_ident():  # a step of the statement that holds every lane
            yield self._free[0]
            return
        with self._cond:
            me = (next(self._tickets), kind)
            self._waiting.append(me)
            try:
                self._wait(token, lambda: self._turn(me))
            finally:
                self._waiting.remove(me)
                self._cond.notify_all()  # whoever came after may run now, or no longer waits for us
            lane = self._free.pop(0)
            self._running[kind] += 1
        try:
            yield lane
        finally:
            with self._cond:
                self._free.append(lane)
                self._free.sort(key=lambda x: x.index)
                self._running[kind] -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self, token: QueryToken | None = None):
        """Every lane, once no query runs: for statements that change what queries read. The
        holding thread's own statements inside (the steps of a write that computes a recursive
        query first: engine/recursive.py) run in its lane at once."""
        if self._holder == threading.get_ident():
            yield self._free[0]
            return
        with self._cond:
            # In turn with the queries: a statement that runs many in a row (the steps of a
            # recursive query) does not shut out those that came while one of them ran.
            me = (next(self._tickets), "exclusive")
            self._waiting.append(me)
            try:
                self._wait(token, lambda: self._turn(me))
            finally:
                self._waiting.remove(me)
                self._cond.notify_all()
            self._exclusive = True  # no new query is admitted from here on
            try:
                self._wait(token, lambda: len(self._free) == self._count)
            except BaseException:
                self._exclusive = False
                self._cond.notify_all()
                raise
            lane = self._free[0]
            self._holder = threading.get_ident()
        try:
            yield lane
        finally:
            with self._cond:
                self._holder = None
                self._exclusive = False
                self._cond.notify_all()
