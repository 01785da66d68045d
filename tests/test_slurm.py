"""FlockSQL under Slurm, on a one-node cluster started for these tests (tests/slurm_cluster.py):
the README's `srun … flocksql serve` with srun, not us, starting the ranks (engine/launch.py:
`_under_mpi()` true, `launched_by_us()` false).

- `srun -n 2 --mpi=pmi2 python -m cli serve --data … --user u --password p`: the 22 TPC-H queries
  (SF 0.01), sent by two clients at once (so through two lanes), match DuckDB; both ranks take part
  in an exchange; `scancel` (SIGTERM to every task) stops the flock cleanly.
- The heartbeat under srun: a rank that stops answering (SIGSTOP) past the peer timeout ends the
  flock, the other rank follows, and the step ends (Slurm kills nothing by itself here).
- `srun --mpi=none`: every task would serve alone; the ranks refuse to start, saying why.

Skipped when slurm-wlm is not installed (`.ci/run` installs it). Bounded waits only.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import adbc_driver_flightsql.dbapi as flight_sql
import pytest

from engine.heartbeat import PEER_TIMEOUT_ENV
from tests.conftest import tpch_mismatches
from tests.server_fixtures import copy_data
from tests.slurm_cluster import SlurmCluster, slurm_missing
from tpch import QUERY_NUMBERS, query_text

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[1]
START_WITHIN_S, STOP_WITHIN_S = 120.0, 45.0
PEER_TIMEOUT_S = 3
CREDENTIALS = {"username": "u", "password": "p"}
# Every RPC gives up after this long: a stuck flock fails the test instead of hanging it.
RPC_TIMEOUT_S = "120"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    problem = slurm_missing()
    if problem:
        pytest.skip(problem)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


class Step:
    """`srun -n 2 python -m cli serve …` in its own process group, its output in a log file."""

    def __init__(self, slurm: SlurmCluster, tmp_path: Path, *serve_args: str, mpi: str = "pmi2",
                 wait_listening: bool = True, **env):
        self.slurm, self.name = slurm, f"flocksql-{uuid.uuid4().hex[:8]}"
        self.log_path = tmp_path / f"{self.name}.log"
        data = copy_data(tmp_path / "data")
        env = dict(slurm.env, PYTHONUNBUFFERED="1", PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                   **env)
        argv = ["srun", "-n", "2", f"--mpi={mpi}", f"--job-name={self.name}", sys.executable, "-m", "cli", "serve",
                "--data", str(data), "--host", "127.0.0.1", "--port", "0", *serve_args]
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.uri = ""
        deadline = time.monotonic() + START_WITHIN_S
        while wait_listening and not self.uri:
            found = re.search(r"listening on (grpc\S+)", self.log())
            if found:
                self.uri = found.group(1)
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"the flock did not start under srun:\n{self.log()}\n{slurm.logs()}")
            else:
                time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ranks(self) -> dict[int, dict[str, str]]:
        """rank -> environment of this step's rank processes (PMI_RANK set by srun's pmi2 plugin)."""
        found = {}
        for status in Path("/proc").glob("[0-9]*/environ"):
            try:
                env = dict(item.split("=", 1) for item in status.read_text(errors="replace").split("\0") if "=" in item)
            except OSError:
                continue
            if env.get("SLURM_JOB_NAME") == self.name and "PMI_RANK" in env:
                found[int(env["PMI_RANK"])] = dict(env, pid=status.parent.name)
        return found

    def wait(self, within: float) -> int | None:
        """srun's status once it and every rank are gone, or None after `within` seconds."""
        deadline = time.monotonic() + within
        while (self.proc.poll() is None or self.ranks()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return None if self.proc.poll() is None or self.ranks() else self.proc.returncode

    def kill(self) -> None:
        subprocess.run(["scancel", "--signal=KILL", "--full", f"--name={self.name}"], env=self.slurm.env)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def test_tpch_under_srun_matches_duckdb_and_scancel_stops_it(slurm, tmp_path):
    step = Step(slurm, tmp_path, "--user", CREDENTIALS["username"], "--password", CREDENTIALS["password"])
    try:
        ranks = step.ranks()
        assert sorted(ranks) == [0, 1], ranks
        # srun's ranks, not ours: no supervisor's run folder (engine/supervisor.py launched_by_us).
        assert not any("FLOCKSQL_RUN_DIR" in env for env in ranks.values()), ranks

        t0 = time.monotonic()
        with ThreadPoolExecutor(2) as clients:  # two queries in flight at once: two lanes
            found = clients.map(lambda n: _answer(step.uri, query_text(n), **CREDENTIALS), QUERY_NUMBERS)
            answers = dict(zip(QUERY_NUMBERS, found))
        took = time.monotonic() - t0
        failures = tpch_mismatches(answers, tmp_path / "data")
        assert not failures, "\n".join(failures) + "\n" + step.log()
        print(f"\n22 TPC-H queries under srun -n 2, two clients at once: {took:.1f} s")

        explain = "EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM lineitem ORDER BY l_comment, l_orderkey"
        plan = json.loads("".join(query(step.uri, explain, **CREDENTIALS).column(0).to_pylist()))
        assert plan["ranks"] == 2, plan
        assert _sent_by_rank(plan).get(1, 0) > 0, plan  # rank 1's rows crossed to rank 0
    finally:
        # Slurm's stop: SIGTERM to every task; rank 0 stops the server and the workers with it.
        subprocess.run(["scancel", f"--name={step.name}"], env=slurm.env)
        status = step.wait(STOP_WITHIN_S)
        if status is None:
            step.kill()
    assert status is not None, f"the flock did not stop on scancel:\n{step.log()}"
    assert "Killed" not in step.log() and "Traceback" not in step.log(), step.log()


def test_heartbeat_under_srun_ends_the_flock_when_a_rank_stops_answering(slurm, tmp_path):
    step = Step(slurm, tmp_path, "--insecure", **{PEER_TIMEOUT_ENV: str(PEER_TIMEOUT_S)})
    try:
        assert query(step.uri, "SELECT count(*) FROM nation").column(0)[0].as_py() == 25
        worker = int(step.ranks()[1]["pid"])
        os.kill(worker, signal.SIGSTOP)
        deadline = time.monotonic() + 10 * PEER_TIMEOUT_S
        while "unreachable" not in step.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        os.kill(worker, signal.SIGCONT)
        # The worker, awake again, has not heard rank 0 for as long: it ends too, and so does srun.
        status = step.wait(STOP_WITHIN_S)
        log = step.log()
        assert f"rank 0: rank 1 on host {slurm.host} unreachable for over {PEER_TIMEOUT_S} s" in log, log
        assert status is not None, f"ranks left after rank 0 ended:\n{log}"
        assert status != 0, log
    finally:
        if step.proc.poll() is None or step.ranks():
            step.kill()


def test_srun_without_an_mpi_plugin_refuses_to_start(slurm, tmp_path):
    step = Step(slurm, tmp_path, "--insecure", mpi="none", wait_listening=False)
    status = step.wait(START_WITHIN_S)
    if status is None:
        step.kill()
    log = step.log()
    assert status not in (None, 0), log
    assert "listening on" not in log and log.count("run srun with --mpi=pmi2") == 2, log


def query(uri: str, sql: str, **credentials):
    kwargs = {f"adbc.flight.sql.rpc.timeout_seconds.{k}": RPC_TIMEOUT_S for k in ("query", "fetch", "update")}
    with flight_sql.connect(uri, db_kwargs=dict(kwargs, **credentials), autocommit=True) as con, \
            con.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def _answer(uri: str, sql: str, **credentials):
    try:
        return query(uri, sql, **credentials)
    except Exception as exc:  # noqa: BLE001 - reported per query
        return f"{type(exc).__name__}: {exc}"


def _sent_by_rank(node: dict, into: dict | None = None) -> dict[int, int]:
    into = {} if into is None else into
    for r in (node.get("actual") or {}).get("per_rank", ()):
        into[r["rank"]] = into.get(r["rank"], 0) + r["bytes_sent"]
    for child in [*node.get("children", ()), *([node["plan"]] if "plan" in node else [])]:
        _sent_by_rank(child, into)
    return into
