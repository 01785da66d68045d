"""`flocksql calibrate`: measure the cost model's constants on this machine.

Local rates (scan, hash join, aggregate, sort, materialisation) are timed in DuckDB on generated
data with one thread; α and β are timed between two MPI ranks (ping-pong of small and large
Arrow IPC buffers through the same primitives the executor uses).

    python -m engine.calibrate comm     # under mpiexec -n 2: prints {"alpha": …, "beta": …}
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import duckdb

from planner.cost import CostParams


def _best(fn, repeat=3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def local_rates(rows: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="flocksql-cal-") as tmp:
        con = duckdb.connect(config={"threads": 1})
        path = Path(tmp) / "t.parquet"
        con.execute(f"COPY (SELECT i AS k, i % 1000 AS g, random() AS v FROM range({rows}) t(i)) TO '{path}' (FORMAT parquet)")
        con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{path}')")
        con.execute("CREATE TABLE mem AS SELECT * FROM t")
        scan = _best(lambda: con.sql("SELECT sum(k), sum(v) FROM t").fetchall())
        agg = _best(lambda: con.sql("SELECT g, sum(v) FROM mem GROUP BY g").fetchall())
        join = _best(lambda: con.sql("SELECT count(*) FROM mem a JOIN mem b ON a.k = b.k").fetchall())
        # A full sort (a window over the whole order: no top-k shortcut).
        sort = _best(lambda: con.sql("SELECT max(r) FROM (SELECT row_number() OVER (ORDER BY v) AS r FROM mem)").fetchall())
        mat = _best(lambda: con.sql("SELECT * FROM mem").to_arrow_table())

        def partition():
            # What a shuffle does per row besides moving bytes: partition ids and the split.
            from executors.comm import split_by_partition
            t = con.sql("SELECT *, CAST(hash(k) % 2 AS USMALLINT) AS __part FROM mem").to_arrow_table()
            split_by_partition(t.drop_columns(["__part"]), t.column("__part").to_numpy(), 2)
        part = _best(partition)
        import math
        return {
            "scan_row": scan / rows,
            "agg_row": agg / rows,
            "hash_row": join / (2 * rows),
            "sort_row": sort / (rows * math.log2(rows)),
            "materialize_byte": mat / (rows * 24),
            "shuffle_row": max(part - mat, 0.0) / rows,
        }


def comm_rates() -> dict:
    """Run under mpiexec -n 2: α from 8-byte ping-pongs, β from 64 MiB transfers."""
    import numpy as np
    import pyarrow as pa
    from mpi4py import MPI

    from executors.comm import MpiComm
    comm = MpiComm(MPI.COMM_WORLD)
    small = pa.table({"x": pa.array([1], pa.int64())})
    big = pa.table({"x": pa.array(np.arange(8 * 2**20, dtype=np.int64))})

    def pingpong(t, n):
        comm.barrier()
        t0 = time.perf_counter()
        for _ in range(n):
            comm.alltoall_tables([t, t])
        return (time.perf_counter() - t0) / n
    pingpong(small, 10)
    alpha = pingpong(small, 200) / 2  # an alltoall of 2 ranks is two size messages + one data round
    big_t = min(pingpong(big, 3) for _ in range(2))
    beta = max(big_t - 2 * alpha, 1e-9) / big.nbytes
    # One more exchange step: a small fragment through DuckDB, a view registered, ranks agreeing.
    con = duckdb.connect(config={"threads": 1})
    con.register("t", small)
    comm.barrier()
    t0 = time.perf_counter()
    for _ in range(50):
        out = con.sql("SELECT *, hash(x) % 2 AS p FROM t").to_arrow_table()
        con.register("v", out)
        comm.polite_barrier()
        comm.allgather_obj(None)
    fragment = (time.perf_counter() - t0) / 50
    if comm.rank == 0:
        print(json.dumps({"alpha": alpha, "beta": beta, "fragment": fragment}))


def calibrate(ranks: int = 2, rows: int = 2_000_000, save: bool = True):
    params = replace(CostParams(), **local_rates(rows))
    if ranks >= 2:
        from engine.launch import mpi_command
        out = subprocess.run(mpi_command(2, ["-m", "engine.calibrate", "comm"]), capture_output=True, text=True,
                             timeout=300)
        if out.returncode == 0 and out.stdout.strip():
            params = replace(params, **json.loads(out.stdout.strip().splitlines()[-1]))
    path = params.save() if save else None
    return params, path


if __name__ == "__main__":
    if sys.argv[1:] == ["comm"]:
        comm_rates()
