"""One query at a time on the ranks: a queue in front of the (not thread-safe) Session.

Every call the server makes on the Session, queries and catalog look-ups alike, becomes a `Job` that
one runner thread executes in arrival order. gRPC handler threads submit jobs and wait for them.

A job can be cancelled by the client that waits for it (its call was cancelled), by a cancel action,
by the per-query timeout, or by shutdown. A queued job is simply dropped; a running one is stopped
with `Session.cancel()`, which the engine promises is thread-safe and makes the running `execute`
raise `CancelledError` on every rank, freeing the ranks for the next job.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from typing import Any, Callable

from engine.errors import CancelledError
from server.errors import ShuttingDown

log = logging.getLogger("flocksql.server")

# How often a waiting handler thread checks whether its client has gone away, in seconds.
CANCEL_POLL_S = 0.05


class Job:
    """One call on the Session, and its outcome."""

    QUEUED, RUNNING, DONE = "queued", "running", "done"

    def __init__(self, job_id: int, label: str, fn: Callable[[Any], Any]):
        self.id = job_id
        self.label = label
        self.fn = fn
        self.state = Job.QUEUED
        self.result: Any = None
        self.error: BaseException | None = None
        self.cancel_reason: str | None = None
        self.submitted_at = time.monotonic()
        self.started_at: float | None = None
        self.finished = threading.Event()

    def outcome(self):
        if self.error is not None:
            raise self.error
        return self.result

    def __repr__(self) -> str:
        return f"Job({self.id}, {self.label!r}, {self.state})"


class QueryRunner:
    """Runs jobs on the Session one at a time, on its own thread.

    Settings:
      query_timeout_s: a job running longer than this is cancelled (None: no limit). Time spent
        waiting in the queue does not count.
    """

    def __init__(self, session, query_timeout_s: float | None = None):
        self.session = session
        self.query_timeout_s = query_timeout_s
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # guards _current and _stopping
        self._current: Job | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="flocksql-query-runner", daemon=True)
        self._thread.start()

    # --- for handler threads -----------------------------------------------------------------

    def submit(self, label: str, fn: Callable[[Any], Any]) -> Job:
        job = Job(next(self._ids), label, fn)
        with self._lock:
            if self._stopping:
                raise ShuttingDown("not accepting queries")
            self._queue.put(job)
        return job

    def run(self, label: str, fn: Callable[[Any], Any], client_gone: Callable[[], bool] | None = None):
        """Submit `fn(session)` and wait for its result; cancel it if `client_gone()` turns true."""
        job = self.submit(label, fn)
        return self.wait(job, client_gone)

    def wait(self, job: Job, client_gone: Callable[[], bool] | None = None):
        while not job.finished.wait(CANCEL_POLL_S if client_gone else None):
            if client_gone():
                self.cancel(job, "the client cancelled the call")
                # Nobody is left to read the result; the runner finishes the job on its own.
                raise CancelledError(f"query {job.id} cancelled: the client cancelled the call")
        return job.outcome()

    def cancel(self, job: Job, reason: str) -> bool:
        """Stop `job`: drop it if queued, `Session.cancel()` it if running. False if already done."""
        with self._lock:
            if job.state == Job.DONE:
                return False
            if job.cancel_reason is None:
                job.cancel_reason = reason
            if job.state == Job.RUNNING and self._current is job:
                log.info("cancelling query %d (%s): %s", job.id, job.label, reason)
                self.session.cancel()
            return True

    @property
    def current(self) -> Job | None:
        return self._current

    # --- lifecycle ----------------------------------------------------------------------------

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Refuse new jobs, fail queued ones, cancel the running one; True if the thread ended."""
        with self._lock:
            self._stopping = True
            current = self._current
        if current is not None:
            self.cancel(current, "the server is shutting down")
        self._queue.put(None)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    # --- the runner thread --------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                break
            with self._lock:
                if self._stopping:
                    job.error = ShuttingDown("the query was still queued")
                    self._finish(job)
                    continue
                if job.cancel_reason is not None:
                    job.error = CancelledError(f"query {job.id} cancelled while queued: {job.cancel_reason}")
                    self._finish(job)
                    continue
                job.state = Job.RUNNING
                job.started_at = time.monotonic()
                self._current = job
            timer = None
            if self.query_timeout_s:
                timer = threading.Timer(
                    self.query_timeout_s,
                    self.cancel,
                    (job, f"it ran past the server's query timeout of {self.query_timeout_s:g} s"),
                )
                timer.daemon = True
                timer.start()
            try:
                job.result = job.fn(self.session)
            except CancelledError as exc:
                reason = job.cancel_reason
                job.error = CancelledError(f"query {job.id} cancelled: {reason}") if reason else exc
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting handler thread
                job.error = exc
            finally:
                if timer is not None:
                    timer.cancel()
            with self._lock:
                self._current = None
                self._finish(job)
        # Anything still queued behind the stop marker fails rather than hanging its waiter.
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                job.error = ShuttingDown("the query was still queued")
                self._finish(job)

    @staticmethod
    def _finish(job: Job) -> None:
        job.state = Job.DONE
        job.finished.set()
