"""Several clients at once on the real engine at 2 ranks: queries in flight together on the ranks
(lanes), each with its own right answer; short ones answered while a long one runs; cancels and
timeouts that land at any moment and leave the ranks free.

No test here times anything: "while a long one runs" is checked by the long query still being in
flight (its thread alive, its call unanswered) when the short ones have answered.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

import adbc_driver_manager
import pytest

from tests.server_fixtures import SLOW_SQL, assert_same_answer, copy_data, run_clients, start_server, stop_server

pytestmark = pytest.mark.timeout(600)

TPCH_QUERIES = Path(__file__).resolve().parents[1] / "tpch" / "queries"
# TPC-H queries with shuffles, broadcasts and sorts: concurrent exchanges must not mix.
MIXED = [1, 3, 5, 6, 9, 10, 12, 13, 18, 21]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server-concurrency")
    proc = start_server("engine", copy_data(tmp / "data"), tmp / "server.log")
    yield proc
    stop_server(proc)


def fetch(connection, sql, params=None):
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetch_arrow_table()


class Background:
    """A statement running on a connection of its own, on a thread: its outcome once done."""

    def __init__(self, server, sql: str):
        self.connection = server.connect()
        self.cursor = self.connection.cursor()
        self.sql = sql
        self.result = self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.cursor.execute(self.sql)
            self.result = self.cursor.fetch_arrow_table()
        except Exception as exc:  # noqa: BLE001 - inspected by the test
            self.error = exc

    def cancel_and_wait(self):
        self.cursor.adbc_cancel()
        self.thread.join(120)
        assert not self.thread.is_alive(), "the cancelled query's call never returned"

    def close(self):
        self.cursor.close()
        self.connection.close()


def test_short_queries_answer_while_a_long_one_runs(server):
    long = Background(server, SLOW_SQL)
    try:
        short = server.connect()
        # The long query takes minutes; these answer while it is still in flight.
        for key in range(8):
            sql = f"SELECT count(*) AS n, sum(o_totalprice) AS s FROM orders WHERE o_custkey % 8 = {key}"
            assert_same_answer(fetch(short, sql), sql)
        assert fetch(short, "SELECT count(*) AS n FROM nation").column("n").to_pylist() == [25]
        assert long.thread.is_alive() and long.error is None, "the long query ended early"
        short.close()
        long.cancel_and_wait()
        assert isinstance(long.error, adbc_driver_manager.Error)
        assert long.error.status_code == adbc_driver_manager.AdbcStatusCode.CANCELLED
    finally:
        long.close()


def test_concurrent_tpch_queries_each_match_duckdb(server):
    texts = {n: (TPCH_QUERIES / f"q{n:02d}.sql").read_text() for n in MIXED}
    failures: list[str] = []

    def client(worker: int):
        try:
            connection = server.connect()
            order = MIXED[worker % len(MIXED):] + MIXED[:worker % len(MIXED)]
            for n in order[:5]:
                try:
                    assert_same_answer(fetch(connection, texts[n]), texts[n])
                except AssertionError as exc:
                    failures.append(f"client {worker}, q{n}: {exc}")
            connection.close()
        except Exception as exc:  # noqa: BLE001
            failures.append(f"client {worker}: {exc!r}")

    run_clients(client, 6, 400)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("seed", range(6))
def test_a_cancel_at_a_random_moment_stops_the_query(server, seed):
    """TPC-H q9 (several exchanges) cancelled while planning, between fragments, in an exchange or
    in DuckDB: the call ends CANCELLED (or with the answer, if it won the race), and the ranks
    answer the next query rightly."""
    sql = (TPCH_QUERIES / "q09.sql").read_text()
    delay = random.Random(seed).uniform(0.0, 1.5)
    connection = server.connect()
    try:
        with connection.cursor() as cur:
            timer = threading.Timer(delay, cur.adbc_cancel)
            timer.start()
            try:
                cur.execute(sql)
                assert_same_answer(cur.fetch_arrow_table(), sql)
            except adbc_driver_manager.Error as exc:
                assert exc.status_code == adbc_driver_manager.AdbcStatusCode.CANCELLED, exc
            timer.join()
        check = "SELECT n_regionkey, count(*) AS c FROM nation GROUP BY n_regionkey"
        assert_same_answer(fetch(connection, check), check)
    finally:
        connection.close()


def test_a_timeout_stops_the_first_query_of_a_fresh_server(tmp_path):
    # The timeout also bounds the next query, which waits for the stopped one to leave every rank:
    # 5 s leaves it room on a loaded machine (at 2 s it timed out too under a load of 10).
    timed = start_server("engine", copy_data(tmp_path / "data"), tmp_path / "server.log",
                         args=["--query-timeout", "5"])
    try:
        connection = timed.connect()
        with pytest.raises(adbc_driver_manager.Error) as stopped:
            fetch(connection, SLOW_SQL)
        assert stopped.value.status_code == adbc_driver_manager.AdbcStatusCode.CANCELLED
        assert "timeout of 5 s" in str(stopped.value)
        assert fetch(connection, "SELECT count(*) AS n FROM region").column("n").to_pylist() == [5]
        connection.close()
    finally:
        stop_server(timed)


KILLED_CLIENT = """
import sys, time
import adbc_driver_flightsql.dbapi as flight_sql
conn = flight_sql.connect(sys.argv[1], autocommit=True)
cur = conn.cursor()
cur.execute("SELECT a.l_orderkey, b.l_partkey FROM lineitem a CROSS JOIN lineitem b")
reader = cur.fetch_record_batch()
batch = reader.read_next_batch()
print("got", batch.num_rows, flush=True)
time.sleep(600)
"""


def test_a_client_killed_mid_stream_frees_its_query(tmp_path):
    """With one lane, a streamed query whose client dies must leave the lane, or nothing else runs."""
    import signal
    import subprocess
    import sys

    one_lane = start_server("engine", copy_data(tmp_path / "data"), tmp_path / "server.log", args=["--lanes", "1"])
    try:
        client = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT, one_lane.uri], stdout=subprocess.PIPE, text=True)
        try:
            line = client.stdout.readline()
            assert line.startswith("got "), line
        finally:
            client.send_signal(signal.SIGKILL)
            client.wait(30)
        connection = one_lane.connect()
        for _ in range(3):  # and again: each query leaves the lane as it found it
            assert fetch(connection, "SELECT count(*) AS n FROM nation").column("n").to_pylist() == [25]
        connection.close()
    finally:
        stop_server(one_lane)


def test_a_stream_closed_after_its_first_batch_frees_its_query(tmp_path):
    """A client that closes its cursor after one batch (not killed) frees the lane too."""
    one_lane = start_server("engine", copy_data(tmp_path / "data"), tmp_path / "server.log", args=["--lanes", "1"])
    try:
        connection = one_lane.connect()
        for _ in range(3):
            with connection.cursor() as cur:
                cur.execute("SELECT a.l_orderkey, b.l_partkey FROM lineitem a CROSS JOIN lineitem b")
                assert cur.fetch_record_batch().read_next_batch().num_rows > 0
            assert fetch(connection, "SELECT count(*) AS n FROM region").column("n").to_pylist() == [5]
        connection.close()
    finally:
        stop_server(one_lane)
