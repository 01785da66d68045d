"""Queries on the ranks, several at a time: jobs in front of the Session.

Every call the server makes that needs the ranks becomes a `Job`, run on a thread of this runner;
gRPC handler threads submit jobs and wait for them. The Session decides how many run on the ranks
at once (its lanes, engine/lanes.py) and which wait; a Session that runs one query at a time
(`concurrent_queries` of 1) gets one runner thread, so it is only ever called from that thread.
Catalog and metadata look-ups that need no ranks do not come here (`metadata()` runs them at once).

A job can be cancelled by the client that waits for it (its call was cancelled), by a cancel action,
by the per-query timeout, or by shutdown. A queued job is simply dropped; a running one is stopped
through its `QueryToken`: `Session.cancel(token)` is thread-safe and makes the running `execute`
raise `CancelledError` on every rank, freeing its lane for the next job.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from typing import Any, Callable

from engine.errors import CancelledError
from engine.lanes import QueryToken
from server.errors import ShuttingDown
from server.query_log import QueryLog

log = logging.getLogger("flocksql.server")

# How often a waiting handler thread checks whether its client has gone away, in seconds.
CANCEL_POLL_S = 0.05
# Runner threads at most (jobs beyond wait in the queue); the Session admits fewer to the ranks.
MAX_RUNNER_THREADS = 64


class Job:
    """One call on the Session, and its outcome. `fn(session, token)` does the work."""

    QUEUED, RUNNING, DONE = "queued", "running", "done"

    def __init__(self, job_id: int, label: str, fn: Callable[[Any, QueryToken], Any]):
        self.id = job_id
        self.label = label
        self.fn = fn
        self.token = QueryToken(label)
        self.state = Job.QUEUED
        self.result: Any = None
        self.error: BaseException | None = None
        self.cancel_reason: str | None = None
        self.submitted_at = time.monotonic()
        self.started_at: float | None = None
        self.finished = threading.Event()
        self.record = None  # its entry in the runner's QueryLog

    def outcome(self):
        if self.error is not None:
            raise self.error
        return self.result

    def __repr__(self) -> str:
        return f"Job({self.id}, {self.label!r}, {self.state})"


class QueryRunner:
    """Runs jobs on the Session on threads of its own.

    Settings:
      query_timeout_s: a job running longer than this is cancelled (None: no limit). Time spent
        waiting in the queue does not count.
    """

    def __init__(self, session, query_timeout_s: float | None = None):
        self.session = session
        self.log = QueryLog()  # every job's state, for metrics and for people
        self.query_timeout_s = query_timeout_s
        self.concurrent = max(1, int(getattr(session, "concurrent_queries", 1)))
        self._max_threads = 1 if self.concurrent == 1 else MAX_RUNNER_THREADS
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # guards _running, _threads, _idle and _stopping
        self._running: set[Job] = set()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads waiting for a job
        self._pending = 0  # jobs queued and not yet taken by a thread
        self._stopping = False
        self._failed: BaseException | None = None  # the error every job gets once the flock is lost
        self._queued: set[Job] = set()
        self.waiting = 0  # handler threads waiting for a job now

    # --- for handler threads -----------------------------------------------------------------

    def submit(self, label: str, fn: Callable[[Any, QueryToken], Any], sql: str | None = None,
               logged: bool = True) -> Job:
        """`sql`: the whole statement, for the query log (`label` is its short form). An unlogged
        job (the server's own warm-up) has no id and no place in the log or the metrics."""
        job = Job(next(self._ids) if logged else 0, label, fn)
        with self._lock:
            if self._failed is not None:
                raise self._failed
            if self._stopping:
                raise ShuttingDown("not accepting queries")
            if logged:
                job.record = self.log.queued(label, sql, lambda reason: self.cancel(job, reason))
            self._queued.add(job)
            self._queue.put(job)
            # A thread waiting for work takes it; else one more thread, up to the limit.
            self._pending += 1
            if self._pending > self._idle and len(self._threads) < self._max_threads:
                name = "flocksql-query-runner" + (f"-{len(self._threads)}" if self._max_threads > 1 else "")
                thread = threading.Thread(target=self._loop, name=name, daemon=True)
                self._threads.append(thread)
                self._idle += 1
                thread.start()
        return job

    def run(self, label: str, fn: Callable[[Any, QueryToken], Any], client_gone: Callable[[], bool] | None = None,
            sql: str | None = None):
        """Submit `fn(session, token)` and wait for its result; cancel it if `client_gone()` turns true."""
        job = self.submit(label, fn, sql)
        return self.wait(job, client_gone)

    def unlogged(self, label: str, fn: Callable[[Any], Any]):
        """`fn(session)` on the runner's terms (on its thread when the Session takes one caller),
        kept out of the query log and the metrics: the server's own work, not a client's."""
        if self.concurrent > 1:
            return fn(self.session)
        return self.wait(self.submit(label, lambda session, token: fn(session), logged=False))

    def metadata(self, label: str, fn: Callable[[Any], Any], client_gone: Callable[[], bool] | None = None):
        """`fn(session)` for a look-up that needs no ranks: at once on this thread when the Session
        takes calls from several threads, else as a job like any other."""
        if self.concurrent > 1:
            return fn(self.session)
        return self.run(label, lambda session, token: fn(session), client_gone)

    def wait(self, job: Job, client_gone: Callable[[], bool] | None = None):
        with self._lock:
            self.waiting += 1
        try:
            while not job.finished.wait(CANCEL_POLL_S if client_gone else None):
                if client_gone():
                    self.cancel(job, "the client cancelled the call")
                    # Nobody is left to read the result; the runner finishes the job on its own.
                    raise CancelledError(f"query {job.id} cancelled: the client cancelled the call")
            return job.outcome()
        finally:
            with self._lock:
                self.waiting -= 1

    def fail(self, error: BaseException) -> None:
        """The flock is lost: every job queued or running ends now with `error` (its waiter gets it
        at once; a runner thread stuck in the job stays stuck), and so does every job submitted."""
        with self._lock:
            self._failed = error
            jobs = self._queued | self._running
            for job in jobs:
                job.error = error
                self._finish(job)

    def cancel(self, job: Job, reason: str) -> bool:
        """Stop `job`: drop it if queued, cancel its token if running. False if already done."""
        with self._lock:
            if job.state == Job.DONE:
                return False
            if job.cancel_reason is None:
                job.cancel_reason = reason
            running = job.state == Job.RUNNING
        if running:
            log.info("cancelling query %d (%s): %s", job.id, job.label, reason)
            self.session.cancel(job.token, reason)
        return True

    @property
    def current(self) -> Job | None:
        """A running job (the running one, with one runner thread), or None."""
        with self._lock:
            return next(iter(self._running), None)

    @property
    def running(self) -> list[Job]:
        with self._lock:
            return sorted(self._running, key=lambda j: j.id)

    # --- lifecycle ----------------------------------------------------------------------------

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Refuse new jobs, fail queued ones, cancel the running ones; True if every thread ended."""
        with self._lock:
            self._stopping = True
            running = list(self._running)
            threads = list(self._threads)
        for job in running:
            self.cancel(job, "the server is shutting down")
        for _ in threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout_s
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._fail_queued()
        return not any(t.is_alive() for t in threads)

    # --- the runner threads -------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                self._idle -= 1
                self._pending -= 1
                self._queued.discard(job)
            self._run_job(job)
            with self._lock:
                self._idle += 1

    def _run_job(self, job: Job) -> None:
        with self._lock:
            if job.state == Job.DONE:  # failed while queued (see fail)
                return
            if self._stopping:
                job.error = ShuttingDown("the query was still queued")
                self._finish(job)
                return
            if job.cancel_reason is not None:
                job.error = CancelledError(f"query {job.id} cancelled while queued: {job.cancel_reason}")
                self._finish(job)
                return
            job.state = Job.RUNNING
            job.started_at = time.monotonic()
            self._running.add(job)
        if job.record is not None:
            self.log.running(job.record)
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
            job.result = job.fn(self.session, job.token)
        except CancelledError as exc:
            reason = job.cancel_reason
            job.error = CancelledError(f"query {job.id} cancelled: {reason}") if reason else exc
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting handler thread
            job.error = exc
        finally:
            if timer is not None:
                timer.cancel()
        with self._lock:
            self._running.discard(job)
            if job.state != Job.DONE:  # else failed meanwhile (see fail): its waiter has its answer
                self._finish(job)

    def _fail_queued(self) -> None:
        # Anything still queued fails rather than hanging its waiter.
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None and job.state != Job.DONE:
                job.error = ShuttingDown("the query was still queued")
                self._finish(job)

    def _finish(self, job: Job) -> None:
        job.state = Job.DONE
        if job.record is not None:
            self.log.ended(job.record, job.token.stats, job.error, job.result)
        job.finished.set()
