"""Starting the ranks: in-process for one rank, `mpiexec` launched by us for several on one machine,
or whatever ranks an existing `mpiexec` / `srun` gave us.

`open_session` is the one entry point: on rank 0 it yields a Session; on the other ranks it runs the
worker loop and exits the process when rank 0 closes the session.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from engine.session import Session, _under_mpi

LAUNCHED_ENV = "FLOCKSQL_LAUNCHED"


def mpiexec_path() -> str:
    """The mpiexec installed with the `mpich` wheel next to this Python, else the one on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    if here.exists():
        return str(here)
    found = shutil.which("mpiexec")
    if not found:
        raise RuntimeError("mpiexec not found: install the 'mpich' package (pip install mpich)")
    return found


def mpi_command(nranks: int, argv: list[str]) -> list[str]:
    return [mpiexec_path(), "-n", str(nranks), sys.executable, *argv]


def run_under_mpi(nranks: int, argv: list[str]) -> int:
    """Runs `python argv…` on nranks ranks; forwards SIGINT/SIGTERM so no rank is orphaned."""
    env = dict(os.environ, **{LAUNCHED_ENV: "1"})
    proc = subprocess.Popen(mpi_command(nranks, argv), env=env, start_new_session=True)

    def forward(signum, _frame):
        # Both become SIGINT for the job: rank 0 shuts down cleanly and tells the workers to stop
        # (workers ignore the signal itself); a SIGTERM to every rank would kill them mid-step.
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return proc.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def open_session(data_dir: str, ranks: int = 1, threads: int | None = None, **kwargs):
    """Yields a Session on rank 0. With ranks > 1 outside MPI, re-runs this command under mpiexec
    (the current process then only waits for it and exits with its status)."""
    if ranks > 1 and not _under_mpi():
        argv = ["-m", "cli", *sys.argv[1:]] if _invoked_as_cli() else [*sys.argv]
        sys.exit(run_under_mpi(ranks, argv))
    session = Session(data_dir, threads=threads, **kwargs)
    if session.rank != 0:
        # Workers stop when rank 0 says so; if rank 0 dies, the MPI launcher ends the job.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            session.worker_loop()
        finally:
            session.close()
        sys.exit(0)
    try:
        yield session
    finally:
        session.close()


def _invoked_as_cli() -> bool:
    main = sys.modules.get("__main__")
    name = os.path.basename(getattr(main, "__file__", "") or "")
    return name in ("flocksql", "cli.py", "__main__.py") or os.path.basename(sys.argv[0]) == "flocksql"
