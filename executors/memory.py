"""A query's peak memory on one rank: the process's resident set (RSS) high-water mark while the
query runs, for EXPLAIN ANALYZE, the query log and the console.

What it measures, honestly: the whole process (DuckDB's buffers, Arrow tables, received exchange
buffers, Python), so queries of other lanes running at the same time are in it too. On Linux the
kernel keeps the mark (VmHWM in /proc/self/status) and lets a process reset it to the current RSS
(writing 5 to /proc/self/clear_refs): a query resets it when it starts, after folding the mark so
far into every query still running, and reads it at its end. That is exact and costs no thread.
Where the mark cannot be reset, a thread reads the current RSS every RSS_SAMPLE_S (it can miss a
spike shorter than that) and the lifetime mark (getrusage) counts when it rose during the query.
A sampling thread per rank cost 3-5 % of TPC-H at 2 ranks on 2 cores (Q2, Q5, Q10 at SF 1).
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


def current_rss_bytes() -> int:
    """This process's resident memory now; 0 where /proc is not there (not Linux)."""
    try:
        return int(_proc_file("/proc/self/statm", os.O_RDONLY).read().split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


def lifetime_peak_rss_bytes() -> int:
    """The process's RSS high-water mark since it started (getrusage reports KiB on Linux; the
    kernel's mark forgets what came before a reset, which _ResettableMark remembers)."""
    kernel = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return max(kernel, _mark.before_resets) if _mark is not None else kernel


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


class _ResettableMark:
    """The kernel's RSS high-water mark, reset when a watch starts (see the module docstring)."""

    def __init__(self, before: int):
        self._watches: set[RssWatch] = set()
        self._lock = threading.Lock()
        self.before_resets = before  # the highest mark any reset forgot: the process's peak before it

    @classmethod
    def open(cls) -> "_ResettableMark | None":
        """The mark where this system lets it be read and reset, else None."""
        try:
            before = high_water_mark_bytes()
            _reset_high_water_mark()
            return cls(before) if high_water_mark_bytes() > 0 else None
        except OSError:
            return None

    def add(self, watch: "RssWatch") -> None:
        with self._lock:
            mark = high_water_mark_bytes()
            for other in self._watches:
                other.saw(mark)  # the reset below forgets it
            self.before_resets = max(self.before_resets, mark)
            _reset_high_water_mark()
            self._watches.add(watch)

    def discard(self, watch: "RssWatch") -> None:
        with self._lock:
            self._watches.discard(watch)
            watch.saw(high_water_mark_bytes())

    def so_far(self) -> int:
        return high_water_mark_bytes()


def high_water_mark_bytes() -> int:
    """The RSS high-water mark since the process started or since its last reset (Linux)."""
    status = _proc_file("/proc/self/status", os.O_RDONLY).read()
    start = status.find(b"VmHWM:")
    return int(status[start + 6:status.index(b"kB", start)]) * 1024 if start >= 0 else 0


def _reset_high_water_mark() -> None:
    _proc_file("/proc/self/clear_refs", os.O_WRONLY).write(b"5")


class _ProcFile:
    """A /proc file of this process kept open: a query reads its RSS and mark several times and
    resets the mark once, and opening the file cost as much as reading it again (the kernel makes
    the text anew on each read from its start)."""

    def __init__(self, path: str, flags: int):
        self.pid, self.fd = os.getpid(), os.open(path, flags)

    def read(self) -> bytes:
        return os.pread(self.fd, 8192, 0)

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)


_proc_files: dict[str, _ProcFile] = {}


def _proc_file(path: str, flags: int) -> _ProcFile:
    kept = _proc_files.get(path)
    if kept is None or kept.pid != os.getpid():  # a forked child has its own /proc/self
        kept = _proc_files[path] = _ProcFile(path, flags)
    return kept


_mark: _ResettableMark | None = None
_mark_checked = False


def _resettable_mark() -> _ResettableMark | None:
    global _mark, _mark_checked
    with _samplers_lock:
        if not _mark_checked:
            _mark_checked = True
            _mark = _ResettableMark.open()
        return _mark


class RssWatch:
    """Context manager: `start_bytes` and `peak_bytes` of the RSS over the `with` block."""

    def __init__(self, sample_s: float = RSS_SAMPLE_S):
        self.start_bytes = self.peak_bytes = 0
        self._lifetime_before = 0
        self._mark = _resettable_mark()
        self._sampler = _sampler(sample_s) if self._mark is None else None

    def saw(self, rss_bytes: int) -> None:
        if rss_bytes > self.peak_bytes:
            self.peak_bytes = rss_bytes

    def __enter__(self) -> "RssWatch":
        self._lifetime_before = lifetime_peak_rss_bytes()
        self.start_bytes = self.peak_bytes = current_rss_bytes()
        (self._mark or self._sampler).add(self)
        return self

    def so_far(self) -> tuple[int, int]:
        """(start, peak) bytes while the block still runs."""
        now = self._mark.so_far() if self._mark is not None else current_rss_bytes()
        return self.start_bytes, max(self.peak_bytes, now)

    def __exit__(self, *exc) -> None:
        (self._mark or self._sampler).discard(self)
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
