"""What a client of `flocksql serve` feels: round-trip latency percentiles through ADBC.

    python -m tpch.service_bench --data DIR [--ranks 1,2] [--repeat 500] [--sql "select 1"]

For each rank count it starts a server on a free loopback port (`flocksql serve --port 0`), connects
one ADBC Flight SQL client, warms up, then times `--repeat` round trips of `--sql` (execute and fetch
the whole result, as `cursor.execute(); cursor.fetch_arrow_table()` does) on one connection, and
`--connections` round trips that each open a new connection. Prints percentiles in milliseconds.
Nothing here is a test: the figures depend on the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

START_TIMEOUT_S = 120.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def start_server(data: Path, ranks: int, extra: list[str]) -> tuple[subprocess.Popen, str]:
    flocksql = Path(sys.executable).with_name("flocksql")
    base = [str(flocksql)] if flocksql.exists() else [sys.executable, "-m", "cli"]
    proc = subprocess.Popen(
        [*base, "serve", "--data", str(data), "--ranks", str(ranks), "--port", "0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    seen = []
    for line in proc.stdout:
        match = re.search(r"listening on (grpc\S*://\S+)", line)
        if match:
            return proc, match.group(1)
        seen.append(line)
        if time.monotonic() > deadline:
            break
    stop_server(proc)
    raise SystemExit(f"the server at {ranks} rank(s) did not start:\n{''.join(seen)}")


def stop_server(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def round_trips(uri: str, sql: str, repeat: int, connections: int, warmup: int = 20) -> dict[str, list[float]]:
    import adbc_driver_flightsql.dbapi as flight_sql

    times: dict[str, list[float]] = {"same connection": [], "new connection": []}
    with flight_sql.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
        for i in range(warmup + repeat):
            t0 = time.perf_counter()
            cur.execute(sql)
            cur.fetch_arrow_table()
            if i >= warmup:
                times["same connection"].append((time.perf_counter() - t0) * 1000)
    for _ in range(connections):
        t0 = time.perf_counter()
        with flight_sql.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(sql)
            cur.fetch_arrow_table()
        times["new connection"].append((time.perf_counter() - t0) * 1000)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="data folder the server serves")
    parser.add_argument("--ranks", default="1,2", help="rank counts, comma-separated")
    parser.add_argument("--sql", default="select 1")
    parser.add_argument("--repeat", type=int, default=500)
    parser.add_argument("--connections", type=int, default=50, help="round trips with a new connection each")
    parser.add_argument("--server-arg", action="append", default=[], help="extra `flocksql serve` argument")
    args = parser.parse_args(argv)
    print(f"{'ranks':>5}  {'client':<16} {'n':>5} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for ranks in (int(r) for r in args.ranks.split(",")):
        proc, uri = start_server(args.data, ranks, args.server_arg)
        try:
            measured = round_trips(uri, args.sql, args.repeat, args.connections)
        finally:
            stop_server(proc)
        for kind, values in measured.items():
            if not values:
                continue
            print(f"{ranks:>5}  {kind:<16} {len(values):>5} {percentile(values, 50):>8.2f} "
                  f"{percentile(values, 90):>8.2f} {percentile(values, 99):>8.2f} {statistics.mean(values):>8.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
