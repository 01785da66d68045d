"""Local slices of base tables (partitioned-io): which row groups each rank reads.

Row groups are dealt out as contiguous runs balanced by row count. A rank whose share is whole
files lets DuckDB read them lazily (projection and filter pushdown); a share of part of a file is
read with pyarrow (projected columns only) and registered as an Arrow view. Tables with fewer row
groups than ranks are sliced by row range instead, so no rank idles.
"""
from __future__ import annotations

import re
import zlib
from collections import OrderedDict

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from engine.catalog import Table

# Parts of files read into memory are kept for reuse by later queries (server sessions).
CACHE_MAX_BYTES = 2 * 2**30
# The most of the cache one query's fill may take (see ScanSource._too_big).
FILL_MAX_SHARE = 0.25
# Every registered Arrow view's name starts with this, so a fragment's text tells whether it reads one.
ARROW_VIEW_PREFIX = "_arrow_"
_ANY_VIEW_NAME = re.compile(ARROW_VIEW_PREFIX + r"\w+")


def sql_string(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def dictionary_columns(file: str, columns: list[str]) -> list[str]:
    """String columns worth reading as Arrow dictionaries: those whose Parquet dictionary page is
    small next to the row count (flags, modes, brands). DuckDB aggregates and compares dictionary
    vectors much faster than flat strings (TPC-H Q1: 0.29 s -> 0.22 s per rank on SF 1)."""
    meta = pq.ParquetFile(file).metadata
    if meta.num_row_groups == 0:
        return []
    rg = meta.row_group(0)
    out = []
    for i in range(rg.num_columns):
        c = rg.column(i)
        if c.path_in_schema not in columns or str(c.physical_type) != "BYTE_ARRAY" or not c.has_dictionary_page:
            continue
        dict_bytes = c.data_page_offset - c.dictionary_page_offset
        if 0 < dict_bytes * 4 <= rg.num_rows:
            out.append(c.path_in_schema)
    return out


def _fixed_width(t: pa.DataType) -> int:
    """Bytes per value of a fixed-width type; 0 for the others (strings, lists)."""
    try:
        return t.bit_width // 8
    except ValueError:
        return 0


def _uncompressed_bytes(file: str, groups: list[int] | None, columns, schema: pa.Schema) -> int:
    """What some columns of some row groups (all when groups is None) take in memory: their pages'
    uncompressed size, or their rows times the type's width where that is more (a page of a
    dictionary- or run-length-encoded column is far smaller than its Arrow array: TPC-DS
    inventory's date key at SF 10, 66 M rows a rank)."""
    meta = pq.ParquetFile(file).metadata
    widths = {c: _fixed_width(schema.field(c).type) for c in columns if c in schema.names}
    total = 0
    for g in range(meta.num_row_groups) if groups is None else groups:
        rg = meta.row_group(g)
        for i in range(rg.num_columns):
            c = rg.column(i)
            if c.path_in_schema in widths:
                total += max(c.total_uncompressed_size, rg.num_rows * widths[c.path_in_schema])
    return total


def read_row_groups(file: str, groups: list[int] | None, columns: list[str]) -> pa.Table:
    """Projected columns of some row groups (all when groups is None), low-cardinality strings as
    dictionaries."""
    pf = pq.ParquetFile(file, read_dictionary=dictionary_columns(file, columns))
    if groups is None:
        return pf.read(columns=columns)
    return pf.read_row_groups(groups, columns=columns)


# A table with fewer row groups than ranks and at most this many rows is read by one rank alone
# (TPC-H SF 0.01: nation to partsupp; orders and lineitem are still split).
ONE_READER_MAX_ROWS = 10_000

# Runs of consecutive row groups per rank, at most, when a table's groups are dealt out.
RUNS_PER_RANK = 4


def assign_row_groups(table: Table, rank: int, nranks: int, in_order: bool = False):
    """Row groups of this rank: [(file, [row group indices])] in file order, or a row slice
    (file list, start, stop) when there are fewer row groups than ranks.

    The row groups are dealt out in turn (in runs of consecutive groups, at most RUNS_PER_RANK per
    rank), so that a rank's share spans the whole table: tables written in date order (TPC-DS inventory and
    catalog_sales) would otherwise put a year's rows, which a query filters on, on one rank, which
    then computes alone. in_order: consecutive runs instead (rank order is then the files' order,
    which a positional join needs)."""
    groups = table.row_groups
    total = table.row_count
    if nranks == 1:
        return "groups", [(f, None) for f in table.files]
    if len(groups) < nranks:
        if total <= ONE_READER_MAX_ROWS:
            # A small table is read by one rank, not read whole by every rank and sliced; which
            # rank depends on the table, so that several small tables spread over the ranks.
            owner = zlib.crc32(table.name.encode()) % nranks
            return "groups", ([(f, None) for f in table.files] if rank == owner else [])
        lo, hi = total * rank // nranks, total * (rank + 1) // nranks
        return "rows", (lo, hi)
    mine: dict[str, list[int]] = {}
    if in_order:
        start = 0
        bounds = (total * rank / nranks, total * (rank + 1) / nranks)
        for g in groups:
            mid = start + g.num_rows / 2
            if bounds[0] <= mid < bounds[1] or (rank == nranks - 1 and mid >= bounds[1]):
                mine.setdefault(g.file, []).append(g.index)
            start += g.num_rows
    else:
        units = [[g] for g in groups]
        if len(groups) >= 2 * nranks * RUNS_PER_RANK:
            # Many groups: RUNS_PER_RANK runs of consecutive groups per rank, dealt like single
            # groups. A rank's first read is DuckDB's over its row ranges, and each more range costs
            # it a comparison per row (lineitem at SF 1, 26 ranges of its 53 groups: 0.25 s against
            # 0.13 s for one).
            runs, units, start = nranks * RUNS_PER_RANK, [[]], 0
            for g in groups:
                if units[-1] and start >= total * len(units) / runs:
                    units.append([])
                units[-1].append(g)
                start += g.num_rows
        held = [0] * nranks
        for i, unit in enumerate(units):
            # The lightest rank takes the next unit; ties go round in turn from the unit's index.
            owner = min(range(nranks), key=lambda r: (held[r], (r - i) % nranks))
            held[owner] += sum(g.num_rows for g in unit)
            if owner == rank:
                for g in unit:
                    mine.setdefault(g.file, []).append(g.index)
    out = []
    for f in table.files:
        if f in mine:
            n_all = sum(1 for g in groups if g.file == f)
            out.append((f, None if len(mine[f]) == n_all else mine[f]))
    return "groups", out


# Shares remembered as read once (a key is a few hundred bytes).
ASKED_MAX = 4096
# Texts of shares read from their files whose row groups a filter can skip (lazy_text), at most.
PRUNABLE_MAX = 256


def _remember(kept: OrderedDict, key, most: int) -> None:
    """`key` as the most recent of `kept`, which keeps at most `most` keys (the oldest go)."""
    kept[key] = True
    kept.move_to_end(key)
    if len(kept) > most:
        kept.popitem(last=False)


def _lazy_share(table: Table, share: list) -> str:
    """This rank's row groups read by DuckDB from the files: whole files as they are, part of a
    file as its rows' range, which DuckDB's reader turns into the row groups it reads (Parquet row
    groups are consecutive runs of rows)."""
    starts: dict[str, dict[int, tuple[int, int]]] = {}
    for f in {f for f, _ in share}:
        offset, spans = 0, {}
        for g in table.row_groups:
            if g.file == f:
                spans[g.index] = (offset, offset + g.num_rows)
                offset += g.num_rows
        starts[f] = spans
    parts = []
    for f, groups in share:
        if groups is None:
            parts.append(f"SELECT * FROM read_parquet({sql_string(f)})")
            continue
        ranges: list[list[int]] = []
        for g in sorted(groups):
            lo, hi = starts[f][g]
            if ranges and ranges[-1][1] == lo:
                ranges[-1][1] = hi
            else:
                ranges.append([lo, hi])
        where = " OR ".join(f"(file_row_number >= {lo} AND file_row_number < {hi})" for lo, hi in ranges)
        parts.append(f"SELECT * EXCLUDE (file_row_number) FROM read_parquet({sql_string(f)}, "
                     f"file_row_number = true) WHERE {where}")
    return "(" + " UNION ALL BY NAME ".join(parts) + ")"


class ScanSource:
    """Renders the FROM source for a table scan on this rank, registering Arrow views as needed."""

    def __init__(self, con, rank: int, nranks: int):
        self.con = con
        self.rank = rank
        self.nranks = nranks
        self._cache: OrderedDict = OrderedDict()
        self._cache_bytes = 0
        self._seq = 0
        self._asked: OrderedDict = OrderedDict()  # shares read once, lazily (see _asked_before)
        # A share's columns read into memory, each kept on its own: (share, column) -> (array,
        # bytes), least recently used first; and the views registered over them, per share.
        self._columns: OrderedDict = OrderedDict()
        self._share_views: dict = {}  # share -> {columns: view name}
        self._sizes: dict = {}  # (share, columns) -> their uncompressed bytes (see _too_big)
        self._lazy: dict[str, str] = {}  # a share's view name -> the share read from its files (lazy_text)
        self._prunable: OrderedDict = OrderedDict()  # shares read from files that can skip row groups

    def _asked_before(self, key) -> bool:
        """Whether a share was read before, whatever its columns. Its first read is DuckDB's,
        lazy, straight from the file (its first rows stream out at once, only what the query
        needs is decoded); later reads take its columns from memory, reading those not there yet,
        so each is decoded only once."""
        if key in self._asked:
            return True
        _remember(self._asked, key, ASKED_MAX)
        return False

    def _register(self, key, table: pa.Table) -> str:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key][0]
        self._seq += 1
        name = f"{ARROW_VIEW_PREFIX}part_{self._seq}"
        self.con.register(name, table)
        # The buffers the table holds, whole: a slice keeps its parent's buffers alive, and
        # Table.nbytes (the sliced ranges) raises for string_view columns, which Parquet files
        # written by tpchgen-cli and other Arrow writers hold.
        held = table.get_total_buffer_size()
        self._cache[key] = (name, held)
        self._cache_bytes += held
        self._evict()
        return name

    def _evict(self, protect=frozenset()):
        """Drops the least recently used views and columns while the cache holds more than
        CACHE_MAX_BYTES; the last entry read stays, and so do the columns in protect (the
        query's own, which are the most recently used)."""
        while self._cache_bytes > CACHE_MAX_BYTES:
            if self._columns and next(iter(self._columns)) not in protect and len(self._cache) + len(self._columns) > 1:
                (share, column), (_, nb) = self._columns.popitem(last=False)
                views = self._share_views.get(share, {})
                for cols in [c for c in views if column in c]:
                    name = views.pop(cols)
                    self.con.unregister(name)
                    self._lazy.pop(name, None)
            elif len(self._cache) > (0 if self._columns else 1):
                _, (old, nb) = self._cache.popitem(last=False)
                self.con.unregister(old)
            else:
                break
            self._cache_bytes -= nb

    def _share_source(self, share_key, share, columns: list[str], table_first_column: str,
                      lazy: str | None = None) -> str:
        """This rank's share of a Parquet table from memory: the columns a query reads are kept one
        by one, so a query reading other columns of the same share reads only those it lacks
        (TPC-DS's queries read store_sales through a dozen sets of mostly the same columns). A
        query reading no column (count(*)) gets the first, for the row count. lazy: the same share
        read from its files, which a fragment may use instead (lazy_text)."""
        columns = list(dict.fromkeys(columns)) or [table_first_column]
        missing = [c for c in columns if (share_key, c) not in self._columns]
        if missing:
            pieces = [read_row_groups(f, gs, missing) for f, gs in share]
            t = pa.concat_tables(pieces)
            for c in missing:
                arr = t.column(c)
                nb = arr.get_total_buffer_size()
                self._columns[(share_key, c)] = (arr, nb)
                self._cache_bytes += nb
        for c in columns:
            self._columns.move_to_end((share_key, c))
        views = self._share_views.setdefault(share_key, {})
        cols = tuple(columns)
        name = views.get(cols)
        if name is None:
            self._seq += 1
            name = f"{ARROW_VIEW_PREFIX}part_{self._seq}"
            self.con.register(name, pa.table({c: self._columns[(share_key, c)][0] for c in cols}))
            views[cols] = name
            if lazy is not None:
                self._lazy[name] = lazy
        self._evict(protect={(share_key, c) for c in cols})
        return name

    def source(self, table: Table, columns: list[str], replicated: bool, in_order: bool = False) -> str:
        """in_order: this rank's share is a consecutive run of the table (see assign_row_groups)."""
        if table.format == "arrow":
            return self._virtual_source(table, columns, replicated)
        if table.by_file:
            return self._file_source(table, columns, replicated, in_order)
        files = list(table.files)
        if replicated or self.nranks == 1:
            return f"read_parquet([{', '.join(sql_string(f) for f in files)}])"
        mode, share = assign_row_groups(table, self.rank, self.nranks, in_order)
        if mode == "rows":
            lo, hi = share
            key = (table.name, tuple(files), tuple(columns), "rows", lo, hi, table.row_count)
            if key in self._cache:
                return self._register(key, None)
            parts = [read_row_groups(f, None, columns) for f in files]
            t = pa.concat_tables(parts).slice(lo, hi - lo) if parts else table.schema.empty_table()
            return self._register(key, t)
        whole = [f for f, gs in share if gs is None]
        partial = [(f, gs) for f, gs in share if gs is not None]
        if not share:
            key = (table.name, "empty", tuple(columns))
            if key in self._cache:
                return self._register(key, None)
            return self._register(key, pa.schema([table.schema.field(c) for c in columns]).empty_table())
        if not partial:
            return f"read_parquet([{', '.join(sql_string(f) for f in whole)}])"
        share_key = (table.name, tuple((f, tuple(gs) if gs is not None else None) for f, gs in share),
                     table.row_count)
        # The share in its files' order (a positional join reads the rows in that order; whole files
        # put after the partial ones scrambled it once the share came from memory).
        if "file_row_number" in table.schema.names:
            return self._share_source(share_key, share, columns, table.schema.names[0])
        # Reading the share from its files lets a filter or a join skip row groups only through a
        # column whose row groups hold disjoint ranges (data written in its order, like TPC-DS
        # inventory by date); elsewhere each row group holds every value.
        prunable = any(c in table.clustered for c in columns)
        if not self._asked_before(share_key) or self._too_big(table, share_key, share, columns):
            text = _lazy_share(table, share)
            if prunable:
                _remember(self._prunable, text, PRUNABLE_MAX)
            return text
        lazy = _lazy_share(table, share) if prunable else None
        return self._share_source(share_key, share, columns, table.schema.names[0], lazy)

    def lazy_text(self, query: str, keep=frozenset()) -> str | None:
        """`query` with each share it reads from memory read from the share's files instead, when
        some share it reads could skip row groups so (see source); None otherwise, or when it reads
        an Arrow view that has no such form (a slice of rows) and is not in `keep`."""
        names = set(_ANY_VIEW_NAME.findall(query)) - set(keep)
        if not all(n in self._lazy for n in names):
            return None
        if not names and not ("file_row_number = true" in query and any(t in query for t in self._prunable)):
            return None  # (every share read from its files names its rows: _lazy_share)
        return _ANY_VIEW_NAME.sub(lambda m: self._lazy.get(m.group(0), m.group(0)), query)

    def _too_big(self, table: Table, share_key, share, columns: list[str]) -> bool:
        """Whether the columns of the share not in memory yet would take more than FILL_MAX_SHARE
        of the cache (their Parquet pages' uncompressed size): such a share stays DuckDB's to read,
        where a query's filters skip most of its row groups (TPC-DS q21 at SF 10 reads a few weeks
        of a 66M-row share of inventory, which would otherwise be read whole into memory)."""
        missing = tuple(c for c in dict.fromkeys(columns) if (share_key, c) not in self._columns)
        if not missing:
            return False
        key = (share_key, missing)
        if key not in self._sizes:
            self._sizes[key] = sum(_uncompressed_bytes(f, gs, missing, table.schema) for f, gs in share)
            if len(self._sizes) > ASKED_MAX:
                self._sizes.pop(next(iter(self._sizes)))
        return self._sizes[key] > CACHE_MAX_BYTES * FILL_MAX_SHARE

    def _virtual_source(self, table: Table, columns: list[str], replicated: bool) -> str:
        """A virtual table: all of it, or this rank's slice of its rows."""
        data = table.data.select(columns or table.schema.names[:1])
        if replicated or self.nranks == 1:
            lo, hi = 0, table.row_count
        else:
            lo, hi = table.row_count * self.rank // self.nranks, table.row_count * (self.rank + 1) // self.nranks
        key = (table.name, table.token, tuple(columns), lo, hi)
        if key in self._cache:
            return self._register(key, None)
        return self._register(key, data.slice(lo, hi - lo))

    def _file_source(self, table: Table, columns: list[str], replicated: bool, in_order: bool = False) -> str:
        """CSV, JSON and Hive-partitioned tables: DuckDB reads this rank's whole files, or, with fewer
        files than ranks, its range of the rows (DuckDB keeps the files' row order)."""
        if replicated or self.nranks == 1:
            return table.sql_source(table.files)
        mode, share = assign_row_groups(table, self.rank, self.nranks, in_order)
        if mode == "rows":
            lo, hi = share
            return f"(SELECT * FROM {table.sql_source(table.files)} LIMIT {hi - lo} OFFSET {lo})"
        if not share:
            key = (table.name, "empty", tuple(columns))
            if key in self._cache:
                return self._register(key, None)
            return self._register(key, pa.schema([table.schema.field(c) for c in columns]).empty_table())
        return table.sql_source([f for f, _ in share])


class WholeTables:
    """A rank's scan sources, reading every table whole: for a plan that rank 0 runs alone
    (planner/single_rank.py), whose scans would otherwise read only rank 0's share."""

    def __init__(self, scans: ScanSource):
        self._scans = scans

    def source(self, table: Table, columns: list[str], replicated: bool, in_order: bool = False) -> str:
        return self._scans.source(table, columns, True, in_order)

    def __getattr__(self, name):
        return getattr(self._scans, name)


def read_parquet_nan_aware(con) -> None:
    """DuckDB orders NaN above every number (`NaN > 100` is true), but Parquet writers other than
    DuckDB (pyarrow, Spark) leave NaN out of a column's min/max, and DuckDB by default skips row
    groups by those bounds: `x > 100` lost the NaN rows of such a file, and DuckDB itself answered
    the same query two ways, by whether its plan put the filter into the scan (duckdb/duckdb#25521;
    the fuzzer met it). With this setting DuckDB assumes NaN may lie outside the bounds. Our
    instances and the tests' DuckDB oracle both read Parquet this way."""
    try:
        con.execute("SET GLOBAL parquet_can_have_nan = true")  # cursors (lanes) too
    except duckdb.Error:
        pass  # a DuckDB without the setting
