"""Run a set of queries on several engines, time them, and check every answer against DuckDB.

One *run* is an engine in one configuration: `duckdb`, `polars`, or FlockSQL
at a rank count (`flocksql@2`). By default runs are interleaved per query
(every run does Q1, then every run does Q2, ...), so that drift on the machine
touches all engines alike. `batch=True` instead hands each run its whole list
at once: one MPI job per rank count for FlockSQL.

Each query runs `warmup + repeat` times back to back; the reported time is the
median of the last `repeat`. DuckDB is always run: it is the baseline for the
ratios and the oracle every other answer is compared with (see compare.py).

The result is a plain JSON-friendly dict; report.py turns it into Markdown
and charts.
"""

import datetime
import os
import platform
import time
from dataclasses import asdict, dataclass

import click

from tpch.compare import Ordering, compare_tables, ordering_of
from tpch.engines import Outcome, make_engine, median_time, unavailable_reason
from tpch.generate import scale_factor_of
from tpch.progress import Progress

BASELINE = "duckdb"


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """What to measure and how; every field is a CLI option of `flocksql tpch bench`/`micro`."""

    data_dir: str
    engines: tuple[str, ...] = ("flocksql", "duckdb")
    ranks: tuple[int, ...] = (1,)
    repeat: int = 3
    warmup: int = 1
    threads: int | None = None  # per in-process engine; None = all cores
    rank_threads: int | None = None  # per FlockSQL rank; None = threads // ranks (at least 1)
    timeout_s: float = 600
    batch: bool = False
    rel_tol: float = 1e-6


class BenchError(Exception):
    """A benchmark that cannot start: a required engine is missing, or the data is."""


def plan_runs(config: BenchConfig, warn=lambda msg: None) -> list[tuple[str, int]]:
    """The (engine, ranks) runs to measure, baseline first; optional peers that are missing are dropped."""
    runs = [(BASELINE, 1)]
    for name in config.engines:
        if name == BASELINE:
            continue
        reason = unavailable_reason(name)
        if name.startswith("flocksql"):
            if reason is not None:
                raise BenchError(f"{name} cannot run: {reason} (the engine provides engine.batch.run_queries)")
            runs.extend((name, r) for r in config.ranks)
        elif reason is not None:
            warn(f"skipping {name}: {reason}")
        else:
            runs.append((name, 1))
    return runs


def run_benchmark(queries: dict[str, str], config: BenchConfig, *, kind: str = "tpch", progress: bool = True) -> dict:
    """Time `queries` (name -> SQL) on every run of `config`; return the results as a dict.

    Layout: {"kind", "meta", "runs": [{"label", "engine", "ranks"}],
    "queries": [{"name", "ordered", "results": {label: entry}}]} where entry
    holds seconds (all repetitions, warm-up first), median, rows, status
    (ok | wrong | error | unchecked), error, diff, and extra: whatever else
    the engine measured (FlockSQL's BatchResult fields beyond table, error
    and seconds, such as a compute/communication split).
    """
    if not os.path.isdir(config.data_dir):
        raise BenchError(f"data folder {config.data_dir} does not exist")
    warn = lambda msg: click.echo(f"warning: {msg}", err=True)  # noqa: E731
    threads = config.threads or os.cpu_count() or 1
    skipped = []
    engines = []
    for name, ranks in plan_runs(config, warn=lambda msg: (skipped.append(msg), warn(msg))):
        try:
            engine_threads = threads if not name.startswith("flocksql") else rank_threads(config, threads, ranks)
            engines.append(make_engine(name, config.data_dir, ranks=ranks, threads=engine_threads,
                                       timeout_s=config.timeout_s))
        except Exception as exc:  # an optional peer that fails to start is skipped, the baseline is not
            if name == BASELINE or name.startswith("flocksql"):
                raise
            skipped.append(f"skipping {name}: {type(exc).__name__}: {exc}")
            warn(skipped[-1])

    names = list(queries)
    sqls = [queries[n] for n in names]
    orderings = [_ordering(sql) for sql in sqls]
    outcomes: dict[str, list[Outcome | None]] = {e.label: [None] * len(names) for e in engines}
    repeat = config.warmup + config.repeat
    started_at = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    load_before = _load_average()
    cpu_before = _cpu_seconds()
    started = time.perf_counter()

    steps = len(names) * len(engines)
    with Progress("benchmark", steps, enabled=progress) as bar:
        if config.batch:
            for engine in engines:
                bar.step(f"{engine.label}: {len(names)} queries", len(names))
                for i, outcome in enumerate(_run_guarded(engine, sqls, repeat)):
                    outcomes[engine.label][i] = outcome
        else:
            for i, name in enumerate(names):
                for engine in engines:
                    bar.step(f"{name} {engine.label}")
                    outcomes[engine.label][i] = _run_guarded(engine, [sqls[i]], repeat)[0]
    for engine in engines:
        engine.close()

    results = []
    for i, name in enumerate(names):
        reference = outcomes[BASELINE][i]
        entries = {
            label: _entry(per_query[i], reference, orderings[i], config, is_oracle=(label == BASELINE))
            for label, per_query in outcomes.items()
        }
        results.append({"name": name, "ordered": orderings[i].ordered, "results": entries})

    return {
        "kind": kind,
        "meta": {
            **_meta(config, threads, skipped, started_at, time.perf_counter() - started),
            "load_average": {"before": load_before, "after": _load_average()},
            "other_cpu_share": _other_cpu_share(cpu_before, _cpu_seconds(), time.perf_counter() - started),
        },
        "runs": [{"label": e.label, "engine": e.name, "ranks": getattr(e, "ranks", None)} for e in engines],
        "queries": results,
    }


def rank_threads(config: BenchConfig, threads: int, ranks: int) -> int:
    """Threads each FlockSQL rank gets: `rank_threads` if set, else an equal share of `threads`.

    The default keeps ranks × threads within the cores DuckDB gets, which is
    the fair comparison when all ranks share one machine; on a cluster, set
    `rank_threads` to the cores of a node.
    """
    return config.rank_threads or max(1, threads // ranks)


def _run_guarded(engine, sqls: list[str], repeat: int) -> list[Outcome]:
    """engine.run, with a crash of the whole call (an MPI job that died) recorded as every query's error."""
    try:
        outcomes = engine.run(sqls, repeat)
    except Exception as exc:
        return [Outcome(table=None, error=f"{type(exc).__name__}: {exc}", seconds=())] * len(sqls)
    if len(outcomes) != len(sqls):
        error = f"{engine.label} returned {len(outcomes)} results for {len(sqls)} queries"
        return [Outcome(table=None, error=error, seconds=())] * len(sqls)
    return outcomes


def _ordering(sql: str) -> Ordering:
    try:
        return ordering_of(sql)
    except Exception:  # unparsable for sqlglot: compare strictly row by row, the safe side
        return Ordering(ordered=True, keys=None)


def _entry(outcome: Outcome, reference: Outcome, ordering: Ordering, config: BenchConfig, *, is_oracle: bool) -> dict:
    entry = {
        "seconds": list(outcome.seconds),
        "median": median_time(outcome, config.warmup),
        "rows": outcome.table.num_rows if outcome.table is not None else None,
        "error": outcome.error,
        "diff": None,
        "extra": outcome.extra,
    }
    if outcome.error is not None or outcome.table is None:
        entry["status"] = "error"
        entry["error"] = entry["error"] or "no result"
    elif is_oracle:
        entry["status"] = "ok"
    elif reference.table is None:
        entry["status"] = "unchecked"
    else:
        entry["diff"] = _diff(outcome, reference, ordering, config.rel_tol)
        entry["status"] = "ok" if entry["diff"] is None else "wrong"
    return entry


def _diff(outcome: Outcome, reference: Outcome, ordering: Ordering, rel_tol: float) -> str | None:
    expected_names = [n.lower() for n in reference.table.column_names]
    keys = ordering.keys
    if keys is not None and not all(k.lower() in expected_names for k in keys):
        keys = None  # an ORDER BY key that is not a result column: compare strictly
    return compare_tables(outcome.table, reference.table, ordering.ordered, rel_tol, order_keys=keys,
                          limited=ordering.limited)


def _load_average() -> float | None:
    """The 1-minute load average: a busy machine makes every time in the report suspect."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _cpu_seconds() -> tuple[float, float] | None:
    """(CPU seconds the whole machine has been busy, CPU seconds of this process and all its
    descendants, reaped or not), from /proc; None where there is no /proc."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
        ours = os.times()
        total = ours.user + ours.system + ours.children_user + ours.children_system
        hz = os.sysconf("SC_CLK_TCK")
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        # Fields after the command name (which may hold spaces): state ppid … utime stime cutime cstime.
                        rest = f.read().rsplit(")", 1)[1].split()
                    stats[int(entry)] = (int(rest[1]), sum(int(v) for v in rest[11:15]) / hz)
                except (OSError, IndexError, ValueError):
                    continue
    except OSError:
        return None
    # Descendants still alive (or not yet reaped, such as a stopped JVM) count as ours too.
    mine, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, (ppid, _) in stats.items() if ppid in frontier and pid not in mine}
        mine |= frontier
    total += sum(stats[pid][1] for pid in mine)
    busy = (sum(ticks) - ticks[3] - ticks[4]) / hz  # all but idle and iowait
    return busy, total


def _other_cpu_share(before, after, wall_s: float) -> float | None:
    """The share of the machine's CPU time that processes outside the benchmark used while it ran."""
    if before is None or after is None or wall_s <= 0:
        return None
    other = (after[0] - before[0]) - (after[1] - before[1])
    return round(max(0.0, other) / (wall_s * (os.cpu_count() or 1)), 3)


def _meta(config: BenchConfig, threads: int, skipped: list[str], started_at: str, wall_s: float) -> dict:
    import duckdb
    import pyarrow

    from tpch.tpcds.generate import scale_factor_of as tpcds_scale_factor_of
    try:
        sf = tpcds_scale_factor_of(config.data_dir) or scale_factor_of(config.data_dir)
    except Exception:
        sf = None
    return {
        **asdict(config),
        "threads": threads,
        "scale_factor": sf,
        "skipped": skipped,
        "wall_seconds": round(wall_s, 3),
        "started": started_at,
        "host": {
            "node": platform.node(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": {"duckdb": duckdb.__version__, "pyarrow": pyarrow.__version__},
    }
