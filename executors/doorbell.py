"""Waking a waiting rank without spinning: a one-byte UDP datagram beside an MPI message.

MPI's blocking receive spins on a core, so a worker waits for rank 0's next message by probing in
a loop, and the probing rate was a trade: every 50 µs after a query (a worker of a 3-rank server
answering a query every 0.3 s used ~11 % of a core doing nothing), every 2 ms once idle (2 %
each, and up to 2 ms more for the next query). With the doorbell, rank 0 rings each worker after
sending it a message; a worker sleeps in select() on its socket between probes, so it wakes at
once and costs nothing while idle.

UDP can be lost or blocked, so a ring is only ever a hint: a worker also probes every
FALLBACK_POLL_S (less often the longer it waits), and one whose test ring at start did not arrive
keeps the old probing schedule.
A lost ring therefore costs latency, never a message. Knows nothing about SQL.
"""
from __future__ import annotations

import select
import socket
import struct
import time

from executors.comm import wait_politely, polite_sleep_s

# How long rank 0 waits at start for every worker's hello, and a worker for the test ring.
HANDSHAKE_S = 2.0
# A ringing worker still probes, every FALLBACK_POLL_S at first and less often the longer it has
# waited (a twentieth of that time, at most FALLBACK_POLL_MAX_S): a lost datagram delays a message
# by at most about 5 % of the idle time before it, and an idle worker wakes 10 times a second.
FALLBACK_POLL_S, FALLBACK_POLL_MAX_S = 0.01, 0.1
# After a ring, probe this long before sleeping again: over TCP the datagram can overtake the MPI
# message it announces.
AFTER_RING_S = 0.005
AFTER_RING_POLL_S = 0.00005
_HELLO, _TEST = b"H", b"T"


class Doorbell:
    """One rank's side. `open(comm)` is collective; afterwards rank 0 `ring()`s the workers that
    heard the test ring, and those workers `wait(probe)` for their next message."""

    def __init__(self, sock: socket.socket, rank: int, workers: dict[int, tuple] | None, works: bool):
        self.sock = sock
        self.rank = rank
        self.workers = workers or {}  # rank 0: worker rank -> address its hello came from
        self.works = works  # a worker: whether the test ring arrived (else: probe as before)

    @classmethod
    def open(cls, comm) -> "Doorbell":
        """comm: an mpi4py communicator of the flock; every rank calls this once, in the same place."""
        rank = comm.Get_rank()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", 0))
        sock.setblocking(False)
        wait_politely(comm.Ibarrier().Test)  # the bcast would spin while rank 0 comes
        where = comm.bcast((socket.gethostname(), sock.getsockname()[1]) if rank == 0 else None, root=0)
        if rank != 0:
            try:
                sock.sendto(_HELLO + struct.pack("!i", rank), (socket.gethostbyname(where[0]), where[1]))
            except OSError:
                pass  # rank 0 does not hear us: we keep probing as before
        workers = _hellos(sock, comm.Get_size()) if rank == 0 else None
        if rank == 0:
            for addr in workers.values():
                _send(sock, _TEST, addr)
        works = rank != 0 and _heard(sock, _TEST)
        heard = comm.allgather(works)
        if rank == 0:
            workers = {r: addr for r, addr in workers.items() if heard[r]}
        return cls(sock, rank, workers, works)

    def ring(self) -> None:
        """Rank 0, after sending every worker a message."""
        for addr in self.workers.values():
            _send(self.sock, b"R", addr)

    def wait(self, timeout_s: float) -> bool:
        """A worker: sleep until a ring or `timeout_s`; True when it rang (rings are drained)."""
        ready, _, _ = select.select([self.sock], [], [], timeout_s)
        rang = False
        while ready:
            try:
                self.sock.recv(16)
                rang = True
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
        return rang

    def close(self) -> None:
        self.sock.close()


def wait_for_message(probe, doorbell: Doorbell | None, idle_sleep_s) -> None:
    """Returns once `probe()` is true. With a working doorbell: sleep until it rings (or the
    fallback interval passes), then probe briefly; without: probe, sleeping `idle_sleep_s(idle seconds)`."""
    since = time.monotonic()
    if doorbell is None or not doorbell.works:
        while not probe():
            time.sleep(idle_sleep_s(time.monotonic() - since))
        return
    while not probe():
        if doorbell.wait(polite_sleep_s(time.monotonic() - since, FALLBACK_POLL_S, FALLBACK_POLL_MAX_S)):
            until = time.monotonic() + AFTER_RING_S
            while time.monotonic() < until:
                if probe():
                    return
                time.sleep(AFTER_RING_POLL_S)


def _send(sock: socket.socket, data: bytes, addr) -> None:
    try:
        sock.sendto(data, addr)
    except OSError:
        pass  # unreachable now: the worker's fallback probing finds the message


def _hellos(sock: socket.socket, size: int) -> dict[int, tuple]:
    """Rank 0: the address each worker's hello came from (as this host sees it)."""
    found: dict[int, tuple] = {}
    deadline = time.monotonic() + HANDSHAKE_S
    while len(found) < size - 1 and time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            data, addr = sock.recvfrom(16)
        except (BlockingIOError, InterruptedError, OSError):
            continue
        if len(data) == 5 and data[:1] == _HELLO:
            found[struct.unpack("!i", data[1:])[0]] = addr
    return found


def _heard(sock: socket.socket, what: bytes) -> bool:
    """A worker: whether `what` arrives within HANDSHAKE_S."""
    deadline = time.monotonic() + HANDSHAKE_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return False
        try:
            if sock.recv(16) == what:
                return True
        except (BlockingIOError, InterruptedError, OSError):
            continue
    return False
