"""The catalog: the tables of the data folder, views, and the virtual (system) tables.

Tables of the data folder, each named after its file or folder (lower case):
  `NAME.parquet`; `NAME.csv` (DuckDB's sniffer picks the dialect and types); `NAME.json`,
  `NAME.ndjson` or `NAME.jsonl` (newline-delimited JSON); a folder `NAME/` of Parquet files, which
  may be Hive-partitioned (`NAME/year=2024/part-0.parquet`: `year` becomes a column, typed once for
  the whole table, and DuckDB prunes partitions by filters); a folder of CSV or JSON files.
  Symlinked files and folders work. Parquet files of one table must have the same columns and types;
  they may differ in nullability (a column is nullable when any file says so). A file that cannot be
  read raises a CatalogError naming it when the catalog is built.
Views persist in `_flocksql_views.json` beside them.

Every table lives in database `memory`, schema `main` (DuckDB's names for an in-memory database), so
`t`, `main.t` and `memory.main.t` are one table. Virtual tables (the system catalog: information_schema
and DuckDB's duckdb_* functions, read for a query that also reads data) are small Arrow tables that
rank 0 builds per statement and ships with the plan (PhysicalPlan.virtual); they are scanned like any
other table (see engine/catalog_statements.py).

Statistics come from Parquet metadata (row counts, null counts, min/max) and, for distinct counts,
from a sample of the first row group; each carries whether it is exact or an estimate. CSV and JSON
tables have row counts only.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine import leftovers
from engine.constraints import NONE as NO_CONSTRAINTS, TableConstraints, from_metadata, with_constraints
from engine.errors import CatalogError

VIEWS_FILE = "_flocksql_views.json"
# A folder of the data folder that holds this file is a schema: its tables are `folder.table`.
SCHEMA_MARKER = "_flocksql_schema"
DATABASE = "memory"
SCHEMA = "main"
# File name endings of each format of table file.
FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".ndjson": "json", ".jsonl": "json"}
# Rows read from the first row group to estimate distinct counts.
DISTINCT_SAMPLE_ROWS = 65536
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class ColumnStats:
    null_count: int | None
    min: object
    max: object
    distinct: int | None
    distinct_exact: bool
    avg_width: float  # bytes per value in memory, roughly


@dataclass(frozen=True, slots=True)
class RowGroup:
    file: str
    index: int
    num_rows: int


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    files: tuple[str, ...]
    row_groups: tuple[RowGroup, ...]
    schema: pa.Schema
    row_count: int
    columns: dict = field(hash=False, compare=False)  # column name -> ColumnStats
    # Columns whose row groups hold disjoint, ordered value ranges (data written in key order):
    # column name -> ((min, max, rows) per row group, ascending). Such a table can be read
    # range-partitioned on that column, each rank pruning row groups by their statistics.
    clustered: dict = field(default_factory=dict, hash=False, compare=False)
    # The same, for columns that also hold NULLs (row groups of NULLs only left out): a read by
    # ranges of such a column leaves the NULL rows out (planner/filtered_ranges.py).
    ordered: dict = field(default_factory=dict, hash=False, compare=False)
    # parquet | csv | json (files read by DuckDB) | arrow (a virtual table: `data`, built by rank 0).
    format: str = "parquet"
    # Options of DuckDB's reader beyond the file list (csv: dialect and column types, so that every
    # rank reads any subset of the files with the same schema; hive: partition column types).
    reader_options: str = field(default="", hash=False, compare=False)
    hive: bool = False
    data: object = field(default=None, hash=False, compare=False)  # pa.Table of a virtual table
    token: str = ""  # tells one build of a virtual table from another (scan caches key on it)
    # PRIMARY KEY, UNIQUE, CHECK and DEFAULTs, carried in the files' schema metadata (engine/constraints.py).
    constraints: TableConstraints = field(default=NO_CONSTRAINTS, hash=False, compare=False)

    def column(self, name: str) -> ColumnStats | None:
        return self.columns.get(name)

    @property
    def write_schema(self) -> pa.Schema:
        """The schema a write's new files are made in: the columns and the constraints."""
        return with_constraints(self.schema, self.constraints)

    @property
    def by_file(self) -> bool:
        """Read through DuckDB only, a whole file per rank at least: CSV, JSON and Hive folders."""
        return self.format in ("csv", "json") or self.hive

    def sql_source(self, files) -> str:
        """DuckDB's table function reading `files` of this table."""
        listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        fn = {"parquet": "read_parquet", "csv": "read_csv", "json": "read_json"}[self.format]
        return f"{fn}({listed}{self.reader_options})"


def plain_type(t: pa.DataType) -> pa.DataType:
    """The type a column has on the wire: results leave the server without view types
    (server/flight_sql.py: transfer_table), so the catalog never says string_view either."""
    if pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_list_view(t) or pa.types.is_large_list_view(t):
        return pa.list_(plain_type(t.value_type))
    return t


def plain_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, plain_type(f.type), f.nullable) for f in schema])


def _merge_schema(name: str, file: str, have: pa.Schema | None, new: pa.Schema) -> pa.Schema:
    """One schema for the files of a table: same names and types; nullable where any file is."""
    if have is None:
        return new
    if have.names != new.names or have.types != new.types:
        raise CatalogError(f"table {name}: file {file} has columns {_columns_text(new)}, "
                           f"the table's other files {_columns_text(have)}")
    return pa.schema([pa.field(a.name, a.type, a.nullable or b.nullable) for a, b in zip(have, new)])


def _columns_text(schema: pa.Schema) -> str:
    return "(" + ", ".join(f"{f.name} {f.type}" for f in schema) + ")"


def _fixed_width(t: pa.DataType) -> float:
    if pa.types.is_decimal(t):
        return 16.0
    try:
        return max(1.0, t.bit_width / 8)
    except ValueError:
        return 24.0


def _min_max(st: pq.Statistics) -> tuple:
    """A row group's (min, max) as Python values. pyarrow 26 cannot convert the statistics of a
    DECIMAL stored as INT32/INT64 (tpchgen-cli writes prices so): those are scaled from the raw
    integers. Statistics it cannot read at all raise TypeError (treated as absent), as do dates and
    timestamps past Python's year 9999 (DuckDB writes `DATE '9999-12-31' + 1`)."""
    try:
        return st.min, st.max
    except (OverflowError, ValueError):
        raise TypeError("statistics out of Python's range") from None
    except pa.ArrowNotImplementedError:
        logical = json.loads(st.logical_type.to_json() or "{}")
        scale = logical.get("scale") if logical.get("Type") == "Decimal" else None
        if scale is None or st.physical_type not in ("INT32", "INT64"):
            raise TypeError("statistics of an unsupported type") from None
        import decimal
        return (decimal.Decimal(st.min_raw).scaleb(-scale), decimal.Decimal(st.max_raw).scaleb(-scale))


def _column_stats(pf: pq.ParquetFile, files_meta, sample: pa.Table | None, name: str, t: pa.DataType, rows: int):
    nulls, lo, hi, have_minmax, have_nulls = 0, None, None, True, True
    for meta in files_meta:
        idx = meta.schema.to_arrow_schema().get_field_index(name)
        for g in range(meta.num_row_groups):
            st = meta.row_group(g).column(idx).statistics
            if st is None:
                have_minmax = have_nulls = False
                continue
            if st.has_null_count:
                nulls += st.null_count
            else:
                have_nulls = False
            if st.has_min_max:
                try:
                    mn, mx = _min_max(st)
                    lo = mn if lo is None or mn < lo else lo
                    hi = mx if hi is None or mx > hi else hi
                except TypeError:
                    have_minmax = False
            else:
                have_minmax = False
    width = _fixed_width(t)
    distinct, exact = None, False
    # Nested columns (LIST, STRUCT, MAP) have no distinct count in Arrow: their statistics stay unknown.
    nested = pa.types.is_nested(t)
    if sample is not None and name in sample.column_names and sample.num_rows and not nested:
        col = sample.column(name)
        if pa.types.is_string_view(col.type):
            col = col.cast(pa.string())
        elif pa.types.is_binary_view(col.type):
            col = col.cast(pa.binary())
        d = pc.count_distinct(col).as_py()
        n = sample.num_rows
        if n >= rows:
            distinct, exact = d, True
        elif d >= 0.9 * n:  # nearly unique in the sample: assume it scales with the table
            distinct = int(rows * d / n)
        else:
            distinct = d
        if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t) or pa.types.is_binary(t):
            lengths = pc.binary_length(col)
            mean = pc.mean(lengths).as_py()
            width = (mean or 0) + 8
    if distinct is not None and have_minmax and isinstance(lo, int) and isinstance(hi, int):
        distinct = min(distinct, hi - lo + 1)
    return ColumnStats(nulls if have_nulls else None, lo if have_minmax else None,
                       hi if have_minmax else None, distinct, exact, width)


def load_table(name: str, files: list[str], distinct: dict | None = None, sample_rows: bool = True) -> Table:
    """distinct: column → distinct count measured over the whole table (HyperLogLog), which
    replaces the first-row-group sample's estimate. sample_rows=False: no distinct counts or string
    widths from the first row group (ranks that do not plan need neither; reading and counting
    the sample is most of a table's load: 0.8 s of a rank's start at TPC-H SF 1)."""
    files = sorted(files)
    if not files:
        raise CatalogError(f"table {name}: no Parquet files")
    metas, groups = [], []
    schema = None
    constraints = NO_CONSTRAINTS
    for f in files:
        try:
            pf = pq.ParquetFile(f)
        except (OSError, pa.ArrowException) as e:
            raise CatalogError(f"table {name}: cannot read {f}: {e}") from None
        meta = pf.metadata
        metas.append(meta)
        schema = _merge_schema(name, f, schema, plain_schema(pf.schema_arrow))  # drops field metadata
        constraints = constraints or from_metadata(pf.schema_arrow.metadata)
        for g in range(meta.num_row_groups):
            groups.append(RowGroup(f, g, meta.row_group(g).num_rows))
    rows = sum(g.num_rows for g in groups)
    sample = None
    first = pq.ParquetFile(files[0])
    if first.metadata.num_row_groups and sample_rows:
        sample = first.read_row_group(0)
        if sample.num_rows > DISTINCT_SAMPLE_ROWS:
            sample = sample.slice(0, DISTINCT_SAMPLE_ROWS)
    cols = _with_distinct({fld.name: _column_stats(first, metas, sample, fld.name, fld.type, rows) for fld in schema},
                          distinct, rows)
    clustered, ordered = {}, {}
    for fld in schema:
        if (pa.types.is_integer(fld.type) or pa.types.is_date(fld.type)) and len(groups) > 1:
            found = _clustered_ranges(metas, fld.name)
            if found is not None:
                ordered[fld.name] = found[0]
                if not found[1]:
                    clustered[fld.name] = found[0]
    return Table(name, tuple(files), tuple(groups), schema, rows, cols, clustered, constraints=constraints,
                 ordered=ordered)


def _with_distinct(cols: dict, distinct: dict | None, rows: int) -> dict:
    """Column statistics with the distinct counts measured over the whole table in place of the sample's."""
    cols = dict(cols)
    for col_name, n in (distinct or {}).items():
        if col_name in cols:
            c = cols[col_name]
            cols[col_name] = ColumnStats(c.null_count, c.min, c.max, max(1, min(int(n), rows)), False, c.avg_width)
    return cols


def _clustered_ranges(metas, name: str):
    """((min, max, rows) per row group, ascending, disjoint; whether any row is NULL), or None.
    Row groups of NULLs only are left out of the ranges."""
    ranges, nulls = [], False
    for meta in metas:
        idx = meta.schema.to_arrow_schema().get_field_index(name)
        if meta.schema.column(idx).physical_type in ("FLOAT", "DOUBLE"):
            # Writers other than DuckDB leave NaN out of min/max: a NaN key has no range to read by.
            return None
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            st = rg.column(idx).statistics
            if st is None or not st.has_null_count:
                return None
            nulls = nulls or st.null_count > 0
            if st.null_count == rg.num_rows:
                continue
            if not st.has_min_max:
                return None
            try:
                ranges.append((*_min_max(st), rg.num_rows - st.null_count))
            except TypeError:
                return None
    ranges.sort(key=lambda r: (r[0], r[1]))
    for (_, hi, _), (lo, _, _) in zip(ranges, ranges[1:]):
        if hi > lo:
            return None
    return (tuple(ranges), nulls) if ranges else None


STATS_FILE = "_flocksql_stats.json"
# Columns wider than this on average (free text such as comments) get no distinct count pass.
DISTINCT_MAX_WIDTH = 40


def _sql_text(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


def _struct_of_types(pairs) -> str:
    return "{" + ", ".join(f"{_sql_text(n)}: {_sql_text(t)}" for n, t in pairs) + "}"


def load_duckdb_table(name: str, files: list[str], fmt: str, hive: bool = False) -> Table:
    """A table whose files DuckDB reads (CSV, JSON, Hive-partitioned Parquet): its schema from
    DuckDB's sniffing over all files, then fixed in the reader's options, so that every rank reads
    its own subset of the files with the same column types; row counts per file for partitioning."""
    import duckdb
    files = sorted(files)
    con = duckdb.connect(config={"threads": 1})
    try:
        base = {"csv": "", "json": ", format='newline_delimited'", "parquet": ", hive_partitioning=true"}[fmt]
        probe = Table(name, tuple(files), (), pa.schema([]), 0, {}, format=fmt, reader_options=base)
        for f in files:  # name the unreadable file, not only the table
            try:
                con.execute(f"DESCRIBE SELECT * FROM {probe.sql_source([f])}").fetchall()
            except duckdb.Error as e:
                raise CatalogError(f"table {name}: cannot read {f}: {str(e).splitlines()[0]}") from None
        try:
            described = con.execute(f"DESCRIBE SELECT * FROM {probe.sql_source(files)}").fetchall()
        except duckdb.Error as e:
            raise CatalogError(f"table {name}: cannot read its files together: {str(e).splitlines()[0]}") from None
        types = [(row[0], row[1]) for row in described]
        if fmt == "csv":
            sniff = con.execute(f"SELECT Delimiter, Quote, Escape, HasHeader, SkipRows, DateFormat, TimestampFormat "
                            f"FROM sniff_csv({_sql_text(files[0])})").fetchall()[0]
            delim, quote, escape, header, skip, datefmt, tsfmt = (None if v == "(empty)" and i in (5, 6) else
                                                                  "" if v == "(empty)" else v
                                                                  for i, v in enumerate(sniff))
            opts = (f", columns={_struct_of_types(types)}, auto_detect=false, header={'true' if header else 'false'}"
                    f", delim={_sql_text(delim)}, quote={_sql_text(quote)}, escape={_sql_text(escape)}, skip={int(skip or 0)}")
            if datefmt:
                opts += f", dateformat={_sql_text(datefmt)}"
            if tsfmt:
                opts += f", timestampformat={_sql_text(tsfmt)}"
        elif fmt == "json":
            opts = base + f", columns={_struct_of_types(types)}"
        else:
            in_files = set(pq.ParquetFile(files[0]).schema_arrow.names)
            opts = base + f", hive_types={_struct_of_types([(n, t) for n, t in types if n not in in_files])}"
        table = Table(name, tuple(files), (), pa.schema([]), 0, {}, format=fmt, reader_options=opts, hive=hive)
        schema = plain_schema(con.sql(f"SELECT * FROM {table.sql_source(files)} LIMIT 0").to_arrow_table().schema)
        groups = []
        for f in files:
            if fmt == "parquet":
                n = pq.ParquetFile(f).metadata.num_rows
            else:
                n = con.execute(f"SELECT count(*) FROM {table.sql_source([f])}").fetchall()[0][0]
            groups.append(RowGroup(f, 0, n))  # a whole file is the unit of partitioning
    finally:
        con.close()
    rows = sum(g.num_rows for g in groups)
    cols = {f.name: ColumnStats(None, None, None, None, False, _fixed_width(f.type)) for f in schema}
    return Table(name, tuple(files), tuple(groups), schema, rows, cols, {}, format=fmt, reader_options=opts,
                 hive=hive)


def virtual_table(name: str, data: pa.Table) -> Table:
    """A table of rows built in memory (the system catalog); exact row count, no other statistics."""
    import uuid
    data = data.cast(plain_schema(data.schema))
    cols = {f.name: ColumnStats(None, None, None, None, False, _fixed_width(f.type)) for f in data.schema}
    return Table(name, (), (), data.schema, data.num_rows, cols, {}, format="arrow", data=data,
                 token=uuid.uuid4().hex)


def measure_distinct(files: list[str], table: Table) -> dict:
    """Approximate distinct counts (DuckDB's HyperLogLog) of every column narrow enough to be a
    key, over all rows: a first-row-group sample badly underestimates keys that repeat (l_partkey)
    or are clustered (l_orderkey)."""
    from executors.scratch import scratch_cursor
    cols = [f.name for f in table.schema
            if (table.columns[f.name].avg_width or 0) <= DISTINCT_MAX_WIDTH and not pa.types.is_nested(f.type)]
    if not cols or table.row_count == 0:
        return {}
    con = scratch_cursor(sandboxed=False)
    try:
        items = ", ".join(f'approx_count_distinct("{c}")' for c in cols)
        row = con.execute(f"SELECT {items} FROM {table.sql_source(files)}").fetchone()
    finally:
        con.close()
    return dict(zip(cols, row))


class Catalog:
    """Tables and views of one data folder. Not thread-safe; the session serialises access.

    statistics=True (the planning rank) measures distinct counts once per table version and keeps
    them in _flocksql_stats.json beside the data (or in ~/.cache/flocksql when that is read-only).
    """

    def __init__(self, data_dir: str | os.PathLike, statistics: bool = True, temp_owner: str | None = None):
        self.statistics = statistics
        # Whose temporary tables this catalog holds (engine/leftovers.py): those of other flocks
        # serving the same folder are theirs alone, and may be half written or gone at any moment.
        self.temp_owner = temp_owner or leftovers.temp_owner()
        self.data_dir = Path(data_dir).resolve()
        if not self.data_dir.is_dir():
            raise CatalogError(f"data folder {self.data_dir} does not exist")
        self._tables: dict[str, Table] = {}
        self._stamps: dict[str, tuple] = {}
        self.views: dict[str, str] = {}
        self._virtual: dict[str, Table] = {}
        self.schemas = [SCHEMA]
        # Where unqualified names are looked up while a statement is planned (the Session sets its
        # client's search path under the plan lock; planner/qualify.py reads it).
        self.search_path = [SCHEMA]
        self.refresh()

    def _discover(self) -> dict[str, tuple[str, list[str], bool]]:
        """name -> (format, files, hive-partitioned), following symlinks; tables of schema `s` (a
        folder `s/` holding the SCHEMA_MARKER file) are named `s.t`."""
        schemas = [SCHEMA]
        found = self._discover_in(self.data_dir, "")
        for entry in sorted(self.data_dir.iterdir()):
            if entry.is_dir() and (entry / SCHEMA_MARKER).exists() and _NAME.match(entry.name.lower()):
                schemas.append(entry.name.lower())
                found.update(self._discover_in(entry, entry.name.lower() + "."))
        # Replaced whole, never built in place: a client thread mirroring the catalog reads the
        # list while a lane refreshes it (it once saw ['main'] beside the tables of a schema).
        self.schemas = schemas
        return found

    def _discover_in(self, folder: Path, prefix: str) -> dict[str, tuple[str, list[str], bool]]:
        found: dict[str, tuple[str, list[str], bool]] = {}
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith((".", "_")) or (entry.is_dir() and (entry / SCHEMA_MARKER).exists()):
                continue
            name = entry.stem.lower() if entry.is_file() else entry.name.lower()
            if not _NAME.match(name) or prefix + name in found or leftovers.temp_table_of_another(name, self.temp_owner):
                continue
            name = prefix + name
            if entry.is_file() and entry.suffix.lower() in FORMATS:
                found[name] = (FORMATS[entry.suffix.lower()], [str(entry)], False)
            elif entry.is_dir():
                by_format: dict[str, list[str]] = {}
                hive = False
                for root, dirs, names in os.walk(entry, followlinks=True):
                    dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
                    for n in names:
                        fmt = FORMATS.get(os.path.splitext(n)[1].lower())
                        if fmt and not n.startswith((".", "_")):
                            by_format.setdefault(fmt, []).append(os.path.join(root, n))
                            hive = hive or "=" in os.path.relpath(root, entry)
                for fmt in ("parquet", "csv", "json"):
                    if by_format.get(fmt):
                        found[name] = (fmt, sorted(by_format[fmt]), hive and fmt == "parquet")
                        break
        return found

    def allowed_directories(self) -> list[str]:
        """Folders DuckDB may read: the data folder and, for symlinked files, their targets' folders."""
        dirs = {str(self.data_dir)}
        for table in self._tables.values():
            for f in table.files:
                real = os.path.realpath(f)
                if not real.startswith(str(self.data_dir) + os.sep):
                    dirs.add(os.path.dirname(real))
        return sorted(dirs)

    def refresh(self) -> None:
        found = self._discover()
        tables = {}
        for name, (fmt, files, hive) in found.items():
            try:
                stamp = (fmt, hive) + tuple((f, os.stat(f).st_mtime_ns, os.stat(f).st_size) for f in files)
                if self._stamps.get(name) == stamp:
                    tables[name] = self._tables[name]
                else:
                    if fmt == "parquet" and not hive:
                        tables[name] = self._load(name, files, stamp)
                    else:
                        tables[name] = load_duckdb_table(name, files, fmt, hive)
                    self._stamps[name] = stamp
            except FileNotFoundError:
                # The table is being replaced or dropped by a write on the planning rank while this
                # (worker) rank refreshes; the refresh that write sends when it is done sees it whole.
                continue
        self._tables = tables
        vf = self.data_dir / VIEWS_FILE
        self.views = json.loads(vf.read_text()) if vf.exists() else {}

    def install_virtual(self, tables: dict) -> None:
        """The virtual tables of the statement being planned or run (name -> Table); replaces the last."""
        self._virtual = dict(tables)

    def _stats_path(self) -> Path:
        if os.access(self.data_dir, os.W_OK):
            return self.data_dir / STATS_FILE
        import hashlib
        digest = hashlib.sha1(str(self.data_dir).encode()).hexdigest()[:16]
        return Path.home() / ".cache" / "flocksql" / f"stats-{digest}.json"

    def _load(self, name: str, files: list[str], stamp) -> Table:
        table = load_table(name, files, sample_rows=self.statistics)
        if not self.statistics:
            return table
        path = self._stats_path()
        try:
            saved = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError):
            saved = {}
        key = json.dumps([[os.path.basename(f), m, n] for f, m, n in stamp[2:]])
        entry = saved.get(name)
        if not entry or entry.get("stamp") != key:
            entry = {"stamp": key, "distinct": measure_distinct(list(table.files), table)}
            saved[name] = entry
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                tmp.write_text(json.dumps(saved, indent=1, sort_keys=True))
                os.replace(tmp, path)
            except OSError:
                pass  # statistics are an optimisation: plan with what we measured this time
        if not entry["distinct"]:
            return table
        return dataclasses.replace(table, columns=_with_distinct(table.columns, entry["distinct"], table.row_count))

    def table_path(self, name: str) -> Path:
        """Where table `name` (`t`, or `s.t` in schema s) lives or would live: a folder, or the one
        Parquet file it was found as."""
        schema, _, table = name.rpartition(".")
        folder = self.data_dir / schema if schema else self.data_dir
        single = folder / f"{table}.parquet"
        return single if single.is_file() and not (folder / table).is_dir() else folder / table

    def save_views(self) -> None:
        tmp = self.data_dir / (VIEWS_FILE + ".tmp")
        tmp.write_text(json.dumps(self.views, indent=1, sort_keys=True))
        os.replace(tmp, self.data_dir / VIEWS_FILE)

    def table_names(self) -> list[str]:
        return sorted(self._tables)

    def has_table(self, name: str) -> bool:
        return name.lower() in self._tables or name.lower() in self._virtual

    def table(self, name: str) -> Table:
        key = name.lower()
        found = self._tables.get(key) or self._virtual.get(key)
        if found is None:
            raise CatalogError(f"unknown table: {name}")
        return found

    def table_schema(self, name: str) -> pa.Schema:
        return self.table(name).schema
