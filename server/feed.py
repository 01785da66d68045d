"""A streamed result handed from the thread that computes it to the gRPC thread that sends it.

A DoGet of a streamed query used to compute each batch on the gRPC thread itself; a thread stuck in
an MPI call (a rank died mid-query: the call never returns) could then never answer its client. So
the batches are computed on a thread of their own and pass through a short queue: the gRPC thread
waits for the next one in slices of POLL_S, and between slices it may give up and answer the client
(the flock was lost, the client went away) whatever the computing thread is doing.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator

# Batches computed ahead of the one being sent (each at most Session.stream's batch size).
FEED_DEPTH = 2
# How often a waiting gRPC thread looks up from the queue, in seconds.
POLL_S = 0.05

_END = object()


class Feed:
    """Runs `open_batches()` (an iterator of batches) on a thread of its own; `next_batch` hands them
    over. `close()` stops the iterator (closing it on its own thread) and waits for the thread."""

    def __init__(self, open_batches: Callable[[], Iterator], name: str = "flocksql-feed"):
        self._open = open_batches
        self._queue: queue.Queue = queue.Queue(FEED_DEPTH)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        batches = None
        try:
            batches = self._open()
            for batch in batches:
                if not self._put(batch):
                    return
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, who raises it
            self._put(exc)
        finally:
            if batches is not None and hasattr(batches, "close"):
                batches.close()  # stops the query on every rank if it has not ended

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def next_batch(self, give_up: Callable[[], BaseException | None]):
        """The next batch, or None at the end. Raises what computing it raised, or what `give_up()`
        returns (checked every POLL_S while waiting) without waiting any longer."""
        while True:
            try:
                item = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                reason = give_up()
                if reason is not None:
                    raise reason
                continue
            if item is _END:
                return None
            if isinstance(item, BaseException):
                raise item
            return item

    def close(self, wait: bool = True) -> None:
        """Stop computing; with `wait`, until the computing thread has ended (the iterator closed)."""
        self._stop.set()
        if wait:
            self._thread.join()


class InlineFeed:
    """Feed's interface, computing each batch on the caller's thread: for a stream that involves no
    other rank (one rank, or a plan rank 0 runs alone), where no MPI call can hang on a lost rank,
    and a thread and two hand-overs per query would be a third of a `select 1`'s time."""

    def __init__(self, open_batches: Callable[[], Iterator]):
        self._batches = open_batches()

    def next_batch(self, give_up: Callable[[], BaseException | None]):
        reason = give_up()
        if reason is not None:
            raise reason
        return next(self._batches, None)

    def close(self, wait: bool = True) -> None:
        if hasattr(self._batches, "close"):
            self._batches.close()
