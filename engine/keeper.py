"""The keeper of one rank of a flock we launched: the process MPICH's proxy starts, which starts the
rank itself and reports how it ended.

Why it exists: MPICH's proxy (hydra_pmi_proxy), even with `mpiexec -disable-auto-cleanup`, sends
SIGKILL to the process group of every process it started as soon as one of them ends *by a signal*
(kill -9, the OOM killer): the other ranks would die in the same millisecond, rank 0 with them, and
no client would learn what happened. The keeper stands between: it runs the rank in a session of its
own (out of reach of the proxy's group signals) and, when the rank ends, exits itself *normally*
with status 128 + signal, which the proxy only passes on. The surviving ranks then decide (engine/
lifeline.py): rank 0 answers the queries in flight naming the lost rank and ends the flock.

When the rank ends the keeper
  - writes `rank-<r>.end` in the run folder (RUN_DIR_ENV): the rank's pid, how it ended, its status
    and when; the supervisor names the lost rank from these files (engine/supervisor.py);
  - tells rank 0, when the rank had handed it its lifeline (KEEPER_FD_ENV): the rank sends the
    socket to the keeper over a socket pair, where it waits in flight, which keeps the connection
    open after the rank's death until the keeper has written one line `END <how>` on it.

No orphans: the keeper dies with the proxy, the rank with the keeper (PR_SET_PDEATHSIG); SIGINT and
SIGTERM (mpiexec forwards a Ctrl-C to the proxies, which signal the keepers) are passed to the rank;
SIGUSR1, the proxy's notice that a process ended under -disable-auto-cleanup, is ignored.

Usage (engine/launch.py builds it): `python -m engine.keeper python -m cli serve …`.
"""
from __future__ import annotations

import array
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from engine.supervisor import RUN_DIR_ENV, die_with_parent

# The file descriptor of the rank's end of the socket pair to its keeper (see the module docstring).
KEEPER_FD_ENV = "FLOCKSQL_KEEPER_FD"


def how_it_ended(status: int) -> str:
    """A Popen return code in words: 'was killed by signal 9', 'exited with status 1'."""
    return f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"


def exit_status(status: int) -> int:
    """The keeper's own exit status for the rank's Popen return code: a signal as 128 + signal."""
    return 128 - status if status < 0 else status


def hand_lifeline(sock: socket.socket) -> bool:
    """In a rank: give the keeper (if any) a copy of the lifeline socket; False without a keeper."""
    fd = os.environ.get(KEEPER_FD_ENV)
    if not fd:
        return False
    try:
        with socket.socket(fileno=os.dup(int(fd))) as pair:
            pair.sendmsg([b"L"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [sock.fileno()]))])
        return True
    except OSError:
        return False


def _lifeline_of(pair: socket.socket) -> socket.socket | None:
    """The lifeline socket the rank handed over, if it did (it waits in the pair's queue)."""
    pair.setblocking(False)
    try:
        _, fds, _, _ = socket.recv_fds(pair, 1, 1)
    except OSError:
        return None
    return socket.socket(fileno=fds[0]) if fds else None


def _record_end(rank: str, pid: int, status: int) -> None:
    run_dir = os.environ.get(RUN_DIR_ENV)
    if not run_dir or not os.path.isdir(run_dir):
        return
    end = {"rank": int(rank), "pid": pid, "how": how_it_ended(status), "status": exit_status(status),
           "time": time.time()}
    path = Path(run_dir, f"rank-{rank}.end")
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(end))
        os.replace(tmp, path)
    except OSError:
        pass


def main(argv: list[str]) -> int:
    die_with_parent()
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    keeper = os.getpid()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    inherited = [int(fd) for fd in os.environ.get("PMI_FD", "").split(",") if fd.strip().isdigit()]
    env = dict(os.environ, **{KEEPER_FD_ENV: str(theirs.fileno())})
    child = subprocess.Popen(argv, env=env, pass_fds=(theirs.fileno(), *inherited), start_new_session=True,
                             preexec_fn=lambda: die_with_parent(signal.SIGKILL, keeper))
    theirs.close()
    for fd in inherited:  # the proxy must see the PMI socket close when the rank ends, not when we do
        try:
            os.close(fd)
        except OSError:
            pass

    def forward(signum, _frame):
        try:
            os.kill(child.pid, signum)
        except ProcessLookupError:
            pass
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    status = child.wait()
    rank = os.environ.get("PMI_RANK", "?")
    _record_end(rank, child.pid, status)
    lifeline = _lifeline_of(ours)
    if lifeline is not None:
        try:
            lifeline.sendall(f"END {how_it_ended(status)}\n".encode())
        except OSError:
            pass
        lifeline.close()
    return exit_status(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
