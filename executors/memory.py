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
from contextlib import contextmanager

# Seconds between two readings of the current RSS while a query runs: a read of /proc/self/statm
# costs a few microseconds, so even at 100 per second it is far below a query's own work.
RSS_SAMPLE_S = 0.01
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_bytes() -> int:
    """This process's resident memory now; 0 where /proc is not there (not Linux)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


def lifetime_peak_rss_bytes() -> int:
    """The process's RSS high-water mark since it started (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class RssWatch:
    """Context manager: `start_bytes` and `peak_bytes` of the RSS over the `with` block."""

    def __init__(self, sample_s: float = RSS_SAMPLE_S):
        self.sample_s = sample_s
        self.start_bytes = self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lifetime_before = 0

    def _sample(self) -> None:
        while not self._stop.wait(self.sample_s):
            self.peak_bytes = max(self.peak_bytes, current_rss_bytes())

    def __enter__(self) -> "RssWatch":
        self._lifetime_before = lifetime_peak_rss_bytes()
        self.start_bytes = self.peak_bytes = current_rss_bytes()
        self._thread = threading.Thread(target=self._sample, name="flocksql-rss", daemon=True)
        self._thread.start()
        return self

    def so_far(self) -> tuple[int, int]:
        """(start, peak) bytes while the block still runs (the sampler may not have seen now)."""
        return self.start_bytes, max(self.peak_bytes, current_rss_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, current_rss_bytes())
        lifetime_after = lifetime_peak_rss_bytes()
        if lifetime_after > self._lifetime_before:
            # The process reached a new high during the query: that mark is the query's peak, exactly.
            self.peak_bytes = max(self.peak_bytes, lifetime_after)


@contextmanager
def watch_memory(stats):
    """Measures the RSS over a `with` block into `stats` (a RunStats): start_rss_bytes, peak_rss_bytes."""
    watch = RssWatch()
    try:
        with watch:
            yield watch
    finally:
        stats.start_rss_bytes, stats.peak_rss_bytes = watch.start_bytes, watch.peak_bytes
