"""Run a list of queries as one job (tests and benchmarks): one MPI launch for the whole list, times
measured on rank 0 inside the job, results handed back as Arrow.

    python -m engine.batch SPEC.json OUTDIR     # under mpiexec; SPEC has data_dir, queries, repeat, threads
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa


@dataclass
class BatchResult:
    table: pa.Table | None
    error: str | None
    seconds: list[float] = field(default_factory=list)
    error_type: str | None = None
    # Per repetition, the slowest rank's local-compute and communication seconds (EXPLAIN ANALYZE's split).
    compute_seconds: list[float] = field(default_factory=list)
    comm_seconds: list[float] = field(default_factory=list)
    # Per repetition, the bytes all ranks received into file-backed exchange buffers (spilled).
    spilled_bytes: list[int] = field(default_factory=list)
    # Peak resident memory of each rank (MiB) when the batch ended: the same for every result.
    peak_rss_mb: list[float] = field(default_factory=list)


def split_seconds(per_rank_stats) -> tuple[float, float]:
    """(compute, communication) seconds of the slowest rank, from Session.last_stats."""
    compute = comm = 0.0
    for rs in per_rank_stats or []:
        compute = max(compute, sum(st.compute_s for st in rs.stages.values()) + rs.final_compute_s)
        comm = max(comm, sum(st.comm_s for st in rs.stages.values()))
    return compute, comm


def spilled_bytes(per_rank_stats) -> int:
    return sum(st.bytes_spilled for rs in per_rank_stats or [] for st in rs.stages.values())


def _run_list(session, queries, repeat):
    out = []
    for q in queries:
        times, table, error, etype, compute, comm, spilled = [], None, None, None, [], [], []
        for _ in range(max(1, repeat)):
            t0 = time.perf_counter()
            try:
                table = session.execute(q)
            except Exception as e:  # noqa: BLE001 - reported per query
                error, etype = str(e), type(e).__name__
                break
            times.append(time.perf_counter() - t0)
            c, m = split_seconds(session.last_stats)
            compute.append(c)
            comm.append(m)
            spilled.append(spilled_bytes(session.last_stats))
        out.append(BatchResult(table, error, times, etype, compute, comm, spilled))
    return out


def run_queries(data_dir: str, queries: list[str], ranks: int, timeout_s: float = 600, repeat: int = 1,
                threads: int | None = None, forced_patterns: dict | None = None,
                memory_limit: str | None = None, isolated: bool = False) -> list[BatchResult]:
    """isolated runs one rank in a process of its own too (as several ranks always do), so that its
    peak memory is its own and not the caller's."""
    if ranks == 1 and not isolated:
        from engine.session import Session
        from executors.comm import LocalComm
        with Session(data_dir, threads=threads, comm=LocalComm(), forced_patterns=forced_patterns,
                     memory_limit=memory_limit) as s:
            results = _run_list(s, queries, repeat)
            rss = s.peak_rss_mb()
            for r in results:
                r.peak_rss_mb = rss
            return results
    from engine.launch import mpi_command
    with tempfile.TemporaryDirectory(prefix="flocksql-batch-") as tmp:
        spec = Path(tmp) / "spec.json"
        spec.write_text(json.dumps({"data_dir": str(data_dir), "queries": queries, "repeat": repeat,
                                    "threads": threads, "forced_patterns": forced_patterns or {},
                                    "memory_limit": memory_limit}))
        args = ["-m", "engine.batch", str(spec), tmp]
        cmd = mpi_command(ranks, args) if ranks > 1 else [sys.executable, *args]
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            _, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return [BatchResult(None, f"timeout after {timeout_s}s", [], "Timeout") for _ in queries]
        meta = Path(tmp) / "results.json"
        if not meta.exists():
            msg = f"MPI job failed (exit {proc.returncode}): {err.decode(errors='replace')[-2000:]}"
            return [BatchResult(None, msg, [], "CommError") for _ in queries]
        out = []
        for i, m in enumerate(json.loads(meta.read_text())):
            table = None
            if m["error"] is None:
                with pa.memory_map(str(Path(tmp) / f"r{i}.arrow")) as src:
                    table = pa.ipc.open_file(src).read_all()
            out.append(BatchResult(table, m["error"], m["seconds"], m.get("error_type"),
                                   m.get("compute_seconds", []), m.get("comm_seconds", []), m.get("spilled_bytes", []),
                                   m.get("peak_rss_mb", [])))
        return out


def main(argv):
    spec = json.loads(Path(argv[0]).read_text())
    outdir = Path(argv[1])
    from engine.session import Session
    with Session(spec["data_dir"], threads=spec.get("threads"), forced_patterns=spec.get("forced_patterns"),
                 memory_limit=spec.get("memory_limit")) as s:
        if s.rank != 0:
            s.worker_loop()
            return
        results = _run_list(s, spec["queries"], spec.get("repeat", 1))
        rss = s.peak_rss_mb()
        meta = []
        for i, r in enumerate(results):
            if r.table is not None:
                with pa.OSFile(str(outdir / f"r{i}.arrow"), "wb") as f, pa.ipc.new_file(f, r.table.schema) as w:
                    w.write_table(r.table)
            meta.append({"error": r.error, "seconds": r.seconds, "error_type": r.error_type,
                         "compute_seconds": r.compute_seconds, "comm_seconds": r.comm_seconds,
                         "spilled_bytes": r.spilled_bytes,
                         "peak_rss_mb": rss})
        (outdir / "results.json").write_text(json.dumps(meta))


if __name__ == "__main__":
    main(sys.argv[1:])
