"""Which rank died, known at once: a connection from every worker rank to rank 0, beside MPI.

MPI does not say that a peer died: on one host a receive from a dead rank waits for ever (shared
memory), and MPICH's process manager, left to itself, kills every other rank the same moment, so no
client learns why its query broke. So each worker holds one stream socket connected to rank 0 (a
Unix socket on rank 0's host, TCP from other hosts) and rank 0 one to each worker; nothing flows on
them while all is well. The kernel closes a process's sockets when it dies, whatever killed it:
  - a worker's connection closes: rank 0 knows which rank at once, and how it ended when the rank's
    keeper (engine/keeper.py) wrote `END <how>` first. It hands a `LostRank` to every `on_lost`
    callback (the server fails the queries in flight with it, naming the rank), logs it, notes it in
    the run folder, and ends its process with LOST_PEER_STATUS: a rank stuck in an MPI call with a
    dead peer never returns, so nothing waits for one. `flocksql serve --ranks N` then starts the
    flock again (engine/supervisor.py);
  - rank 0's connection closes: each worker ends its process (LOST_PEER_STATUS) at once.
A clean stop says `BYE` first, so ranks that end then are not lost ones.

The engine/heartbeat.py watch covers what a socket cannot: a host cut off (no FIN ever arrives).
"""
from __future__ import annotations

import os
import secrets
import selectors
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine.heartbeat import log_line

# Exit status of a rank that ends because another rank of its flock was lost (the supervisor names
# the rank that was lost, not the ones that followed it, and restarts: not a final status).
LOST_PEER_STATUS = 76
# Seconds rank 0 gives the `on_lost` callbacks (the server answering its clients) before it ends.
LOST_ANSWER_S = 2.0
# Seconds a worker tries to connect to rank 0 at start before it goes unwatched (rank 0 logs it).
CONNECT_TIMEOUT_S = 10.0
# Where rank 0 notes the lost rank for the supervisor (in the run folder, RUN_DIR_ENV).
LOST_NOTE = "lost.txt"


@dataclass(frozen=True, slots=True)
class LostRank:
    """A worker rank whose process ended: its rank, pid and host, and how it ended if known."""
    rank: int
    pid: int | None
    host: str
    how: str  # "was killed by signal 9", "exited with status 1", "ended"

    def message(self) -> str:
        cause = "its process ended" if self.how == "ended" else self.how.removeprefix("was ")
        return f"rank {self.rank} was lost ({cause}); the flock is restarting — retry in a few seconds"

    def error(self):
        from engine.errors import RankLostError
        return RankLostError(self.message())


class Lifeline:
    """One rank's side. `start(comm)` is collective; then a daemon thread watches the connections."""

    def __init__(self, exit: Callable[[int], None] = os._exit):
        self._exit = exit
        self.rank = 0
        self.token = ""
        self.pids: dict[int, int] = {}  # rank -> pid (rank 0)
        self.hosts: dict[int, str] = {}
        self._callbacks: list[Callable[[LostRank], None]] = []
        self._closing = threading.Event()
        self._lost_once = threading.Lock()
        self._conns: list[socket.socket] = []  # rank 0: one per worker; a worker: its one
        self._listeners: list[socket.socket] = []

    # --- start ---------------------------------------------------------------------------------

    def start(self, comm) -> "Lifeline":
        """comm: the world communicator (mpi4py); every rank calls this once, in the same place."""
        self.rank = comm.Get_rank()
        where = None
        if self.rank == 0:
            self.token = secrets.token_hex(16)
            tcp = socket.create_server(("0.0.0.0", 0), backlog=1024)
            unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            name = f"\0flocksql-lifeline-{os.getpid()}-{self.token[:12]}"
            unix.bind(name)
            unix.listen(1024)
            self._listeners = [tcp, unix]
            where = (socket.gethostname(), tcp.getsockname()[1], name, self.token)
        where = comm.bcast(where, root=0)
        facts = comm.allgather((os.getpid(), socket.gethostname()))
        self.pids = {r: f[0] for r, f in enumerate(facts)}
        self.hosts = {r: f[1] for r, f in enumerate(facts)}
        if self.rank == 0:
            threading.Thread(target=self._watch_workers, name="flock-lifeline", daemon=True).start()
        else:
            self.token = where[3]
            sock = self._connect(where)
            if sock is not None:
                from engine.keeper import hand_lifeline
                hand_lifeline(sock)
                self._conns = [sock]
                threading.Thread(target=self._watch_rank0, args=(sock,), name="flock-lifeline", daemon=True).start()
        comm.Barrier()  # every worker connected (or given up) before any query
        return self

    def _connect(self, where) -> socket.socket | None:
        host, port, name, token = where
        attempts = []
        if host == socket.gethostname():
            attempts.append((socket.AF_UNIX, name))
        try:
            attempts.append((socket.AF_INET, (socket.gethostbyname(host), port)))
        except OSError as exc:
            log_line(f"rank {self.rank}: no lifeline, rank 0's host {host!r} does not resolve here ({exc})")
        for family, address in attempts:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(CONNECT_TIMEOUT_S)
            try:
                sock.connect(address)
                sock.sendall(f"HELLO {self.rank} {token}\n".encode())
                sock.settimeout(None)
                return sock
            except OSError:
                sock.close()
        log_line(f"rank {self.rank}: no lifeline to rank 0 on {host}: if rank 0 dies this rank ends only by the "
             "heartbeat's timeout")
        return None

    # --- rank 0 --------------------------------------------------------------------------------

    def on_lost(self, callback: Callable[[LostRank], None]) -> None:
        """Rank 0: call `callback(lost)` when a worker is lost, before this process ends."""
        self._callbacks.append(callback)

    def _watch_workers(self) -> None:
        sel = selectors.DefaultSelector()
        for listener in self._listeners:
            sel.register(listener, selectors.EVENT_READ, None)
        state: dict[socket.socket, dict] = {}
        while True:
            for key, _ in sel.select():
                sock = key.fileobj
                if sock in self._listeners:
                    try:
                        conn, _ = sock.accept()
                    except OSError:
                        continue
                    state[conn] = {"rank": None, "how": None, "buf": b""}
                    sel.register(conn, selectors.EVENT_READ, None)
                    continue
                try:
                    data = sock.recv(4096)
                except OSError:
                    data = b""
                st = state[sock]
                st["buf"] += data
                *lines, st["buf"] = st["buf"].split(b"\n")
                for line in lines:
                    words = line.decode(errors="replace").split(" ", 1)
                    if words[0] == "HELLO" and len(words) == 2:
                        rank, _, token = words[1].partition(" ")
                        if token == self.token and rank.isdigit():
                            st["rank"] = int(rank)
                            self._conns.append(sock)
                    elif words[0] == "END" and len(words) == 2 and st["rank"] is not None:
                        st["how"] = words[1]
                if data:
                    continue
                sel.unregister(sock)
                sock.close()
                state.pop(sock)
                rank = st["rank"]
                if rank is not None and not self._closing.is_set():
                    self._lost(LostRank(rank, self.pids.get(rank), self.hosts.get(rank, "?"), st["how"] or "ended"))

    def _lost(self, lost: LostRank) -> None:
        if not self._lost_once.acquire(blocking=False):
            return
        where = f"pid {lost.pid} on {lost.host}" if lost.pid else lost.host
        log_line(f"rank {lost.rank} ({where}) {lost.how}; answering the queries in flight and ending the flock")
        from engine.supervisor import RUN_DIR_ENV
        run_dir = os.environ.get(RUN_DIR_ENV)
        if run_dir and os.path.isdir(run_dir):
            try:
                Path(run_dir, LOST_NOTE).write_text(f"rank {lost.rank} (pid {lost.pid}) {lost.how}")
            except OSError:
                pass
        done = threading.Event()

        def answer():
            for callback in self._callbacks:
                try:
                    callback(lost)
                except Exception as exc:  # noqa: BLE001 - the flock ends whatever a callback does
                    log_line(f"rank 0: answering the queries in flight failed: {type(exc).__name__}: {exc}")
            done.set()
        threading.Thread(target=answer, name="flock-lost", daemon=True).start()
        done.wait(LOST_ANSWER_S)
        self._exit(LOST_PEER_STATUS)

    def close(self) -> None:
        """A clean stop: the ranks that end from now on are not lost (rank 0 tells the workers)."""
        self._closing.set()
        if self.rank == 0:
            for conn in list(self._conns):
                try:
                    conn.sendall(b"BYE\n")
                except OSError:
                    pass

    # --- a worker ------------------------------------------------------------------------------

    def _watch_rank0(self, sock: socket.socket) -> None:
        buf = b""
        while True:
            try:
                data = sock.recv(64)
            except OSError:
                data = b""
            buf = (buf + data)[-16:]
            if b"BYE\n" in buf:
                self._closing.set()
            if not data:
                if not self._closing.is_set():
                    log_line(f"rank {self.rank}: rank 0 (pid {self.pids.get(0)} on {self.hosts.get(0)}) was lost; "
                         "ending this rank")
                    self._exit(LOST_PEER_STATUS)
                return


def start_lifeline(comm) -> Lifeline | None:
    """The lifeline of this rank of a flock of several ranks (None with one rank)."""
    if comm.Get_size() < 2:
        return None
    return Lifeline().start(comm)
