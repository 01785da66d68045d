"""Runs a physical plan on one rank, in step with the others (SPMD).

Every maximal subtree without an Exchange is rendered into ONE DuckDB query (local operators fuse
for free: DuckDB optimises the nested SELECTs as one). An Exchange materialises its input as an
Arrow table, runs a communication primitive, and registers the received table under a name that
the next fragment reads (executors/arrow_views.py).

Errors: before every collective, ranks agree on whether any of them failed (or the query was
cancelled); if so all raise the same error, so no rank waits in a collective that others skipped.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
from sqlglot import exp

from engine.errors import CancelledError, CatalogError, ExecutionError, FlockError
from executors.arrow_views import ArrowViews
from executors.comm import RemoteStreamError, drain_batches, receive_batches, send_batches, split_by_partition
from executors.profile import fragment_profile
from executors.scan import ARROW_VIEW_PREFIX, ScanSource
from planner.comparable import never_raising
from planner.logical import (Aggregate, CteRef, Distinct, Filter, Generate, Join, Limit, MaterializedCte, Node,
                             Project, Scan, SetOp, SingleRow, Sort, Values, Window)
from planner.patterns.base import Exchange, computed_everywhere
from planner.physical import operator_numbers

SAMPLE_ROWS_PER_RANK = 1024
# Fragments whose instance choice a rank remembers (Runner._connection_for), across statements.
FRAGMENT_TIMES_MAX = 10_000
# A fragment's run on the instance it has not tried yet stops at this many times its run on the
# other (at least TRIAL_MIN_S) and is counted as slower: the trial of TPC-DS q21 at SF 10 took
# 4.6 s where the other instance takes 0.3 s, and that run was the statement's second.
TRIAL_FACTOR, TRIAL_MIN_S = 3.0, 0.05
# A fragment that may read a share from memory or from its files reads the files only when they
# took less than 1 / LAZY_MARGIN of the time (Runner._connection_for).
LAZY_MARGIN = 2.0
# The names Runner._view gives the Arrow tables of one run.
_VIEW_NAME = re.compile(ARROW_VIEW_PREFIX + r"x\d+_\d+")
# FLOCKSQL_TRACE=N prints every fragment's time and first N characters on stderr;
# FLOCKSQL_PROFILE_RANK=R adds DuckDB's EXPLAIN ANALYZE of each fragment on rank R.
TRACE = int(os.environ.get("FLOCKSQL_TRACE", "0") or 0)


# DuckDB types that Arrow does not carry: a HUGEINT (every sum of integers) arrives as
# DECIMAL(38,0), a UUID as VARCHAR, and they compute differently there: `CASE WHEN … THEN
# <hugeint> ELSE 3.375 END` keeps the scale, with DECIMAL(38,0) it rounds to 3. fetch() names them
# in their Arrow fields' metadata (it travels with the table through every exchange), and the
# fragment that reads an exchange's result casts them back (_restored).
LOSSY_TYPES = ("HUGEINT", "UHUGEINT", "UUID")
DUCKDB_TYPE = b"flocksql.duckdb_type"


def _tagged(table: pa.Table, types) -> pa.Table:
    """table with the DuckDB type of each LOSSY_TYPES column in its field's metadata."""
    lossy = {i: str(t) for i, t in enumerate(types) if str(t) in LOSSY_TYPES}
    if not lossy:
        return table
    fields = [f.with_metadata({DUCKDB_TYPE: lossy[i]}) if i in lossy else f for i, f in enumerate(table.schema)]
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields, table.schema.metadata))


def _untagged(table: pa.Table | None) -> pa.Table | None:
    """table without _tagged's metadata: what leaves the engine is DuckDB's own Arrow."""
    if table is None or not any(f.metadata and DUCKDB_TYPE in f.metadata for f in table.schema):
        return table
    return pa.Table.from_arrays(table.columns, schema=pa.schema([f.remove_metadata() for f in table.schema],
                                                                 table.schema.metadata))


def _restored(view: str, schema: pa.Schema) -> str:
    """SELECT over an exchanged table's view with _tagged columns cast back to their DuckDB types."""
    casts = [f"CAST({q(f.name)} AS {f.metadata[DUCKDB_TYPE].decode()}) AS {q(f.name)}"
             for f in schema if f.metadata and DUCKDB_TYPE in f.metadata]
    return f"SELECT * REPLACE ({', '.join(casts)}) FROM {view}" if casts else f"SELECT * FROM {view}"


def _literal(v) -> str:
    import datetime as dt
    if isinstance(v, dt.datetime):
        return f"TIMESTAMP '{v.isoformat(sep=' ')}'"
    if isinstance(v, dt.date):
        return f"DATE '{v.isoformat()}'"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"


def q(cid: str) -> str:
    return '"' + cid.replace('"', '""') + '"'


# A cached plan runs again with the same expression objects (plans and their sqlglot trees are
# not changed once planned), and sqlglot's generator was a fifth of a `select 1`'s own time: each
# expression is rendered once. An entry holds its expression, so the id is not reused while it lives.
_SQL_TEXTS: dict[int, tuple[exp.Expression, str]] = {}
SQL_TEXTS_MAX = 50_000


def sql(e: exp.Expression) -> str:
    hit = _SQL_TEXTS.get(id(e))
    if hit is not None and hit[0] is e:
        return hit[1]
    text = e.sql(dialect="duckdb")
    if len(_SQL_TEXTS) >= SQL_TEXTS_MAX:
        _SQL_TEXTS.clear()
    _SQL_TEXTS[id(e)] = (e, text)
    return text


@dataclass
class StageStats:
    eid: int
    kind: str
    rows_in: int = 0
    rows_out: int = 0
    bytes_out: int = 0
    bytes_spilled: int = 0  # received into file-backed buffers (over the exchange budget)
    compute_s: float = 0.0
    comm_s: float = 0.0
    # Blocked until the slower ranks caught up: in the agree round after this rank's local work
    # (Runner.sync) and in the size round before its data flows (MpiComm.wait_s). Not in compute_s
    # or comm_s, which are what is left of each phase.
    wait_s: float = 0.0
    finished_s: float = 0.0  # when the stage ended, in seconds since this rank's runner started


@dataclass
class KeptStats:
    """One materialized CTE on one rank: its part, computed `computed` times (once per run)."""

    label: str
    rows: int = 0
    bytes: int = 0
    bytes_spilled: int = 0  # kept in file-backed buffers (over the query's exchange budget)
    compute_s: float = 0.0
    computed: int = 0


@dataclass
class RunStats:
    stages: dict = field(default_factory=dict)  # eid -> StageStats
    kept: dict = field(default_factory=dict)    # MaterializedCte name -> KeptStats
    final_compute_s: float = 0.0
    final_wait_s: float = 0.0
    # This rank's process: resident memory when the query started and its high-water mark while
    # it ran (executors/memory.py; shared with the queries of other lanes running at the time).
    start_rss_bytes: int = 0
    peak_rss_bytes: int = 0
    # Profiled runs only (EXPLAIN ANALYZE): what DuckDB counted of each fragment this rank ran
    # (executors/profile.py: FragmentProfile).
    fragments: list = field(default_factory=list)


def _inline(x: Exchange) -> bool:
    """A broadcast that every rank computes from the files: part of the fragment that reads it."""
    return computed_everywhere(x)


def _merged_projections(node: Project) -> tuple[tuple[tuple[str, exp.Expression], ...], Node]:
    """node's items over the first input that is not a projection whose outputs they only name:
    Project(Project(x, a AS b), b AS c) is Project(x, a AS c). The renaming layers the planner
    stacks (a union's sides, a CTE's reads) cost DuckDB binding time in every fragment: a TPC-DS
    q18 fragment of 9.7 kB took longer to plan than to run. An inner expression that is not a
    column is taken only where the outer items name it once (it is not computed twice), and a
    projection that unnests (it makes rows) is kept."""
    exprs, inner = node.exprs, node.input
    while isinstance(inner, Project) and all(isinstance(e, exp.Column) for _, e in exprs) and \
            not any(e.find(exp.Unnest, exp.Explode) is not None or _set_returning(e) for _, e in inner.exprs):
        by_id = dict(inner.exprs)
        names = [e.name for _, e in exprs]
        if any(n not in by_id for n in names):
            break
        if any(names.count(n) > 1 and not isinstance(by_id[n], exp.Column) for n in names):
            break
        exprs = tuple((c, by_id[e.name]) for c, e in exprs)
        inner = inner.input
    return exprs, inner


def _set_returning(e: exp.Expression) -> bool:
    """Whether e holds a function that makes rows (`unnest(l)` as sqlglot may keep it by name):
    a projection with one is not a projection of its input's rows."""
    return any(f.name.lower() in ("unnest", "generate_subscripts") for f in e.find_all(exp.Anonymous))


def _one_unread_row(inner: Node, project: Project) -> bool:
    """Whether `inner` is one row of constants that `project` reads no column of (a SELECT without
    FROM is planned over such a row): the projection alone gives the same one row."""
    if not isinstance(inner, Values) or len(inner.rows) != 1:
        return False
    ids = set(inner.ids)
    return all(not any(c.name in ids for c in e.find_all(exp.Column)) for _, e in project.exprs)


def _top_n_order(keys) -> str:
    """The ORDER BY of a sort under a LIMIT (DuckDB's top-n). DuckDB pushes a top-n's running
    threshold into a Parquet scan, which then skips row groups by their min/max statistics; writers
    compute those without NaN, so a row group holding the NaN that belongs in the answer is skipped
    now and then (it depends on which row group a thread reads first: 1 run in 11 on a 4-row-group
    file). A key that is not a plain column is not pushed: coalesce(k, k) is k, NULL and NaN included."""
    wrapped = []
    for key in keys:
        key = key.copy()
        key.set("this", exp.Coalesce(this=key.this.copy(), expressions=[key.this.copy()]))
        wrapped.append(key.sql(dialect="duckdb"))  # a new copy each time: not for the cache
    return ", ".join(wrapped)


def runs_on_rank0_alone(root: Node) -> bool:
    """Whether a plan needs no other rank: no exchange but those every rank computes from the
    files itself (so rank 0 reads what it needs whole), and a result rank 0 holds (not gathered)."""
    if isinstance(root, Exchange) and not _inline(root):
        return False
    return all(runs_on_rank0_alone(c) for c in root.children)


def _joins_an_aggregate(node: Node, under_join: bool = False) -> bool:
    """Whether the fragment rooted at node joins the result of a GROUP BY or DISTINCT (exchanges
    end the fragment). DuckDB cannot estimate how many rows those keep (HAVING, group counts)."""
    if isinstance(node, Exchange) and not _inline(node):
        return False
    if under_join and isinstance(node, (Aggregate, Distinct)):
        return True
    under = under_join or isinstance(node, Join)
    return any(_joins_an_aggregate(c, under) for c in node.children)


def _past_kept(node: Node | None) -> Node | None:
    """The operator a fragment's query starts with: a MaterializedCte renders as its input (its
    definition ran as a fragment of its own)."""
    while isinstance(node, MaterializedCte):
        node = node.input
    return node


class Runner:
    def __init__(self, con, comm, catalog, scans: ScanSource, cancelled=lambda: False, parquet_con=None,
                 ordered_con=None, fragment_times: dict | None = None, plan_key: str | None = None,
                 profile: bool = False, key_types: dict | None = None, virtual: dict | None = None):
        self.con = con
        # Profile each fragment with DuckDB (EXPLAIN ANALYZE): off for every other run, which
        # then pays nothing for it (DuckDB's profiler stays off on the lane's connections).
        self.profile = profile
        self._numbers: dict = {}
        # Fragments of exchanges that received no rows on this rank (see _render_join); a set of
        # this runner's own, also for plans run through materialize() (a write's parts).
        self._empty_inputs = set()
        self.parquet_con = parquet_con if parquet_con is not None else con
        self.ordered_con = ordered_con if ordered_con is not None else self.parquet_con
        self.fragment_times = fragment_times if fragment_times is not None else {}
        self.plan_key = plan_key
        self._fragments = 0
        # The SQL types of hash-exchange keys, kept across runs of a cached plan (see _key_types).
        self.key_types = key_types if key_types is not None else {}
        self.comm = comm
        self.catalog = catalog
        self.virtual = virtual or {}  # tables that travel with the plan (PhysicalPlan.virtual)
        self.scans = scans
        self.cancelled = cancelled
        # The exchanged tables this query's fragments read, by name, and where each is registered
        # (on self.con; on another instance too where a fragment runs there: _on_instance).
        self._view_tables: dict[str, pa.Table] = {}
        self._view_schemas: dict[str, pa.Schema] = {}
        self._arrow_views: dict[int, ArrowViews] = {}  # id(con) -> its registrations
        # Materialized CTEs of the running statement: name -> (the SELECT over this rank's kept
        # part, whether that part is empty). Freed with the views when the statement ends.
        self._kept: dict[str, tuple[str, bool]] = {}
        self.stats = RunStats()
        # Set by the caller while it measures this rank's memory (executors/memory.RssWatch), so
        # that statistics sent before the measurement ends carry the peak so far.
        self.memory_watch = None
        # Rank 0, after a stream ended: every rank's statistics (gathered in the stream's last
        # collective, which every rank reaches however the stream ended). None elsewhere.
        self.stream_stats: list[RunStats] | None = None
        self._qid = 0
        self._sync_wait_s = 0.0
        self._started = time.perf_counter()

    def _waited_s(self) -> float:
        """Seconds this runner has spent blocked waiting for other ranks so far."""
        return self._sync_wait_s + getattr(self.comm, "wait_s", 0.0)

    # ------------------------------------------------------------------ sync
    def sync(self, error: BaseException | None):
        """Collective: every rank learns whether any rank failed; all raise the first error."""
        mine = None
        # Any rank may learn of a cancel first (rank 0 tells each rank directly).
        if self.cancelled():
            mine = ("CancelledError", "query cancelled", True)
        elif error is not None:
            mine = (type(error).__name__, str(error), isinstance(error, FlockError))
        # One round of flags; the messages travel only when some rank has one. A rank that
        # arrives first waits here for the slowest: that time is waiting, not work.
        t0 = time.perf_counter()
        flags = self.comm.agree(0 if mine is None else 1)
        self._sync_wait_s += time.perf_counter() - t0
        if not any(flags):
            return
        infos = self.comm.allgather_obj(mine)
        if any(info is not None and info[0] == "CancelledError" for info in infos):
            raise CancelledError("query cancelled")
        for r, info in enumerate(infos):
            if info is not None:
                name, msg, ours = info
                if name == "CatalogException":  # DuckDB's: an unknown function or type
                    raise CatalogError(msg.replace("Catalog Error: ", "", 1))
                if error is not None and r == self.comm.rank:
                    if isinstance(error, FlockError):
                        raise error
                    raise ExecutionError(msg) from error
                raise ExecutionError(msg if ours or self.comm.size == 1 else f"rank {r}: {msg}")

    def local(self, fn):
        """Runs local work, then agrees with every rank on whether anyone failed (collective)."""
        err = result = None
        try:
            result = fn()
        except BaseException as e:  # noqa: BLE001 - reported collectively
            err = e
        self.sync(err)
        return result

    def fetch(self, query: str, node: Node | None = None) -> pa.Table:
        node = _past_kept(node)
        if self.cancelled():
            raise CancelledError("query cancelled")
        (kind, con, query), times, fallback = self._connection_for(query, node)
        profiled = self.profile and node is not None and id(node) in self._numbers
        trial = fired = None
        if fallback is not None and kind not in times and not profiled:
            fired = threading.Event()

            def stop(con=con):
                fired.set()
                con.interrupt()
            # The files against memory win only at LAZY_MARGIN times faster: past memory's time they lost.
            factor = 1.0 if fallback[0] == "memory" else TRIAL_FACTOR
            trial = threading.Timer(max(TRIAL_MIN_S, factor * times[fallback[0]]), stop)
            trial.start()
        self._on_instance(con, query)
        t0 = time.perf_counter()
        try:
            out = self._run_fragment(con, query, node if profiled else None)
        except duckdb.InterruptException:
            if fired is None or not fired.is_set() or self.cancelled():
                raise
            # The trial ran past its limit (an interrupt that comes after a fragment ended is
            # dropped): this way is the slower one, and the fragment runs the other way.
            times[kind] = float("inf")
            kind, con, query = fallback
            self._on_instance(con, query)
            t0 = time.perf_counter()
            out = self._run_fragment(con, query, None)
        finally:
            if trial is not None:
                trial.cancel()
        if times is not None:
            times[kind] = min(times.get(kind, float("inf")), time.perf_counter() - t0)
        if TRACE:
            if os.environ.get("FLOCKSQL_PROFILE_RANK") == str(self.comm.rank):
                # DuckDB's profile of the fragment (run a second time) on one chosen rank.
                print(con.sql("EXPLAIN ANALYZE " + self._sql_on(con, query)).fetchall()[0][1], file=sys.stderr)
            print(f"[rank {self.comm.rank}] {time.perf_counter() - t0:.3f}s {kind} {out.num_rows} rows: {query[:TRACE]}",
                  file=sys.stderr)
        return out

    def _run_fragment(self, con, query: str, profiled: Node | None) -> pa.Table:
        """The fragment's rows from DuckDB; profiled: its node, when DuckDB's profile is kept."""
        if profiled is not None:
            # The connection's configuration is locked: its profiler was set up silent and off
            # (Session._lane), and the API turns it on and off without a SET.
            con.enable_profiling()
        try:
            rel = con.sql(self._sql_on(con, query))
            out = _tagged(rel.to_arrow_table(), rel.types)
            if profiled is not None:
                self._keep_profile(con.get_profiling_information(format="json"), profiled)
            return out
        finally:
            if profiled is not None:
                con.disable_profiling()

    def _keep_profile(self, profile_json: str, node: Node) -> None:
        """What DuckDB counted of the fragment rooted at node, mapped onto the plan's operators.
        A mapping that fails loses the counts, never the query."""
        try:
            got = fragment_profile(profile_json, node, self._numbers, self.comm.rank, self.comm.size,
                                   self._root_exchange)
        except Exception:  # noqa: BLE001 - EXPLAIN ANALYZE shows fewer counts
            logging.getLogger("flocksql").exception("rank %d: could not read DuckDB's profile", self.comm.rank)
            return
        if got is not None:
            self.stats.fragments.append(got)

    def _connection_for(self, query: str, node: Node | None):
        """((kind, DuckDB instance, the fragment's text for it), the record of each kind's times
        when there is a choice, the other choice's (kind, instance, text) for a trial that runs
        too long).

        Arrow views carry no statistics, so a fragment that reads one runs without DuckDB's join
        ordering (and join filters). A fragment over Parquet only can use DuckDB's ordering or
        ours (with DuckDB's join filters), and neither wins everywhere: DuckDB cannot estimate
        what an aggregate keeps and then joins it last (TPC-H Q18 at SF 10, 2 ranks: 10.5 s
        instead of 4.1 s), while its build sides beat ours on Q3, Q4 and Q10. So the first run
        of a statement follows a rule (ours when the fragment joins an aggregate's result), the
        second tries the other instance, and later runs keep the faster one for each fragment
        (each rank on its own timings).

        A fragment that reads a rank's share of a file whose row groups a filter can skip (see
        ScanSource.lazy_text), beside Arrow views, may instead read that share from the file on
        an instance with DuckDB's join filters: they then skip the row groups a filtered
        dimension rules out, which a scan of memory (or of the file without join filters) reads
        whole (TPC-DS q21, q37, q82: a few weeks of inventory, which is in date order). Each way
        is timed under its own kind: `memory` (the share in memory), `arrow` (the share read
        from the file where Arrow views are read) and the instance's; later runs keep the
        fastest, memory unless the file is LAZY_MARGIN times faster."""
        node = _past_kept(node)
        if self.parquet_con is self.con or node is None:
            if ARROW_VIEW_PREFIX in query or self.parquet_con is self.con:
                return ("arrow", self.con, query), None, None
            return ("parquet", self.parquet_con, query), None, None
        names = {id(self.parquet_con): "parquet", id(self.ordered_con): "ordered"}
        rule, other = ((self.ordered_con, self.parquet_con) if _joins_an_aggregate(node)
                       else (self.parquet_con, self.ordered_con))
        if ARROW_VIEW_PREFIX not in query:
            choices = [(names[id(rule)], rule, query), (names[id(other)], other, query)]
        else:
            exchanged = set(_VIEW_NAME.findall(query))
            lazy = self.scans.lazy_text(query, keep=exchanged)
            if lazy is None or "read_parquet(" not in lazy:
                return ("arrow", self.con, query), None, None
            # Exchanged rows carry no statistics: DuckDB keeps our join order for them (and they
            # are registered on that instance too: _on_instance).
            files = self.ordered_con if exchanged else rule
            choices = [("memory" if lazy != query else "arrow", self.con, query), (names[id(files)], files, lazy)]
        self._fragments += 1
        if self.plan_key is None:
            return choices[0], None, None
        if len(self.fragment_times) > FRAGMENT_TIMES_MAX:
            self.fragment_times.clear()
        times = self.fragment_times.setdefault((self.plan_key, self._fragments), {})
        tried = [c for c in choices if c[0] in times]
        untried = [c for c in choices if c[0] not in times]
        if untried:
            return untried[0], times, (tried[0] if tried else None)
        # Memory is kept unless the files win by LAZY_MARGIN: one run of each decides, and the
        # run that first scans a share in memory is a slow one (TPC-DS q78's anti join at SF 1:
        # 0.19 s once, then 0.10 s, against 0.13 s from the files).
        return min(choices, key=lambda c: times[c[0]] / (LAZY_MARGIN if c[0] == "memory" else 1.0)), times, None

    # ------------------------------------------------------------------ entry
    def run(self, root: Node) -> pa.Table | None:
        """Runs the plan; rank 0 returns the whole result, other ranks None."""
        self._qid += 1
        try:
            if not isinstance(root, Exchange) or root.kind != "gather":
                # A replicated result: rank 0's copy is the answer.
                err, table = None, None
                t0, nested_before = time.perf_counter(), self._nested_s
                try:
                    text = self.render(root)
                    table = self.fetch(text, root) if self.comm.rank == 0 else None
                except BaseException as e:  # noqa: BLE001 - reported collectively
                    err = e
                # Exclusive, as a stage's: the exchanges rendering ran were timed on their own.
                self.stats.final_compute_s += time.perf_counter() - t0 - (self._nested_s - nested_before)
                waited = self._waited_s()
                self.sync(err)
                self.stats.final_wait_s += self._waited_s() - waited
                return _untagged(table)
            return _untagged(self.exchange(root))
        finally:
            self._unregister_views()

    def _on_instance(self, con, query: str) -> None:
        """Registers the exchanged rows `query` reads on `con` too, where it is not the instance
        for Arrow views (only those a fragment runs there with)."""
        if con is self.con:
            return
        views = self._views_on(con)
        for name in _VIEW_NAME.findall(query):
            if name not in views and name in self._view_tables:
                views.add(name, self._view_tables[name])

    def _views_on(self, con) -> ArrowViews:
        views = self._arrow_views.get(id(con))
        if views is None:
            views = self._arrow_views[id(con)] = ArrowViews(con, _VIEW_NAME)
        return views

    def _sql_on(self, con, query: str) -> str:
        """`query` as `con` reads it: the exchanged tables under the names they have there."""
        views = self._arrow_views.get(id(con))
        return views.text(query) if views is not None else query

    def _unregister_views(self) -> None:
        self._kept.clear()
        for views in self._arrow_views.values():
            views.clear()
        self._arrow_views.clear()
        self._view_tables.clear()
        self._view_schemas.clear()

    def _view(self, table: pa.Table, eid: int | None = None) -> str:
        name = f"{ARROW_VIEW_PREFIX}x{self._qid}_{len(self._view_tables)}"  # matches _VIEW_NAME
        self._views_on(self.con).add(name, table)
        self._view_tables[name] = table
        self._view_schemas[name] = table.schema
        return name

    # ------------------------------------------------------------------ materialized CTEs
    def _keep(self, node: MaterializedCte) -> None:
        """Computes a materialized CTE's definition once and keeps this rank's part of it for the
        references (under the query's exchange budget: past it, in file-backed buffers). Every
        rank takes part: the definition's own exchanges are collectives."""
        st = self.stats.kept.setdefault(node.name, KeptStats(node.label))
        t0, nested_before, nested_wait_before = time.perf_counter(), self._nested_s, self._nested_wait_s
        waited_before, spilled_before = self._waited_s(), getattr(self.comm, "bytes_spilled", 0)
        table = self.local(lambda: self.comm.hold(self.materialize(node.definition)))
        self._kept[node.name] = (_restored(self._view(table), table.schema), table.num_rows == 0)
        st.rows += table.num_rows
        st.bytes += table.nbytes
        st.bytes_spilled += getattr(self.comm, "bytes_spilled", 0) - spilled_before
        st.computed += 1
        # Exclusive of the exchanges inside the definition (timed on their own), which an
        # exchange around this one must not count again either.
        waited = self._waited_s() - waited_before
        st.compute_s += time.perf_counter() - t0 - (self._nested_s - nested_before) - \
            (waited - (self._nested_wait_s - nested_wait_before))
        self._nested_s = nested_before + (time.perf_counter() - t0)
        self._nested_wait_s = nested_wait_before + waited

    def _render_cte_ref(self, node: CteRef) -> str:
        view, empty = self._kept[node.name]
        items = ", ".join(f"{q(s)} AS {q(i)}" for i, s in zip(node.ids, node.sources))
        text = f"SELECT {items} FROM ({view})"
        if empty:
            self._empty_inputs.add(text)
        return text

    # ------------------------------------------------------------------ exchanges
    def materialize(self, node: Node, extra: str = "") -> pa.Table:
        return self.fetch(f"SELECT *{extra} FROM ({self.render(node)})", node)

    def exchange(self, x: Exchange):
        st = StageStats(x.eid, x.kind)
        self.stats.stages[x.eid] = st
        P, r = self.comm.size, self.comm.rank
        child = x.input
        if x.kind == "localize":
            inner = self.render(child)
            return inner if r == 0 else f"SELECT * FROM ({inner}) WHERE false"
        if computed_everywhere(x):
            return self.render(child, replicated=True)
        if P == 1 and x is not self._root_exchange:
            # One rank: every exchange is the identity, so the fragments simply fuse.
            inner = self.render(child)
            if x.kind == "slice":
                offset, limit = x.fn
                return f"SELECT * FROM ({inner})" + self._limit_clause(Limit(child, limit, offset))
            return f"SELECT *, true AS __own FROM ({inner})" if x.kind == "halo" else inner
        part = None
        t0 = time.perf_counter()
        nested_before, nested_wait_before, waited_before = self._nested_s, self._nested_wait_s, self._waited_s()
        if x.kind == "range":
            # A sample sort has collectives of its own between local steps.
            table, part = self._range_partitioned(child, x.keys)
        elif x.kind == "shuffle" and x.fn:
            table, part = self.local(lambda: self._fn_partitioned(child, x.keys, x.fn))
        elif x.kind == "shuffle":
            table, part = self.local(lambda: self._hash_partitioned(child, x.keys))
        else:
            table = self.local(lambda: self.materialize(child))
        st.rows_in = table.num_rows
        schema = table.schema  # with _tagged's metadata, for _restored
        # Exclusive time: exchanges nested in this fragment were timed (and their waits counted) on their own.
        local_wait = self._waited_s() - waited_before - (self._nested_wait_s - nested_wait_before)
        st.wait_s += local_wait
        st.compute_s += time.perf_counter() - t0 - (self._nested_s - nested_before) - local_wait
        t1 = time.perf_counter()
        comm_waited_before = self._waited_s()
        before = getattr(self.comm, "bytes_sent", 0)
        spilled_before = getattr(self.comm, "bytes_spilled", 0)
        if x.kind in ("shuffle", "range"):
            pieces = split_by_partition(table, part, P)
            # Drop the input (held twice only during the split): the pieces remain, each freed once sent.
            table = part = None
            received = self.comm.alltoall_tables(pieces, consume=True)
            out = pa.concat_tables(received)
        elif x.kind == "broadcast":
            out = pa.concat_tables(self.comm.allgather_table(table))
        elif x.kind == "gather":
            got = self.comm.gather_tables(table)
            out = pa.concat_tables(got) if got is not None else table.schema.empty_table()
        elif x.kind == "halo":
            out = self._halo(table, x.keys)
        elif x.kind == "slice":
            out = self._slice(table, *x.fn)
        else:
            raise ExecutionError(f"unknown exchange {x.kind}")
        comm_wait = self._waited_s() - comm_waited_before
        st.wait_s += comm_wait
        st.comm_s += time.perf_counter() - t1 - comm_wait
        st.bytes_out += getattr(self.comm, "bytes_sent", 0) - before
        st.bytes_spilled += getattr(self.comm, "bytes_spilled", 0) - spilled_before
        st.rows_out = out.num_rows
        self._nested_s = nested_before + (time.perf_counter() - t0)
        self._nested_wait_s = nested_wait_before + (self._waited_s() - waited_before)
        st.finished_s = time.perf_counter() - self._started
        if x is self._root_exchange:
            return out if r == 0 else None
        text = _restored(self._view(out, x.eid), schema)
        if out.num_rows == 0:
            self._empty_inputs.add(text)
        return text

    _root_exchange = None
    _nested_s = 0.0
    _nested_wait_s = 0.0

    def run_plan(self, root: Node):
        self._root_exchange = root if isinstance(root, Exchange) and root.kind == "gather" else None
        self._numbers = operator_numbers(root) if self.profile else {}
        self._empty_inputs = set()
        return self.run(root)

    # ------------------------------------------------------------------ streaming
    def stream_plan(self, root: Node, batch_rows: int, stop_senders=lambda: None):
        """Runs the plan, streaming the result: on rank 0 a generator of record batches as they are
        produced (its own part, then each rank's in rank order, which keeps the order of a
        gathered sort); the other ranks send theirs to rank 0 (consume the generator there).

        If rank 0 stops early (its consumer closed the generator or the query was cancelled) or a
        sender fails, `stop_senders()` asks the other ranks to stop, and rank 0 drains what they
        were sending. Ends with a collective: every rank raises the first error of any rank."""
        self._root_exchange = None
        self._empty_inputs = set()
        self._qid += 1
        gather = isinstance(root, Exchange) and root.kind == "gather"
        node = root.input if gather else root
        P, r = self.comm.size, self.comm.rank
        reader, error, closed, started = None, None, False, False
        try:
            err = None
            try:
                text = self.render(node)
                if gather or r == 0:
                    if self.cancelled():
                        raise CancelledError("query cancelled")
                    (_, con, text), _, _ = self._connection_for(text, node)
                    self._on_instance(con, text)
                    reader = con.sql(self._sql_on(con, text)).to_arrow_reader(batch_rows)
            except BaseException as e:  # noqa: BLE001 - reported collectively
                err = e
            self.sync(err)
            started = True
            if r != 0:
                if gather:
                    error = send_batches(self.comm, reader, 0, self.cancelled)
            else:
                pending = list(range(1, P)) if gather else []
                try:
                    for batch in reader:
                        if self.cancelled():
                            raise CancelledError("query cancelled")
                        yield batch
                    while pending:
                        for batch in receive_batches(self.comm, pending[0]):
                            if self.cancelled():
                                raise CancelledError("query cancelled")
                            yield batch
                        pending.pop(0)
                except GeneratorExit:
                    closed = True
                    raise
                except BaseException as e:  # noqa: BLE001 - raised after the ranks agree
                    error = e
                finally:
                    if pending:
                        stop_senders()
                        for source in pending:
                            drain_batches(self.comm, source)
        finally:
            if reader is not None:
                reader.close()
            self._unregister_views()
            if started and closed:
                self._finish_stream(None, closed=True)  # GeneratorExit goes on from here
        self._finish_stream(error, closed=False)

    def _finish_stream(self, error: BaseException | None, closed: bool) -> None:
        """The collective at a stream's end: all raise the first real error of any rank."""
        mine = None
        if error is not None:
            kind = "CancelledError" if isinstance(error, CancelledError) or self.cancelled() else type(error).__name__
            if isinstance(error, RemoteStreamError):
                kind = error.kind
            mine = (kind, str(error))
        # The statistics travel in this collective: it is the one every rank reaches however the
        # stream ended (a client that stopped reading included), so no rank is left waiting.
        if not any(self.comm.agree(0 if mine is None else 1)):
            self.stream_stats = self.comm.gather_obj(self._stats_so_far())
            return
        infos = self.comm.allgather_obj((mine, self._stats_so_far()))
        self.stream_stats = [stats for _, stats in infos] if self.comm.rank == 0 else None
        infos = [i for i, _ in infos]
        if closed:
            return
        real = [(rank, i) for rank, i in enumerate(infos) if i is not None and i[0] != "CancelledError"]
        if real:
            rank, (kind, msg) = real[0]
            if isinstance(error, FlockError) and rank == self.comm.rank:
                raise error
            raise ExecutionError(msg if self.comm.size == 1 else f"rank {rank}: {msg}")
        if any(i is not None for i in infos):
            raise CancelledError("query cancelled")

    def _stats_so_far(self) -> RunStats:
        """This rank's statistics now, with its memory's peak so far when it is being measured."""
        if self.memory_watch is not None:
            self.stats.start_rss_bytes, self.stats.peak_rss_bytes = self.memory_watch.so_far()
        return self.stats

    def _range_predicate(self, key: str, splitters) -> str:
        r, P = self.comm.rank, self.comm.size
        parts = []
        if r > 0:
            parts.append(f"{key} >= {_literal(splitters[r - 1])}")
        if r < P - 1:
            parts.append(f"{key} < {_literal(splitters[r])}")
        # No rank reads NULL keys: a co-partitioned column holds none, and a scan balanced by a
        # filtered range has its NULL rows dropped above it (planner/filtered_ranges.py). (An
        # `OR key IS NULL` kept the last rank from skipping any row group that holds a NULL.)
        return " AND ".join(parts) or f"{key} IS NOT NULL"

    @staticmethod
    def _range_part(key: str, splitters) -> str:
        whens = " ".join(f"WHEN {key} < {_literal(v)} THEN {i}" for i, v in enumerate(splitters))
        return f"CASE {whens} ELSE {len(splitters)} END"

    def _key_types(self, child_sql: str, keys) -> list[str]:
        """The SQL types of `keys` over `child_sql`. Asking DuckDB binds the whole fragment again
        (4 ms of a 30 ms TPC-DS query), so a cached plan's runs keep the answer: within one plan
        the fragment's text, with this run's view names made neutral, and the schemas of the
        Arrow views it reads fix the types."""
        keys_sql = ", ".join(sql(k) for k in keys)
        memo_key = None
        if self.plan_key is not None:
            views = tuple(self._view_schemas[v] for v in _VIEW_NAME.findall(child_sql) if v in self._view_schemas)
            # The connection too: each lane's scan views have names of their own.
            memo_key = (id(self.con), self.plan_key, _VIEW_NAME.sub("__view", child_sql), keys_sql, views)
            known = self.key_types.get(memo_key)
            if known is not None:
                return known
        desc = self.con.execute(self._sql_on(self.con, f"DESCRIBE SELECT {keys_sql} FROM ({child_sql})")).fetchall()
        types = [row[1] for row in desc]
        if memo_key is not None:
            if len(self.key_types) > FRAGMENT_TIMES_MAX:
                self.key_types.clear()
            self.key_types[memo_key] = types
        return types

    @staticmethod
    def _normalised(key: str, dtype: str) -> str:
        # Equal values of different types must hash alike on both sides of a join.
        t = dtype.upper()
        if t.endswith("]") or t.startswith(("STRUCT", "MAP", "UNION")):
            return key  # nested (the NULL-safe keys [x] of a dependent join): both sides of one type
        if t.startswith(("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                         "UINTEGER", "UBIGINT", "UHUGEINT", "DECIMAL", "FLOAT", "DOUBLE", "BOOLEAN")):
            return f"CAST({key} AS DOUBLE)"
        if t.startswith(("DATE", "TIMESTAMP")):
            return f"CAST({key} AS TIMESTAMP)"
        return key

    def _hash_partitioned(self, child: Node, keys):
        P = self.comm.size
        child_sql = self.render(child)
        if P == 1:
            return self.fetch(child_sql, child), np.zeros(0, dtype=np.uint8)
        types = self._key_types(child_sql, keys)
        h = ", ".join(self._normalised(sql(never_raising(k)), t) for k, t in zip(keys, types))
        t = self.fetch(f"SELECT *, CAST(hash({h}) % {P} AS USMALLINT) AS __part FROM ({child_sql})", child)
        part = t.column("__part").to_numpy()
        return t.drop_columns(["__part"]), part

    def _fn_partitioned(self, child: Node, keys, fn):
        _, splitters = fn
        t = self.fetch(f"SELECT *, CAST({self._range_part(sql(keys[0]), splitters)} AS USMALLINT) AS __part "
                       f"FROM ({self.render(child)})", child)
        part = t.column("__part").to_numpy()
        return t.drop_columns(["__part"]), part

    def _range_partitioned(self, child: Node, keys):
        P = self.comm.size
        kexprs = [sql(k.this) for k in keys]
        kcols = ", ".join(f"{e} AS __k{i}" for i, e in enumerate(kexprs))

        def sample_locally():
            table = self.materialize(child)
            tmp = self._view(table)
            sample = self.fetch(f"SELECT {kcols} FROM {tmp} USING SAMPLE reservoir({SAMPLE_ROWS_PER_RANK} ROWS) "
                                f"REPEATABLE (7)")
            return table, tmp, sample
        table, tmp, sample = self.local(sample_locally)
        if P == 1:
            return table, np.zeros(table.num_rows, dtype=np.uint8)
        allsamples = pa.concat_tables(self.comm.allgather_table(sample))
        order = ", ".join(self._order_term(f"__k{i}", k) for i, k in enumerate(keys))

        def partition_locally():
            sv = self._view(allsamples)
            n = allsamples.num_rows
            picks = sorted({min(n - 1, (n * i) // P) for i in range(1, P)}) if n else []
            if picks:
                splitters = self.fetch(
                    f"SELECT * FROM (SELECT *, row_number() OVER (ORDER BY {order}) - 1 AS __rn FROM {sv}) "
                    f"WHERE __rn IN ({', '.join(str(p) for p in picks)})").drop_columns(["__rn"])
            else:
                splitters = allsamples.slice(0, 0)
            spv = self._view(splitters)
            # Rank of a row = number of splitters ordered before it; ties go after the splitter so
            # equal keys always land on the same rank.
            t = self.fetch(
                f"SELECT * EXCLUDE (__is_split) FROM (SELECT *, CAST(coalesce(sum(__is_split) OVER (ORDER BY {order}, "
                f"__is_split DESC ROWS UNBOUNDED PRECEDING), 0) AS USMALLINT) AS __part FROM ("
                f"SELECT *, {kcols}, 0 AS __is_split FROM {tmp} UNION ALL BY NAME SELECT *, 1 AS __is_split FROM {spv})) "
                f"WHERE __is_split = 0")
            part = t.column("__part").to_numpy()
            drop = [c for c in t.column_names if c == "__part" or c.startswith("__k")]
            # The rows came back through a view: the materialized table's schema keeps its _tagged types.
            return pa.Table.from_arrays(t.drop_columns(drop).columns, schema=table.schema), part
        return self.local(partition_locally)

    def _slice(self, table: pa.Table, offset: int, limit: int | None) -> pa.Table:
        """Rows [offset, offset + limit) of the ranks' tables concatenated in rank order, on rank 0
        (other ranks get an empty table): only those rows travel."""
        counts = self.comm.allgather_obj(table.num_rows)
        before = sum(counts[:self.comm.rank])
        start = min(max(0, offset - before), table.num_rows)
        end = table.num_rows if limit is None else min(table.num_rows, max(0, offset + limit - before))
        got = self.comm.gather_tables(table.slice(start, max(0, end - start)))
        return pa.concat_tables(got) if got is not None else table.schema.empty_table()

    @staticmethod
    def _order_term(name: str, o: exp.Ordered) -> str:
        desc = bool(o.args.get("desc"))
        nulls_first = bool(o.args.get("nulls_first"))
        return f"{name} {'DESC' if desc else 'ASC'} NULLS {'FIRST' if nulls_first else 'LAST'}"

    def _halo(self, table: pa.Table, keys) -> pa.Table:
        """Own rows plus the neighbours' boundary rows, marked by __own."""
        *order_keys, before_lit, after_lit = keys
        before, after = int(before_lit.this), int(after_lit.this)
        order = ", ".join(self._order_term(sql(k.this), k) for k in order_keys)

        def boundary_rows():
            tv = self._view(table)
            return self.fetch(f"SELECT * EXCLUDE (__rn, __cnt) FROM (SELECT *, row_number() OVER (ORDER BY {order}) AS __rn, "
                              f"count(*) OVER () AS __cnt FROM {tv}) WHERE __rn <= {after} OR __rn > __cnt - {before} "
                              f"ORDER BY __rn")
        t = self.local(boundary_rows)
        allb = self.comm.allgather_table(t)
        me = self.comm.rank
        prev, need = [], before
        for r in range(me - 1, -1, -1):
            if need <= 0:
                break
            b = allb[r]
            take = min(need, b.num_rows)
            prev.insert(0, b.slice(b.num_rows - take, take))
            need -= take
        nxt, need = [], after
        for r in range(me + 1, self.comm.size):
            if need <= 0:
                break
            b = allb[r]
            take = min(need, b.num_rows)
            nxt.append(b.slice(0, take))
            need -= take

        def mark(t, own):
            return t.append_column("__own", pa.array(np.full(t.num_rows, own, dtype=bool)))
        pieces = [mark(p, False) for p in prev] + [mark(table, True)] + [mark(p, False) for p in nxt]
        return pa.concat_tables(pieces)

    # ------------------------------------------------------------------ rendering
    def render(self, node: Node, replicated: bool = False) -> str:
        """The SQL of node's fragment. replicated: every rank computes all of it (see is_replicable),
        so scans read whole files and broadcasts inside are identities."""
        if isinstance(node, Exchange):
            if replicated and node.kind == "broadcast":
                return self.render(node.input, replicated=True)
            return self.exchange(node)
        if isinstance(node, Scan):
            table = self.virtual.get(node.table) or self.catalog.table(node.table)
            items = "SELECT " + ", ".join(f"{q(name)} AS {q(cid)}" for cid, name in node.fields)
            if node.key_range is not None and not replicated and self.comm.size > 1:
                # Co-partitioned read: this rank's key range; DuckDB prunes row groups by statistics.
                column, splitters = node.key_range
                src = self.scans.source(table, [], True)
                return f"{items} FROM {src} WHERE {self._range_predicate(q(column), splitters)}"
            cols = sorted({name for _, name in node.fields}, key=[f.name for f in table.schema].index)
            src = self.scans.source(table, cols, replicated, node.in_order)
            return f"{items} FROM {src}"
        if isinstance(node, MaterializedCte):
            self._keep(node)
            return self.render(node.input, replicated)
        if isinstance(node, CteRef):
            return self._render_cte_ref(node)
        if isinstance(node, Generate):
            return self._render_generate(node, replicated)
        if isinstance(node, Values):
            if not node.rows:
                return "SELECT " + ", ".join(f"NULL AS {q(c)}" for c in node.ids) + " WHERE false"
            rows = ", ".join("(" + ", ".join(sql(v) for v in row) + ")" for row in node.rows)
            return f"SELECT * FROM (VALUES {rows}) AS _v({', '.join(q(c) for c in node.ids)})"
        if isinstance(node, Filter):
            return f"SELECT * FROM ({self.render(node.input, replicated)}) WHERE {sql(node.predicate)}"
        if isinstance(node, Project):
            return self._render_project(node, replicated)
        if isinstance(node, Join):
            return self._render_join(node, replicated)
        if isinstance(node, Aggregate):
            inner = self.render(node.input)
            items = [f"{sql(e)} AS {q(c)}" for c, e in node.groups] + [f"{sql(e)} AS {q(c)}" for c, e in node.aggs]
            if not items:
                items = ["1 AS __dummy"]
            text = f"SELECT {', '.join(items)} FROM ({inner})"
            if node.groups:
                text += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(node.groups)))
            return text
        if isinstance(node, Distinct):
            return f"SELECT DISTINCT * FROM ({self.render(node.input)})"
        if isinstance(node, Window):
            return self._render_window(node)
        if isinstance(node, Sort):
            return f"SELECT * FROM ({self.render(node.input)}) ORDER BY {', '.join(sql(k) for k in node.keys)}"
        if isinstance(node, Limit):
            inner = node.input
            if isinstance(inner, Sort):
                text = f"SELECT * FROM ({self.render(inner.input)}) ORDER BY {_top_n_order(inner.keys)}"
            else:
                text = f"SELECT * FROM ({self.render(inner)})"
            return text + self._limit_clause(node)
        if isinstance(node, SetOp):
            op = {"union": "UNION", "intersect": "INTERSECT", "except": "EXCEPT"}[node.kind] + (" ALL" if node.all else "")
            # The left side names the result's columns; a side that already gives its columns
            # under those names, in order, is used as it is (a renaming layer costs DuckDB binding
            # time in every fragment).
            left = self.render(node.left)
            if tuple(node.left.columns) != tuple(node.ids):
                left = "SELECT " + ", ".join(f"{q(a)} AS {q(b)}" for a, b in zip(node.left.columns, node.ids)) + \
                    f" FROM ({left})"
            right = "SELECT " + ", ".join(q(a) for a in node.right.columns) + f" FROM ({self.render(node.right)})"
            return f"SELECT * FROM (({left}) {op} ({right}))"
        if isinstance(node, SingleRow):
            inner = self.render(node.input)
            return (f"SELECT * FROM ({inner}) WHERE CASE WHEN (SELECT count(*) FROM ({inner})) > 1 THEN "
                    f"error('more than one row returned by a subquery used as an expression') ELSE true END")
        raise ExecutionError(f"cannot run plan node {type(node).__name__}")

    def _render_generate(self, node: Generate, replicated: bool) -> str:
        """This rank's slice of a table function's rows (all of them where the fragment is
        replicated): an integer series as a series of its own, anything else by skipping rows
        (DuckDB makes a table function's rows in order)."""
        whole = f"SELECT * FROM {node.call} AS _g({q(node.id)})"
        start, stop = (0, node.rows) if replicated else node.slice(self.comm.rank, self.comm.size)
        if (start, stop) == (0, node.rows):
            return whole
        if start == stop:
            return whole + " LIMIT 0"
        if node.series is not None:
            first, step = node.series
            # Both ends are values of the series, so no bound can overflow BIGINT.
            return (f"SELECT * FROM generate_series(CAST({first + start * step} AS BIGINT), "
                    f"CAST({first + (stop - 1) * step} AS BIGINT), CAST({step} AS BIGINT)) AS _g({q(node.id)})")
        return f"{whole} LIMIT {stop - start} OFFSET {start}"

    @staticmethod
    def _limit_clause(node: Limit) -> str:
        out = ""
        if node.limit is not None:
            out += f" LIMIT {node.limit}"
        if node.offset:
            out += f" OFFSET {node.offset}"
        return out

    def _render_project(self, node: Project, replicated: bool) -> str:
        exprs, inner = _merged_projections(node)
        if all(isinstance(e, exp.Column) and e.name == c for c, e in exprs) and \
                tuple(c for c, _ in exprs) == tuple(inner.columns) and not isinstance(inner, (Sort, Limit)):
            return self.render(inner, replicated)  # it only passes its input's columns on
        node = Project(inner, exprs)
        items = ", ".join(f"{sql(e)} AS {q(c)}" for c, e in exprs) or "1 AS __dummy"
        # Keep ORDER BY / LIMIT in the same SELECT as the projection so the order survives.
        if isinstance(inner, Sort):
            return f"SELECT {items} FROM ({self.render(inner.input)}) ORDER BY {', '.join(sql(k) for k in inner.keys)}"
        if isinstance(inner, Limit) and isinstance(inner.input, Sort):
            s = inner.input
            return (f"SELECT {items} FROM ({self.render(s.input)}) ORDER BY {_top_n_order(s.keys)}"
                    + self._limit_clause(inner))
        if _one_unread_row(inner, node):
            return f"SELECT {items}"  # `SELECT 1`: DuckDB binds a subquery of VALUES in a third of its time
        return f"SELECT {items} FROM ({self.render(inner, replicated)})"

    def _render_join(self, node: Join, replicated: bool) -> str:
        left, right = self.render(node.left, replicated), self.render(node.right, replicated)
        conds = [f"{sql(a)} = {sql(b)}" for a, b in zip(node.left_keys, node.right_keys)]
        if node.residual is not None:
            conds.append(sql(node.residual))
        on = " AND ".join(f"({c})" for c in conds) or "true"
        if node.kind == "cross":
            text = f"SELECT * FROM ({left}) AS _l CROSS JOIN ({right}) AS _r"
        else:
            kind = {"inner": "INNER", "left": "LEFT", "right": "RIGHT", "full": "FULL", "semi": "SEMI",
                    "anti": "ANTI", "asof": "ASOF", "asof_left": "ASOF LEFT"}[node.kind]
            text = f"SELECT * FROM ({left}) AS _l {kind} JOIN ({right}) AS _r ON {on}"
        # An inner join with an input this rank received empty is empty: DuckDB, seeing only an
        # Arrow table, would still compute the other side's keys (and raise for a cast that fails
        # on a row that, on one machine, DuckDB never looks at, as it skips a join with an empty side).
        empty_left, empty_right = left in self._empty_inputs, right in self._empty_inputs
        if (node.kind in ("inner", "cross", "semi", "asof") and (empty_left or empty_right)) or (
                node.kind in ("left", "asof_left") and empty_left) or (node.kind == "right" and empty_right):
            return text + " LIMIT 0"
        return text

    def _render_window(self, node: Window) -> str:
        items = ", ".join(f"{sql(e)} AS {q(c)}" for c, e in node.funcs)
        inner = node.input
        if isinstance(inner, Exchange) and inner.kind == "halo":
            return (f"SELECT * EXCLUDE (__own) FROM (SELECT *, {items} FROM ({self.render(inner)})) WHERE __own")
        return f"SELECT *, {items} FROM ({self.render(inner)})"

