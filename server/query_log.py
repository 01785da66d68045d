"""The server's record of its queries: each one's state (queued → running → finished | failed |
cancelled), times, rows, the bytes its exchanges moved and each rank's peak memory; the running ones and the most recent
ended ones. The query runner (server/runner.py) and the streaming DoGet (server/flight_sql.py)
report to it; the metrics endpoint (server/metrics.py) listens to it.
"""
from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from engine.errors import CancelledError
from planner.explain import peak_memory_bytes

# Ended queries kept for anyone who asks what ran lately.
RECENT_QUERIES = 200

QUEUED, RUNNING, FINISHED, FAILED, CANCELLED = "queued", "running", "finished", "failed", "cancelled"
STATES = (QUEUED, RUNNING, FINISHED, FAILED, CANCELLED)


@dataclass
class QueryRecord:
    id: int
    label: str
    state: str = QUEUED
    submitted: float = 0.0          # time.time()
    started: float | None = None
    ended: float | None = None
    rows: int | None = None
    bytes_moved: int = 0            # sent by exchanges, over the ranks whose statistics came back
    bytes_spilled: int = 0
    # Per rank (of the ranks whose statistics came back), the process's RSS high-water mark while
    # the query ran (executors/memory.py); empty when none came back.
    peak_memory_bytes: list = field(default_factory=list)
    error: str | None = None
    sql: str | None = None          # the whole statement, where the reporter gave it (label: its start)
    # Stops the query (argument: the reason), where the reporter gave a way; for the console.
    cancel: Callable[[str], object] | None = field(default=None, repr=False, compare=False)

    @property
    def seconds(self) -> float | None:
        """Running time (queueing not counted): so far, or in all once ended."""
        if self.started is None:
            return None
        return (self.ended or time.time()) - self.started


def _rows(result) -> int | None:
    if isinstance(result, int):
        return result if result >= 0 else None
    if isinstance(result, (list, tuple)) and all(hasattr(t, "num_rows") for t in result):
        return sum(t.num_rows for t in result)
    return None


class QueryLog:
    """Thread-safe. Listeners get (record, previous state) on every change, outside the lock."""

    def __init__(self, keep: int = RECENT_QUERIES):
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._live: dict[int, QueryRecord] = {}
        self._recent: deque[QueryRecord] = deque(maxlen=keep)
        self._listeners: list[Callable[[QueryRecord, str | None], None]] = []

    def subscribe(self, listener: Callable[[QueryRecord, str | None], None]) -> None:
        self._listeners.append(listener)

    def _tell(self, record: QueryRecord, previous: str | None) -> None:
        for listener in list(self._listeners):
            listener(record, previous)

    def queued(self, label: str, sql: str | None = None,
               cancel: Callable[[str], object] | None = None) -> QueryRecord:
        record = QueryRecord(next(self._ids), label, submitted=time.time(), sql=sql, cancel=cancel)
        with self._lock:
            self._live[record.id] = record
        self._tell(record, None)
        return record

    def running(self, record: QueryRecord) -> None:
        with self._lock:
            previous, record.state, record.started = record.state, RUNNING, time.time()
        self._tell(record, previous)

    def ended(self, record: QueryRecord, per_rank_stats=None, error: BaseException | None = None,
              result=None) -> None:
        """The query ended: with `error` (a CancelledError: cancelled), else finished with `result`
        (tables or a row count). `per_rank_stats`: the RunStats its ranks sent back, if any."""
        stages = [st for rs in per_rank_stats or [] if rs is not None for st in rs.stages.values()]
        with self._lock:
            previous = record.state
            record.state = CANCELLED if isinstance(error, CancelledError) else FAILED if error else FINISHED
            record.ended = time.time()
            record.started = record.started or record.ended
            record.error = None if error is None else str(error)
            record.rows = _rows(result) if error is None else None
            record.bytes_moved = sum(st.bytes_out for st in stages)
            record.bytes_spilled = sum(st.bytes_spilled for st in stages)
            record.peak_memory_bytes = peak_memory_bytes(per_rank_stats)
            self._live.pop(record.id, None)
            self._recent.appendleft(record)
        self._tell(record, previous)

    def snapshot(self) -> tuple[list[QueryRecord], list[QueryRecord]]:
        """(live queries by id, ended ones newest first)."""
        with self._lock:
            return sorted(self._live.values(), key=lambda r: r.id), list(self._recent)
