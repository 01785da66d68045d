"""Prometheus metrics (server/metrics.py), scraped from a real 2-rank server after real queries."""
from __future__ import annotations

import re
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.server_fixtures import copy_data, start_server, stop_server

SHUFFLING = "SELECT l_comment, count(*) AS n FROM lineitem GROUP BY l_comment ORDER BY n DESC, l_comment LIMIT 3"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server-metrics")
    proc = start_server("engine", copy_data(tmp / "data"), tmp / "server.log", ranks=2, args=["--metrics-port", "0"])
    yield proc
    stop_server(proc)


def scrape(server) -> dict:
    url = re.search(r"Prometheus metrics on (http://\S+)", server.log()).group(1)
    assert url.startswith("http://127.0.0.1:"), url  # loopback unless --metrics-host says otherwise
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.mark.timeout(300)
def test_metrics_count_what_the_server_did(server):
    before = scrape(server)
    assert value(before, "flocksql_ranks") == 2
    assert value(before, "flocksql_restarts_total") == 0
    assert value(before, "flocksql_queries_total", state="finished") == 0
    with server.connect() as conn, conn.cursor() as cur:
        for _ in range(3):  # streamed results (the default)
            cur.execute(SHUFFLING)
            assert len(cur.fetchall()) == 3
        cur.execute("EXPLAIN ANALYZE " + SHUFFLING)  # a collected run: every rank's statistics
        cur.fetchall()
        with pytest.raises(Exception, match="(?i)conver"):
            cur.execute("SELECT CAST(n_name AS INTEGER) AS x FROM nation")
            cur.fetchall()
    after = scrape(server)
    assert value(after, "flocksql_queries_total", state="finished") == 4
    assert value(after, "flocksql_queries_total", state="failed") == 1
    assert value(after, "flocksql_queries_total", state="cancelled") == 0
    assert value(after, "flocksql_queries", state="running") == 0
    assert value(after, "flocksql_queries", state="queued") == 0
    assert value(after, "flocksql_query_duration_seconds_count") == 5
    assert value(after, "flocksql_query_duration_seconds_bucket", le="+Inf") == 5
    assert value(after, "flocksql_query_duration_seconds_sum") > 0
    # A GROUP BY of nearly unique keys shuffles rows between the two ranks.
    assert value(after, "flocksql_exchange_sent_bytes_total") > 10_000
    assert value(after, "flocksql_exchange_spilled_bytes_total") == 0
    for rank in ("0", "1"):
        assert value(after, "flocksql_rank_peak_memory_bytes", rank=rank) > 10 * 2**20
    assert value(after, "flocksql_memory_budget_bytes") > 0
    assert 0 < value(after, "flocksql_start_time_seconds")
