"""A FlockSQL session: the catalog, the planner and this rank's executor.

Rank 0 is the driver: it parses and plans, sends the physical plan to every rank, and gets the
result back. Other ranks sit in `worker_loop()` and run what rank 0 sends. With one rank (no MPI
launcher) everything happens in-process.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from engine.catalog import Catalog
from engine.errors import CatalogError, ExecutionError, FlockError, NotSupportedError
from executors.comm import LocalComm
from executors.runner import Runner
from executors.scan import ScanSource
from planner.build import Builder
from planner.cost import CostParams
from planner.estimate import Estimator
from planner.explain import render_explain
from planner.copartition import copartition
from planner.physical import PhysicalPlanner
from planner.rules import run_rules
from planner.qualify import Statement, bind_params, classify, parse, qualify_statement

# Parsing, binding and planning recurse once or more per nesting level of the SQL (derived tables,
# parenthesised expressions); DuckDB admits 1000 levels, Python's default limit stops near 100.
# A query nested deeper than the limit set here is refused as not supported (see _planned).
PLANNING_RECURSION_LIMIT = 30_000
FRAGMENT_EXPRESSION_DEPTH = 5_000
if sys.getrecursionlimit() < PLANNING_RECURSION_LIMIT:
    sys.setrecursionlimit(PLANNING_RECURSION_LIMIT)

logging.getLogger("sqlglot").setLevel(logging.ERROR)

PLAN_CACHE_SIZE = 256
CANCEL_TAG = 7
IDLE_POLL_S = 0.002  # how often an idle worker checks for the next query


def _under_mpi() -> bool:
    env = os.environ
    return any(k in env for k in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")) \
        or ("SLURM_PROCID" in env and "SLURM_STEP_NUM_TASKS" in env and env.get("SLURM_STEP_NUM_TASKS") != "1")


def world_comm():
    """COMM_WORLD when running under an MPI launcher with several ranks, else a one-rank comm."""
    if _under_mpi():
        from mpi4py import MPI

        from executors.comm import MpiComm
        if MPI.COMM_WORLD.Get_size() > 1:
            return MpiComm(MPI.COMM_WORLD)
    return LocalComm()


def _local_ranks(comm) -> int:
    if comm.size == 1:
        return 1
    from mpi4py import MPI
    node = comm.comm.Split_type(MPI.COMM_TYPE_SHARED)
    n = node.Get_size()
    node.Free()
    return n


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 8 * 2**30


_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:([KMGT])(i?)B|B)?\s*", re.IGNORECASE)


def size_in_bytes(text: str) -> int:
    """A memory size as DuckDB reads it: KB, MB, GB, TB are powers of 1000, KiB … TiB of 1024, a
    bare number or B is bytes."""
    m = _SIZE.fullmatch(text)
    if not m:
        raise ExecutionError(f"memory limit {text!r} is not a size such as 4GB or 512MiB")
    number, unit, binary = m.groups()
    power = "KMGT".index(unit.upper()) + 1 if unit else 0
    return int(float(number) * (1024 if binary else 1000) ** power)


class Session:
    def __init__(self, data_dir: str | os.PathLike, threads: int | None = None, comm=None,
                 memory_limit: str | None = None, forced_patterns: dict | None = None):
        self.world = comm if comm is not None else world_comm()
        self.rank, self.nranks = self.world.rank, self.world.size
        # Only rank 0 plans, so only rank 0 measures statistics.
        self.catalog = Catalog(data_dir, statistics=self.rank == 0)
        local = _local_ranks(self.world)
        self.threads = threads or max(1, (os.cpu_count() or 1) // local)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"flocksql-r{self.rank}-"))
        limit = memory_limit or f"{int(_total_memory() * 0.75 / local / 2**20)}MB"
        # Exchanged tables live outside DuckDB's memory: past a quarter of the limit, a query's further
        # received buffers are file-backed in the rank's temporary folder (they spill).
        self.exchange_budget = size_in_bytes(limit) // 4
        self.exchange_spill_dir = self.tmp / "exchange"
        self.exchange_spill_dir.mkdir(exist_ok=True)
        self.con = self._connect(limit, "single" if self.nranks == 1 else "arrow")
        # Fragments that read only Parquet files run on a second instance that keeps DuckDB's join
        # ordering: it has the files' statistics (Q12 at 2 ranks: 0.17 s -> 0.12 s per fragment);
        # those that join an aggregate's result on a third that keeps our order and build sides
        # but DuckDB's join filters (Runner._connection_for says which). The instances run one
        # fragment at a time, never together.
        self.parquet_con = self.con if self.nranks == 1 else self._connect(limit, "parquet")
        self.ordered_con = self.con if self.nranks == 1 else self._connect(limit, "ordered")
        self.scans = ScanSource(self.con, self.rank, self.nranks)
        self.params = CostParams.load()
        self.forced_patterns = forced_patterns or {}
        self._plans: dict = {}
        # Plan cache key -> the result's schema, once known (from a run, or a run on empty tables).
        self._schemas: dict = {}
        self._schema_scans = None  # empty tables in a DuckDB instance of their own (result_schema)
        # (plan key, fragment number) -> {DuckDB instance: best seconds}, this rank's own timings.
        self._fragment_times: dict = {}
        self._cancel = threading.Event()
        self._lock = threading.RLock()
        # Cancellation travels on its own communicator, to a listener thread on each worker, so
        # that a rank deep inside a long DuckDB fragment is interrupted too (not only rank 0).
        self._qid = 0
        self._running_qid = None
        self._cancel_comm = self.world.dup() if self.nranks > 1 else None
        self._listener = None
        if self._cancel_comm is not None and self.rank != 0:
            self._listener = threading.Thread(target=self._listen_for_cancel, name="flocksql-cancel", daemon=True)
            self._listener.start()
        self.last_stats = None
        self._closed = False

    def _connect(self, memory_limit: str, kind: str):
        """A DuckDB instance for one kind of fragment: single (the one instance at one rank),
        arrow, parquet or ordered (see below)."""
        con = duckdb.connect(config={"threads": self.threads})
        con.execute(f"SET memory_limit='{memory_limit}'")
        # A fragment nests deeper than the statement it came from (each plan node a SELECT): a
        # query DuckDB's own limit of 1000 admits must still run.
        con.execute(f"SET max_expression_depth = {FRAGMENT_EXPRESSION_DEPTH}")
        # With several ranks, most fragments read exchanged Arrow views that carry no statistics,
        # so they run ('arrow') with DuckDB's optimisers that need them turned off:
        # join_order: our planner orders joins from catalog statistics; DuckDB would reorder blind
        # (Q5 at SF 1: 5 s instead of 0.4 s).
        # join_filter_pushdown: a rank whose build side holds only NaN keys would prune probe-side
        # Parquet row groups by min/max statistics, which writers compute without NaN: rows lost.
        # Fragments over Parquet only, in plans whose join keys cannot be NaN, keep both
        # ('parquet'), or only the join filters ('ordered': build_side_probe_side off too, so
        # DuckDB builds on the right input, where the planner puts the smaller one). One rank runs
        # the whole query as one fragment, as DuckDB would ('single').
        off = {"arrow": "join_order,join_filter_pushdown", "ordered": "join_order,build_side_probe_side"}.get(kind)
        if off:
            con.execute(f"SET disabled_optimizers = '{off}'")
        # Each instance spills into its own folder: DuckDB names its temporary files alike.
        spill = self.tmp / kind
        spill.mkdir(exist_ok=True)
        con.execute(f"SET temp_directory='{spill}'")
        dirs = [d + "/" for d in self.catalog.allowed_directories()] + [str(self.tmp) + "/"]
        con.execute("SET allowed_directories=[" + ", ".join("'" + d.replace("'", "''") + "'" for d in dirs) + "]")
        # The sandbox: plans only ever read the catalog's files; DuckDB refuses everything else.
        con.execute("SET enable_external_access=false")
        con.execute("SET lock_configuration=true")
        return con

    # ------------------------------------------------------------------ planning (rank 0)
    def _cache_key(self, sql_key: str | None):
        return (sql_key, self.nranks, tuple(sorted(self.forced_patterns.items())))

    def _plan_query(self, ast, sql_key: str | None):
        key = self._cache_key(sql_key)
        if sql_key is not None and key in self._plans:
            return self._plans[key]
        qualified = qualify_statement(ast, self.catalog)
        est = Estimator(self.catalog)
        query = run_rules(Builder(self.catalog, est).build(qualified, original=ast))
        query = copartition(query, self.catalog, self.nranks)
        phys = PhysicalPlanner(est, self.params, self.nranks, self.forced_patterns).plan(query)
        if sql_key is not None:
            phys.key = hashlib.sha1(repr(key).encode()).hexdigest()
        if sql_key is not None:
            if len(self._plans) >= PLAN_CACHE_SIZE:
                self._plans.pop(next(iter(self._plans)))
            self._plans[key] = phys
        return phys

    def plan(self, sql: str, params=None):
        with _nesting_guard():
            return self._plan(sql, params)

    def _plan(self, sql: str, params=None):
        ast = parse(sql)
        stmt = classify(ast, sql)
        if stmt.kind not in ("query", "explain"):
            raise NotSupportedError(f"planning {stmt.kind}")
        q = bind_params(stmt.query, params) if params else stmt.query
        return self._plan_query(q, _param_key(sql, params))

    # ------------------------------------------------------------------ public API (rank 0)
    def _cached_query_plan(self, sql: str, params):
        """The plan of a query statement, from the cache when the same text (and parameter values)
        was planned before: repeated and prepared statements skip parsing and planning."""
        key = _param_key(sql, params)
        hit = self._plans.get(self._cache_key(key))
        if hit is not None:
            return hit
        with _nesting_guard():
            stmt = classify(parse(sql), sql)
            if stmt.kind != "query":
                return stmt
            return self._plan_query(bind_params(stmt.query, params), key)

    def execute(self, sql: str, params=None) -> pa.Table:
        with self._lock:
            self._cancel.clear()
            planned = self._cached_query_plan(sql, params)
            if not isinstance(planned, Statement):
                table = self._run(planned, "collect")
                self._remember_schema(sql, params, table)
                return table
            stmt = planned
            if stmt.kind == "explain":
                text = self.explain_statement(stmt, params)
                return pa.table({"explain": pa.array(text.splitlines(), pa.string())})
            return self._ddl(stmt, params)

    def execute_partitions(self, sql: str, params=None) -> list[pa.Table]:
        with self._lock:
            self._cancel.clear()
            planned = self._cached_query_plan(sql, params)
            if isinstance(planned, Statement):
                return [self.execute(sql, params)]
            parts = self._run(planned, "partitions")
            self._remember_schema(sql, params, next((p for p in parts if p.num_columns), parts[0]))
            return parts

    def explain(self, sql: str, analyze: bool = False, params=None) -> str:
        stmt = classify(parse(sql), sql)
        if stmt.kind == "explain":
            return self.explain_statement(stmt, params)
        if stmt.kind != "query":
            raise NotSupportedError(f"EXPLAIN of {stmt.kind}")
        from planner.qualify import Statement
        return self.explain_statement(Statement("explain", stmt.query, analyze=analyze), params)

    def explain_statement(self, stmt, params=None) -> str:
        with self._lock:
            q = bind_params(stmt.query, params)
            t0 = time.perf_counter()
            phys = self._plan_query(q, None)
            plan_s = time.perf_counter() - t0
            stats = None
            if stmt.analyze:
                self._cancel.clear()
                t1 = time.perf_counter()
                result = self._run(phys, "collect")
                total = time.perf_counter() - t1
                stats = (self.last_stats, total, result.num_rows)
            return render_explain(phys, plan_s, stats)

    def prepare(self, sql: str) -> pa.Schema:
        """Plans `sql` into the plan cache (executing it then skips planning) and returns its
        result's schema (see result_schema). Raises what planning raises, e.g. for a statement
        whose parameters are not bound yet."""
        return self.result_schema(sql)

    def result_schema(self, sql: str, params=None) -> pa.Schema:
        """The result's schema: known from an earlier run, or from running the (cached) plan on
        empty tables on this rank alone, once."""
        with self._lock:
            planned = self._cached_query_plan(sql, params)
            if isinstance(planned, Statement):
                return _statement_schema(planned)
            key = self._cache_key(_param_key(sql, params))
            schema = self._schemas.get(key)
            if schema is None:
                if self._schema_scans is None:
                    # Kept: a new DuckDB instance costs about 20 ms, more than most plans.
                    con = duckdb.connect(config={"threads": 1, "enable_external_access": False})
                    self._schema_scans = _EmptyScans(con)
                con = self._schema_scans.con
                runner = Runner(con, LocalComm(), self.catalog, self._schema_scans)
                schema = _rename(runner.run_plan(planned.root), planned.names).schema
                self._remember(key, schema)
            return schema

    def _remember_schema(self, sql: str, params, table: pa.Table | None) -> None:
        if table is not None:
            self._remember(self._cache_key(_param_key(sql, params)), table.schema)

    def _remember(self, key, schema: pa.Schema) -> None:
        if key not in self._schemas and len(self._schemas) >= PLAN_CACHE_SIZE:
            self._schemas.pop(next(iter(self._schemas)))
        self._schemas[key] = schema

    def cancel(self) -> None:
        """Thread-safe: aborts the running query on every rank; execute() raises CancelledError."""
        self._cancel.set()
        self._interrupt()
        qid = self._running_qid
        if self._cancel_comm is not None and qid is not None:
            for r in range(1, self.nranks):
                self._cancel_comm.comm.send(("cancel", qid), dest=r, tag=CANCEL_TAG)

    def _instances(self) -> list:
        """This rank's distinct DuckDB instances, the first one first (one rank has only it)."""
        return list({id(c): c for c in (self.con, self.parquet_con, self.ordered_con)}.values())

    def _interrupt(self) -> None:
        for con in self._instances():
            try:
                con.interrupt()
            except Exception:  # noqa: BLE001 - nothing running, or already closed
                pass

    def _listen_for_cancel(self) -> None:
        while True:
            # Poll with sleeps: a blocking receive would spin on a core for as long as we live.
            req = self._cancel_comm.comm.irecv(source=0, tag=CANCEL_TAG)
            while True:
                done, msg = req.test()
                if done:
                    break
                time.sleep(IDLE_POLL_S * 5)
            kind, qid = msg
            if kind == "stop":
                return
            if qid == self._running_qid:
                self._interrupt()

    def refresh(self) -> None:
        self.catalog.refresh()
        self._plans.clear()
        self._schemas.clear()

    def peak_rss_mb(self) -> list[float]:
        """Peak resident memory of every rank so far, in MiB (rank order)."""
        with self._lock:
            self._broadcast(("rss",))
            return self.world.allgather_obj(_peak_rss_mb())

    # ------------------------------------------------------------------ SPMD
    def _broadcast(self, msg):
        if self.nranks > 1:
            self.world.polite_barrier()
            self.world.bcast_obj(msg)

    def _run(self, phys, mode: str):
        self._qid += 1
        self._broadcast(("run", phys, mode, self._qid))
        return self._execute_plan(phys, mode, qid=self._qid)

    def _execute_plan(self, phys, mode: str, target: str | None = None, qid=None):
        comm = self.world.dup(self.exchange_spill_dir, self.exchange_budget) if self.nranks > 1 else self.world
        self._running_qid = qid
        try:
            # Join filters may prune Parquet row groups only when no join key can be NaN.
            runner = Runner(self.con, comm, self.catalog, self.scans, cancelled=self._cancel.is_set,
                            parquet_con=self.parquet_con if phys.nan_free_join_keys else None,
                            ordered_con=self.ordered_con if phys.nan_free_join_keys else None,
                            fragment_times=self._fragment_times, plan_key=phys.key)
            if mode == "collect":
                table = runner.run_plan(phys.root)
                stats = comm.allgather_obj(runner.stats)
                self.last_stats = stats
                return _rename(table, phys.names) if table is not None else None
            if mode == "partitions":
                return self._partitions(runner, comm, phys)
            if mode == "write":
                return self._write_parts(runner, comm, phys, target)
            raise ExecutionError(f"unknown mode {mode}")
        finally:
            self._running_qid = None
            if comm is not self.world:
                comm.free()

    def _local_result(self, runner, comm, phys) -> pa.Table | None:
        """Each rank's own part of the result (no final gather); a replicated result lives on rank 0."""
        from planner.patterns.base import Exchange
        root = phys.root
        if isinstance(root, Exchange) and root.kind == "gather":
            err, table = None, None
            try:
                table = runner.materialize(root.input)
            except BaseException as e:  # noqa: BLE001
                err = e
            runner.sync(err)
            return _rename(table, phys.names)
        table = runner.run_plan(root)
        if comm.rank == 0:
            return _rename(table, phys.names)
        return None

    def _partitions(self, runner, comm, phys):
        mine = self._local_result(runner, comm, phys)
        if comm.size == 1:
            return [mine]
        if mine is None:
            mine = pa.table({})
        parts = comm.gather_tables(mine)
        if comm.rank != 0:
            return None
        schema = next((p.schema for p in parts if p.num_columns), None)
        return [p if p.num_columns else schema.empty_table() for p in parts]

    def _write_parts(self, runner, comm, phys, target_dir: str):
        mine = self._local_result(runner, comm, phys)
        err = None
        try:
            if mine is not None:
                mine = _parquet_safe(mine)
                pq.write_table(mine, os.path.join(target_dir, f"part-{comm.rank:05d}.parquet"))
        except BaseException as e:  # noqa: BLE001
            err = e
        runner.sync(err)
        return mine.schema if mine is not None else None

    def worker_loop(self) -> None:
        """Non-zero ranks: run what rank 0 sends until it says stop."""
        while True:
            self.world.polite_barrier(IDLE_POLL_S)
            msg = self.world.bcast_obj(None)
            kind = msg[0]
            if kind == "stop":
                break
            try:
                if kind == "run":
                    self._execute_plan(msg[1], msg[2], qid=msg[3])
                elif kind == "write":
                    self._execute_plan(msg[1], "write", msg[2], qid=msg[3])
                elif kind == "refresh":
                    self.refresh()
                elif kind == "rss":
                    self.world.allgather_obj(_peak_rss_mb())
            except FlockError:
                pass  # rank 0 reports it
            except Exception:  # noqa: BLE001
                logging.getLogger("flocksql").exception("rank %d: unexpected error", self.rank)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.rank == 0:
            self._broadcast(("stop",))
            if self._cancel_comm is not None:
                for r in range(1, self.nranks):
                    self._cancel_comm.comm.send(("stop", None), dest=r, tag=CANCEL_TAG)
        elif self._listener is not None:
            self._listener.join(timeout=5)
        try:
            self.con.close()
            for con in self._instances()[1:]:
                con.close()
            if self._schema_scans is not None:
                self._schema_scans.con.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ DDL (rank 0)
    def _ddl(self, stmt, params):
        data = self.catalog.data_dir
        name = stmt.name
        if stmt.kind == "create_table":
            exists = self.catalog.has_table(name) or name in self.catalog.views
            if exists and not stmt.or_replace:
                raise CatalogError(f"table {name} already exists")
            if name in self.catalog.views:
                raise CatalogError(f"{name} is a view")
            q = bind_params(stmt.query, params)
            phys = self._plan_query(q, None)
            tmp = data / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            try:
                self._qid += 1
                self._broadcast(("write", phys, str(tmp), self._qid))
                schema = self._execute_plan(phys, "write", str(tmp), qid=self._qid)
                if not any(tmp.iterdir()):
                    pq.write_table(schema.empty_table(), tmp / "part-00000.parquet")
                self._replace_dir(tmp, data / name)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            rows = sum(pq.ParquetFile(p).metadata.num_rows for p in (data / name).glob("*.parquet"))
            self._refresh_all()
            return pa.table({"Count": pa.array([rows], pa.int64())})
        if stmt.kind == "drop_table":
            if not self.catalog.has_table(name):
                if stmt.if_exists:
                    return pa.table({"Count": pa.array([0], pa.int64())})
                raise CatalogError(f"unknown table: {name}")
            table = self.catalog.table(name)
            path = data / name if (data / name).is_dir() else Path(table.files[0])
            trash = data / f".trash-{name}-{uuid.uuid4().hex[:8]}"
            os.rename(path, trash)
            shutil.rmtree(trash, ignore_errors=True) if trash.is_dir() else trash.unlink()
            self._refresh_all()
            return pa.table({"Count": pa.array([0], pa.int64())})
        if stmt.kind == "create_view":
            if self.catalog.has_table(name):
                raise CatalogError(f"table {name} already exists")
            if name in self.catalog.views and not stmt.or_replace:
                raise CatalogError(f"view {name} already exists")
            body = stmt.query.sql("duckdb")
            self._plan_query(parse(body), None)  # must plan now
            self.catalog.views[name] = body
            self.catalog.save_views()
            self._refresh_all()
            return pa.table({"Count": pa.array([0], pa.int64())})
        if stmt.kind == "drop_view":
            if name not in self.catalog.views:
                if stmt.if_exists:
                    return pa.table({"Count": pa.array([0], pa.int64())})
                raise CatalogError(f"unknown view: {name}")
            del self.catalog.views[name]
            self.catalog.save_views()
            self._refresh_all()
            return pa.table({"Count": pa.array([0], pa.int64())})
        raise NotSupportedError(f"statement {stmt.kind}")

    @staticmethod
    def _replace_dir(tmp: Path, final: Path):
        # The rename is the commit point: readers see the old table or the new one, never half.
        if final.exists():
            trash = final.parent / f".trash-{final.name}-{uuid.uuid4().hex[:8]}"
            os.rename(final, trash)
            os.rename(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            single = final.parent / f"{final.name}.parquet"
            if single.exists():
                single.unlink()
            os.rename(tmp, final)

    def _refresh_all(self):
        self._broadcast(("refresh",))
        self.refresh()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _peak_rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _statement_schema(stmt: Statement) -> pa.Schema:
    """The result schema of a statement that is not a query: EXPLAIN's, or none (DDL)."""
    return pa.schema([("explain", pa.string())]) if stmt.kind == "explain" else pa.schema([])


def _param_key(sql: str, params) -> str:
    if not params:
        return sql
    return sql + "\x00" + repr([(type(p).__name__, p) for p in params])


class _EmptyScans(ScanSource):
    def __init__(self, con):
        super().__init__(con, 0, 1)

    def source(self, table, columns, replicated):
        key = (table.name, tuple(columns), "empty")
        if key in self._cache:
            return self._register(key, None)
        return self._register(key, pa.schema([table.schema.field(c) for c in columns]).empty_table())


def _rename(table: pa.Table | None, names) -> pa.Table | None:
    if table is None:
        return None
    return table.rename_columns(list(names))


def _parquet_safe(table: pa.Table) -> pa.Table:
    names, seen = [], {}
    for n in table.column_names:
        if n in seen:
            seen[n] += 1
            n = f"{n}_{seen[n]}"
        else:
            seen[n] = 0
        names.append(n)
    return table.rename_columns(names)


class _nesting_guard:
    """Turns a RecursionError of parsing or planning into a clear refusal."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is RecursionError:
            raise NotSupportedError("a statement nested this deeply (derived tables or parentheses)") from None
        return False
