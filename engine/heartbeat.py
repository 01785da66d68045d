"""Liveness of a flock's ranks across hosts, beside MPI.

MPI does not tell us that a host went away: with a link down, a send waits in TCP retransmission
(minutes), a receive waits for ever, and once UCX's own keepalive gives up MPICH crashes (a
segfault in the next collective) or a query hangs after the link is back. So the ranks watch each
other with small UDP datagrams, which need no connection and cannot block: every rank sends one to
rank 0 every HEARTBEAT_INTERVAL_S and rank 0 answers each. A rank that has heard nothing from a
peer it heard before for PEER_TIMEOUT_ENV seconds ends its process with UNREACHABLE_STATUS: rank 0's
end ends the MPI job (queries in flight fail with Flight `Unavailable`; `flocksql serve --ranks N`
then starts the flock again, engine/supervisor.py), a cut-off worker's end frees its host. A blip
shorter than the timeout costs nothing: TCP retransmits and the query goes on.

Only rank 0 and each worker watch each other (a star): a cut between two workers while both still
reach rank 0 is not seen here. A rank never heard (UDP blocked, rank 0's hostname not resolvable on
its host) is not watched; rank 0's log says so.

`transport_defaults` sets, before MPI starts, UCX's TCP keepalive longer than the peer timeout, so
that UCX does not declare a peer dead first (its default, about 16 s idle, is what crashed MPICH).
"""
from __future__ import annotations

import os
import socket
import struct
import sys
import threading
import time

# Seconds a rank may go unheard before the flock ends (0 or "off": never). Read at start.
PEER_TIMEOUT_ENV = "FLOCKSQL_PEER_TIMEOUT_S"
DEFAULT_PEER_TIMEOUT_S = 30.0
# Exit status of a rank that ends the flock because a peer is unreachable (the supervisor restarts
# after it: it is not among its final statuses).
UNREACHABLE_STATUS = 75
# UCX settings applied unless already in the environment: TCP keepalive probes start after
# UCX_TCP_KEEPIDLE idle seconds and give up after UCX_TCP_KEEPCNT × UCX_TCP_KEEPINTVL more;
# `transport_defaults` makes that sum exceed the peer timeout.
UCX_KEEPINTVL_S, UCX_KEEPCNT = 5, 5


def peer_timeout_s(env=os.environ) -> float | None:
    text = env.get(PEER_TIMEOUT_ENV, "").strip().lower()
    if text in ("0", "off", "none", "inf"):
        return None
    return float(text) if text else DEFAULT_PEER_TIMEOUT_S


def heartbeat_interval_s(timeout_s: float) -> float:
    return max(0.1, min(1.0, timeout_s / 10))


def transport_defaults(env=os.environ) -> None:
    """UCX's TCP keepalive beyond the peer timeout (so the heartbeat decides), unless set."""
    timeout = peer_timeout_s(env) or DEFAULT_PEER_TIMEOUT_S
    env.setdefault("UCX_TCP_KEEPIDLE", str(int(2 * timeout)))
    env.setdefault("UCX_TCP_KEEPINTVL", str(UCX_KEEPINTVL_S))
    env.setdefault("UCX_TCP_KEEPCNT", str(UCX_KEEPCNT))


def log_line(text: str) -> None:
    """A dated line of a rank's own on stderr (the supervisor's log shows it)."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} flocksql: {text}", file=sys.stderr, flush=True)


class Heartbeat:
    """One rank's side of the watch. `start(comm)` is collective (rank 0 tells the others where it
    listens); then a daemon thread sends, receives and, past the timeout, ends the process."""

    def __init__(self, timeout_s: float, exit=os._exit):
        self.timeout_s = timeout_s
        self.interval_s = heartbeat_interval_s(timeout_s)
        self._exit = exit
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.settimeout(self.interval_s)
        self.rank = 0
        self.heard: dict[int, float] = {}  # rank -> monotonic time last heard
        self.peers: dict[int, tuple] = {}  # rank -> address (rank 0 only)
        self.hosts: dict[int, str] = {}
        self.rank0: tuple | None = None
        self._stopped = threading.Event()

    def start(self, comm) -> "Heartbeat":
        """comm: the world communicator (mpi4py); every rank calls this once, in the same place."""
        self.rank = comm.Get_rank()
        where = comm.bcast((socket.gethostname(), self.sock.getsockname()[1]) if self.rank == 0 else None, root=0)
        self.hosts = dict(enumerate(comm.allgather(socket.gethostname())))
        if self.rank != 0:
            try:
                self.rank0 = (socket.gethostbyname(where[0]), where[1])
            except OSError as exc:
                log_line(f"rank {self.rank}: no heartbeat, rank 0's host {where[0]!r} does not resolve here ({exc})")
        threading.Thread(target=self._run, name="flock-heartbeat", daemon=True).start()
        return self

    def _run(self) -> None:
        next_send = 0.0
        while not self._stopped.is_set():
            now = time.monotonic()
            if now >= next_send:
                if self.rank0 is not None:
                    self._send(self.rank0)
                next_send = now + self.interval_s
            try:
                data, addr = self.sock.recvfrom(64)
                if len(data) == 4:
                    peer = struct.unpack("!i", data)[0]
                    self.heard[peer] = time.monotonic()
                    if self.rank == 0:
                        self.peers[peer] = addr
                        self._send(addr)
            except (socket.timeout, OSError):
                pass
            now = time.monotonic()
            for peer, last in list(self.heard.items()):
                if now - last > self.timeout_s and not self._stopped.is_set():
                    host = self.hosts.get(peer, "?")
                    log_line(f"rank {self.rank}: rank {peer} on host {host} unreachable for over {self.timeout_s:g} s "
                         f"(no heartbeat, {PEER_TIMEOUT_ENV}); ending the flock")
                    self._exit(UNREACHABLE_STATUS)
                    return

    def stop(self) -> None:
        """Stop watching (the session is closing: the other ranks go quiet on purpose)."""
        self._stopped.set()

    def _send(self, addr) -> None:
        try:
            self.sock.sendto(struct.pack("!i", self.rank), addr)
        except OSError:
            pass  # unreachable right now (link down): the silence is what the other side counts


def start_heartbeat(comm) -> Heartbeat | None:
    """The watch for this rank of a flock of several ranks (None when switched off)."""
    timeout = peer_timeout_s()
    if timeout is None or comm.Get_size() < 2:
        return None
    return Heartbeat(timeout).start(comm)
