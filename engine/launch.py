"""Starting the ranks: in-process for one rank, `mpiexec` launched by us for several on one machine,
or whatever ranks an existing `mpiexec` / `srun` gave us.

`open_session` is the one entry point: on rank 0 it yields a Session; on the other ranks it runs the
worker loop and exits the process when rank 0 closes the session.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

from engine.heartbeat import start_heartbeat, transport_defaults
from engine.lifeline import start_lifeline
from engine.leftovers import clean_leftovers
from engine.session import Session, _under_mpi
from engine.supervisor import die_with_parent, launched_by_us, record_rank, supervise

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
    """mpiexec running `python argv…` on `nranks` ranks, each under its keeper (engine/keeper.py), with
    MPICH's own clean-up off: when a rank dies the others decide (engine/lifeline.py), and the
    supervisor makes sure that nothing outlives the job (engine/supervisor.py)."""
    return [mpiexec_path(), "-disable-auto-cleanup", "-n", str(nranks),
            sys.executable, "-P", "-m", "engine.keeper", sys.executable, *argv]


def run_under_mpi(nranks: int, argv: list[str], *, restart: bool = False, data_dir: str | None = None,
                  precheck=None) -> int:
    """Runs `python argv…` on nranks ranks and returns its exit status; with `restart`, runs it
    again whenever the flock breaks (engine/supervisor.py). No process outlives the launcher."""
    env = dict(os.environ, **{LAUNCHED_ENV: "1"})
    return supervise(mpi_command(nranks, argv), env, restart=restart, data_dir=data_dir, precheck=precheck)


@contextmanager
def open_session(data_dir: str, ranks: int = 1, threads: int | None = None, *, restart: bool = False,
                 relaunch_args: tuple[str, ...] = (), precheck=None, on_worker=None, **kwargs):
    """Yields a Session on rank 0. With ranks > 1 outside MPI, re-runs this command under mpiexec
    with `relaunch_args` appended (the current process then only supervises it, see
    run_under_mpi, and exits with its status). On the other ranks, `on_worker(session)` runs
    before the worker loop (the server starts each rank's part server there) and may return a
    function to call after it."""
    if ranks > 1 and not _under_mpi():
        sys.exit(run_under_mpi(ranks, [*_relaunch_argv(), *relaunch_args], restart=restart, data_dir=data_dir,
                               precheck=precheck))
    if not _under_mpi():
        clean_leftovers(data_dir)  # with several ranks, the supervisor did before it started them
    else:
        transport_defaults()  # before MPI starts (engine/heartbeat.py)
    if _under_mpi() and launched_by_us():
        # A rank whose parent (its keeper, engine/keeper.py) dies goes with it instead of lingering. Not
        # under other launchers: the signal comes when the parent *thread* ends, and a
        # multi-threaded parent such as slurmstepd may end the thread that started us.
        die_with_parent()
        from mpi4py import MPI
        record_rank(MPI.COMM_WORLD.Get_rank())
    lifeline = None
    if _under_mpi():
        from mpi4py import MPI
        lifeline = start_lifeline(MPI.COMM_WORLD)  # a rank that dies ends the flock at once, named
    session = Session(data_dir, threads=threads, **kwargs)
    session.lifeline = lifeline
    heartbeat = None
    if _under_mpi():
        from mpi4py import MPI
        heartbeat = start_heartbeat(MPI.COMM_WORLD)  # a rank unreachable past the peer timeout ends the flock
    if session.rank != 0:
        # Workers stop when rank 0 says so; if rank 0 dies, the lifeline ends them at once.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        after = None
        try:
            after = on_worker(session) if on_worker is not None else None
            session.worker_loop()
        finally:
            if after is not None:
                after()
            if heartbeat:
                heartbeat.stop()
            session.close()
        sys.exit(0)
    try:
        yield session
    finally:
        if heartbeat:
            heartbeat.stop()
        if lifeline is not None:
            lifeline.close()  # before the workers are told to stop: they end now on purpose
        session.close()


def _relaunch_argv() -> list[str]:
    """This command's Python arguments for the ranks. The `flocksql` script re-runs as `-P -m cli`:
    without -P, Python would put the working directory first on sys.path, and a folder there named
    like one of our packages (tpch/, engine/, server/ …) would shadow it."""
    if _invoked_as_cli():
        return ["-P", "-m", "cli", *sys.argv[1:]]
    return [*sys.argv]


def _invoked_as_cli() -> bool:
    main = sys.modules.get("__main__")
    name = os.path.basename(getattr(main, "__file__", "") or "")
    return name in ("flocksql", "cli.py", "__main__.py") or os.path.basename(sys.argv[0]) == "flocksql"
