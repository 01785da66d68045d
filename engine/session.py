"""A FlockSQL session: the catalog, the planner and this rank's executor.

Rank 0 is the driver: it parses and plans, sends the physical plan to every rank, and gets the
result back. Other ranks sit in `worker_loop()` and run what rank 0 sends. With one rank (no MPI
launcher) everything happens in-process.
"""
from __future__ import annotations

import hashlib
import itertools
import logging
import os
import pickle
import queue
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from engine import catalog_statements, rank0_duckdb, recursive, temp_tables, writes
from engine.catalog import Catalog
from engine import client_session as cs
from engine.client_session import ClientSession
from engine.errors import (CancelledError, CatalogError, CommError, ExecutionError, FlockError, InvalidValueError,
                           NotSupportedError, PlanError, from_duckdb)
from engine.lanes import Lane, LanePool, QueryToken, query_kind
from engine.system_catalog import SystemCatalog
from engine.leftovers import owner_tag, rank_tmp_prefix, temp_owner
from executors.comm import LocalComm, send_bytes
from executors.doorbell import Doorbell, wait_for_message
from executors.memory import lifetime_peak_rss_bytes, watch_memory
from executors.scratch import scratch_cursor
from executors.runner import Runner, runs_on_rank0_alone
from executors.scan import ScanSource, WholeTables, read_parquet_nan_aware
from planner.build import Builder
from planner.cost import CostParams
from planner.estimate import Estimator
from planner.explain import ExplainOptions, display_names, render_explain, rename_ids
from planner.copartition import copartition
from planner.filtered_ranges import balance_filtered_scans
from planner.physical import PhysicalPlanner
from planner.rules.sample_clause import has_unseeded_sample
from planner.single_rank import alone_max_cost, single_rank_plan
from planner.rules import run_rules
from planner.qualify import Statement, bind_params, classify, parse, qualify_statement, without_outer_comments
from planner.qualify import columns_of, with_short_in_lists
from planner.rules import pivot as pivot_rule

# Parsing, binding and planning recurse once or more per nesting level of the SQL (derived tables,
# parenthesised expressions); DuckDB admits 1000 levels, Python's default limit stops near 100.
# A query nested deeper than the limit set here is refused as not supported (see _planned).
PLANNING_RECURSION_LIMIT = 30_000
FRAGMENT_EXPRESSION_DEPTH = 5_000
if sys.getrecursionlimit() < PLANNING_RECURSION_LIMIT:
    sys.setrecursionlimit(PLANNING_RECURSION_LIMIT)

logging.getLogger("sqlglot").setLevel(logging.ERROR)

PLAN_CACHE_SIZE = 256
# Rows per record batch of a streamed result (Session.stream): small enough that the first batch
# leaves early, big enough that per-batch costs vanish (TPC-H lineitem: about 8 MiB).
STREAM_BATCH_ROWS = 65_536
CONTROL_TAG = 7
# Queries in flight at once (lanes, engine/lanes.py) unless the caller says otherwise.
DEFAULT_LANES = 4
# How often a worker rank checks for rank 0's next message where the doorbell does not work (UDP
# blocked): at once while queries keep coming, less often the longer it has been idle (MPI's
# blocking receive would spin on a core instead).
BUSY_POLL_S, BUSY_FOR_S = 0.00005, 1.0
IDLE_POLL_S, DEEP_IDLE_AFTER_S, DEEP_IDLE_POLL_S = 0.001, 10.0, 0.002


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
        tasks = os.environ.get("SLURM_STEP_NUM_TASKS", "1")
        if tasks.isdigit() and int(tasks) > 1:
            # Each task would be a flock of one, all of them serving: srun gave MPI no way to
            # connect them (its MPI plugin is 'none' unless --mpi or the site's MpiDefault says).
            raise CommError(f"srun started {tasks} tasks but MPI sees one rank in each: run srun with "
                            "--mpi=pmi2 (MPICH's PMI-2; or set MpiDefault=pmi2 in slurm.conf)")
    return LocalComm()


# The ranks on this rank's node in COMM_WORLD: asked once per process, not at every Session's
# start (a collective, and MPI's blocking ones spin while they wait).
_WORLD_LOCAL_RANKS: list[int] = []


def _local_ranks(comm) -> int:
    if comm.size == 1:
        return 1
    from mpi4py import MPI
    world = comm.comm == MPI.COMM_WORLD
    if world and _WORLD_LOCAL_RANKS:
        return _WORLD_LOCAL_RANKS[0]
    node = comm.comm.Split_type(MPI.COMM_TYPE_SHARED)
    n = node.Get_size()
    node.Free()
    if world:
        _WORLD_LOCAL_RANKS.append(n)
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
        raise InvalidValueError(f"memory limit {text!r} is not a size such as 4GB or 512MiB")
    number, unit, binary = m.groups()
    power = "KMGT".index(unit.upper()) + 1 if unit else 0
    return int(float(number) * (1024 if binary else 1000) ** power)


class Session:
    def __init__(self, data_dir: str | os.PathLike, threads: int | None = None, comm=None,
                 memory_limit: str | None = None, forced_patterns: dict | None = None,
                 lanes: int | None = None):
        self.world = comm if comm is not None else world_comm()
        self.rank, self.nranks = self.world.rank, self.world.size
        # Each rank's host, in rank order (the console's flock page shows where the ranks run), and
        # rank 0's temporary-table owner, which names this flock's temporary tables (engine/leftovers.py).
        me = (socket.gethostname(), temp_owner())
        hosts = self.world.allgather_obj(me) if self.nranks > 1 else [me]
        self.hosts = [host for host, _ in hosts]
        # Only rank 0 plans, so only rank 0 measures statistics.
        self.catalog = Catalog(data_dir, statistics=self.rank == 0, temp_owner=hosts[0][1])
        local = _local_ranks(self.world)
        self.threads = threads or max(1, (os.cpu_count() or 1) // local)
        self.tmp = Path(tempfile.mkdtemp(prefix=rank_tmp_prefix(self.rank)))  # engine/leftovers.py
        # One memory budget per rank (default: three quarters of the node's memory shared by its
        # ranks), split between its DuckDB instances, each of which spills beyond its share: one
        # rank has one instance; several have half for the instance that runs fragments over
        # exchanged data (the joins and aggregates after a shuffle) and a quarter each for the
        # other two. Exchanged tables live outside DuckDB: past an eighth of the budget, a query's
        # further received buffers are file-backed in the rank's temporary folder (they spill).
        budget = size_in_bytes(memory_limit) if memory_limit else int(_total_memory() * 0.75 / local)
        self.memory_budget = budget
        self.exchange_budget = budget // 8
        self.exchange_spill_dir = self.tmp / "exchange"
        self.exchange_spill_dir.mkdir(exist_ok=True)
        share = (lambda quarters: f"{max(1, budget * quarters // 4 // 2**20)}MiB")  # noqa: E731
        self.con = self._connect(share(4) if self.nranks == 1 else share(2), "single" if self.nranks == 1 else "arrow")
        # Fragments that read only Parquet files run on a second instance that keeps DuckDB's join
        # ordering: it has the files' statistics (Q12 at 2 ranks: 0.17 s -> 0.12 s per fragment);
        # those that join an aggregate's result on a third that keeps our order and build sides
        # but DuckDB's join filters (Runner._connection_for says which). The instances run one
        # fragment at a time, never together.
        self.parquet_con = self.con if self.nranks == 1 else self._connect(share(1), "parquet")
        self.ordered_con = self.con if self.nranks == 1 else self._connect(share(1), "ordered")
        self.params = CostParams.load()
        self.forced_patterns = forced_patterns or {}
        self.alone_max_cost = alone_max_cost()  # planner/single_rank.py
        self._plans: dict = {}
        # Plan cache key -> the result's schema, once known (from a run, or a run on empty tables).
        self._schemas: dict = {}
        self._schema_scans = None  # empty tables in a DuckDB instance of their own (result_schema)
        # (plan key, fragment number) -> {DuckDB instance: best seconds}, this rank's own timings.
        self._fragment_times: dict = {}
        self._key_types: dict = {}  # Runner._key_types' answers, per cached plan
        self._plans_at_workers: set[str] = set()  # rank 0: plan keys the workers hold (_shipped)
        self._plans_from_rank0: dict = {}  # a worker: the plans rank 0 sent, by key
        self._ship_lock = threading.RLock()
        # Planning, the plan cache and the catalog are shared by all lanes: one thread at a time.
        self._plan_lock = threading.RLock()
        # Rank 0 talks to the workers on a communicator of its own, point to point: a query's plan
        # goes to the workers' lane threads, a cancel to their main thread even while lanes run.
        self._control = self.world.dup() if self.nranks > 1 else None
        # Rank 0 rings the workers after each control message, so they wait without spinning.
        self._doorbell = Doorbell.open(self._control.comm) if self._control is not None else None
        self.lanes = [self._lane(i) for i in range(max(1, lanes or DEFAULT_LANES))]
        for con in {id(c): c for c in (self.con, self.parquet_con, self.ordered_con)}.values():
            con.execute("SET lock_configuration=true")
        # Big queries at once: each uses every DuckDB thread of its rank, so two only pay where a
        # rank has threads to spare (a 2-core machine at 2 ranks runs them one after the other).
        self._pool = LanePool(self.lanes, big_lanes=max(1, self.threads // 2))
        self._qids = itertools.count(1)
        self._running: dict[int, QueryToken] = {}  # rank 0: qid -> token of each running query
        # Workers: qids cancelled before their lane started them (the cancel overtook the plan).
        self._cancelled_qids: set[int] = set()
        self._cancel_lock = threading.Lock()
        self.last_stats = None
        # Rank 0 answers catalog SQL (information_schema, SHOW, DESCRIBE, SET) from a mirror of the
        # catalog in DuckDB (engine/system_catalog.py); calls without a client session share one.
        self.system = SystemCatalog() if self.rank == 0 else None
        self.default_client = ClientSession()
        # Where this rank keeps its part of a result that clients fetch from the ranks themselves
        # (Session.keep_parts). The server layer sets both on each rank that serves parts:
        # `part_keeper(result_id, table, schema)` stores this rank's part in `schema`, and
        # `part_location` is the URI clients fetch it from (None on rank 0: the Flight SQL server).
        self.part_keeper = None
        self.part_location: str | None = None
        # Rank 0, with several ranks: the watch that learns at once when a worker dies (engine/
        # lifeline.py; open_session sets it). The server answers its clients through `on_lost`.
        self.lifeline = None
        self._closed = False

    def _lane(self, index: int) -> Lane:
        # Cursors share their instance's database and settings but not its registered views.
        cursors = {id(c): c.cursor() for c in (self.con, self.parquet_con, self.ordered_con)}
        for cursor in cursors.values():
            # A connection's own setting (not the instance's).
            cursor.execute(f"SET max_expression_depth = {FRAGMENT_EXPRESSION_DEPTH}")
            # DuckDB's profiler, off, but silent once EXPLAIN ANALYZE turns it on (Runner.fetch):
            # after the configuration is locked only the API can, and it keeps this output mode.
            cursor.execute("SET enable_profiling = 'no_output'")
            cursor.execute("PRAGMA disable_profiling")
        con = cursors[id(self.con)]
        comm = self.world.dup() if self.nranks > 1 else LocalComm()
        return Lane(index, comm, con, cursors[id(self.parquet_con)], cursors[id(self.ordered_con)],
                    ScanSource(con, self.rank, self.nranks))

    @property
    def concurrent_queries(self) -> int:
        """How many queries may run at once (the server sizes its thread pool by it)."""
        return len(self.lanes)

    def _connect(self, memory_limit: str, kind: str):
        """A DuckDB instance for one kind of fragment: single (the one instance at one rank),
        arrow, parquet or ordered (see below)."""
        con = duckdb.connect(config={"threads": self.threads})
        con.execute(f"SET memory_limit='{memory_limit}'")
        read_parquet_nan_aware(con)
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
        # Every fragment over a Parquet file opens it again; DuckDB otherwise reads and decodes its
        # footer each time (1.6 ms of a store_sales fragment's 23, and 1.2 ms more to bind it).
        # The cache checks each file's modification time, so a replaced file is read afresh.
        con.execute("SET parquet_metadata_cache = true")
        # Each instance spills into its own folder: DuckDB names its temporary files alike.
        spill = self.tmp / kind
        spill.mkdir(exist_ok=True)
        con.execute(f"SET temp_directory='{spill}'")
        dirs = [d + "/" for d in self.catalog.allowed_directories()] + [str(self.tmp) + "/"]
        con.execute("SET allowed_directories=[" + ", ".join("'" + d.replace("'", "''") + "'" for d in dirs) + "]")
        # The sandbox: plans only ever read the catalog's files; DuckDB refuses everything else.
        # (The configuration is locked once the lanes' cursors exist: see _lane.)
        con.execute("SET enable_external_access=false")
        return con

    # ------------------------------------------------------------------ planning (rank 0)
    def _cache_key(self, sql_key: str | None):
        return (sql_key, self.nranks, tuple(sorted(self.forced_patterns.items())))

    def _plan_query(self, ast, sql_key: str | None, client: ClientSession | None = None):
        """The physical plan of a query AST; the caller holds the plan lock."""
        if sql_key is not None and has_unseeded_sample(ast):
            sql_key = None  # each run draws a sample of its own (planner/rules/sample_clause.py)
        key = self._cache_key(sql_key)
        if sql_key is not None and key in self._plans:
            return self._plans[key]
        qualified = qualify_statement(ast, self.catalog)
        est = Estimator(self.catalog)
        logical = run_rules(Builder(self.catalog, est, self.params).build(qualified, original=ast), estimator=est)
        query = balance_filtered_scans(copartition(logical, self.catalog, self.nranks), self.catalog, self.nranks,
                                       self._key_range_of)
        phys = PhysicalPlanner(est, self.params, self.nranks, self.forced_patterns).plan(query)
        phys.names = self._duckdb_names(ast, sql_key, phys.names, client)
        if not self.forced_patterns:
            phys.single = single_rank_plan(logical, est, self.params, phys, self.alone_max_cost)
            if phys.single is not None:
                phys.single.names = phys.names
        if sql_key is not None:
            phys.key = hashlib.sha1(repr(key).encode()).hexdigest()
            if phys.single is not None:
                phys.single.key = phys.key + "/alone"
        if sql_key is not None:
            if len(self._plans) >= PLAN_CACHE_SIZE:
                self._plans.pop(next(iter(self._plans)))
            self._plans[key] = phys
        return phys

    def _key_range_of(self, name: str, column: str, predicate: str):
        """(lowest, highest) of a small table's column where `predicate` holds, read now by this
        process's DuckDB (planner/filtered_ranges.py balances a big table's read by it), or None."""
        table = self.catalog.table(name)
        con = scratch_cursor(sandboxed=False)
        try:
            row = con.execute(f'SELECT min("{column}"), max("{column}") FROM {table.sql_source(table.files)} '
                              f"WHERE {predicate}").fetchone()
        except duckdb.Error:
            return None  # a predicate only the ranks' fragments can run: no balance, same answer
        finally:
            con.close()
        return row if row is not None and row[0] is not None else None

    def _pivot_values(self, sql: str, client: ClientSession | None) -> list[str]:
        """A PIVOT's values (planner/rules/pivot.py): an ON expression's distinct non-NULL values as
        text, in DuckDB's order, read by a query of their own (`sql`, made by the rule)."""
        return self.execute(sql, client=client).column(0).to_pylist()

    def _duckdb_names(self, ast, sql_key: str | None, names: tuple[str, ...],
                      client: ClientSession | None = None) -> tuple[str, ...]:
        """The result's column names as DuckDB gives them (`count_star()` for an unaliased
        `count(*)`): DuckDB's binder describes the statement over the system catalog's empty
        tables. Our own names stand where it cannot (the same number of columns or nothing)."""
        if self.system is None:
            return names
        short = with_short_in_lists(ast)
        if short is not None:
            text = short.sql("duckdb")
        elif sql_key is not None and not any(c in sql_key for c in "\x00\x01\x02"):
            text = sql_key
        else:
            text = ast.sql("duckdb")
        try:
            described = catalog_statements.describe_names(self, text, client)
        except FlockError:
            return names
        return tuple(described) if len(described) == len(names) else names

    def plan(self, sql: str, params=None):
        with self._plan_lock, _nesting_guard():
            return self._plan(sql, params)

    def _plan(self, sql: str, params=None):
        ast = parse(sql)
        stmt = classify(ast, sql)
        if stmt.kind not in ("query", "explain"):
            raise NotSupportedError(f"planning {stmt.kind}")
        q = bind_params(stmt.query, params) if params else stmt.query
        return self._plan_query(q, _param_key(sql, params))

    # ------------------------------------------------------------------ public API (rank 0)
    def _cached_query_plan(self, sql: str, params, client: ClientSession | None = None):
        """The plan of a query statement, from the cache when the same text (and parameter values)
        was planned before: repeated and prepared statements skip parsing and planning. Other
        statements come back as a Statement: session and catalog statements (see
        engine/catalog_statements.py) are recognised before the SQL parser sees them."""
        client = client or self.default_client
        sql = without_outer_comments(sql)
        key = _param_key(sql, params) + _client_key(client)
        hit = self._plans.get(self._cache_key(key))
        if hit is not None:
            return hit
        special = catalog_statements.recognise(sql)
        if special is not None:
            return special
        with self._plan_lock, _nesting_guard():
            self.catalog.search_path = cs.search_path(client)  # planning holds the lock: see _client_key
            try:
                ast = temp_tables.rewrite(parse(sql), client)
                if recursive.in_write(ast):
                    return Statement("recursive_write", ast, sql=sql)
                stmt = writes.classify_write(ast, sql, self.catalog) or catalog_statements.system_query(classify(ast, sql))
                if stmt.kind != "query":
                    return stmt
                query = stmt.query
                if recursive.recursive_withs(query):
                    return self._in_rank0s_duckdb(query, params, client) or Statement("recursive", query, sql=sql)
                with_ = query.args.get("with_")
                if with_ is not None and with_.args.get("recursive"):  # RECURSIVE, but none is
                    query = query.copy()
                    query.args["with_"].set("recursive", False)
                if pivot_rule.pivots(query):  # the pivoted values are read now: a plan of this data only
                    query = pivot_rule.rewrite_pivot(query, lambda t: columns_of(t, self.catalog),
                                                     lambda sql: self._pivot_values(sql, client))
                    key = None
                original = query
                query, system_parts = catalog_statements.with_system_parts_read(self, query, client)
                if query is original:
                    try:
                        return self._plan_query(bind_params(query, params), key, client)
                    except NotSupportedError:
                        # What the planner cannot plan, rank 0's DuckDB answers over small tables.
                        stmt = self._in_rank0s_duckdb(query, params, client)
                        if stmt is None:
                            raise
                        return stmt
                # The system catalog's rows and settings as of now, shipped with the plan: planned
                # afresh each time.
                self.catalog.install_virtual(system_parts)
                phys = self._plan_query(bind_params(query, params), None, client)
                phys.names = self._duckdb_names(original, None, phys.names, client)
                phys.virtual = system_parts
                if phys.single is not None:
                    phys.single.names, phys.single.virtual = phys.names, system_parts
                return phys
            finally:
                self.catalog.install_virtual({})
                self.catalog.search_path = [cs.DEFAULT_SCHEMA]

    def execute(self, sql: str, params=None, token: QueryToken | None = None,
                client: ClientSession | None = None) -> pa.Table:
        """Runs one statement for `client` (a session of settings; the shared default when None);
        `token` cancels it (from any thread) while it waits or runs."""
        token = token or QueryToken()
        planned = self._cached_query_plan(sql, params, client)
        if not isinstance(planned, Statement):
            table = self._run_query(planned, "collect", token)
            self._remember_schema(sql, params, table, client)
            return table
        stmt = planned
        client = client or self.default_client
        if stmt.kind in catalog_statements.KINDS:
            return catalog_statements.run(self, stmt, params, token, client)
        if stmt.kind in writes.KINDS or stmt.kind in ("create_table", "drop_table", "create_view", "drop_view"):
            with self._pool.exclusive(token) as lane:
                result = (writes.run(self, stmt, params, token, lane) if stmt.kind in writes.KINDS
                          else self._ddl(stmt, params, token, lane))
            if client.in_transaction:
                client.changed_in_transaction.append(" ".join(sql.split())[:60])
            if stmt.name and temp_tables.is_temp_name(stmt.name):
                catalog_statements.track_temp(self, client, stmt)
            return result
        if stmt.kind == "recursive":
            return recursive.run(self, stmt.query, params, token, client)
        if stmt.kind == "rank0_duckdb":
            return self._run_in_rank0s_duckdb(stmt.sql, token)
        if stmt.kind == "recursive_write":
            with self._pool.exclusive(token):
                return recursive.run(self, stmt.query, params, token, client)
        if stmt.kind == "explain":
            text = self.explain_statement(stmt, params, token)
            return pa.table({"explain": pa.array(text.splitlines(), pa.string())})
        raise NotSupportedError(f"statement {stmt.kind}")

    def is_query(self, sql: str, params=None, client: ClientSession | None = None) -> bool:
        """Whether `sql` is a query (planned into the cache now) rather than a statement."""
        return not isinstance(self._cached_query_plan(sql, params, client), Statement)

    def stream(self, sql: str, params=None, token: QueryToken | None = None, client: ClientSession | None = None):
        """(schema, batches): the result's schema at once, and an iterator of its record batches,
        produced as the ranks compute them. Nothing runs until the first batch is asked for;
        closing the iterator early (or cancelling `token`) stops the query on every rank. A
        statement that is not a query runs at once and its result is iterated."""
        token = token or QueryToken()
        planned = self._cached_query_plan(sql, params, client)
        if isinstance(planned, Statement):
            table = self.execute(sql, params, token, client)
            return table.schema, iter(table.to_batches())
        return self.result_schema(sql, params, client), self._stream(planned, token)

    def streams_on_rank0_alone(self, sql: str, params=None, client: ClientSession | None = None) -> bool:
        """Whether streaming `sql` involves no rank but rank 0 (one rank, or a plan rank 0 runs
        alone), so that no MPI call can wait on a rank that died."""
        if self.nranks == 1:
            return True
        planned = self._cached_query_plan(sql, params, client)
        return not isinstance(planned, Statement) and self._alone(planned, "stream")

    def _stream(self, phys, token: QueryToken):
        with self._admit(phys, "stream", token) as lane, self._query_in(lane, token, phys) as qid:
            alone = self._alone(phys, "stream")
            if alone:
                phys = phys.single or phys
            else:
                self._send_run(lane, phys, "stream", qid, None)
            runner = self._runner(lane, LocalComm() if alone else self._query_comm(lane), phys)
            stop = lambda: self._send_workers(("cancel", qid))  # noqa: E731
            names = list(phys.names)
            try:
                with watch_memory(runner.stats) as runner.memory_watch:
                    for batch in runner.stream_plan(phys.root, STREAM_BATCH_ROWS, stop):
                        yield batch.rename_columns(names)
            finally:
                # Every rank's, sent at the stream's end (rank 0's own measured to the last moment).
                token.stats = [runner.stats, *(runner.stream_stats or [None])[1:]]

    def execute_partitions(self, sql: str, params=None, token: QueryToken | None = None,
                           client: ClientSession | None = None) -> list[pa.Table]:
        token = token or QueryToken()
        planned = self._cached_query_plan(sql, params, client)
        if isinstance(planned, Statement):
            return [self.execute(sql, params, token, client)]
        parts = self._run_query(planned, "partitions", token)
        self._remember_schema(sql, params, next((p for p in parts if p.num_columns), parts[0]), client)
        return parts

    def keep_parts(self, sql: str, params=None, token: QueryToken | None = None,
                   client: ClientSession | None = None) -> KeptParts | None:
        """Runs a query and leaves each rank's part of its result on that rank (its `part_keeper`),
        for clients to fetch from the rank itself. None when `sql` is not a query: the caller runs
        it as usual."""
        token = token or QueryToken()
        planned = self._cached_query_plan(sql, params, client)
        if isinstance(planned, Statement):
            return None
        kept = self._run_query(planned, "keep", token, uuid.uuid4().hex)
        self._remember_schema(sql, params, kept.schema.empty_table(), client)
        return kept

    def explain(self, sql: str, analyze: bool = False, params=None, token: QueryToken | None = None,
                verbose: bool = False, fmt: str = "text") -> str:
        """EXPLAIN of a query (`analyze`, `verbose`, `fmt` as planner/explain.py reads them), or of
        an EXPLAIN statement with its own options."""
        stmt = classify(parse(sql), sql)
        if stmt.kind == "explain":
            return self.explain_statement(stmt, params, token)
        if stmt.kind != "query":
            raise NotSupportedError(f"EXPLAIN of {stmt.kind}")
        options = ExplainOptions(analyze, verbose, fmt)
        return self.explain_statement(Statement("explain", stmt.query, analyze=analyze, explain=options), params, token)

    def explain_statement(self, stmt, params=None, token: QueryToken | None = None) -> str:
        token = token or QueryToken()
        q = bind_params(stmt.query, params)
        t0 = time.perf_counter()
        with self._plan_lock:
            phys = self._plan_query(q, None)
        plan_s = time.perf_counter() - t0
        stats = None
        if stmt.analyze:
            t1 = time.perf_counter()
            # "analyze": collect, with each fragment profiled by DuckDB (operators' actual rows).
            result = self._run_query(phys, "analyze", token)
            total = time.perf_counter() - t1
            stats = (token.stats, total, result.num_rows)
        # What runs: the one-rank plan when rank 0 answers alone (EXPLAIN is collected on rank 0).
        return render_explain(phys.single or phys, plan_s, stats, stmt.explain)

    def end_client(self, client: ClientSession) -> None:
        """A client session ends: its temporary tables are dropped, its settings forgotten."""
        for stored in list(client.temp.values()):
            try:
                self.execute(f'DROP {"VIEW" if stored in client.temp_views else "TABLE"} IF EXISTS "{stored}"')
            except FlockError as e:
                logging.getLogger("flocksql").warning("temporary table %s stays: %s", stored, e)
        client.temp.clear()
        client.close()

    def ingest(self, table: str, data: pa.Table, if_not_exist: int = 0, if_exists: int = 0,
               token: QueryToken | None = None, client: ClientSession | None = None,
               schema: str | None = None, catalog: str | None = None) -> int:
        """Flight SQL bulk ingest of `data` into `table` (engine/writes.py: ingest); the row count."""
        from engine.catalog import DATABASE, SCHEMA
        if (schema or SCHEMA).lower() != SCHEMA or (catalog or DATABASE).lower() != DATABASE:
            raise CatalogError(f"unknown schema {catalog or DATABASE}.{schema}: tables live in {DATABASE}.{SCHEMA}")
        token = token or QueryToken()
        with self._pool.exclusive(token) as lane:
            rows = writes.ingest(self, table, data, if_not_exist, if_exists, token, lane)
        client = client or self.default_client
        if client.in_transaction:
            client.changed_in_transaction.append(f"ingest into {table}")
        return rows

    def parameter_schema(self, sql: str, client: ClientSession | None = None) -> pa.Schema:
        """The schema of a statement's parameters (engine/catalog_statements.py: parameter_schema)."""
        sql = without_outer_comments(sql)
        if catalog_statements.recognise(sql) is not None:
            return pa.schema([])
        return catalog_statements.parameter_schema(self, sql, client or self.default_client)

    def prepare(self, sql: str, client: ClientSession | None = None) -> pa.Schema:
        """Plans `sql` into the plan cache (executing it then skips planning) and returns its
        result's schema (see result_schema). Raises what planning raises, e.g. for a statement
        whose parameters are not bound yet."""
        return self.result_schema(sql, client=client)

    def result_schema(self, sql: str, params=None, client: ClientSession | None = None) -> pa.Schema:
        """The result's schema: known from an earlier run, or from running the (cached) plan on
        empty tables on this rank alone, once. Never waits for the ranks."""
        planned = self._cached_query_plan(sql, params, client)
        if isinstance(planned, Statement):
            if planned.kind in catalog_statements.KINDS:
                return catalog_statements.result_schema(self, planned, params, client or self.default_client)
            if planned.kind in ("recursive", "rank0_duckdb") and self.system is not None:
                return catalog_statements.query_schema(self, planned.query.sql("duckdb"), client)
            return _statement_schema(planned)
        key = self._cache_key(_param_key(sql, params) + _client_key(client))
        with self._plan_lock:
            schema = self._schemas.get(key)
            if schema is None:
                if self._schema_scans is None:
                    # Kept: a new DuckDB instance costs about 20 ms, more than most plans.
                    con = duckdb.connect(config={"threads": 1, "enable_external_access": False})
                    self._schema_scans = _EmptyScans(con)
                con = self._schema_scans.con
                runner = Runner(con, LocalComm(), self.catalog, self._schema_scans, virtual=planned.virtual)
                try:
                    schema = _rename(runner.run_plan(planned.root), planned.names).schema
                except ExecutionError as e:  # (a constant's cast, say)
                    raise in_users_terms(e, planned) from None
                self._remember(key, schema)
            return schema

    def _remember_schema(self, sql: str, params, table: pa.Table | None, client=None) -> None:
        if table is not None:
            with self._plan_lock:
                self._remember(self._cache_key(_param_key(sql, params) + _client_key(client)), table.schema)

    def _remember(self, key, schema: pa.Schema) -> None:
        if key not in self._schemas and len(self._schemas) >= PLAN_CACHE_SIZE:
            self._schemas.pop(next(iter(self._schemas)))
        self._schemas[key] = schema

    def cancel(self, token: QueryToken | None = None, reason: str = "cancelled") -> None:
        """Thread-safe: cancels the query of `token` (every running query when None) on every rank;
        its execute() raises CancelledError."""
        tokens = [token] if token is not None else list(self._running.values())
        for t in tokens:
            t.cancel(reason)

    def refresh(self) -> None:
        with self._plan_lock:
            self.catalog.refresh()
            self._plans.clear()
            self._schemas.clear()
            self._key_types.clear()
        # Plans the workers hold: planned again after a refresh, so they travel again.
        with self._ship_lock:
            self._plans_at_workers.clear()
        self._plans_from_rank0.clear()

    def peak_rss_mb(self) -> list[float]:
        """Peak resident memory of every rank so far, in MiB (rank order)."""
        return self._run_query(None, "rss", QueryToken("peak memory"))

    # ------------------------------------------------------------------ SPMD
    def _send_workers(self, msg) -> None:
        if self._control is None:
            return
        payload = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
        # The doorbell rings once the sends are posted, not after they complete: a plan past MPI's
        # eager limit waited in a blocking send for its worker's fallback probe (Q10 at SF 1, 2
        # ranks: 25-30 ms per query).
        send_bytes(self._control, payload, range(1, self.nranks), CONTROL_TAG, before_waiting=self._doorbell.ring)

    def _receive_control(self):
        """A worker's next message from rank 0: woken by the doorbell (executors/doorbell.py), or,
        where its datagrams do not arrive, probing politely (see BUSY_POLL_S)."""
        from mpi4py import MPI
        comm, status = self._control.comm, MPI.Status()
        wait_for_message(lambda: comm.Iprobe(source=0, tag=CONTROL_TAG, status=status), self._doorbell,
                         _idle_poll_s)
        buf = bytearray(status.Get_count(MPI.BYTE))
        comm.Recv([buf, MPI.BYTE], source=0, tag=CONTROL_TAG)
        return pickle.loads(buf)

    def _run_query(self, phys, mode: str, token: QueryToken, target: str | None = None):
        """Runs a plan on a lane (every lane, once no query runs, for writes)."""
        with self._admit(phys, mode, token) as lane:
            return self._run(lane, phys, mode, token, target)

    def _admit(self, phys, mode: str, token: QueryToken):
        """The LanePool's admission for a plan: a lane, or every lane for writes."""
        if mode == "write":
            return self._pool.exclusive(token)
        return self._pool.lane(query_kind(phys.cost) if phys is not None else "light", token)

    @contextmanager
    def _query_in(self, lane: Lane, token: QueryToken, phys=None):
        """A new query id running in `lane` for the block; cancelling `token` meanwhile stops it on
        every rank, and its CancelledError carries the token's reason. A rank's error comes out in
        the user's terms (`in_users_terms`)."""
        qid = next(self._qids)
        lane.start(qid, token.cancelled)
        self._running[qid] = token

        def cancel_everywhere():
            if lane.cancel(qid):
                lane.keep_interrupting(qid)
            self._send_workers(("cancel", qid))

        try:
            with token.hook(cancel_everywhere):
                yield qid
        except CancelledError:
            if token.reason:
                raise CancelledError(f"query cancelled: {token.reason}") from None
            raise
        except ExecutionError as e:
            raise in_users_terms(e, phys) from None
        finally:
            self._running.pop(qid, None)
            lane.finish()

    def _run(self, lane: Lane, phys, mode: str, token: QueryToken, target: str | None = None):
        with self._query_in(lane, token, phys) as qid:
            if self._alone(phys, mode):
                result, stats = self._execute_alone(lane, phys.single or phys, mode)
            else:
                self._send_run(lane, phys, mode, qid, target)
                result, stats = self._execute_plan(lane, phys, mode, target)
        token.stats = stats
        self.last_stats = stats
        return result

    def _send_run(self, lane: Lane, phys, mode: str, qid: int, target: str | None) -> None:
        # One lane's message at a time: a plan's key must not overtake the plan itself.
        with self._ship_lock:
            self._send_workers(("run", lane.index, self._shipped(phys), mode, qid, target))

    def _shipped(self, phys):
        """What a run message carries of its plan: (key, plan, reset). A cached plan travels once;
        later runs send its key alone (pickling a TPC-DS plan on rank 0 and unpickling it on each
        worker took 3 ms per query). The workers keep what they received until rank 0 says reset,
        so they always hold every plan rank 0 believes they hold (see _received)."""
        key = getattr(phys, "key", None)  # None for a run with no plan ("rss")
        if key is None:
            return None, phys, False
        if key in self._plans_at_workers:
            return key, None, False
        reset = len(self._plans_at_workers) >= PLAN_CACHE_SIZE
        if reset:
            self._plans_at_workers.clear()
        self._plans_at_workers.add(key)
        return key, phys, reset

    def _received(self, shipped):
        """A worker's plan for a run message's (key, plan, reset), from _shipped."""
        key, phys, reset = shipped
        if reset:
            self._plans_from_rank0.clear()
        if key is None:
            return phys  # a plan without a key, or a run with none ("rss")
        if phys is None:
            return self._plans_from_rank0[key]
        self._plans_from_rank0[key] = phys
        return phys

    def _alone(self, phys, mode: str) -> bool:
        """Whether rank 0 runs this plan without the other ranks (no round between processes:
        `select 1`, queries over replicated inputs only, and small queries whose one-rank plan
        is cheaper, planner/single_rank.py)."""
        return self.nranks > 1 and phys is not None and mode in ("collect", "analyze", "stream") \
            and (phys.single is not None or runs_on_rank0_alone(phys.root))

    def _in_rank0s_duckdb(self, query, params, client) -> Statement | None:
        """The statement that runs `query` whole in rank 0's DuckDB (its text in `sql`), where it
        may run so (engine/rank0_duckdb.py); else None."""
        text = None if params else rank0_duckdb.text_for_rank0(self, query, client)
        return Statement("rank0_duckdb", query, sql=text) if text else None

    def _run_in_rank0s_duckdb(self, text: str, token: QueryToken) -> pa.Table:
        """A query over small tables run whole by rank 0's DuckDB (engine/rank0_duckdb.py), in a
        lane, cancelled as any query is."""
        with self._pool.lane("light", token) as lane, self._query_in(lane, token):
            try:
                return lane.con.sql(text).to_arrow_table()
            except duckdb.InterruptException:
                raise CancelledError("query cancelled") from None
            except duckdb.Error as e:
                raise from_duckdb(e) from None

    def _execute_alone(self, lane: Lane, phys, mode: str):
        """Runs `phys` (a plan _alone accepted, or its one-rank alternative) on rank 0 only."""
        runner = self._runner(lane, LocalComm(), phys, profile=mode == "analyze")
        with watch_memory(runner.stats):
            table = runner.run_plan(phys.root)
        return _rename(table, phys.names), [runner.stats]

    def _runner(self, lane: Lane, comm, phys, profile: bool = False) -> Runner:
        # A one-rank plan run by rank 0 alone reads whole tables, not rank 0's share.
        scans = WholeTables(lane.scans) if phys.alone_of else lane.scans
        # Join filters may prune Parquet row groups only when no join key can be NaN.
        return Runner(lane.con, comm, self.catalog, scans, cancelled=lane.cancelled.is_set,
                      parquet_con=lane.parquet_con if phys.nan_free_join_keys else None,
                      ordered_con=lane.ordered_con if phys.nan_free_join_keys else None,
                      fragment_times=self._fragment_times, plan_key=phys.key, profile=profile,
                      key_types=self._key_types, virtual=phys.virtual)

    def _query_comm(self, lane: Lane):
        """The lane's communicator with byte counters and a spill budget of the query's own. No
        collective: every rank agrees at each step whether to go on (Runner.sync), so no query
        leaves a message behind for the next one in its lane."""
        return lane.comm.fresh(self.exchange_spill_dir, self.exchange_budget)

    def _execute_plan(self, lane: Lane, phys, mode: str, target: str | None = None):
        """Runs `phys` on this rank in `lane`: (the result, every rank's statistics) on rank 0."""
        if mode == "rss":
            return lane.comm.allgather_obj(_peak_rss_mb()), None
        comm = self._query_comm(lane)
        runner = self._runner(lane, comm, phys, profile=mode == "analyze")
        with watch_memory(runner.stats) as runner.memory_watch:
            result = self._execute_on_this_rank(runner, comm, phys, mode, target)
        return result, (None if mode == "stream" else comm.allgather_obj(runner.stats))

    def _execute_on_this_rank(self, runner, comm, phys, mode: str, target: str | None):
        if mode == "stream":  # a worker's side of Session.stream
            for _ in runner.stream_plan(phys.root, STREAM_BATCH_ROWS):
                pass
            return None
        if mode in ("collect", "analyze"):
            table = runner.run_plan(phys.root)
            result = _rename(table, phys.names) if table is not None else None
        elif mode == "partitions":
            result = self._partitions(runner, comm, phys)
        elif mode == "keep":
            result = self._keep_part(runner, comm, phys, target)
        elif mode == "write":
            result = self._write_parts(runner, comm, phys, target)
        else:
            raise ExecutionError(f"unknown mode {mode}")
        return result

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

    def _keep_part(self, runner, comm, phys, result_id: str) -> KeptParts | None:
        """This rank's part of the result, left with its part_keeper unless it is empty. Every
        rank learns every part's schema and row count, so all keep their part in the same schema
        (the first part with rows decides: an empty part may carry NULL-typed columns)."""
        mine = self._local_result(runner, comm, phys)
        err = None
        if mine is not None and self.part_keeper is None:
            err = ExecutionError(f"rank {comm.rank} serves no parts of results: fetch the result from "
                                 "rank 0 (the default, without partitioned results)")
        runner.sync(err)
        facts = comm.allgather_obj(None if mine is None else (mine.num_rows, mine.get_total_buffer_size(),
                                                              mine.schema, self.part_location))
        present = [(rank, f) for rank, f in enumerate(facts) if f is not None]
        schema = next((f[2] for _, f in present if f[0]), present[0][1][2])
        # The parts clients fetch: those with rows, or one empty part when no rank has any.
        published = [(rank, f) for rank, f in present if f[0]] or present[:1]
        try:
            if any(rank == comm.rank for rank, _ in published):
                self.part_keeper(result_id, mine, schema)
        except BaseException as e:  # noqa: BLE001 - every rank must reach the sync
            err = e
        runner.sync(err)
        return KeptParts(result_id, schema, [KeptPart(rank, f[3], f[0], f[1]) for rank, f in published])

    def _write_parts(self, runner, comm, phys, target_dir: str):
        mine = self._local_result(runner, comm, phys)
        err = None
        try:
            if mine is not None:
                mine = _parquet_safe(mine)
                schema_file = os.path.join(target_dir, writes.PART_SCHEMA_FILE)
                if os.path.exists(schema_file):  # a write into a table: its schema, NOT NULL included
                    schema = pa.ipc.read_schema(pa.OSFile(schema_file))
                    # (NULLs in a NOT NULL column stay visible to the writer's check: engine/writes.py)
                    if not any(c.null_count for c, f in zip(mine.columns, schema) if not f.nullable):
                        mine = pa.Table.from_arrays([c.cast(f.type) for c, f in zip(mine.columns, schema)],
                                                    schema=schema)
                pq.write_table(mine, os.path.join(target_dir, f"part-{comm.rank:05d}.parquet"))
        except BaseException as e:  # noqa: BLE001
            err = e
        runner.sync(err)
        return mine.schema if mine is not None else None

    def worker_loop(self) -> None:
        """Non-zero ranks: run what rank 0 sends until it says stop. The main thread receives;
        each lane's queries run on that lane's thread, in the order rank 0 sent them."""
        inboxes = [queue.SimpleQueue() for _ in self.lanes]
        threads = [threading.Thread(target=self._lane_worker, args=(lane, inbox), daemon=True,
                                    name=f"flocksql-lane-{lane.index}")
                   for lane, inbox in zip(self.lanes, inboxes)]
        for t in threads:
            t.start()
        try:
            while True:
                msg = self._receive_control()
                kind = msg[0]
                if kind == "stop":
                    break
                if kind == "run":
                    inboxes[msg[1]].put(msg[:2] + (self._received(msg[2]),) + msg[3:])
                elif kind == "cancel":
                    self._cancel_here(msg[1])
                elif kind == "refresh":
                    try:
                        self.refresh()
                    except Exception:  # noqa: BLE001 - a worker whose loop ended would hang every query
                        logging.getLogger("flocksql").exception("rank %d: catalog refresh failed", self.rank)
        finally:
            for inbox in inboxes:
                inbox.put(None)
            for t in threads:
                t.join(5)

    def _cancel_here(self, qid: int) -> None:
        with self._cancel_lock:
            for lane in self.lanes:
                if lane.cancel(qid):
                    lane.keep_interrupting(qid)
                    return
            self._cancelled_qids.add(qid)
            if len(self._cancelled_qids) > 10_000:
                self._cancelled_qids = {q for q in self._cancelled_qids if q > qid - 1000}

    def _lane_worker(self, lane: Lane, inbox: queue.SimpleQueue) -> None:
        while True:
            msg = inbox.get()
            if msg is None:
                return
            _, _, phys, mode, qid, target = msg
            with self._cancel_lock:
                early = qid in self._cancelled_qids
                self._cancelled_qids.discard(qid)
                lane.start(qid, early)
            try:
                self._execute_plan(lane, phys, mode, target)
            except FlockError:
                pass  # rank 0 reports it
            except Exception:  # noqa: BLE001
                logging.getLogger("flocksql").exception("rank %d: unexpected error", self.rank)
            finally:
                lane.finish()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.rank == 0:
            self._send_workers(("stop",))
        try:
            for lane in self.lanes:
                lane.close()
            # Every rank frees its communicators in the same order (MPICH has about 2046 per
            # process, and a job may open many Sessions one after another).
            for comm in [lane.comm for lane in self.lanes] + [self._control]:
                if comm is not None:
                    comm.free()
            if self._doorbell is not None:
                self._doorbell.close()
            self.con.close()
            for con in (self.parquet_con, self.ordered_con):
                if con is not self.con:
                    con.close()
            if self._schema_scans is not None:
                self._schema_scans.con.close()
            if self.system is not None:
                self.system.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ DDL (rank 0)
    def _ddl(self, stmt, params, token: QueryToken, lane: Lane):
        """A statement that changes the catalog; the caller holds every lane (LanePool.exclusive)."""
        data = self.catalog.data_dir
        name = stmt.name
        if stmt.kind == "create_table":
            exists = self.catalog.has_table(name) or name in self.catalog.views
            if exists and stmt.if_exists:
                return pa.table({"Count": pa.array([0], pa.int64())})
            if exists and not stmt.or_replace:
                raise CatalogError(f"table {name} already exists")
            if name in self.catalog.views:
                raise CatalogError(f"{name} is a view")
            q = bind_params(stmt.query, params)
            with self._plan_lock:
                phys = self._plan_query(q, None)
            tmp = data / f".tmp-{name.replace('.', '-')}-{owner_tag()}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            try:
                schema = self._run(lane, phys, "write", token, str(tmp))
                if not any(tmp.iterdir()):
                    pq.write_table(schema.empty_table(), tmp / "part-00000.parquet")
                self._replace_dir(tmp, self.catalog.table_path(name).with_suffix(""))
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            rows = sum(pq.ParquetFile(p).metadata.num_rows for p in self.catalog.table_path(name).glob("*.parquet"))
            self._refresh_all()
            return pa.table({"Count": pa.array([rows], pa.int64())})
        if stmt.kind == "drop_table":
            if not self.catalog.has_table(name):
                if stmt.if_exists:
                    return pa.table({"Count": pa.array([0], pa.int64())})
                raise CatalogError(f"unknown table: {name}")
            path = self.catalog.table_path(name)
            trash = data / f".trash-{name.replace('.', '-')}-{owner_tag()}-{uuid.uuid4().hex[:8]}"
            os.rename(path, trash)
            shutil.rmtree(trash, ignore_errors=True) if trash.is_dir() else trash.unlink()
            self._refresh_all()
            return pa.table({"Count": pa.array([0], pa.int64())})
        if stmt.kind == "create_view":
            if self.catalog.has_table(name):
                raise CatalogError(f"table {name} already exists")
            if name in self.catalog.views and stmt.if_exists:
                return pa.table({"Count": pa.array([0], pa.int64())})
            if name in self.catalog.views and not stmt.or_replace:
                raise CatalogError(f"view {name} already exists")
            body = stmt.query.sql("duckdb")
            with self._plan_lock:
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
            trash = final.parent / f".trash-{final.name}-{owner_tag()}-{uuid.uuid4().hex[:8]}"
            os.rename(final, trash)
            os.rename(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            single = final.parent / f"{final.name}.parquet"
            if single.exists():
                single.unlink()
            os.rename(tmp, final)

    def _refresh_all(self):
        with self._ship_lock:  # no plan key may follow the refresh before rank 0 forgets its plans
            self._send_workers(("refresh",))
            self.refresh()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _idle_poll_s(idle_s: float) -> float:
    if idle_s <= BUSY_FOR_S:
        return BUSY_POLL_S
    return IDLE_POLL_S if idle_s < DEEP_IDLE_AFTER_S else DEEP_IDLE_POLL_S


def _peak_rss_mb() -> float:
    return lifetime_peak_rss_bytes() / (1 << 20)


def _statement_schema(stmt: Statement) -> pa.Schema:
    """The result schema of a statement that is not a query: EXPLAIN's, or none (DDL)."""
    return pa.schema([("explain", pa.string())]) if stmt.kind == "explain" else pa.schema([])


def _client_key(client: ClientSession | None) -> str:
    """What a client session adds to its statements' plan-cache key: its temporary tables and a
    search path other than main rename what its table names mean."""
    key = temp_tables.plan_key(client)
    path = cs.search_path(client)
    return key if path == [cs.DEFAULT_SCHEMA] else key + "\x02" + ",".join(path)


def _param_key(sql: str, params) -> str:
    if not params:
        return sql
    return sql + "\x00" + repr([(type(p).__name__, p) for p in params])


class _EmptyScans(ScanSource):
    def __init__(self, con):
        super().__init__(con, 0, 1)

    def source(self, table, columns, replicated, in_order=False):
        key = (table.name, tuple(columns), "empty")
        if key in self._cache:
            return self._register(key, None)
        return self._register(key, pa.schema([table.schema.field(c) for c in columns]).empty_table())


@dataclass(frozen=True, slots=True)
class KeptPart:
    """One rank's part of a kept result: where clients fetch it (None: from rank 0's server)."""
    rank: int
    location: str | None
    rows: int
    nbytes: int


@dataclass(frozen=True, slots=True)
class KeptParts:
    """A result whose parts stay on the ranks that computed them (Session.keep_parts), in rank
    order, which keeps an ORDER BY's order across the parts."""
    result_id: str
    schema: pa.Schema
    parts: list[KeptPart]


def _rename(table: pa.Table | None, names) -> pa.Table | None:
    if table is None:
        return None
    return table.rename_columns(list(names))


def _parquet_safe(table: pa.Table) -> pa.Table:
    """`table` with repeated column names made unique (name_1, …), as a Parquet file can hold it.
    A column Parquet has no type for (pyarrow writes no INTERVAL) is refused by name."""
    writes.refuse_unwritable_types(table.schema)
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


# DuckDB's errors that the query's own text or data cause, by the kind its message starts with:
# the client's to mend (INVALID_ARGUMENT), not the server's (INTERNAL). A Binder Error of a
# fragment is a type error of the user's expression (`n_name + 1`), which the planner carries over
# as written; others stay ExecutionError.
_USERS_ERRORS = {"Conversion Error:": InvalidValueError, "Out of Range Error:": InvalidValueError,
                 "Invalid Input Error:": InvalidValueError, "Syntax Error:": InvalidValueError,  # (a LIKE's ESCAPE)
                 "Binder Error:": PlanError}
_RANK_PREFIX = re.compile(r"^rank \d+: ")


def in_users_terms(error: ExecutionError, phys) -> FlockError:
    """A rank's error as the user can read it: the plan's column ids as the query's names
    (`n_name_2` → n_name), without DuckDB's pointer into a fragment's SQL (`LINE 1: …`, text the
    user never wrote), and of the class the server tells the client by (see _USERS_ERRORS)."""
    msg = str(error).split("\n\nLINE ", 1)[0].rstrip()
    if phys is not None and getattr(phys, "root", None) is not None:
        msg = rename_ids(msg, display_names([phys.root]))
    bare = _RANK_PREFIX.sub("", msg)
    return next((kind(msg) for start, kind in _USERS_ERRORS.items() if bare.startswith(start)), ExecutionError(msg))
