"""`flocksql serve` keeps the service up when the flock breaks: a killed rank (or MPICH's proxy)
ends the flock, in-flight queries fail at once instead of hanging, and the launcher starts the
flock again on the same port, waiting longer after each quick failure (real processes, real ADBC
clients; bounded waits, no timing asserted)."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import adbc_driver_manager
import pytest

from tests.server_fixtures import SLOW_SQL, copy_data, start_server, stop_server
from tests.test_launch import _cmdline, flock_processes, wait_for_ranks

pytestmark = pytest.mark.timeout(480)

# Attempts and time a client gives a restarting server before the test fails.
RETRIES, RETRY_WITHIN_S = 300, 180.0


def count_nations_with_retries(server) -> tuple[int, int]:
    """(answer, failed attempts): a fresh connection per attempt, until one answers."""
    deadline, failures = time.monotonic() + RETRY_WITHIN_S, []
    for attempt in range(RETRIES):
        try:
            with server.connect() as connection, connection.cursor() as cur:
                cur.execute("SELECT count(*) AS n FROM nation")
                return cur.fetchone()[0], attempt
        except adbc_driver_manager.Error as exc:
            failures.append(exc)  # refused while the flock restarts, or lost with the old one
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    pytest.fail(f"no answer after {len(failures)} attempts; last: {failures[-1]}\n{server.log()}")


def test_killed_processes_are_replaced_and_the_server_answers_again(tmp_path):
    server = start_server("engine", copy_data(tmp_path / "data"), tmp_path / "server.log", ranks=2)
    try:
        assert count_nations_with_retries(server) == (25, 0)
        seen: set[int] = set()
        errors: list[BaseException] = []

        def run_slow():
            try:
                with server.connect() as connection, connection.cursor() as cur:
                    cur.execute(SLOW_SQL)
                    cur.fetchall()
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        victims = ["rank1", "rank0", "proxy"]
        for n, victim in enumerate(victims, start=1):
            processes = wait_for_ranks(server, 2, exclude=seen)
            ranks = {processes["rank0"], processes["rank1"]}
            seen |= ranks
            in_flight = None
            if victim == "rank1":  # a query running on the flock when it breaks
                in_flight = threading.Thread(target=run_slow)
                in_flight.start()
                time.sleep(2.0)
            os.kill(processes[victim], signal.SIGKILL)
            if in_flight is not None:
                in_flight.join(60)
                assert not in_flight.is_alive(), "the in-flight query hung"
                assert errors and isinstance(errors[0], adbc_driver_manager.Error), errors
                assert "deadline" not in str(errors[0]).lower(), errors[0]  # failed, not timed out
            assert count_nations_with_retries(server)[0] == 25
            # The broken flock's ranks are gone, not merely replaced.
            assert not [pid for pid in ranks if _cmdline(pid)], server.log()
            assert len(re.findall(r"restarting the flock in", server.log())) == n, server.log()
        log = server.log()
        delays = re.findall(r"flocksql supervisor: (.*?); restarting the flock in (\d+) s", log)
        assert [d for _, d in delays] == ["1", "2", "4"], log
        assert re.match(r"rank 1 \(pid \d+\) was killed by signal 9", delays[0][0]), log
        assert re.match(r"rank 0 \(pid \d+\) was killed by signal 9", delays[1][0]), log
        assert "BAD TERMINATION" not in log  # MPICH's banner becomes the supervisor's one line
        assert "lost a process (mpiexec exited with status" in delays[2][0], log
        assert "assert (!closed)" not in log  # and so does hydra's trace of a lost proxy
        assert server.uri in log.split("restarting")[-1]  # the last flock listens where the first did
    finally:
        status = stop_server(server, signal.SIGTERM)  # fails the test if any process survives
    assert status == 0, server.log()


def test_no_restart_ends_the_service_with_the_flock(tmp_path):
    server = start_server("engine", copy_data(tmp_path / "data"), tmp_path / "server.log", ranks=2,
                          args=["--no-restart"])
    try:
        processes = wait_for_ranks(server, 2)
        os.kill(processes["rank1"], signal.SIGKILL)
        assert server.proc.wait(120) != 0
        assert re.search(r"rank 1 \(pid \d+\) was killed by signal 9; the flock ended", server.log()), server.log()
        assert "restarting" not in server.log()
    finally:
        stop_server(server)
    assert flock_processes(server) == {"launcher": server.proc.pid}
