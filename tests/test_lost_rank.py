"""A rank that dies mid-query: the clients in flight hear which rank was lost and that the flock
restarts (Flight UNAVAILABLE), the flock comes back on the same port and answers correctly, and no
process of the old flock remains (real processes, real ADBC clients; bounded waits, no timing
asserted: the figures are in the README)."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from contextlib import contextmanager

import adbc_driver_manager
import pytest

from tests.server_fixtures import SLOW_SQL, assert_same_answer, copy_data, start_server, stop_server
from tests.test_launch import _cmdline, wait_for_ranks
from tests.test_server_supervision import count_nations_with_retries

pytestmark = pytest.mark.timeout(480)

RANKS = 3
# How long the in-flight clients may take to get their error (a loaded machine; nothing asserts speed).
ANSWERED_WITHIN_S = 60.0
# A result without end: the client reads it batch after batch while the rank is killed.
ENDLESS_SQL = "SELECT a.l_orderkey * b.l_orderkey AS k FROM lineitem a CROSS JOIN lineitem b"
CHECK_SQL = ("SELECT l_returnflag, l_linestatus, sum(l_quantity) AS qty, count(*) AS n FROM lineitem "
             "GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus")


class InFlight:
    """Client calls running on threads of their own, each ending with an error (kept) or a result."""

    def __init__(self, server):
        self.server = server
        self.errors: dict[str, BaseException | None] = {}
        self.threads: list[threading.Thread] = []
        self.reading = threading.Event()

    def _run(self, name, call):
        try:
            with self.server.connect() as connection, connection.cursor() as cur:
                call(cur)
            self.errors[name] = None
        except BaseException as exc:  # noqa: BLE001
            self.errors[name] = exc

    def start(self, name, call):
        thread = threading.Thread(target=self._run, args=(name, call))
        thread.start()
        self.threads.append(thread)

    def read_endless(self, cur):
        cur.execute(ENDLESS_SQL)
        with cur.fetch_record_batch() as reader:  # closed before the cursor
            reader.read_next_batch()
            self.reading.set()
            while True:
                reader.read_next_batch()

    def join(self):
        for thread in self.threads:
            thread.join(ANSWERED_WITHIN_S)
        assert not any(t.is_alive() for t in self.threads), f"a client hung: {self.errors}"


def assert_gone(processes: dict[str, int]) -> None:
    """Every process of an old flock (by role, as wait_for_ranks gives them) but the launcher is gone."""
    def alive():
        return [pid for role, pid in processes.items() if role != "launcher" and _cmdline(pid)]
    deadline = time.monotonic() + ANSWERED_WITHIN_S
    while alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(), {pid: _cmdline(pid) for pid in alive()}


@contextmanager
def flock_of_three(tmp_path):
    """(server, its processes by role) of a `flocksql serve --ranks 3` that answers; on leaving, the
    server is stopped, which fails the test if it does not stop cleanly or leaves a process behind."""
    server = start_server("engine", copy_data(tmp_path / "data"), tmp_path / "server.log", ranks=RANKS)
    try:
        assert count_nations_with_retries(server) == (25, 0)
        yield server, wait_for_ranks(server, RANKS)
    finally:
        status = stop_server(server, signal.SIGTERM)
    assert status == 0, server.log()


def test_a_killed_worker_is_named_to_the_clients_and_the_flock_comes_back(tmp_path):
    with flock_of_three(tmp_path) as (server, processes):
        clients = InFlight(server)
        clients.start("stream", clients.read_endless)  # DoGet, batches arriving
        assert clients.reading.wait(ANSWERED_WITHIN_S), clients.errors
        # Big queries take turns on a small machine (engine/lanes.py): these two wait for a lane.
        clients.start("query", lambda cur: (cur.execute(SLOW_SQL), cur.fetchall()))  # DoGet
        clients.start("statement", lambda cur: (cur.execute("EXPLAIN ANALYZE " + SLOW_SQL), cur.fetchall()))
        time.sleep(1.0)
        os.kill(processes["rank2"], signal.SIGKILL)
        clients.join()
        for name, error in clients.errors.items():
            # (a record batch reader's error comes as pyarrow's OSError)
            assert isinstance(error, (adbc_driver_manager.Error, OSError)), (name, error)
            text = str(error)
            assert "rank 2 was lost (killed by signal 9); the flock is restarting" in text, (name, text)
            assert "Unavailable" in text, (name, text)  # Flight UNAVAILABLE: clients may retry

        count_nations_with_retries(server)
        with server.connect() as connection, connection.cursor() as cur:
            cur.execute(CHECK_SQL)
            assert_same_answer(cur.fetch_arrow_table(), CHECK_SQL)
        assert_gone(processes)
        log = server.log()
        assert re.search(rf"rank 2 \(pid {processes['rank2']}\) was killed by signal 9; restarting the flock", log), log
        assert "rank 2 (pid" in log and "answering the queries in flight" in log, log
        assert "Traceback" not in log, log
        assert server.uri in log.split("restarting")[-1]  # the new flock listens where the old one did


def test_a_killed_rank_0_is_replaced_and_leaves_nothing_behind(tmp_path):
    with flock_of_three(tmp_path) as (server, processes):
        clients = InFlight(server)
        clients.start("query", lambda cur: (cur.execute(SLOW_SQL), cur.fetchall()))
        time.sleep(2.0)
        os.kill(processes["rank0"], signal.SIGKILL)
        clients.join()
        assert isinstance(clients.errors["query"], adbc_driver_manager.Error), clients.errors  # failed, not hung
        assert count_nations_with_retries(server)[0] == 25
        assert_gone(processes)
        log = server.log()
        assert re.search(rf"rank 0 \(pid {processes['rank0']}\) was killed by signal 9; restarting the flock", log), log
        assert "rank 1: rank 0" in log and "was lost; ending this rank" in log, log
