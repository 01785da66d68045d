"""The launcher of a flock on one machine: runs `mpiexec`, leaves no process behind, and (for a
server) starts the flock again when it breaks.

MPI is the engine: a flock that loses a rank cannot go on. Each rank runs under a keeper
(engine/keeper.py) and MPICH's own clean-up is off, so the ranks learn who died (engine/lifeline.py):
rank 0 answers the queries in flight naming the lost rank and ends, the other ranks follow, mpiexec
exits. Recovery is therefore a new job, not a repair of the old one: `supervise` waits, cleans what
the dead job left (engine/leftovers.py), and runs the same command again. Under an external
`mpiexec`/`srun` nobody here supervises: the ranks end and that launcher decides.

No orphans, whichever process is killed:
  - the launcher: mpiexec gets SIGKILL from the kernel (PR_SET_PDEATHSIG), MPICH's proxy then ends,
    and with it each keeper and each rank (PR_SET_PDEATHSIG: `die_with_parent`);
  - mpiexec or the proxy: the same from there on; the launcher also kills any rank that outlives the
    job (each rank records its pid in the run folder, RUN_DIR_ENV);
  - a keeper: its rank goes with it;
  - a rank: the others end through their lifelines; should a rank of the job still run
    LOST_RANK_GRACE_S after one ended, the launcher kills the job.
"""
from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from engine.leftovers import clean_leftovers, pid_alive, run_dir_prefix
from engine.lifeline import LOST_NOTE, LOST_PEER_STATUS

# Where each rank of a launched job writes `rank-<r>.pid` (the launcher names the lost rank from it).
RUN_DIR_ENV = "FLOCKSQL_RUN_DIR"
# Restart policy of a supervised flock (flocksql serve --restart): the first restart waits
# RESTART_BACKOFF_S, each further one twice as long, at most RESTART_BACKOFF_MAX_S; a flock that served
# for RESTART_RESET_AFTER_S before it broke was healthy, and the next wait is the first one again.
RESTART_BACKOFF_S = 1.0
RESTART_BACKOFF_MAX_S = 30.0
RESTART_RESET_AFTER_S = 60.0
# Once a rank of a running job has ended, the job has this many seconds to end by itself (rank 0
# answering its clients, the others following it) before the launcher kills what is left of it.
LOST_RANK_GRACE_S = 10.0
# How often the launcher looks at the ranks of a running job, in seconds.
WATCH_INTERVAL_S = 0.2
# Each start of the flock finds in its environment how many restarts came before it (for metrics).
RESTARTS_ENV = "FLOCKSQL_RESTARTS"
# Exit statuses of a flock that a restart cannot help: 0 (asked to stop), 1 (an error in the options,
# the data or the code, reported by rank 0), 2 (usage).
FINAL_STATUSES = (0, 1, 2)

PR_SET_PDEATHSIG = 1
_BAD_TERMINATION = re.compile(rb"PID (\d+) RUNNING AT")
_EXIT_CODE = re.compile(rb"EXIT CODE: (\d+)")
_EXIT_SIGNAL = re.compile(rb"EXIT STRING: .*\(signal (\d+)\)")
# Hydra's own trace when it loses a proxy or a proxy loses a process: "[mpiexec@host] function (/path/file.c:280): …".
_HYDRA_TRACE = re.compile(rb"^\[(mpiexec|proxy:\d+)@[^]]*\] \w+ \(/[^)]*:\d+\)")
_MPICH_BANNER = re.compile(rb"^(=+\s*$|=   |YOUR APPLICATION TERMINATED WITH|This typically refers to a problem with your "
                           rb"application|Please see the FAQ page for debugging suggestions)")


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> None:
    """Ask the kernel for `sig` when this process's parent ends (Linux; elsewhere nothing). If the
    parent (pid `parent`, by default the current one) is already gone, exit at once."""
    parent = os.getppid() if parent is None else parent
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def launched_by_us() -> bool:
    """Whether this rank belongs to a job that `supervise` started (not an external launcher's)."""
    run_dir = os.environ.get(RUN_DIR_ENV)
    return bool(run_dir) and os.path.isdir(run_dir)


def record_rank(rank: int) -> None:
    """In a rank of a job we launched: note this rank's pid for the launcher."""
    Path(os.environ[RUN_DIR_ENV], f"rank-{rank}.pid").write_text(str(os.getpid()))


def log_line(text: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} flocksql supervisor: {text}", file=sys.stderr, flush=True)


class Flock:
    """One run of `command` (mpiexec and its ranks) with its output relayed to ours; knows which
    rank MPICH reported dead."""

    def __init__(self, command: list[str], env: dict):
        self.run_dir = Path(tempfile.mkdtemp(prefix=run_dir_prefix()))
        env = dict(env, **{RUN_DIR_ENV: str(self.run_dir)})
        launcher = os.getpid()
        self.started = time.monotonic()
        # A session of its own: a terminal's Ctrl-C reaches the launcher only, which forwards it.
        self.proc = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     preexec_fn=lambda: die_with_parent(signal.SIGKILL, launcher))
        self.dead_pid: int | None = None
        self.dead_code: int | None = None
        self.dead_signal: int | None = None
        self.manager_failed = False
        self._relays = [threading.Thread(target=self._relay, args=(pipe, fd), daemon=True)
                        for pipe, fd in ((self.proc.stdout, 1), (self.proc.stderr, 2))]
        for t in self._relays:
            t.start()

    def _relay(self, pipe, fd: int) -> None:
        """Copies mpiexec's output to ours, except MPICH's banner about a dead process (the
        supervisor says it in one line); blank lines wait to see whether the banner follows."""
        blank = b""
        for line in pipe:
            m = _BAD_TERMINATION.search(line)
            if m and self.dead_pid is None:
                self.dead_pid = int(m.group(1))
            m = _EXIT_CODE.search(line)
            if m and self.dead_code is None:
                self.dead_code = int(m.group(1))
            m = _EXIT_SIGNAL.search(line)
            if m and self.dead_signal is None:
                self.dead_signal = int(m.group(1))
            if not line.strip():
                blank += line
                continue
            if _MPICH_BANNER.match(line):
                blank = b""
                continue
            if _HYDRA_TRACE.match(line):
                self.manager_failed = True
                blank = b""
                continue
            try:
                os.write(fd, blank + line)
            except OSError:
                pass
            blank = b""
        if blank:
            os.write(fd, blank)

    def ranks(self) -> dict[int, int]:
        """pid -> rank of the ranks that recorded themselves."""
        found = {}
        for path in self.run_dir.glob("rank-*.pid"):
            try:
                found[int(path.read_text())] = int(path.stem.split("-")[1])
            except ValueError:
                continue
        return found

    def interrupt(self) -> None:
        # SIGINT for the job: mpiexec passes it to the keepers, they to their ranks; rank 0 shuts
        # down cleanly and tells the workers to stop (workers ignore the signal itself).
        try:
            os.kill(self.proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass

    def ends(self) -> list[dict]:
        """How the ranks that ended did, as their keepers recorded it (engine/keeper.py), first first."""
        found = []
        for path in self.run_dir.glob("rank-*.end"):
            try:
                found.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return sorted(found, key=lambda end: end.get("time", 0.0))

    def _ended_rank(self) -> bool:
        """Whether some rank of the job has ended (its keeper said so, or its recorded pid is gone)."""
        return bool(self.ends()) or any(not pid_alive(pid) for pid in self.ranks())

    def wait(self) -> int:
        """mpiexec's exit status, or rank 0's when its keeper recorded it. A job that has not ended
        LOST_RANK_GRACE_S after one of its ranks did is killed."""
        ended_at = None
        while True:
            try:
                status = self.proc.wait(WATCH_INTERVAL_S)
                break
            except subprocess.TimeoutExpired:
                pass
            if ended_at is None:
                ended_at = time.monotonic() if self._ended_rank() else None
            elif time.monotonic() - ended_at > LOST_RANK_GRACE_S:
                log_line(f"the flock did not end within {LOST_RANK_GRACE_S:g} s of its first rank's end: killing it")
                self.kill(keep_run_dir=True)
                status = self.proc.wait()
                break
        for t in self._relays:
            t.join(5)
        rank0 = [end for end in self.ends() if end.get("rank") == 0]
        return rank0[0]["status"] if rank0 and status >= 0 else status

    def kill(self, keep_run_dir: bool = False) -> None:
        """SIGKILL for mpiexec and for any rank of this job still alive; removes the run folder."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        needle = f"{RUN_DIR_ENV}={self.run_dir}".encode()
        for pid in self.ranks():
            try:
                if pid_alive(pid) and needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if not keep_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def lost_a_rank(self) -> bool:
        """Whether a rank died (rather than all ending as asked)."""
        return self.dead_pid is not None or any(end.get("status") not in (0, LOST_PEER_STATUS) for end in self.ends())

    def describe_end(self, status: int) -> str:
        """One phrase: how the flock ended, naming the lost rank: the first rank that ended other
        than by following a lost one (as the keepers recorded), else the one rank 0 noted as lost,
        else the one MPICH reported."""
        culprits = [end for end in self.ends() if end.get("status") not in (0, LOST_PEER_STATUS)]
        if culprits:
            first = culprits[0]
            return f"rank {first['rank']} (pid {first['pid']}) {first['how']}"
        try:
            return (self.run_dir / LOST_NOTE).read_text().strip()
        except OSError:
            pass
        if self.dead_pid is not None:
            rank = self.ranks().get(self.dead_pid)
            who = f"rank {rank} (pid {self.dead_pid})" if rank is not None else f"pid {self.dead_pid}"
            how = (f"was killed by signal {self.dead_signal}" if self.dead_signal is not None else
                   f"exited with status {self.dead_code}" if self.dead_code is not None else "ended")
            return f"{who} {how}"
        if status < 0:
            return f"mpiexec was killed by signal {-status}"
        if self.manager_failed:
            return f"MPICH's process manager lost a process (mpiexec exited with status {status})"
        return f"mpiexec exited with status {status}"


class _StopFlag:
    """Set by a signal handler, so it takes no lock: a second signal can arrive while the handler
    of the first runs, in the same thread, and would wait for itself (threading.Event.set takes
    one: two quick Ctrl-C hung the supervisor for good). A wait wakes through a pipe."""

    def __init__(self):
        self._set = False
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)

    def set(self) -> None:
        self._set = True
        try:
            os.write(self._write, b"x")
        except OSError:  # the pipe is full: a wake-up is pending already
            pass

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout_s: float) -> bool:
        if not self._set:
            select.select([self._read], [], [], timeout_s)
        return self._set

    def close(self) -> None:
        os.close(self._read)
        os.close(self._write)


def supervise(command: list[str], env: dict, *, restart: bool, data_dir: str | None = None,
              precheck: Callable[[], str | None] | None = None) -> int:
    """Run `command` (an mpiexec line) until it ends; with `restart`, run it again after each end
    that is not in FINAL_STATUSES, waiting longer after each quick failure (RESTART_BACKOFF_S …
    RESTART_BACKOFF_MAX_S). SIGINT/SIGTERM stop the job cleanly and end supervision. Returns the
    last exit status. `precheck()` runs before each start: a message means "cannot start now" (the
    first time: give up with status 1; on a restart: wait and try again)."""
    stopping = _StopFlag()
    current: list[Flock] = []

    def forward(signum, _frame):
        stopping.set()
        if current:
            current[0].interrupt()
    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    failures = starts = 0
    try:
        while not stopping.is_set():
            clean_leftovers(data_dir)
            problem = precheck() if precheck else None
            if problem and failures == 0:
                log_line(problem)
                return 1
            if problem:
                status, end, ran_s = 1, problem, 0.0
            else:
                flock = Flock(command, {**env, RESTARTS_ENV: str(starts)})
                starts += 1
                current[:] = [flock]
                if stopping.is_set():  # the signal came while it started: pass it on now
                    flock.interrupt()
                try:
                    status = flock.wait()
                    end = flock.describe_end(status)
                    if stopping.is_set() and status != 0 and not flock.lost_a_rank():
                        # Asked to stop and no rank died: a rank that ended on its own stop signal
                        # before the proxy passed mpiexec's SIGINT on makes the proxy fail an
                        # assertion (MPICH's exit 255), but the flock stopped as asked.
                        status = 0
                finally:
                    flock.kill()
                    current.clear()
                ran_s = time.monotonic() - flock.started
                clean_leftovers(data_dir)
            if stopping.is_set() or not restart or (status in FINAL_STATUSES and not problem):
                if status not in (0,) and not stopping.is_set():
                    log_line(f"{end}; the flock ended")
                return status if status >= 0 else 128 - status
            failures = 1 if ran_s >= RESTART_RESET_AFTER_S else failures + 1
            delay = min(RESTART_BACKOFF_MAX_S, RESTART_BACKOFF_S * 2 ** (failures - 1))
            again = f" (failure {failures} in a row)" if failures > 1 else ""
            log_line(f"{end}; restarting the flock in {delay:g} s{again}")
            if stopping.wait(delay):
                return 0  # asked to stop while no flock ran
        return 0
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        stopping.close()
