"""What a client of `flocksql serve` feels, measured through ADBC beside DuckDB in the same run.

    python -m tpch.service_bench --data DIR [--ranks 1,2] [--repeat 500] [--sql "select 1"]
                                 [--all | --tpch --concurrency --stream]

For each rank count it starts a server on a free loopback port (`flocksql serve --port 0`) and
connects ADBC Flight SQL clients:
  round trips   `--repeat` round trips of `--sql` on one connection (execute and fetch the whole
                result, after a warm-up) and `--connections` that each open a new connection;
                percentiles in milliseconds. First against the floor (tpch/flight_floor.py: our
                Flight SQL layer answering one constant row, running nothing), which is what the
                client library, gRPC and pyarrow's Flight server cost on this machine.
  --tpch        the 22 TPC-H queries through the server, each run first once (a first run: planning,
                statistics) then `--tpch-repeat` times (median; the second run shown apart), beside
                DuckDB's median of as many after a warm-up in this process on the same files (the
                protocol of `flocksql tpch bench`); answers checked against DuckDB.
  --concurrency `select count(*) from nation` by 8 clients while a long query runs (latency
                percentiles), then `--clients` clients each running the 22 TPC-H queries in its
                own order: every answer checked, throughput against one client in a row.
  --stream      `select * from lineitem`: time to the first batch and to the last row, and the
                peak resident memory of all the server's processes meanwhile.
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


# A loopback port nobody listens on (load_driver's connection is never used).
UNUSED_PORT = 9


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def start_server(data: Path, ranks: int, extra: list[str]) -> tuple[subprocess.Popen, str]:
    flocksql = Path(sys.executable).with_name("flocksql")
    base = [str(flocksql)] if flocksql.exists() else [sys.executable, "-m", "cli"]
    return _listening([*base, "serve", "--data", str(data), "--ranks", str(ranks), "--port", "0", *extra],
                      f"the server at {ranks} rank(s)")


def start_floor() -> tuple[subprocess.Popen, str]:
    """The server of tpch/flight_floor.py: Flight SQL that answers one constant row, running nothing."""
    return _listening([sys.executable, "-m", "tpch.flight_floor", "--port", "0"], "the floor server")


def _listening(command: list[str], what: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
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
    raise SystemExit(f"{what} did not start:\n{''.join(seen)}")


def stop_server(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def load_driver() -> None:
    """Loads ADBC's Flight SQL driver (a Go library: its first connect in a process costs about a
    second) by a connection that is never used, so that no server's first client pays for it."""
    import adbc_driver_flightsql.dbapi as flight_sql

    try:
        flight_sql.connect(f"grpc://127.0.0.1:{UNUSED_PORT}", autocommit=True).close()
    except Exception:  # noqa: BLE001 - only the loading matters
        pass


def first_client(uri: str, sql: str) -> tuple[float, float]:
    """(ms to connect, ms for the first statement) of the first client after the server started:
    what a user who opens a connection to a fresh server waits for."""
    import adbc_driver_flightsql.dbapi as flight_sql

    t0 = time.perf_counter()
    with flight_sql.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
        t1 = time.perf_counter()
        cur.execute(sql)
        cur.fetch_arrow_table()
        t2 = time.perf_counter()
    return (t1 - t0) * 1000, (t2 - t1) * 1000


def print_first_client(title: str, measured: tuple[float, float]) -> None:
    print(f"{title}: first client's connect {measured[0]:.1f} ms, its first statement {measured[1]:.1f} ms",
          flush=True)


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


def _duckdb(data: Path):
    import duckdb

    from tpch.generate import discover_tables
    con = duckdb.connect()
    for name, source in discover_tables(data).items():
        con.execute(f"CREATE VIEW \"{name}\" AS SELECT * FROM read_parquet('{source}')")
    return con


def _tpch_texts() -> dict[int, str]:
    folder = Path(__file__).resolve().parent / "queries"
    return {n: (folder / f"q{n:02d}.sql").read_text() for n in range(1, 23)}


def _fetch(conn, sql: str):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def _same(actual, expected, sql: str) -> bool:
    from tpch.compare import compare_tables, ordering_of
    order = ordering_of(sql)
    return compare_tables(actual, expected, ordered=order.ordered, order_keys=order.keys, limited=order.limited) is None


def tpch_through_server(uri: str, data: Path, repeat: int) -> list[str]:
    """Each query's first run, then the median of the `repeat` runs after it, beside DuckDB's median
    of `repeat` after one warm-up: the protocol of `flocksql tpch bench`, so the two figures
    compare. The second run is shown apart too: it tries the other DuckDB instance."""
    import adbc_driver_flightsql.dbapi as flight_sql
    duck = _duckdb(data)
    lines = [f"{'query':>5} {'first s':>8} {'second s':>9} {'median s':>9} {'duckdb s':>9} {'ratio':>6}  answer"]
    totals = [0.0, 0.0, 0.0, 0.0]
    with flight_sql.connect(uri, autocommit=True) as conn:
        for n, sql in _tpch_texts().items():
            times = []
            for _ in range(1 + max(1, repeat)):
                t0 = time.perf_counter()
                actual = _fetch(conn, sql)
                times.append(time.perf_counter() - t0)
            ours = statistics.median(times[1:])
            duck.sql(sql).to_arrow_table()
            theirs = []
            for _ in range(max(1, repeat)):
                t0 = time.perf_counter()
                expected = duck.sql(sql).to_arrow_table()
                theirs.append(time.perf_counter() - t0)
            theirs = statistics.median(theirs)
            totals = [a + b for a, b in zip(totals, (times[0], times[1], ours, theirs))]
            lines.append(f"{'q' + str(n):>5} {times[0]:>8.3f} {times[1]:>9.3f} {ours:>9.3f} {theirs:>9.3f} "
                         f"{ours / theirs:>6.2f}  {'right' if _same(actual, expected, sql) else 'WRONG'}")
    lines.append(f"{'total':>5} {totals[0]:>8.3f} {totals[1]:>9.3f} {totals[2]:>9.3f} {totals[3]:>9.3f} "
                 f"{totals[2] / totals[3]:>6.2f}")
    return lines


def concurrency(uri: str, data: Path, clients: int, long_sql: str) -> list[str]:
    import random
    import threading

    import adbc_driver_flightsql.dbapi as flight_sql
    lines = []
    long_done = threading.Event()

    def run_long():
        with flight_sql.connect(uri, autocommit=True) as conn:
            _fetch(conn, long_sql)
        long_done.set()

    latencies: list[float] = []

    def short_client():
        with flight_sql.connect(uri, autocommit=True) as conn:
            for _ in range(20):
                if long_done.is_set():
                    return
                t0 = time.perf_counter()
                _fetch(conn, "select count(*) from nation")
                latencies.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    long = threading.Thread(target=run_long)
    long.start()
    time.sleep(0.5)
    shorts = [threading.Thread(target=short_client) for _ in range(8)]
    for t in shorts:
        t.start()
    for t in shorts:
        t.join()
    long.join()
    long_s = time.perf_counter() - t0
    if latencies:
        lines.append(f"8 clients' select count(*) from nation during a {long_s:.1f} s query: n={len(latencies)} "
                     f"p50 {percentile(latencies, 50):.1f} ms, p90 {percentile(latencies, 90):.1f} ms, "
                     f"max {max(latencies):.1f} ms")
    texts = _tpch_texts()
    duck = _duckdb(data)
    expected = {n: duck.sql(sql).to_arrow_table() for n, sql in texts.items()}
    with flight_sql.connect(uri, autocommit=True) as conn:
        for _ in range(2):  # warm: plans cached and each fragment's DuckDB instance tried
            for sql in texts.values():
                _fetch(conn, sql)
        t0 = time.perf_counter()
        for sql in texts.values():
            _fetch(conn, sql)
        alone = time.perf_counter() - t0
    answers: list[tuple[int, object]] = []
    each: list[float] = []

    def client(seed: int):
        order = list(texts)
        random.Random(seed).shuffle(order)
        with flight_sql.connect(uri, autocommit=True) as conn:
            for n in order:
                t0 = time.perf_counter()
                answers.append((n, _fetch(conn, texts[n])))
                each.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    # Checked once all have ended: the clients' own comparisons would take cores from the server.
    wrong = [f"q{n}" for n, actual in answers if not _same(actual, expected[n], texts[n])]
    lines.append(f"1 client, 22 TPC-H queries in a row: {alone:.2f} s ({22 / alone:.2f} queries/s)")
    lines.append(f"{clients} clients x 22 TPC-H queries: {wall:.2f} s ({clients * 22 / wall:.2f} queries/s, "
                 f"{clients * 22 / wall / (22 / alone):.2f}x one client), per query p50 {percentile(each, 50):.2f} s "
                 f"p90 {percentile(each, 90):.2f} s; wrong answers: {len(wrong)} {sorted(set(wrong))}")
    return lines


def _server_rss_mb(pid: int) -> float:
    """Resident memory of `pid` and all its descendants, in MiB."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def stream(uri: str, pid: int, sql: str = "select * from lineitem") -> list[str]:
    import threading

    import adbc_driver_flightsql.dbapi as flight_sql
    peak = [0.0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _server_rss_mb(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    before = _server_rss_mb(pid)
    sampler.start()
    with flight_sql.connect(uri, autocommit=True) as conn, conn.cursor() as cur:
        t0 = time.perf_counter()
        cur.execute(sql)
        reader = cur.fetch_record_batch()
        rows = reader.read_next_batch().num_rows
        first = time.perf_counter() - t0
        for batch in reader:
            rows += batch.num_rows
        last = time.perf_counter() - t0
    done.set()
    sampler.join()
    return [f"{sql}: first batch {first:.3f} s, {rows} rows in {last:.2f} s; server processes' memory "
            f"{before:.0f} MiB before, peak {peak[0]:.0f} MiB"]


def print_round_trips(title: str, measured: dict[str, list[float]]) -> None:
    print(f"\n== {title}")
    print(f"{'client':<16} {'n':>5} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for kind, values in measured.items():
        if values:
            print(f"{kind:<16} {len(values):>5} {percentile(values, 50):>8.2f} {percentile(values, 90):>8.2f} "
                  f"{percentile(values, 99):>8.2f} {statistics.mean(values):>8.2f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="data folder the server serves")
    parser.add_argument("--ranks", default="1,2", help="rank counts, comma-separated")
    parser.add_argument("--sql", default="select 1")
    parser.add_argument("--repeat", type=int, default=500)
    parser.add_argument("--connections", type=int, default=50, help="round trips with a new connection each")
    parser.add_argument("--server-arg", action="append", default=[], help="extra `flocksql serve` argument")
    parser.add_argument("--tpch", action="store_true", help="TPC-H through the server beside DuckDB")
    parser.add_argument("--tpch-repeat", type=int, default=3,
                        help="timed runs after the first (median), as flocksql tpch bench --repeat")
    parser.add_argument("--concurrency", action="store_true", help="short queries during a long one; N clients")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--long-sql", default="select n_name, sum(l_quantity * n_nationkey * r_regionkey) "
                        "from lineitem, nation, region group by n_name",
                        help="the long query of --concurrency (5-10 s at SF 1 on 2 cores)")
    parser.add_argument("--stream", action="store_true", help="time to first batch and memory of a big result")
    parser.add_argument("--all", action="store_true", help="every part")
    args = parser.parse_args(argv)
    load_driver()
    proc, uri = start_floor()
    try:
        print_first_client("the floor", first_client(uri, args.sql))
        print_round_trips("the floor: a Flight SQL server that runs nothing (tpch/flight_floor.py)",
                          round_trips(uri, args.sql, args.repeat, args.connections))
    finally:
        stop_server(proc)
    for ranks in (int(r) for r in args.ranks.split(",")):
        proc, uri = start_server(args.data, ranks, args.server_arg)
        try:
            print_first_client(f"{ranks} rank(s)", first_client(uri, args.sql))
            print_round_trips(f"{ranks} rank(s): round trips of {args.sql!r}",
                              round_trips(uri, args.sql, args.repeat, args.connections))
            if args.all or args.stream:
                print(f"\n== {ranks} rank(s): streaming a big result", flush=True)
                print("\n".join(stream(uri, proc.pid)), flush=True)
            if args.all or args.tpch:
                print(f"\n== {ranks} rank(s): TPC-H through the server vs DuckDB in this process", flush=True)
                print("\n".join(tpch_through_server(uri, args.data, args.tpch_repeat)), flush=True)
            if args.all or args.concurrency:
                print(f"\n== {ranks} rank(s): concurrent clients", flush=True)
                print("\n".join(concurrency(uri, args.data, args.clients, args.long_sql)), flush=True)
        finally:
            stop_server(proc)


if __name__ == "__main__":
    main()
