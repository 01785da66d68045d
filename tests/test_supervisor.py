"""The supervisor's restart policy on a stand-in for mpiexec (a shell command that fails N times):
backoff doubling per quick failure, final statuses, the pre-start check. No MPI, a few seconds."""

from __future__ import annotations

import os
import re
import sys

import pytest

from engine import supervisor

pytestmark = pytest.mark.timeout(120)


def failing_command(counter, fails: int, status: int) -> list[str]:
    """Exits `status` the first `fails` times it runs, then 0."""
    script = (f"import pathlib, sys; p = pathlib.Path({str(counter)!r}); n = int(p.read_text()) if p.exists() else 0; "
              f"p.write_text(str(n + 1)); sys.exit({status} if n < {fails} else 0)")
    return [sys.executable, "-c", script]


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(supervisor, "RESTART_BACKOFF_S", 0.05)
    monkeypatch.setattr(supervisor, "RESTART_BACKOFF_MAX_S", 0.2)


def test_restarts_back_off_and_stop_at_success(tmp_path, capfd):
    status = supervisor.supervise(failing_command(tmp_path / "n", 4, 9), dict(os.environ), restart=True)
    assert status == 0
    assert (tmp_path / "n").read_text() == "5"
    err = capfd.readouterr().err
    delays = re.findall(r"mpiexec exited with status 9; restarting the flock in ([\d.]+) s", err)
    assert delays == ["0.05", "0.1", "0.2", "0.2"], err  # doubling, capped


@pytest.mark.parametrize("status", [1, 2])
def test_no_restart_after_a_final_status(status, tmp_path, capfd):
    assert supervisor.supervise(failing_command(tmp_path / "n", 1, status), dict(os.environ), restart=True) == status
    assert (tmp_path / "n").read_text() == "1"
    assert "restarting" not in capfd.readouterr().err


def test_no_restart_without_restart(tmp_path, capfd):
    assert supervisor.supervise(failing_command(tmp_path / "n", 1, 9), dict(os.environ), restart=False) == 9
    assert "mpiexec exited with status 9; the flock ended" in capfd.readouterr().err


def test_a_failing_precheck_waits_on_restart_and_refuses_the_first_start(tmp_path, capfd):
    assert supervisor.supervise(failing_command(tmp_path / "n", 0, 9), dict(os.environ), restart=True,
                                precheck=lambda: "port 1 in use") == 1
    assert not (tmp_path / "n").exists()  # never started
    checks = iter([None, "port 1 in use", None])
    assert supervisor.supervise(failing_command(tmp_path / "m", 1, 9), dict(os.environ), restart=True,
                                precheck=lambda: next(checks)) == 0
    err = capfd.readouterr().err
    assert re.search(r"port 1 in use; restarting the flock in 0.1 s \(failure 2 in a row\)", err), err
    assert (tmp_path / "m").read_text() == "2"


def test_a_job_that_outlives_one_of_its_ranks_is_killed_and_the_rank_named(tmp_path, capfd, monkeypatch):
    # A stand-in for mpiexec whose rank 1 ended (its keeper's record, engine/keeper.py) while the
    # job goes on: after the grace the launcher kills it and names the rank.
    monkeypatch.setattr(supervisor, "LOST_RANK_GRACE_S", 0.5)
    script = ("import json, os, pathlib, time; d = pathlib.Path(os.environ['FLOCKSQL_RUN_DIR']); "
              "(d / 'rank-1.end').write_text(json.dumps({'rank': 1, 'pid': 4242, 'how': 'was killed by signal 9', "
              "'status': 137, 'time': time.time()})); time.sleep(3600)")
    # (killed, not waited for: the module's timeout is far below the stand-in's sleep)
    status = supervisor.supervise([sys.executable, "-c", script], dict(os.environ), restart=False)
    assert status == 128 + 9
    err = capfd.readouterr().err
    assert "the flock did not end within 0.5 s of its first rank's end: killing it" in err, err
    assert "rank 1 (pid 4242) was killed by signal 9; the flock ended" in err, err


def test_a_burst_of_stop_signals_stops_it():
    """Ctrl-C pressed twice, or SIGTERM and SIGINT together (`timeout` passing its own on): a second
    signal may come while the handler of the first runs. The handler took a lock (threading.Event.set)
    and the second waited for the first, in the same thread: the supervisor hung for good."""
    import signal
    import subprocess
    import time
    script = ("import os, sys; from engine import supervisor; print('ready', flush=True); "
              "status = supervisor.supervise([sys.executable, '-c', 'import time; time.sleep(120)'], "
              "dict(os.environ), restart=True); print('stopped', status, flush=True)")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=os.path.dirname(os.path.dirname(__file__)),
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)  # the stand-in job has started
        for i in range(2000):
            if proc.poll() is not None:
                break
            os.kill(proc.pid, signal.SIGINT if i % 2 else signal.SIGTERM)
        proc.wait(60)  # (TimeoutExpired: it hung)
        # A signal of the burst may land after supervise() gave the handlers back and end the
        # process then; if supervise() returned before, it returned 0: stopped as asked.
        assert proc.stdout.read().strip() in ("", "stopped 0")
    finally:
        proc.kill()
