"""Prometheus metrics of a FlockSQL server, in the text format, on a port of rank 0's own
(`flocksql serve --metrics-port`), with the standard client library `prometheus_client`.

    flocksql_queries_total{state}              queries ended: finished | failed | cancelled
    flocksql_queries{state}                    queries now: queued | running
    flocksql_query_duration_seconds            histogram of ended queries' running time (queueing not counted)
    flocksql_exchange_sent_bytes_total         bytes exchanges sent between ranks
    flocksql_exchange_spilled_bytes_total      bytes exchanges received into files (over their budget)
    flocksql_rank_peak_memory_bytes{rank}      peak resident memory of each rank's process
    flocksql_memory_budget_bytes               the memory budget of each rank (--memory-limit)
    flocksql_ranks                             ranks in the flock
    flocksql_restarts_total                    times the supervisor restarted the flock before this one started
    flocksql_start_time_seconds                when this flock's rank 0 started (Unix time)

Bytes come from the ranks' statistics of each query: every rank's for collected results, rank 0's
alone for a streamed result (the other ranks keep theirs), so streamed queries count less than
they moved. Memory is asked of the ranks (one small collective through the query runner) at most
every PEAK_MEMORY_REFRESH_S; a scrape waits at most PEAK_MEMORY_WAIT_S for it and otherwise shows
the last answer.
"""
from __future__ import annotations

import os
import threading
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from engine.supervisor import RESTARTS_ENV
from server import query_log
from server.query_log import QueryLog, QueryRecord

# Seconds between two questions to the ranks about their memory, and how long a scrape waits.
PEAK_MEMORY_REFRESH_S = 5.0
PEAK_MEMORY_WAIT_S = 2.0
# Label of the runner job that asks the ranks for their memory (not counted as a query).
MEMORY_JOB = "metrics: peak memory per rank"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class FlockMetrics:
    """The metrics of one server: counters fed by its QueryLog, gauges read at each scrape."""

    def __init__(self, runner, log: QueryLog | None = None):
        self.runner = runner
        self.session = runner.session
        self.registry = CollectorRegistry(auto_describe=True)
        self.started = time.time()
        self.ended = Counter("flocksql_queries", "Queries ended, by how they ended.", ["state"],
                             registry=self.registry)
        for state in (query_log.FINISHED, query_log.FAILED, query_log.CANCELLED):
            self.ended.labels(state)
        self.duration = Histogram("flocksql_query_duration_seconds",
                                  "Running time of ended queries (time queued not counted).",
                                  buckets=DURATION_BUCKETS, registry=self.registry)
        self.sent = Counter("flocksql_exchange_sent_bytes", "Bytes exchanges sent between ranks.",
                            registry=self.registry)
        self.spilled = Counter("flocksql_exchange_spilled_bytes",
                               "Bytes exchanges received into files, over their memory budget.", registry=self.registry)
        self.registry.register(_Live(self))
        self._memory: list[float] = []
        self._memory_at = 0.0
        self._memory_job = None
        self._lock = threading.Lock()
        self.log = log or runner.log
        self.log.subscribe(self._on_change)

    def _on_change(self, record: QueryRecord, previous: str | None) -> None:
        if record.label == MEMORY_JOB or record.state not in (query_log.FINISHED, query_log.FAILED,
                                                              query_log.CANCELLED):
            return
        self.ended.labels(record.state).inc()
        if record.seconds is not None:
            self.duration.observe(record.seconds)
        self.sent.inc(record.bytes_moved)
        self.spilled.inc(record.bytes_spilled)

    def peak_memory_bytes(self) -> list[float]:
        """Each rank's peak resident memory in bytes, as last answered (refreshed when old)."""
        with self._lock:
            job = self._memory_job
            if job is None and time.monotonic() - self._memory_at > PEAK_MEMORY_REFRESH_S \
                    and hasattr(self.session, "peak_rss_mb"):
                try:
                    job = self._memory_job = self.runner.submit(
                        MEMORY_JOB, lambda session, token: session.peak_rss_mb())
                except Exception:  # noqa: BLE001 - shutting down: show what we have
                    job = None
        if job is not None and job.finished.wait(PEAK_MEMORY_WAIT_S):
            with self._lock:
                if job.error is None and job.result:
                    self._memory = [mb * 1024 * 1024 for mb in job.result]
                self._memory_at = time.monotonic()
                self._memory_job = None
        return list(self._memory)


class _Live:
    """Gauges read when scraped."""

    def __init__(self, metrics: FlockMetrics):
        self.m = metrics

    def describe(self):
        return []

    def collect(self):
        live, _ = self.m.log.snapshot()
        now = GaugeMetricFamily("flocksql_queries", "Queries now, by state.", labels=["state"])
        for state in (query_log.QUEUED, query_log.RUNNING):
            now.add_metric([state], sum(1 for r in live if r.state == state and r.label != MEMORY_JOB))
        yield now
        memory = GaugeMetricFamily("flocksql_rank_peak_memory_bytes", "Peak resident memory of each rank.",
                                   labels=["rank"])
        for rank, value in enumerate(self.m.peak_memory_bytes()):
            memory.add_metric([str(rank)], value)
        yield memory
        budget = getattr(self.m.session, "memory_budget", None)
        if budget is not None:
            yield GaugeMetricFamily("flocksql_memory_budget_bytes", "Memory budget of each rank.", value=budget)
        yield GaugeMetricFamily("flocksql_ranks", "Ranks in the flock.",
                                value=getattr(self.m.session, "nranks", 1))
        yield CounterMetricFamily("flocksql_restarts", "Times the supervisor restarted the flock before this start.",
                                  value=int(os.environ.get(RESTARTS_ENV, "0") or 0))
        yield GaugeMetricFamily("flocksql_start_time_seconds", "When this flock's rank 0 started (Unix time).",
                                value=self.m.started)


class MetricsEndpoint:
    """The HTTP server of the metrics: GET /metrics (any path) answers the text format."""

    def __init__(self, metrics: FlockMetrics, host: str, port: int):
        self.metrics = metrics
        self._server, self._thread = start_http_server(port, host, registry=metrics.registry)
        self.host, self.port = host, self._server.server_port

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def serve_metrics(runner, host: str, port: int) -> MetricsEndpoint:
    """Starts the endpoint for the server whose query runner is `runner`."""
    return MetricsEndpoint(FlockMetrics(runner), host, port)
