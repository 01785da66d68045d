"""A query's peak memory on one rank: the process's resident set (RSS) high-water mark while the
query runs, for EXPLAIN ANALYZE, the query log and the console.

What it measures, honestly: the whole process (DuckDB's buffers, Arrow tables, received exchange
buffers, Python), so queries of other lanes running at the same time are in it too. Two sources:
a thread that reads the current RSS every RSS_SAMPLE_S (it can miss a spike shorter than that),
and the kernel's own high-water mark (getrusage), which is exact but for the process's whole life:
when it rose during the query, its new value is the query's peak.
"""
from __future__ import annotations

import os
import resource
import threading
import time
from contextlib import contextmanager

# Seconds between two readings of the current RSS while a query runs: a read of /proc/self/statm
# costs a few microseconds, so even at 100 per second it is far below a query's own work.
RSS_SAMPLE_S = 0.01
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


_statm: tuple[int, int] | None = None  # (pid, descriptor of /proc/self/statm) kept open


def current_rss_bytes() -> int:
    """This process's resident memory now; 0 where /proc is not there (not Linux). The file stays
    open (a query reads it a few times; opening it cost more than reading): /proc regenerates it
    on each read from its start."""
    global _statm
    try:
        if _statm is None or _statm[0] != os.getpid():
            _statm = (os.getpid(), os.open("/proc/self/statm", os.O_RDONLY))
        return int(os.pread(_statm[1], 128, 0).split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


def lifetime_peak_rss_bytes() -> int:
    """The process's RSS high-water mark since it started (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _Sampler:
    """One thread per process that reads the RSS every RSS_SAMPLE_S for every watch open now, and
    sleeps while none is: a query then costs two set operations, not a thread started and
    joined (which was a tenth of a millisecond of a `select 1`)."""

    def __init__(self, sample_s: float):
        self.sample_s = sample_s
        self._watches: set[RssWatch] = set()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, watch: "RssWatch") -> None:
        with self._wake:
            self._watches.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="flocksql-rss", daemon=True)
                self._thread.start()
            self._wake.notify()

    def discard(self, watch: "RssWatch") -> None:
        with self._wake:
            self._watches.discard(watch)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._watches:
                    self._wake.wait()
                watches = list(self._watches)
            now = current_rss_bytes()
            for watch in watches:
                watch.saw(now)
            time.sleep(self.sample_s)


class RssWatch:
    """Context manager: `start_bytes` and `peak_bytes` of the RSS over the `with` block."""

    def __init__(self, sample_s: float = RSS_SAMPLE_S):
        self.start_bytes = self.peak_bytes = 0
        self._lifetime_before = 0
        self._sampler = _sampler(sample_s)

    def saw(self, rss_bytes: int) -> None:
        if rss_bytes > self.peak_bytes:
            self.peak_bytes = rss_bytes

    def __enter__(self) -> "RssWatch":
        self._lifetime_before = lifetime_peak_rss_bytes()
        self.start_bytes = self.peak_bytes = current_rss_bytes()
        self._sampler.add(self)
        return self

    def so_far(self) -> tuple[int, int]:
        """(start, peak) bytes while the block still runs (the sampler may not have seen now)."""
        return self.start_bytes, max(self.peak_bytes, current_rss_bytes())

    def __exit__(self, *exc) -> None:
        self._sampler.discard(self)
        self.saw(current_rss_bytes())
        lifetime_after = lifetime_peak_rss_bytes()
        if lifetime_after > self._lifetime_before:
            # The process reached a new high during the query: that mark is the query's peak, exactly.
            self.saw(lifetime_after)


_samplers: dict[float, _Sampler] = {}
_samplers_lock = threading.Lock()


def _sampler(sample_s: float) -> _Sampler:
    with _samplers_lock:
        if sample_s not in _samplers:
            _samplers[sample_s] = _Sampler(sample_s)
        return _samplers[sample_s]


@contextmanager
def watch_memory(stats):
    """Measures the RSS over a `with` block into `stats` (a RunStats): start_rss_bytes, peak_rss_bytes."""
    watch = RssWatch()
    try:
        with watch:
            yield watch
    finally:
        stats.start_rss_bytes, stats.peak_rss_bytes = watch.start_bytes, watch.peak_bytes
