"""A flock across three hosts, emulated with Linux network namespaces (tests/netns_hosts.py): each
host its own network, hostname and IPC namespace, one veth to a bridge in a namespace of its own, so
MPICH talks TCP between the ranks as on a cluster. Hydra starts the remote ranks through a
`-launcher-exec` script that enters the host's namespaces instead of ssh. The client runs in a
fourth namespace on the bridge (tests/netns_client.py).

- The README's command, `mpiexec -f hostfile -n 3 flocksql serve …`: the 22 TPC-H queries (SF 0.01)
  match DuckDB, and what the ranks' exchanges sent to other ranks crossed the veths.
- `flocksql serve --ranks 3` spread over the hosts by Hydra's environment (HYDRA_HOST_FILE …): a link
  down shorter than the peer timeout changes nothing; a link down mid-query past it fails the query
  (no hang), the supervisor starts the flock again, and once the link is back the service answers;
  a rank on another host killed with SIGKILL: the flock is started again and answers.

Needs root and iproute2 (CI has both). Where namespaces cannot be made the tests fail, saying why,
unless FLOCKSQL_NO_NETNS=1 (then they are skipped). Bounded waits only; times are printed, not
asserted.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from engine.heartbeat import PEER_TIMEOUT_ENV
from engine.launch import mpiexec_path
from tests.conftest import duckdb_oracle, tpch_mismatches
from tests.netns_hosts import CLIENT_NAME, HOST_ADDRESSES, Hosts, netns_problem
from tests.server_fixtures import SLOW_SQL, copy_data
from tpch import QUERY_NUMBERS, query_text
from tpch.compare import compare_tables

pytestmark = pytest.mark.timeout(400)

REPO = Path(__file__).resolve().parents[1]
HOSTS = list(HOST_ADDRESSES)  # flock-h1 (rank 0), flock-h2, flock-h3
URI = "grpc://flock-h1:8815"
START_WITHIN_S, STOP_WITHIN_S, ANSWER_WITHIN_S = 120.0, 60.0, 180.0
# The peer timeout of the fault test (engine/heartbeat.py; the default is 30 s), the blip it must
# survive and how long a query cut off from a host may take to fail.
PEER_TIMEOUT_S, BLIP_S, FAIL_WITHIN_S = 5, 2.0, 60.0


def _root_network() -> tuple[str, str]:
    """The root namespace's links and routes (the tests must leave both as they were)."""
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    return re.sub(r"\s+state \S+|qlen \d+", "", "\n".join(sorted(l.split(":")[1] for l in links.splitlines()))), routes


@pytest.fixture
def hosts():
    problem = netns_problem()
    if problem:
        if os.environ.get("FLOCKSQL_NO_NETNS") == "1":
            pytest.skip(f"{problem} (FLOCKSQL_NO_NETNS=1)")
        pytest.fail(f"{problem}; set FLOCKSQL_NO_NETNS=1 to skip the multi-host tests")
    before = _root_network()
    made = Hosts()
    try:
        yield made.build()
    finally:
        problems = made.close()
    assert not problems, problems
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert made.prefix not in left, left
    assert _root_network() == before, "the root namespace's links or routes changed"


def _env(**extra) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", **extra)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return env


class Flock:
    """A command run on flock-h1 (mpiexec or flocksql serve), its output in a log file."""

    def __init__(self, hosts: Hosts, argv: list[str], log: Path, env: dict[str, str]):
        self.hosts, self.log_path = hosts, log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(hosts.on(HOSTS[0], argv), cwd=log.parent, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
        deadline = time.monotonic() + START_WITHIN_S
        while "listening on" not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                pytest.fail(f"the flock did not start:\n{self.log()}")
            time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ranks(self) -> dict[int, tuple[str, int]]:
        """rank -> (host, pid) of the ranks now running, from the namespaces' processes."""
        found = {}
        for host in HOSTS:
            for pid in subprocess.run(["ip", "netns", "pids", self.hosts.ns(host)], capture_output=True,
                                      text=True).stdout.split():
                try:
                    env = dict(item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text(
                        errors="replace").split("\0") if "=" in item)
                    argv = Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
                except OSError:
                    continue
                if "PMI_RANK" in env and "serve" in argv:
                    found[int(env["PMI_RANK"])] = (host, int(pid))
        return found

    def stop(self, sig: int = signal.SIGINT) -> int | None:
        """Signals the flock's process group; returns its status once it and every process in the
        hosts' namespaces are gone (kills what is left after STOP_WITHIN_S and fails the test)."""
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            status = self.proc.wait(STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            status = None
        deadline = time.monotonic() + STOP_WITHIN_S
        while self.hosts.pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        left = self.hosts.pids()
        if status is None or left:
            for pid in left:
                os.kill(pid, signal.SIGKILL)
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            pytest.fail(f"processes survived the stop (status {status}): {left}\n{self.log()}")
        return status


def client(hosts: Hosts, *args: str, timeout: float = 300, **env) -> subprocess.CompletedProcess:
    return subprocess.run(client_argv(hosts, *args), capture_output=True, text=True, timeout=timeout,
                          env=_env(**env))


def sent_bytes(hosts: Hosts) -> dict[str, int]:
    """Bytes each host has sent so far (received by the bridge on its veth)."""
    return {h: hosts.bytes(h)[0] for h in HOSTS}


def test_tpch_across_three_hosts_matches_duckdb_and_exchanges_cross_the_veths(hosts, tmp_path):
    data = copy_data(tmp_path / "data")
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("".join(f"{h}\n" for h in HOSTS))
    launcher = hosts.launcher_script(tmp_path / "enter-host")
    # The README's command line, with Hydra's ssh launcher pointed at the namespace script.
    flock = Flock(hosts, [mpiexec_path(), "-f", str(hostfile), "-n", "3", "-launcher", "ssh", "-launcher-exec",
                          str(launcher), "flocksql", "serve", "--data", str(data), "--host", "0.0.0.0",
                          "--user", "u", "--password", "p"], tmp_path / "flock.log", _env())
    creds = {"FLOCKSQL_TEST_USER": "u", "FLOCKSQL_TEST_PASSWORD": "p"}
    try:
        assert {r: h for r, (h, _) in flock.ranks().items()} == dict(enumerate(HOSTS)), flock.log()
        queries = tmp_path / "queries"
        queries.mkdir()
        for n in QUERY_NUMBERS:
            (queries / f"q{n:02d}.sql").write_text(query_text(n))
        # A range shuffle of all of lineitem, measured by the engine and by the veths.
        (queries / "explain.sql").write_text(
            "EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM lineitem ORDER BY l_comment, l_orderkey, l_linenumber")
        answers = tmp_path / "answers"
        answers.mkdir()

        before = sent_bytes(hosts)
        done = client(hosts, "run", URI, str(answers), *sorted(map(str, queries.glob("q*.sql"))), **creds)
        after = sent_bytes(hosts)
        assert done.returncode == 0, done.stdout + done.stderr
        found = {}
        for n in QUERY_NUMBERS:
            error = answers / f"q{n:02d}.error"
            found[n] = error.read_text() if error.exists() else \
                pa.ipc.open_file(str(answers / f"q{n:02d}.arrow")).read_all()
        failures = tpch_mismatches(found, data)
        assert not failures, "\n".join(failures) + "\n" + flock.log()
        tpch_sent = {h: after[h] - before[h] for h in HOSTS}
        print(f"\nbytes sent by each host during the 22 TPC-H queries: {tpch_sent}")
        # Rank 0 sends plans and receives results; the other hosts' ranks send their shares.
        assert all(tpch_sent[h] > 0 for h in HOSTS), tpch_sent

        before = sent_bytes(hosts)
        done = client(hosts, "run", URI, str(answers), str(queries / "explain.sql"), **creds)
        after = sent_bytes(hosts)
        assert (answers / "explain.arrow").exists(), (done.stdout, done.stderr, list(answers.glob("explain*")))
        plan = json.loads("".join(pa.ipc.open_file(str(answers / "explain.arrow")).read_all().column(0).to_pylist()))
        moved = sum(_bytes_sent(plan))
        sort_sent = {h: after[h] - before[h] for h in HOSTS}
        print(f"exchanges of the sort sent {moved} bytes to other ranks; the hosts sent {sort_sent}")
        # Each byte an exchange sends to another rank leaves its host through that host's veth.
        assert moved > 1_000_000, plan
        assert sum(sort_sent.values()) >= moved, (moved, sort_sent)
        assert all(sort_sent[h] > moved / 10 for h in HOSTS[1:]), (moved, sort_sent)

        # Partitioned results: each rank's part comes from that rank's own host.
        sql = "SELECT l_orderkey, l_linenumber, l_comment FROM lineitem"
        done = client(hosts, "parts", URI, str(answers), sql, **creds)
        assert done.returncode == 0, done.stdout + done.stderr + flock.log()
        parts = [line.split() for line in done.stdout.splitlines() if line.startswith("part ")]
        assert [p[2] == "-" for p in parts] == [True, False, False], done.stdout
        assert [p[2].split("//")[1].rsplit(":", 1)[0] for p in parts[1:]] == HOSTS[1:], done.stdout
        got = pa.ipc.open_file(str(answers / "parts.arrow")).read_all()
        want = duckdb_oracle(data).sql(sql).to_arrow_table()
        assert compare_tables(got, want, ordered=False, order_keys=()) is None
    finally:
        status = flock.stop(signal.SIGINT)
    assert status == 0, flock.log()


def _bytes_sent(node: dict):
    if node.get("actual"):
        yield node["actual"]["bytes_sent"]
    for child in node.get("children", ()):
        yield from _bytes_sent(child)
    if "plan" in node:
        yield from _bytes_sent(node["plan"])


def test_a_host_cut_off_mid_query_fails_the_query_and_the_service_comes_back(hosts, tmp_path):
    data = copy_data(tmp_path / "data")
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("".join(f"{h}\n" for h in HOSTS))
    launcher = hosts.launcher_script(tmp_path / "enter-host")
    # flocksql serve --ranks 3 starts mpiexec itself (and supervises it); Hydra reads where to put
    # the ranks, and how to reach the hosts, from its environment.
    env = _env(HYDRA_HOST_FILE=str(hostfile), HYDRA_LAUNCHER="ssh", HYDRA_LAUNCHER_EXEC=str(launcher),
               **{PEER_TIMEOUT_ENV: str(PEER_TIMEOUT_S)})
    flock = Flock(hosts, ["flocksql", "serve", "--data", str(data), "--ranks", "3", "--host", "0.0.0.0",
                          "--insecure"], tmp_path / "flock.log", env)
    try:
        assert client(hosts, "until-ok", URI, "SELECT count(*) FROM nation", "120").stdout.startswith("ok 25 ")
        first = flock.ranks()
        assert {r: h for r, (h, _) in first.items()} == dict(enumerate(HOSTS)), flock.log()

        # A blip shorter than the peer timeout: the same flock answers, nothing restarted.
        hosts.link(HOSTS[2], up=False)
        time.sleep(BLIP_S)
        hosts.link(HOSTS[2], up=True)
        done = client(hosts, "once", URI, "SELECT count(DISTINCT l_comment) FROM lineitem")
        assert done.stdout.startswith("ok 1"), done.stdout + done.stderr + flock.log()
        assert flock.ranks() == first and "unreachable" not in flock.log(), flock.log()

        # Cut off mid-query for longer than the timeout: the query fails instead of hanging.
        slow = subprocess.Popen(client_argv(hosts, "once", URI, SLOW_SQL), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=_env())
        time.sleep(3.0)  # the cross join is running on the ranks by now (it runs for minutes)
        assert slow.poll() is None, slow.stdout.read()
        hosts.link(HOSTS[2], up=False)
        cut = time.monotonic()
        try:
            out, _ = slow.communicate(timeout=FAIL_WITHIN_S)
        except subprocess.TimeoutExpired:
            slow.kill()
            pytest.fail(f"the query did not fail within {FAIL_WITHIN_S} s of the cut\n{flock.log()}")
        failed_after = time.monotonic() - cut
        assert out.startswith("error") and "Unavailable" in out, out
        assert "deadline" not in out.lower(), out  # it failed; no client timeout ran out
        log = flock.log()
        assert f"rank 2 on host {HOSTS[2]} unreachable for over {PEER_TIMEOUT_S} s" in log, log

        # The link comes back: the supervisor's new flock answers, and the old ranks are gone.
        hosts.link(HOSTS[2], up=True)
        back = time.monotonic()
        done = client(hosts, "until-ok", URI, "SELECT count(*) FROM nation", str(ANSWER_WITHIN_S))
        answered_after = time.monotonic() - back
        assert done.stdout.startswith("ok 25 "), done.stdout + done.stderr + flock.log()
        assert "restarting the flock in" in flock.log(), flock.log()
        print(f"\nquery failed {failed_after:.1f} s after the cut (peer timeout {PEER_TIMEOUT_S} s); "
              f"the service answered {answered_after:.1f} s after the link came back ({done.stdout.strip()})")
        deadline = time.monotonic() + STOP_WITHIN_S
        while {pid for _, pid in first.values()} & {pid for _, pid in flock.ranks().values()} \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        now = flock.ranks()
        assert not {pid for _, pid in first.values()} & {pid for _, pid in now.values()}, (first, now)
        assert {r: h for r, (h, _) in now.items()} == dict(enumerate(HOSTS)), flock.log()

        # A rank on another host killed outright (as the OOM killer would): the supervisor starts
        # the flock again and the service answers; the killed rank's host runs a new rank.
        host, pid = now[1]
        restarts = flock.log().count("restarting the flock in")
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        done = client(hosts, "until-ok", URI, "SELECT count(*) FROM nation", str(ANSWER_WITHIN_S))
        assert done.stdout.startswith("ok 25 "), done.stdout + done.stderr + flock.log()
        assert flock.log().count("restarting the flock in") > restarts, flock.log()
        print(f"rank 1 on {host} killed: the service answered again {time.monotonic() - killed:.1f} s later")
        deadline = time.monotonic() + STOP_WITHIN_S
        while 1 not in flock.ranks() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert flock.ranks().get(1, (None, pid))[0] == host and flock.ranks()[1][1] != pid, flock.log()
    finally:
        status = flock.stop(signal.SIGTERM)
    assert status == 0, flock.log()


def client_argv(hosts: Hosts, *args: str) -> list[str]:
    return hosts.on(CLIENT_NAME, [sys.executable, str(REPO / "tests" / "netns_client.py"), *args])
