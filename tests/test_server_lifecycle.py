"""The query timeout, and stopping the server with SIGTERM/SIGINT (no process may survive)."""

from __future__ import annotations

import signal
import threading
import time

import adbc_driver_manager
import pytest

from tests.server_fixtures import BACKENDS, SLOW_SQL, copy_data, start_server, stop_server

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def count_nations(connection) -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM nation")
        return cur.fetchone()[0]


def test_query_timeout_cancels_and_frees_the_ranks(backend, tmp_path):
    server = start_server(backend, copy_data(tmp_path / "data"), tmp_path / "server.log",
                          args=["--query-timeout", "2"])
    try:
        connection = server.connect()
        started = time.monotonic()
        with pytest.raises(adbc_driver_manager.Error) as timed_out:
            with connection.cursor() as cur:
                cur.execute(SLOW_SQL)
                cur.fetchall()
        elapsed = time.monotonic() - started
        assert 1.5 < elapsed < 30, elapsed
        assert timed_out.value.status_code == adbc_driver_manager.AdbcStatusCode.CANCELLED
        assert "timeout" in str(timed_out.value)
        started = time.monotonic()
        assert count_nations(connection) == 25  # short queries still run under the timeout
        assert time.monotonic() - started < 10
        connection.close()
    finally:
        stop_server(server)


def test_sigterm_stops_an_idle_server(backend, tmp_path):
    server = start_server(backend, copy_data(tmp_path / "data"), tmp_path / "server.log")
    connection = server.connect()
    assert count_nations(connection) == 25
    connection.close()
    status = stop_server(server, signal.SIGTERM)  # fails the test if any process of it survives
    assert status == 0, server.log()
    assert "shutting down" in server.log()


def test_sigint_during_a_query_stops_the_server_promptly(backend, tmp_path):
    server = start_server(backend, copy_data(tmp_path / "data"), tmp_path / "server.log")
    errors: list[BaseException] = []

    def run_slow():
        connection = server.connect()
        try:
            with connection.cursor() as cur:
                cur.execute(SLOW_SQL)
                cur.fetchall()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            try:
                connection.close()
            except adbc_driver_manager.Error:
                pass

    client = threading.Thread(target=run_slow)
    client.start()
    time.sleep(2.0)
    started = time.monotonic()
    status = stop_server(server, signal.SIGINT)
    assert time.monotonic() - started < 15
    assert status == 0, server.log()
    client.join(30)
    assert not client.is_alive()
    assert errors, "the slow query cannot have succeeded"
