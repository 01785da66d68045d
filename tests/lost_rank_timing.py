"""How long a lost rank takes to be told and to be repaired (the README's figures; not a test):

    python -m tests.lost_rank_timing --data /work/data/sf1 --ranks 3 --runs 3

Each run starts `flocksql serve` afresh, waits for an answer, starts a long aggregate and a stream
that a client reads batch after batch, kills rank 2 with SIGKILL, and measures from the kill to each
client's error and to the first correct answer of a fresh connection (TPC-H Q6, checked against
DuckDB on the same files).
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import threading
import time
from pathlib import Path

import duckdb

from tests.server_fixtures import start_server, stop_server
from tests.test_launch import wait_for_ranks
from tests.test_lost_rank import ENDLESS_SQL

LONG_SQL = "SELECT count(*), sum(l_quantity * n_nationkey) FROM lineitem CROSS JOIN nation"
Q6 = ("SELECT sum(l_extendedprice * l_discount) AS revenue FROM lineitem WHERE l_shipdate >= DATE '1994-01-01' "
      "AND l_shipdate < DATE '1995-01-01' AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24")


def one_run(data: Path, ranks: int, expected, workdir: Path) -> dict:
    server = start_server("engine", data, workdir / "server.log", ranks=ranks)
    try:
        answer_q6(server, time.monotonic() + 300)
        processes = wait_for_ranks(server, ranks)
        errors: dict[str, float] = {}
        reading = threading.Event()

        def client(name, work):
            try:
                with server.connect() as connection, connection.cursor() as cur:
                    work(cur)
            except Exception as exc:  # noqa: BLE001
                errors[name] = time.monotonic()
                errors[name + " text"] = str(exc).split(". Detail")[0]

        def stream(cur):
            cur.execute(ENDLESS_SQL)
            with cur.fetch_record_batch() as reader:
                reader.read_next_batch()
                reading.set()
                while True:
                    reader.read_next_batch()

        threads = [threading.Thread(target=client, args=("stream", stream))]
        threads[0].start()
        reading.wait(120)
        threads.append(threading.Thread(target=client, args=("long", lambda cur: (cur.execute(LONG_SQL),
                                                                                   cur.fetchall()))))
        threads[1].start()
        time.sleep(2.0)
        killed = time.monotonic()
        os.kill(processes["rank2"], signal.SIGKILL)
        for t in threads:
            t.join(120)
        answered = answer_q6(server, killed + 300, expected)
        return {"error_s": {k: round(v - killed, 3) for k, v in errors.items() if not k.endswith("text")},
                "messages": sorted({v for k, v in errors.items() if k.endswith("text")}),
                "answer_s": round(answered - killed, 3)}
    finally:
        stop_server(server)


def answer_q6(server, deadline: float, expected=None) -> float:
    """When a fresh connection first answered Q6 (correctly, when `expected` is given)."""
    while time.monotonic() < deadline:
        try:
            with server.connect() as connection, connection.cursor() as cur:
                cur.execute(Q6)
                got = cur.fetchone()[0]
            if expected is None or abs(float(got) - float(expected)) <= 1e-6 * abs(float(expected)):
                return time.monotonic()
            raise AssertionError(f"Q6 answered {got}, DuckDB {expected}")
        except AssertionError:
            raise
        except Exception:  # noqa: BLE001 - refused while the flock restarts
            time.sleep(0.05)
    raise TimeoutError("no answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--ranks", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    con = duckdb.connect()
    con.execute(f"CREATE VIEW lineitem AS SELECT * FROM read_parquet('{args.data / 'lineitem.parquet'}')")
    expected = con.execute(Q6).fetchone()[0]
    results = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as workdir:
            result = one_run(args.data, args.ranks, expected, Path(workdir))
        print(f"run {run + 1}: {result}", flush=True)
        results.append(result)
    for name in ("stream", "long"):
        times = [r["error_s"].get(name) for r in results if name in r["error_s"]]
        if times:
            print(f"kill -> {name} client's error: min {min(times):.3f} s, median {statistics.median(times):.3f} s, "
                  f"max {max(times):.3f} s")
    answers = [r["answer_s"] for r in results]
    print(f"kill -> first correct Q6 after the restart: min {min(answers):.2f} s, "
          f"median {statistics.median(answers):.2f} s, max {max(answers):.2f} s")


if __name__ == "__main__":
    main()
