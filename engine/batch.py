"""Run a list of queries as one job (tests and benchmarks): one MPI launch for the whole list, times
measured on rank 0 inside the job, results handed back as Arrow.

    python -m engine.batch SPEC.json OUTDIR     # under mpiexec; SPEC has items, repeat, threads

Several lists over different data folders can share the job (run_query_lists): start-up (imports,
MPI, a Session) costs seconds per launch, more than most test files' queries together.

With a per-query timeout a runaway query costs that long and no more: it is cancelled on every rank
and the job goes on with the next one; one that ignores the cancel is killed with its job, which
starts again after it (the job writes each result as it finishes, so nothing done is lost).
"""
from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
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
    # Per repetition, the bytes the exchanges sent between ranks, all ranks together (what
    # `flocksql tpch model` predicts as moved).
    moved_bytes: list[int] = field(default_factory=list)
    # With every_run: the answers of the runs before the last (whose answer is `table`), in order.
    earlier_tables: list[pa.Table] = field(default_factory=list)


def split_seconds(per_rank_stats) -> tuple[float, float]:
    """(compute, communication) seconds of the slowest rank, from Session.last_stats."""
    compute = comm = 0.0
    for rs in per_rank_stats or []:
        compute = max(compute, sum(st.compute_s for st in rs.stages.values()) + rs.final_compute_s)
        comm = max(comm, sum(st.comm_s for st in rs.stages.values()))
    return compute, comm


def spilled_bytes(per_rank_stats) -> int:
    return sum(st.bytes_spilled for rs in per_rank_stats or [] for st in rs.stages.values())


def moved_bytes(per_rank_stats) -> int:
    return sum(st.bytes_out for rs in per_rank_stats or [] for st in rs.stages.values())


def timeout_message(seconds: float) -> str:
    return f"timeout: over {seconds:g} s"


def _run_list(session, queries, repeat, query_timeout_s=None, finished=lambda results: None, every_run=False):
    """Run each query `repeat` times; `finished` sees the results so far after each query.
    every_run: keep the answer of every run, not only the last's.

    query_timeout_s: seconds one execution may take before Session.cancel stops it on every rank;
    it is then reported with error_type "Timeout". None: no limit.
    """
    out = []
    for q in queries:
        times, table, error, etype, compute, comm, spilled, moved = [], None, None, None, [], [], [], []
        earlier = []
        for run in range(max(1, repeat)):
            if every_run and run > 0:
                earlier.append(table)
            t0 = time.perf_counter()
            fired = threading.Event()
            timer = None
            if query_timeout_s is not None:
                timer = threading.Timer(query_timeout_s, lambda: (fired.set(), session.cancel()))
                timer.daemon = True
                timer.start()
            try:
                table = session.execute(q)
            except Exception as e:  # noqa: BLE001 - reported per query
                error, etype = str(e), type(e).__name__
                if fired.is_set():
                    error, etype = f"{timeout_message(query_timeout_s)} (cancelled: {error})", "Timeout"
                table, earlier = None, []
                break
            finally:
                if timer is not None:
                    timer.cancel()
            times.append(time.perf_counter() - t0)
            c, m = split_seconds(session.last_stats)
            compute.append(c)
            comm.append(m)
            spilled.append(spilled_bytes(session.last_stats))
            moved.append(moved_bytes(session.last_stats))
        out.append(BatchResult(table, error, times, etype, compute, comm, spilled, moved_bytes=moved,
                               earlier_tables=earlier))
        finished(out)
    return out


# With a per-query timeout: how long a job may go without finishing a query beyond the timeout
# itself (start-up, a cancel that takes a while) before it is killed as stuck.
STUCK_GRACE_S = 60.0
# Sessions one job opens at most (run_query_lists starts another job for the lists after). Each
# Session frees its communicators when it closes (MPICH has about 2046 per process), so this only
# bounds what anything a closed Session might still hold can add up to in one long job.
SESSIONS_PER_JOB = 400
# What a job's rank 0 writes its results' descriptions to, a JSON line each (_write_results).
RESULTS_FILE = "results.jsonl"


@dataclass(frozen=True)
class QueryList:
    """Queries over one data folder for run_query_lists, with the Session settings they need where
    they differ from the call's (None: the call's)."""
    data_dir: str
    queries: list[str]
    forced_patterns: dict | None = None
    memory_limit: str | None = None


def run_queries(data_dir: str, queries: list[str], ranks: int, timeout_s: float = 600, repeat: int = 1,
                threads: int | None = None, forced_patterns: dict | None = None,
                memory_limit: str | None = None, isolated: bool = False,
                query_timeout_s: float | None = None) -> list[BatchResult]:
    """Run `queries` at `ranks` ranks, one result per query.

    timeout_s: seconds for the whole list; the queries not finished by then report a timeout.
    query_timeout_s: seconds one execution of one query may take (None: no limit). Past it the
    query is cancelled on every rank and reports error_type "Timeout"; the list goes on. A job
    that finishes no query for query_timeout_s × repeat + STUCK_GRACE_S (a query that ignores its
    cancel) is killed, and a new job runs the queries after that one.
    isolated runs one rank in a process of its own too (as several ranks always do), so that its
    peak memory is its own and not the caller's.
    """
    [results] = run_query_lists([(data_dir, queries)], ranks, timeout_s, repeat, threads, forced_patterns,
                                memory_limit, isolated, query_timeout_s)
    return results


def run_query_lists(lists: list[QueryList | tuple[str, list[str]]], ranks: int, timeout_s: float = 600,
                    repeat: int = 1, threads: int | None = None, forced_patterns: dict | None = None,
                    memory_limit: str | None = None, isolated: bool = False,
                    query_timeout_s: float | None = None, every_run: bool = False) -> list[list[BatchResult]]:
    """Run several lists of queries (QueryList, or (data_dir, queries)) in one job at `ranks`
    ranks: one result list per list. every_run: each result keeps the answers of its runs before the
    last too (BatchResult.earlier_tables).

    Each list gets a Session of its own (its folder's catalog, fresh plan caches), opened when the
    one before it closes; consecutive lists over the same folder with the same settings share one.
    The settings and timeouts are run_queries', timeout_s for all lists together. A job that
    crashes fails the rest of the list it was in, and a new job runs the lists after it, so that
    one list's crash does not fail the others.
    """
    lists = [entry if isinstance(entry, QueryList) else QueryList(*entry) for entry in lists]
    # (data_dir, the Session's settings, sql): what the job (main) reads.
    items = [(str(ql.data_dir), {"forced_patterns": ql.forced_patterns or forced_patterns or {},
                                 "memory_limit": ql.memory_limit or memory_limit}, sql)
             for ql in lists for sql in ql.queries]
    # Where each list's items end in `items`: a crash fails its list up to there.
    list_ends = list(itertools.accumulate(len(ql.queries) for ql in lists))
    # What killed flocks left in these folders (their temporary tables, half-made writes), as a
    # server's start removes them: a batch killed mid-run left WITH RECURSIVE's tables behind.
    from engine.leftovers import clean_leftovers
    for data_dir in dict.fromkeys(item[0] for item in items):
        if Path(data_dir).is_dir():  # a missing folder is the Session's error to give
            clean_leftovers(data_dir)
    if ranks == 1 and not isolated:
        from engine.session import Session
        from executors.comm import LocalComm
        out = []
        for data_dir, settings, queries in _sessions(items):
            with Session(data_dir, threads=threads, comm=LocalComm(), **settings) as s:
                results = _run_list(s, queries, repeat, query_timeout_s, every_run=every_run)
                rss = s.peak_rss_mb()
            for r in results:
                r.peak_rss_mb = rss
            out.extend(results)
        return [out[end - len(ql.queries):end] for ql, end in zip(lists, list_ends)]
    spec = {"repeat": repeat, "threads": threads, "query_timeout_s": query_timeout_s, "every_run": every_run}
    stuck_after = None if query_timeout_s is None else query_timeout_s * max(1, repeat) + STUCK_GRACE_S
    deadline = time.monotonic() + timeout_s
    out: list[BatchResult] = []
    while len(out) < len(items):
        job_items = _first_sessions(items[len(out):], SESSIONS_PER_JOB)
        done, failure, stuck = _run_job(ranks, dict(spec, items=job_items), deadline, stuck_after, timeout_s)
        out.extend(done)
        if failure is None:
            continue
        if stuck and len(out) < len(items):
            # The query in progress ignored its cancel: it alone is lost, a new job runs the rest.
            out.append(BatchResult(None, f"{timeout_message(query_timeout_s)} (did not stop when cancelled; "
                                         "its job was killed)", [], "Timeout"))
            continue
        etype = "Timeout" if failure.startswith("timeout") else "CommError"
        # Past the deadline nothing more runs; a crash takes the rest of its own list only.
        failed_to = len(items)
        if etype != "Timeout":
            failed_to = next((end for end in list_ends if end > len(out)), len(items))
        out.extend(BatchResult(None, failure, [], etype) for _ in items[len(out):failed_to])
    return [out[end - len(ql.queries):end] for ql, end in zip(lists, list_ends)]


def _sessions(items) -> list[tuple[str, dict, list[str]]]:
    """(data_dir, settings, queries) per run of consecutive items that share a Session."""
    return [(data_dir, settings, [sql for _, _, sql in run])
            for (data_dir, settings), run in itertools.groupby(items, key=lambda item: (item[0], item[1]))]


def _first_sessions(items: list, sessions: int) -> list:
    """The items up to where the job (main) would open Session number `sessions` + 1."""
    return items[:sum(len(queries) for _, _, queries in _sessions(items)[:sessions])]


def _run_job(ranks: int, spec: dict, deadline: float, stuck_after: float | None, timeout_s: float):
    """One MPI job over spec["items"]: (results it finished, why it ended early or None, stuck?)."""
    from engine.launch import mpi_command
    with tempfile.TemporaryDirectory(prefix="flocksql-batch-") as tmp:
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        args = ["-m", "engine.batch", str(Path(tmp) / "spec.json"), tmp]
        cmd = mpi_command(ranks, args) if ranks > 1 else [sys.executable, *args]
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        meta = Path(tmp) / RESULTS_FILE
        with open(Path(tmp) / "stderr.txt", "wb") as err:
            proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=err)
            failure, stuck = None, False
            finished, progress_at = 0, time.monotonic()
            while True:
                try:
                    proc.wait(timeout=0.2 if stuck_after is not None else max(0.0, deadline - time.monotonic()))
                    break
                except subprocess.TimeoutExpired:
                    pass
                now = time.monotonic()
                if stuck_after is not None:
                    count = len(_read_meta(meta))
                    if count != finished:
                        finished, progress_at = count, now
                    if now - progress_at > stuck_after:
                        failure, stuck = "stuck", True
                if now >= deadline:
                    failure = f"timeout after {timeout_s}s"
                if failure is not None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    break
        done = [_load_result(Path(tmp), i, m) for i, m in enumerate(_read_meta(meta))]
        if failure is None and len(done) < len(spec["items"]):
            tail = (Path(tmp) / "stderr.txt").read_bytes().decode(errors="replace")[-2000:]
            failure = f"MPI job failed (exit {proc.returncode}): {tail}"
        return done, failure, stuck


def _read_meta(path: Path) -> list[dict]:
    """The results a job has written so far: rank 0 appends a line per query as it finishes and,
    at the job's end, one with its ranks' peak memory, which every result then carries."""
    try:
        text = path.read_text()
    except OSError:
        return []
    results, rss = [], None
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            break  # the line being written
        if "peak_rss_mb" in entry and "error" not in entry:
            rss = entry["peak_rss_mb"]
        else:
            results.append(entry)
    if rss is not None:
        for entry in results:
            entry["peak_rss_mb"] = rss
    return results


def _read_arrow(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as src:
        return pa.ipc.open_file(src).read_all()


def _write_arrow(path: Path, table: pa.Table) -> None:
    with pa.OSFile(str(path), "wb") as f, pa.ipc.new_file(f, table.schema) as w:
        w.write_table(table)


def _load_result(tmp: Path, i: int, m: dict) -> BatchResult:
    table = _read_arrow(tmp / f"r{i}.arrow") if m["error"] is None else None
    earlier = [_read_arrow(tmp / f"r{i}.run{k}.arrow") for k in range(m.get("earlier_runs", 0))]
    return BatchResult(table, m["error"], m["seconds"], m.get("error_type"),
                       m.get("compute_seconds", []), m.get("comm_seconds", []), m.get("spilled_bytes", []),
                       m.get("peak_rss_mb", []), m.get("moved_bytes", []), earlier)


def _write_results(outdir: Path, results: list[BatchResult], rss: list[float], start: int) -> None:
    """Write results[start:] as Arrow files, a line each in results.jsonl, and, given the ranks'
    peak memory (the job's end), a last line with it. Appending keeps each query's cost constant:
    the whole list rewritten after each query made a long job quadratic."""
    lines = []
    for i, r in enumerate(results[start:], start):
        if r.table is not None:
            _write_arrow(outdir / f"r{i}.arrow", r.table)
        for k, earlier in enumerate(r.earlier_tables):
            _write_arrow(outdir / f"r{i}.run{k}.arrow", earlier)
        lines.append(json.dumps({"error": r.error, "seconds": r.seconds, "error_type": r.error_type,
                                 "compute_seconds": r.compute_seconds, "comm_seconds": r.comm_seconds,
                                 "spilled_bytes": r.spilled_bytes, "moved_bytes": r.moved_bytes,
                                 "earlier_runs": len(r.earlier_tables)}))
    if rss:
        lines.append(json.dumps({"peak_rss_mb": rss}))
    with open(outdir / RESULTS_FILE, "a") as f:
        f.write("".join(line + "\n" for line in lines))


def main(argv):
    """One job over spec["items"], (data_dir, settings, sql) triples: a Session per run of
    consecutive items with the same folder and settings. Every rank reads the same spec, so all
    open each Session together; rank 0's close sends the workers "stop", which ends their
    worker_loop for the next one."""
    spec = json.loads(Path(argv[0]).read_text())
    outdir = Path(argv[1])
    from engine.session import Session
    runs = _sessions(spec["items"])
    results: list[BatchResult] = []
    for number, (data_dir, settings, queries) in enumerate(runs):
        with Session(data_dir, threads=spec.get("threads"), **settings) as s:
            if s.rank != 0:
                s.worker_loop()
                continue
            # Each result is written as it finishes, so that a job killed later keeps it (peak RSS,
            # a collective, only at the end).
            before = results
            results = before + _run_list(s, queries, spec.get("repeat", 1), spec.get("query_timeout_s"),
                                         finished=lambda done: _write_results(outdir, before + done, [],
                                                                              len(before) + len(done) - 1),
                                         every_run=spec.get("every_run", False))
            if number == len(runs) - 1:
                _write_results(outdir, results, s.peak_rss_mb(), len(results))


if __name__ == "__main__":
    main(sys.argv[1:])
