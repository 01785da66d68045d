"""Launching a flock: from any working directory, failing in one line on a taken port, leaving no
process behind whichever process is killed, and cleaning what dead flocks left (real processes)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.leftovers import SHM_DIR, SHM_PREFIX, TEMP_MARK, temp_tag
from tests.server_fixtures import DATA, MARKER_ENV, REPO, copy_data, marked_processes, start_server, stop_server

pytestmark = pytest.mark.timeout(300)

FLOCKSQL = Path(sys.executable).with_name("flocksql")
# How long the processes of a killed flock may take to go (a loaded machine; nothing asserts speed).
GONE_WITHIN_S = 60.0


def flocksql(args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([str(FLOCKSQL), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_cli_runs_from_a_folder_that_shadows_our_packages(tmp_path):
    for name in ("tpch", "engine", "server", "planner", "executors"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('the working directory shadowed us')\n")
    (tmp_path / "cli.py").write_text("raise ImportError('the working directory shadowed us')\n")
    done = flocksql(["query", "--data", str(DATA), "--ranks", "2", "--format", "csv",
                     "SELECT count(*) AS n FROM nation"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ['"n"', "25"]


@pytest.mark.parametrize("ranks", [1, 2])
def test_serve_on_a_port_in_use_fails_in_one_line(ranks, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = flocksql(["serve", "--data", str(DATA), "--ranks", str(ranks), "--port", str(port)], cwd=tmp_path)
    assert done.returncode != 0
    assert done.stderr.strip() == f"Error: port {port} in use", done.stderr
    assert done.stdout == ""


# --- no orphans ----------------------------------------------------------------------------------

def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _environ(pid: int) -> dict[str, str]:
    try:
        items = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in items if "=" in item)


def _environ_lines(pid: int) -> list[str]:
    return [f"{k}={v}" for k, v in _environ(pid).items()]


def listeners(port: int) -> set[int]:
    """Pids of the processes holding a socket that listens on `port` (IPv4 or IPv6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    holders = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and inodes:
            try:
                if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                    holders.add(int(proc.name))
            except OSError:
                continue
    return holders


def flock_processes(server) -> dict[str, int]:
    """The server's processes by role: launcher, mpiexec, proxy, keeper0, rank0, keeper1, rank1 …"""
    found = {"launcher": server.proc.pid}
    for pid in marked_processes(server.marker):
        argv = _cmdline(pid)
        if not argv or pid == server.proc.pid:
            continue
        program = Path(argv[0]).name
        if program.startswith("mpiexec"):
            found["mpiexec"] = pid
        elif program == "hydra_pmi_proxy":
            found["proxy"] = pid
        elif "PMI_RANK" in _environ(pid):  # a rank, or its keeper (engine/keeper.py)
            role = "keeper" if "engine.keeper" in argv else "rank"
            found[f"{role}{_environ(pid)['PMI_RANK']}"] = pid
    return found


def wait_for_ranks(server, ranks: int, exclude: set[int] = frozenset(), within_s: float = 120.0) -> dict[str, int]:
    """The server's processes once its `ranks` ranks (none of them in `exclude`) are all there."""
    deadline = time.monotonic() + within_s
    while True:
        found = flock_processes(server)
        pids = {found.get(f"rank{r}") for r in range(ranks)}
        if None not in pids and not pids & exclude:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"the ranks did not appear: {found}\n{server.log()}")
        time.sleep(0.2)


def port_of(server) -> int:
    return int(server.uri.rsplit(":", 1)[1])


def wait_until_gone(server) -> list[int]:
    deadline = time.monotonic() + GONE_WITHIN_S
    while marked_processes(server.marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    return marked_processes(server.marker)


@pytest.mark.parametrize("victim", ["launcher", "mpiexec", "proxy", "keeper1", "rank0", "rank1"])
def test_kill_9_of_any_process_leaves_none_behind(victim, tmp_path):
    server = start_server("engine", copy_data(tmp_path / "data"), tmp_path / "server.log", ranks=2,
                          args=["--no-restart"])
    try:
        connection = server.connect()
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM nation")
            assert cur.fetchone()[0] == 25
        connection.close()
        processes = wait_for_ranks(server, 2)
        assert {"mpiexec", "proxy"} <= processes.keys(), processes
        assert processes["rank0"] in listeners(port_of(server))
        os.kill(processes[victim], signal.SIGKILL)
        survivors = wait_until_gone(server)
        assert not survivors, {pid: _cmdline(pid) for pid in survivors}
        status = server.proc.wait(GONE_WITHIN_S)
        assert status != 0, server.log()
        # The port is free again: nothing of this server listens on it (another test's server with
        # --port 0 may take it at once, so nobody listening is not asked).
        holders = listeners(port_of(server))
        assert not [pid for pid in holders if f"{MARKER_ENV}={server.marker}" in _environ_lines(pid)], holders
        if victim != "launcher":
            assert "Traceback" not in server.log(), server.log()
    finally:
        stop_server(server)


def test_sigterm_to_the_launcher_stops_the_flock_cleanly(tmp_path):
    server = start_server("engine", copy_data(tmp_path / "data"), tmp_path / "server.log", ranks=2)
    wait_for_ranks(server, 2)
    assert stop_server(server, signal.SIGTERM) == 0, server.log()  # fails if any process survives
    assert "restarting" not in server.log()


def test_sigterm_to_the_launcher_and_the_ranks_at_once_stops_the_flock_cleanly(tmp_path):
    # Rank 0 then hears the stop twice: directly, and as mpiexec's forwarded SIGINT (a service
    # manager that signals every process does this; MPICH's own mpiexec and proxy are left out here,
    # since their reaction to a direct SIGTERM is MPICH's, not ours).
    server = start_server("engine", copy_data(tmp_path / "data"), tmp_path / "server.log", ranks=2)
    processes = wait_for_ranks(server, 2)
    for name in ("launcher", "rank0", "rank1"):
        os.kill(processes[name], signal.SIGTERM)
    assert stop_server(server, signal.SIGTERM) == 0, server.log()
    assert "Aborted" not in server.log() and "Traceback" not in server.log(), server.log()


# --- leftovers of dead flocks --------------------------------------------------------------------

def test_a_second_flock_on_the_same_folder_keeps_the_firsts_temporary_tables(tmp_path):
    """A flock's start removes dead flocks' temporary tables, never a live one's."""
    data = copy_data(tmp_path / "data")
    first = start_server("engine", data, tmp_path / "first.log", ranks=2)
    try:
        with first.connect() as connection, connection.cursor() as cur:
            cur.execute("CREATE TEMP TABLE mine AS SELECT n_nationkey FROM nation WHERE n_regionkey = 1")
            stop_server(start_server("engine", data, tmp_path / "second.log", ranks=2))
            cur.execute("SELECT count(*) FROM mine")
            assert cur.fetchone()[0] == 5
    finally:
        stop_server(first)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_batch_run_removes_a_dead_flocks_temporary_tables_too(tmp_path):
    """The batch runner (benchmarks, tests, the fuzzer) starts flocks as a server does: a batch killed
    mid-run once left WITH RECURSIVE's tables in the fuzzer's folder, which later runs listed."""
    from engine.batch import run_queries
    data = copy_data(tmp_path / "data")
    stale, live = data / f"rec_even{TEMP_MARK}{temp_tag(dead_pid())}", data / f"mine{TEMP_MARK}{temp_tag()}"
    for folder in (stale, live):
        folder.mkdir()
        (folder / "part-00000.parquet").write_bytes(b"x")
    got = run_queries(str(data), ["SELECT count(*) FROM nation"], 2, timeout_s=120)
    assert got[0].error is None and got[0].table.column(0)[0].as_py() == 25
    assert not stale.exists() and live.exists()


def test_leftovers_of_dead_flocks_are_cleaned_at_start(tmp_path, monkeypatch):
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    data = copy_data(tmp_path / "data")
    gone, alive = dead_pid(), os.getpid()
    host = socket.gethostname()
    stale = [temp / f"flocksql-r1-{gone}-abcd1234", temp / f"flocksql-run-{gone}-abcd1234",
             data / f".tmp-t-{host}-{gone}-0123abcd", data / f".trash-nation-{host}-{gone}-0123abcd"]
    live = [temp / f"flocksql-r1-{alive}-abcd1234", data / f".tmp-t-{host}-{alive}-0123abcd",
            data / f".tmp-t-otherhost-{gone}-0123abcd"]  # another host's: its pid means nothing here
    # Temporary tables: a dead owner's and an older build's (no owner in the name) go; a live
    # owner's (another flock serving this folder) and another host's stay.
    stale += [data / f"a{TEMP_MARK}{temp_tag(gone)}", data / f"b{TEMP_MARK}0123456789ab"]
    live += [data / f"c{TEMP_MARK}{temp_tag(alive)}", data / f"d{TEMP_MARK}ffffffff{gone:08x}0123abcd"]
    for folder in stale + live:
        folder.mkdir()
        (folder / "part-00000.parquet").write_bytes(b"x")
    token = os.urandom(4).hex()
    old_segment, new_segment = SHM_DIR / f"{SHM_PREFIX}test{token}_0", SHM_DIR / f"{SHM_PREFIX}test{token}_1"
    for segment in (old_segment, new_segment):
        segment.write_bytes(b"\0" * 4096)
    an_hour_ago = time.time() - 3600
    os.utime(old_segment, (an_hour_ago, an_hour_ago))
    try:
        server = start_server("engine", data, tmp_path / "server.log", ranks=2)
        try:
            assert [p for p in stale if p.exists()] == []
            assert [p for p in live if not p.exists()] == []
            assert not old_segment.exists()
            assert new_segment.exists()  # young: its job may be about to map it
            with server.connect() as connection, connection.cursor() as cur:
                cur.execute("SELECT count(*) FROM nation")
                assert cur.fetchone()[0] == 25
        finally:
            stop_server(server)
    finally:
        for segment in (old_segment, new_segment):
            segment.unlink(missing_ok=True)
    # The flock's own folders went with it.
    assert sorted(p.name for p in temp.iterdir()) == [f"flocksql-r1-{alive}-abcd1234"]
