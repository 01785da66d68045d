"""The catalog: every `NAME.parquet` file and every `NAME/` folder of Parquet files in the data
folder is a table `NAME`; views persist in `_flocksql_views.json` beside them.

Statistics come from Parquet metadata (row counts, null counts, min/max) and, for distinct counts,
from a sample of the first row group; each carries whether it is exact or an estimate.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine.errors import CatalogError

VIEWS_FILE = "_flocksql_views.json"
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

    def column(self, name: str) -> ColumnStats | None:
        return self.columns.get(name)


def _fixed_width(t: pa.DataType) -> float:
    if pa.types.is_decimal(t):
        return 16.0
    try:
        return max(1.0, t.bit_width / 8)
    except ValueError:
        return 24.0


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
                    lo = st.min if lo is None or st.min < lo else lo
                    hi = st.max if hi is None or st.max > hi else hi
                except TypeError:
                    have_minmax = False
            else:
                have_minmax = False
    width = _fixed_width(t)
    distinct, exact = None, False
    if sample is not None and name in sample.column_names and sample.num_rows:
        col = sample.column(name)
        if pa.types.is_string_view(t):
            col = col.cast(pa.string())
        elif pa.types.is_binary_view(t):
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


def load_table(name: str, files: list[str], distinct: dict | None = None) -> Table:
    """distinct: column → distinct count measured over the whole table (HyperLogLog), which
    replaces the first-row-group sample's estimate."""
    files = sorted(files)
    if not files:
        raise CatalogError(f"table {name}: no Parquet files")
    metas, groups = [], []
    schema = None
    for f in files:
        pf = pq.ParquetFile(f)
        meta = pf.metadata
        metas.append(meta)
        s = pf.schema_arrow
        s = pa.schema([pa.field(x.name, x.type, x.nullable) for x in s])  # drop field metadata
        if schema is None:
            schema = s
        elif not schema.equals(s):
            raise CatalogError(f"table {name}: file {f} has schema {s}, expected {schema}")
        for g in range(meta.num_row_groups):
            groups.append(RowGroup(f, g, meta.row_group(g).num_rows))
    rows = sum(g.num_rows for g in groups)
    sample = None
    first = pq.ParquetFile(files[0])
    if first.metadata.num_row_groups:
        sample = first.read_row_group(0)
        if sample.num_rows > DISTINCT_SAMPLE_ROWS:
            sample = sample.slice(0, DISTINCT_SAMPLE_ROWS)
    cols = {fld.name: _column_stats(first, metas, sample, fld.name, fld.type, rows) for fld in schema}
    for col_name, n in (distinct or {}).items():
        if col_name in cols:
            c = cols[col_name]
            cols[col_name] = ColumnStats(c.null_count, c.min, c.max, max(1, min(int(n), rows)), False, c.avg_width)
    clustered = {}
    for fld in schema:
        if (pa.types.is_integer(fld.type) or pa.types.is_date(fld.type)) and len(groups) > 1:
            ranges = _clustered_ranges(metas, fld.name)
            if ranges is not None:
                clustered[fld.name] = ranges
    return Table(name, tuple(files), tuple(groups), schema, rows, cols, clustered)


def _clustered_ranges(metas, name: str):
    ranges = []
    for meta in metas:
        idx = meta.schema.to_arrow_schema().get_field_index(name)
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            st = rg.column(idx).statistics
            if st is None or not st.has_min_max or (st.has_null_count and st.null_count):
                return None
            ranges.append((st.min, st.max, rg.num_rows))
    ranges.sort(key=lambda r: (r[0], r[1]))
    for (_, hi, _), (lo, _, _) in zip(ranges, ranges[1:]):
        if hi > lo:
            return None
    return tuple(ranges)


STATS_FILE = "_flocksql_stats.json"
# Columns wider than this on average (free text such as comments) get no distinct count pass.
DISTINCT_MAX_WIDTH = 40


def measure_distinct(files: list[str], table: Table) -> dict:
    """Approximate distinct counts (DuckDB's HyperLogLog) of every column narrow enough to be a
    key, over all rows: a first-row-group sample badly underestimates keys that repeat (l_partkey)
    or are clustered (l_orderkey)."""
    import duckdb
    cols = [f.name for f in table.schema
            if (table.columns[f.name].avg_width or 0) <= DISTINCT_MAX_WIDTH and not pa.types.is_nested(f.type)]
    if not cols or table.row_count == 0:
        return {}
    con = duckdb.connect()
    try:
        items = ", ".join(f'approx_count_distinct("{c}")' for c in cols)
        srcs = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        row = con.execute(f"SELECT {items} FROM read_parquet([{srcs}])").fetchone()
    finally:
        con.close()
    return dict(zip(cols, row))


class Catalog:
    """Tables and views of one data folder. Not thread-safe; the session serialises access.

    statistics=True (the planning rank) measures distinct counts once per table version and keeps
    them in _flocksql_stats.json beside the data (or in ~/.cache/flocksql when that is read-only).
    """

    def __init__(self, data_dir: str | os.PathLike, statistics: bool = True):
        self.statistics = statistics
        self.data_dir = Path(data_dir).resolve()
        if not self.data_dir.is_dir():
            raise CatalogError(f"data folder {self.data_dir} does not exist")
        self._tables: dict[str, Table] = {}
        self._stamps: dict[str, tuple] = {}
        self.views: dict[str, str] = {}
        self.refresh()

    def _discover(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for entry in sorted(self.data_dir.iterdir()):
            if entry.name.startswith((".", "_")):
                continue
            if entry.is_file() and entry.suffix == ".parquet":
                found[entry.stem.lower()] = [str(entry)]
            elif entry.is_dir():
                parts = sorted(str(p) for p in entry.rglob("*.parquet") if not p.name.startswith((".", "_")))
                if parts:
                    found[entry.name.lower()] = parts
        return {k: v for k, v in found.items() if _NAME.match(k)}

    def refresh(self) -> None:
        found = self._discover()
        tables = {}
        for name, files in found.items():
            stamp = tuple((f, os.stat(f).st_mtime_ns, os.stat(f).st_size) for f in files)
            if self._stamps.get(name) == stamp:
                tables[name] = self._tables[name]
            else:
                tables[name] = self._load(name, files, stamp)
                self._stamps[name] = stamp
        self._tables = tables
        vf = self.data_dir / VIEWS_FILE
        self.views = json.loads(vf.read_text()) if vf.exists() else {}

    def _stats_path(self) -> Path:
        if os.access(self.data_dir, os.W_OK):
            return self.data_dir / STATS_FILE
        import hashlib
        digest = hashlib.sha1(str(self.data_dir).encode()).hexdigest()[:16]
        return Path.home() / ".cache" / "flocksql" / f"stats-{digest}.json"

    def _load(self, name: str, files: list[str], stamp) -> Table:
        table = load_table(name, files)
        if not self.statistics:
            return table
        path = self._stats_path()
        try:
            saved = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError):
            saved = {}
        key = json.dumps([[os.path.basename(f), m, n] for f, m, n in stamp])
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
        return load_table(name, files, entry["distinct"]) if entry["distinct"] else table

    def save_views(self) -> None:
        tmp = self.data_dir / (VIEWS_FILE + ".tmp")
        tmp.write_text(json.dumps(self.views, indent=1, sort_keys=True))
        os.replace(tmp, self.data_dir / VIEWS_FILE)

    def table_names(self) -> list[str]:
        return sorted(self._tables)

    def has_table(self, name: str) -> bool:
        return name.lower() in self._tables

    def table(self, name: str) -> Table:
        try:
            return self._tables[name.lower()]
        except KeyError:
            raise CatalogError(f"unknown table: {name}") from None

    def table_schema(self, name: str) -> pa.Schema:
        return self.table(name).schema
