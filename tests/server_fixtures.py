"""Helpers for the server tests: start a FlockSQL server in its own process group, connect, stop.

Two backends serve the same tests:
  "engine": the real thing, `flocksql serve` (or `python -m server serve` before cli.py wires it)
            with --ranks 2, once engine/session.py and engine/launch.py exist (skipped before);
  "double": tests/server_double.py, a DuckDB-backed stand-in for the Session, which tests the
            server layer (protocol, queueing, cancellation, auth, TLS) on its own.

Every server runs on a private copy of the data folder (DDL tests write to it). Each server's
environment carries a unique marker that every process it starts inherits (mpiexec and the ranks
too, though the engine starts mpiexec in a session of its own), so `stop_server` finds all of them,
kills what survives the signal, and then fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from tests.sample_data import tpch_sample

REPO = Path(__file__).resolve().parents[1]
DATA = tpch_sample()
ENGINE_RANKS = int(os.environ.get("FLOCKSQL_TEST_RANKS", "2"))
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
# Every client call of the tests gives up after this long, so that a server which fails to cancel
# or to answer makes a test fail instead of hanging in the driver (where pytest-timeout cannot
# interrupt it).
CLIENT_TIMEOUT_S = 120

# A query that keeps the ranks busy for minutes at SF 0.01 (3.6e9 x 25 rows), for cancel tests.
SLOW_SQL = (
    "SELECT sum(a.l_quantity * b.l_quantity * c.n_nationkey) AS s "
    "FROM lineitem a CROSS JOIN lineitem b CROSS JOIN nation c"
)


BACKENDS = [
    pytest.param("double", id="double"),
    pytest.param("engine", id="engine"),
]


@dataclass
class ServerProcess:
    backend: str
    proc: subprocess.Popen
    log_path: Path
    data_dir: Path
    uri: str = ""
    ranks: int = 1
    marker: str = ""
    db_kwargs: dict = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def connect(self, **db_kwargs):
        import adbc_driver_flightsql.dbapi as flight_sql

        kwargs = {**client_timeouts(CLIENT_TIMEOUT_S), **self.db_kwargs, **db_kwargs}
        return flight_sql.connect(self.uri, db_kwargs=kwargs, autocommit=True)


def client_timeouts(seconds: float) -> dict[str, str]:
    """ADBC Flight SQL options bounding each RPC of a connection or statement."""
    return {f"adbc.flight.sql.rpc.timeout_seconds.{kind}": str(seconds) for kind in ("query", "fetch", "update")}


def copy_data(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for path in DATA.iterdir():
        if path.is_file():
            shutil.copy2(path, dest / path.name)
        elif path.is_dir():
            shutil.copytree(path, dest / path.name)
    return dest


def server_command(backend: str, data_dir: Path, ranks: int, args: list[str]) -> list[str]:
    if backend == "double":
        return [sys.executable, str(REPO / "tests" / "server_double.py"), "--data", str(data_dir),
                "--ranks", str(ranks), "--port", "0", *args]
    flocksql = Path(sys.executable).with_name("flocksql")
    uses_cli = flocksql.exists() and (REPO / "cli.py").exists() and "serve" in (REPO / "cli.py").read_text()
    base = [str(flocksql)] if uses_cli else [sys.executable, "-m", "server"]
    return [*base, "serve", "--data", str(data_dir), "--ranks", str(ranks), "--port", "0", *args]


def start_server(backend: str, data_dir: Path, log_path: Path, *, ranks: int | None = None,
                 args: list[str] = (), expect_failure: bool = False) -> ServerProcess:
    ranks = ranks if ranks is not None else (ENGINE_RANKS if backend == "engine" else 2)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env["PYTHONUNBUFFERED"] = "1"
    marker = uuid.uuid4().hex
    env[MARKER_ENV] = marker
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            server_command(backend, data_dir, ranks, list(args)),
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True, preexec_fn=_die_with_parent,
        )
    server = ServerProcess(backend, proc, log_path, data_dir, ranks=ranks, marker=marker)
    if expect_failure:
        return server
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        match = re.search(r"listening on (grpc(?:\+tls)?://\S+)", server.log())
        if match:
            server.uri = match.group(1)
            return server
        if proc.poll() is not None:
            stop_server(server)
            pytest.fail(f"server exited with {proc.returncode} before listening:\n{server.log()}")
        time.sleep(0.1)
    stop_server(server)
    pytest.fail(f"server did not start within {START_TIMEOUT_S} s:\n{server.log()}")


MARKER_ENV = "FLOCKSQL_TEST_SERVER_MARKER"


def _die_with_parent() -> None:
    """In the child: get SIGTERM if pytest dies without its teardown (Linux prctl PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def marked_processes(marker: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries `marker`."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2:].split()[0] != "Z":
            found.append(int(entry.name))
    return found


def stop_server(server: ServerProcess, sig: int = signal.SIGTERM) -> int | None:
    """Signal the server's process group and wait; return its exit status.

    Fails the test if the server or any process it started (found by marker) is still alive
    STOP_TIMEOUT_S after the signal; those are killed first.
    """
    try:
        os.killpg(server.proc.pid, sig)  # start_new_session: the server leads its own group
    except ProcessLookupError:
        pass
    status = None
    try:
        status = server.proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while marked_processes(server.marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = marked_processes(server.marker)
    if survivors or server.proc.poll() is None:
        for pid in survivors:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(server.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.proc.wait(10)
        pytest.fail(f"server processes survived {signal.Signals(sig).name}: {survivors}\n{server.log()}")
    return status


def run_clients(client, count: int, join_s: float) -> None:
    """`client(i)` for i in range(count), each on a thread of its own, all at once; fails the test
    if one has not returned after `join_s` seconds (a hung client)."""
    threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(join_s)
    assert not any(t.is_alive() for t in threads), "a client hung"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the oracle ----------------------------------------------------------------------------------

_oracle: duckdb.DuckDBPyConnection | None = None
_oracle_lock = threading.Lock()  # client threads of one test ask it at once


def oracle(sql: str, params: list | None = None) -> pa.Table:
    """DuckDB's answer over the original Parquet files."""
    global _oracle
    with _oracle_lock:
        if _oracle is None:
            _oracle = duckdb.connect()
            for path in sorted(DATA.glob("*.parquet")):
                literal = str(path).replace("'", "''")
                _oracle.execute(f"CREATE VIEW \"{path.stem}\" AS SELECT * FROM read_parquet('{literal}')")
        return _oracle.sql(sql, params=params).to_arrow_table()


def assert_same_answer(actual: pa.Table, sql: str, params: list | None = None) -> None:
    from tpch.compare import compare_tables, ordering_of

    expected = oracle(sql, params)
    order = ordering_of(sql)
    diff = compare_tables(actual, expected, ordered=order.ordered, order_keys=order.keys, limited=order.limited)
    assert diff is None, f"{diff}\nSQL: {sql}"


def make_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, made with the openssl command."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key
