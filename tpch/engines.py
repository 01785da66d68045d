"""The engines a benchmark can measure, behind one small interface.

Every engine answers `run(queries, repeat) -> list[Outcome]`: each query runs
`repeat` times in a row and yields its last answer and one wall time per run.
In-process engines (DuckDB and the optional peers) time each execution around
the call that returns an Arrow table; FlockSQL times on rank 0 inside its MPI
job (`engine.batch.run_queries`), so process launch is never part of a time.

Peers are optional: an engine whose package is not installed reports why in
`unavailable_reason` and is never required.
"""

import dataclasses
import importlib.util
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from tpch.generate import discover_tables

ENGINE_NAMES = ("flocksql", "flocksql-shuffle", "duckdb", "polars", "datafusion", "spark")

# A fixed plan for comparison with the cost-based one: every join, aggregate and sort shuffles.
ALL_SHUFFLE = {"Join": "shuffle-compute", "Aggregate": "shuffle-compute", "Distinct": "shuffle-compute",
               "Sort": "sample-shuffle-compute"}

# Module each engine needs importable, checked before anything is started.
_REQUIRED_MODULE = {
    "flocksql": "engine.batch",
    "flocksql-shuffle": "engine.batch",
    "duckdb": "duckdb",
    "polars": "polars",
    "datafusion": "datafusion",
    "spark": "pyspark",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """One query's result on one engine: its answer or error, and a wall time per repetition.

    `extra` carries whatever else the engine measured (for FlockSQL, e.g. a
    compute/communication split), keyed by the engine's own field names.
    """

    table: pa.Table | None
    error: str | None
    seconds: tuple[float, ...]
    extra: dict = field(default_factory=dict)


def unavailable_reason(name: str) -> str | None:
    """Why engine `name` cannot run here, or None when it can."""
    if name not in _REQUIRED_MODULE:
        return f"unknown engine {name!r}; known: {', '.join(ENGINE_NAMES)}"
    module = _REQUIRED_MODULE[name]
    if module in sys.modules:
        return None
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    return None if found else f"module {module} is not installed"


def make_engine(name: str, data_dir: str, *, ranks: int = 1, threads: int | None = None, timeout_s: float = 600):
    """Build engine `name` over the Parquet tables of `data_dir`."""
    threads = threads or os.cpu_count() or 1
    if name == "flocksql":
        return FlockSQLEngine(data_dir, ranks=ranks, threads=threads, timeout_s=timeout_s)
    if name == "flocksql-shuffle":
        return FlockSQLEngine(data_dir, ranks=ranks, threads=threads, timeout_s=timeout_s, forced=ALL_SHUFFLE)
    engine_class = {
        "duckdb": DuckDBEngine,
        "polars": PolarsEngine,
        "datafusion": DataFusionEngine,
        "spark": SparkEngine,
    }.get(name)
    if engine_class is None:
        raise ValueError(unavailable_reason(name))
    return engine_class(data_dir, threads=threads, timeout_s=timeout_s)


def median_time(outcome: Outcome, warmup: int) -> float | None:
    """Median of the timed repetitions (those after the warm-up), or None if there are none."""
    timed = outcome.seconds[warmup:]
    return statistics.median(timed) if timed else None


# --- FlockSQL -------------------------------------------------------------------


class FlockSQLEngine:
    """FlockSQL over MPI: one `engine.batch.run_queries` call per `run`."""

    name = "flocksql"

    def __init__(self, data_dir: str, *, ranks: int, threads: int, timeout_s: float, forced: dict | None = None):
        self.data_dir, self.ranks, self.threads, self.timeout_s = data_dir, ranks, threads, timeout_s
        self.forced = forced
        if forced:
            self.name = "flocksql-shuffle"

    @property
    def label(self) -> str:
        return f"{self.name}@{self.ranks}"

    def run(self, queries: list[str], repeat: int) -> list[Outcome]:
        from engine.batch import run_queries

        results = run_queries(
            self.data_dir,
            queries,
            self.ranks,
            timeout_s=self.timeout_s,
            repeat=repeat,
            threads=self.threads,
            # Every rank count in a process of its own: peak memory per rank is FlockSQL's alone.
            isolated=True,
            **({"forced_patterns": self.forced} if self.forced else {}),
        )
        return [
            Outcome(table=r.table, error=r.error, seconds=tuple(r.seconds), extra=_extra_fields(r))
            for r in results
        ]

    def close(self) -> None:
        pass


def _extra_fields(result) -> dict:
    """The fields of a BatchResult beyond table, error and seconds, made JSON-friendly."""
    if dataclasses.is_dataclass(result):
        items = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    else:
        items = dict(getattr(result, "__dict__", {}))
    extra = {}
    for key, value in items.items():
        if key in ("table", "error", "seconds") or key.startswith("_"):
            continue
        extra[key] = _jsonable(value)
    return extra


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


# --- in-process engines -------------------------------------------------------------


class _InProcessEngine:
    """An engine living in this process: subclasses set up tables and execute one query."""

    name = ""

    def __init__(self, data_dir: str, *, threads: int, timeout_s: float):
        self.data_dir, self.threads, self.timeout_s = data_dir, threads, timeout_s
        self.tables = discover_tables(data_dir)
        if not self.tables:
            raise FileNotFoundError(f"no Parquet tables in {data_dir}")

    @property
    def label(self) -> str:
        return self.name

    def execute(self, sql: str) -> pa.Table:
        raise NotImplementedError

    def run(self, queries: list[str], repeat: int) -> list[Outcome]:
        outcomes = []
        for sql in queries:
            table, error, seconds = None, None, []
            for _ in range(repeat):
                start = time.perf_counter()
                try:
                    table = self.execute(sql)
                except Exception as exc:  # any engine failure is a result to report, not a crash
                    table, error = None, f"{type(exc).__name__}: {exc}"
                    break
                seconds.append(time.perf_counter() - start)
            outcomes.append(Outcome(table=table, error=error, seconds=tuple(seconds)))
        return outcomes

    def close(self) -> None:
        pass


def _folder_of(source: str) -> str:
    """A table's folder for engines that take a folder rather than a glob."""
    return str(Path(source).parent) if source.endswith("*.parquet") else source


class DuckDBEngine(_InProcessEngine):
    """DuckDB with `SET threads` over views on the Parquet files; the baseline and the oracle."""

    name = "duckdb"

    def __init__(self, data_dir: str, *, threads: int, timeout_s: float):
        super().__init__(data_dir, threads=threads, timeout_s=timeout_s)
        import duckdb

        self.con = duckdb.connect()
        self.con.execute(f"SET threads = {int(threads)}")
        for name, source in self.tables.items():
            quoted = source.replace("'", "''")
            self.con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet(\'{quoted}\')')

    def execute(self, sql: str) -> pa.Table:
        # DuckDB has no statement timeout; interrupting from a timer thread gives one.
        timer = threading.Timer(self.timeout_s, self.con.interrupt)
        timer.start()
        try:
            return self.con.sql(sql).to_arrow_table()
        finally:
            timer.cancel()

    def close(self) -> None:
        self.con.close()


class PolarsEngine(_InProcessEngine):
    """Polars' SQL context over lazy Parquet scans. Thread count applies only if polars is not yet imported."""

    name = "polars"

    def __init__(self, data_dir: str, *, threads: int, timeout_s: float):
        super().__init__(data_dir, threads=threads, timeout_s=timeout_s)
        if "polars" not in sys.modules:
            os.environ["POLARS_MAX_THREADS"] = str(threads)
        import polars as pl

        self.ctx = pl.SQLContext({name: pl.scan_parquet(src) for name, src in self.tables.items()})

    def execute(self, sql: str) -> pa.Table:
        return self.ctx.execute(sql, eager=True).to_arrow()


class DataFusionEngine(_InProcessEngine):
    """Apache DataFusion's Python bindings, `threads` target partitions."""

    name = "datafusion"

    def __init__(self, data_dir: str, *, threads: int, timeout_s: float):
        super().__init__(data_dir, threads=threads, timeout_s=timeout_s)
        from datafusion import SessionConfig, SessionContext

        self.ctx = SessionContext(SessionConfig().with_target_partitions(threads))
        for name, source in self.tables.items():
            self.ctx.register_parquet(name, _folder_of(source))

    def execute(self, sql: str) -> pa.Table:
        return self.ctx.sql(sql).to_arrow_table()


class SparkEngine(_InProcessEngine):
    """PySpark in local mode with `threads` cores (needs a Java runtime)."""

    name = "spark"

    def __init__(self, data_dir: str, *, threads: int, timeout_s: float):
        super().__init__(data_dir, threads=threads, timeout_s=timeout_s)
        from pyspark.sql import SparkSession

        self.spark = (
            SparkSession.builder.master(f"local[{threads}]")
            .appName("flocksql-bench")
            .config("spark.sql.shuffle.partitions", str(threads))
            .config("spark.ui.enabled", "false")
            .getOrCreate()
        )
        for name, source in self.tables.items():
            self.spark.read.parquet(source).createOrReplaceTempView(name)

    def execute(self, sql: str) -> pa.Table:
        frame = self.spark.sql(sql)
        to_arrow: Callable[[], pa.Table] | None = getattr(frame, "toArrow", None)
        return to_arrow() if to_arrow is not None else pa.Table.from_pandas(frame.toPandas(), preserve_index=False)

    def close(self) -> None:
        self.spark.stop()
