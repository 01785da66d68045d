"""The adversarial data set, and the schema description the query generator reads.

Every table is built by one DuckDB statement (`TABLES`) and written as Parquet: a folder
of part files (each a contiguous run of `id`s, some empty) with small row groups, or one file. The
wide tables t0..t3, mid and big share one column set, so a failing query can be re-run on a smaller
table of the same shape while it is minimised; sk, dk, bk and ek reuse the names `id` and `k` with
other types (VARCHAR, DOUBLE, BOOLEAN, DECIMAL), so joins and set operations on "the same key"
compare values of different types.

    >>> write_adversarial(Path("/tmp/adv"))      # idempotent; returns the folder
    >>> schema_of("adv", duckdb_oracle(Path("/tmp/adv")))
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

# The wide column set, as a SELECT list over a row source that has `n` (1-based row number):
# special values sit on fixed rows so that even the 1-, 2- and 3-row tables hold some of them.
_WIDE = """
    CAST(n AS BIGINT) AS id,
    CAST(CASE WHEN n % 29 = 0 THEN NULL WHEN n % 20 <> 0 THEN 1 ELSE n % 7 END AS INTEGER) AS k,
    CAST(CASE n % 9 WHEN 1 THEN 2147483647 WHEN 2 THEN -2147483648 WHEN 4 THEN NULL ELSE (n * 37) % 100 - 50 END
         AS INTEGER) AS i,
    CAST(CASE n % 11 WHEN 1 THEN 9223372036854775807 WHEN 2 THEN -9223372036854775808 WHEN 3 THEN 0
         WHEN 5 THEN NULL ELSE n * 1000003 END AS BIGINT) AS b,
    CASE n % 12 WHEN 1 THEN 'NaN'::DOUBLE WHEN 2 THEN 'inf'::DOUBLE WHEN 3 THEN -0.0::DOUBLE
         WHEN 4 THEN '-inf'::DOUBLE WHEN 6 THEN NULL ELSE ((n * 7) % 40 - 20) * 0.25 END AS f,
    CAST(CASE n % 8 WHEN 1 THEN 999999999999999.999 WHEN 2 THEN -0.001 WHEN 7 THEN NULL
         ELSE (n % 17) * 1.125 END AS DECIMAL(18, 3)) AS d,
    CASE n % 10 WHEN 1 THEN DATE '0001-01-01' WHEN 2 THEN DATE '9999-12-31' WHEN 3 THEN NULL
         ELSE DATE '2000-02-27' + CAST(n % 30 AS INTEGER) END AS dt,
    CASE n % 7 WHEN 1 THEN TIMESTAMP '0001-01-01 00:00:00' WHEN 2 THEN TIMESTAMP '9999-12-31 23:59:59.999999'
         WHEN 3 THEN TIMESTAMP '1970-01-01 00:00:00' WHEN 5 THEN NULL
         ELSE TIMESTAMP '2024-02-29 12:00:00' + to_minutes(CAST(n * 17 AS BIGINT)) END AS ts,
    CASE WHEN n % 5 = 4 THEN NULL ELSE n % 2 = 1 END AS flag,
    CASE n % 6 WHEN 1 THEN '' WHEN 2 THEN repeat('long-', 200) WHEN 3 THEN NULL WHEN 5 THEN 'Ünï ✓'
         ELSE 's' || (n % 4) END AS s,
    CAST(CASE WHEN n % 10 = 3 THEN n END AS INTEGER) AS nn
"""


def _wide(rows: int) -> str:
    return f"SELECT {_WIDE} FROM (SELECT range + 1 AS n FROM range({rows}))"


@dataclass(frozen=True, slots=True)
class TableSpec:
    """One adversarial table: the DuckDB query that makes it and how it is laid out on disk.

    `parts` > 0 writes a folder of that many files (contiguous runs of the table's rows; the last
    ones may be empty); 0 writes a single file. `row_group_size` is DuckDB's ROW_GROUP_SIZE.
    """

    name: str
    query: str
    parts: int = 0
    row_group_size: int = 2


TABLES: tuple[TableSpec, ...] = (
    TableSpec("t0", _wide(0), parts=2),
    TableSpec("t1", _wide(1), parts=2),
    TableSpec("t2", _wide(2), parts=2),
    TableSpec("t3", _wide(3), parts=2, row_group_size=1),
    TableSpec("mid", _wide(40), parts=0, row_group_size=8),
    # 92 % of the rows hold k = 1 (every row whose number is not a multiple of 20 or 29).
    TableSpec("big", _wide(300), parts=3, row_group_size=50),
    # `k` as text: numeric strings (so that comparing with an integer k casts cleanly), with
    # leading zeros and signs that equal an integer but not its text.
    TableSpec("sk", "SELECT * FROM (VALUES ('1', '1', 10), ('2', '01', 20), ('3', '2', NULL), ('4', NULL, 40), "
                    "('5', '-0', 50), ('6', '7', 60), ('7', '1', 70), (NULL, '3', 80)) t(id, k, v)", parts=2),
    TableSpec("dk", "SELECT CAST(id AS INTEGER) AS id, CAST(k AS DOUBLE) AS k, CAST(v AS DOUBLE) AS v FROM (VALUES "
                    "(1, '1.0', '0.5'), (2, '2.0', '-0.0'), (3, 'NaN', 'inf'), (4, '-0.0', NULL), "
                    "(5, NULL, '2.25'), (6, 'inf', 'NaN'), (7, '1.5', '-1.0'), (8, '0.0', '3.0')) t(id, k, v)"),
    TableSpec("bk", "SELECT CAST(id AS BIGINT) AS id, CAST(k AS BOOLEAN) AS k, v FROM (VALUES (1, true, 'a'), "
                    "(2, false, 'b'), (3, NULL, 'c'), (4, true, NULL), (5, false, '')) t(id, k, v)", parts=2),
    TableSpec("ek", "SELECT CAST(id AS DECIMAL(10, 0)) AS id, CAST(k AS DECIMAL(9, 2)) AS k, CAST(v AS DATE) AS v "
                    "FROM (VALUES (1, 1.00, '0001-01-01'), (2, 2.50, '9999-12-31'), (3, -0.00, NULL), "
                    "(4, NULL, '2000-02-29'), (5, 7.00, '1970-01-01')) t(id, k, v)"),
)

# Columns whose values are unique and never NULL, per table: they make an ORDER BY total.
ADV_UNIQUE = {t.name: ("id",) for t in TABLES if t.name != "sk"}


def create_statements(names: list[str] | None = None) -> str:
    """DuckDB statements that create the named tables (all by default), one per line."""
    return "\n".join(f"CREATE TABLE {t.name} AS {t.query};" for t in TABLES if names is None or t.name in names)


def write_adversarial(target: Path) -> Path:
    """Write every adversarial table under `target` (skipped when a complete copy is there)."""
    target = Path(target)
    done = target / "_complete"
    if done.exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        for spec in TABLES:
            con.execute(f"CREATE TABLE {spec.name} AS {spec.query}")
            _write(con, spec, target)
    finally:
        con.close()
    done.write_text("")
    return target


def _write(con: duckdb.DuckDBPyConnection, spec: TableSpec, target: Path) -> None:
    # DuckDB makes the rows; pyarrow writes them, because DuckDB's writer does not cut row groups
    # smaller than a vector (2048 rows).
    table = con.sql(f"SELECT * FROM {spec.name} ORDER BY id NULLS LAST").to_arrow_table()
    if spec.parts == 0:
        pq.write_table(table, target / f"{spec.name}.parquet", row_group_size=spec.row_group_size)
        return
    folder = target / spec.name
    folder.mkdir(exist_ok=True)
    step = -(-table.num_rows // spec.parts) or 1
    for k in range(spec.parts):
        pq.write_table(table.slice(k * step, step), folder / f"part-{k}.parquet", row_group_size=spec.row_group_size)


# --- the schema the generator reads ---------------------------------------------------------------

KINDS = ("int", "float", "dec", "text", "date", "ts", "bool")


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: str  # one of KINDS
    type: str  # DuckDB's type name
    distinct: int = 1  # distinct non-NULL values
    top: int = 1  # rows holding the most frequent value (NULL included)
    numeric: bool = False  # text whose every value reads as an integer ('01', '-0'): compares cleanly with numbers


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    rows: int
    unique: tuple[str, ...]  # columns that together identify a row (may be empty)


@dataclass(frozen=True, slots=True)
class Schema:
    """A data set as the generator sees it. `edges` are join keys known to match (foreign keys);
    `same_name_keys` says any two tables may join on columns of the same name."""

    name: str
    tables: dict[str, Table]
    edges: tuple[tuple[str, str, str, str], ...] = ()
    same_name_keys: bool = False


def kind_of(duckdb_type: str) -> str:
    t = duckdb_type.upper()
    if t.startswith("DECIMAL"):
        return "dec"
    if t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"):
        return "int"
    if t in ("FLOAT", "DOUBLE", "REAL"):
        return "float"
    if t == "DATE":
        return "date"
    if t.startswith("TIMESTAMP"):
        return "ts"
    if t == "BOOLEAN":
        return "bool"
    return "text"


TPCH_UNIQUE = {"lineitem": ("l_orderkey", "l_linenumber"), "orders": ("o_orderkey",), "customer": ("c_custkey",),
               "part": ("p_partkey",), "partsupp": ("ps_partkey", "ps_suppkey"), "supplier": ("s_suppkey",),
               "nation": ("n_nationkey",), "region": ("r_regionkey",)}
TPCH_EDGES = (("lineitem", "l_orderkey", "orders", "o_orderkey"), ("orders", "o_custkey", "customer", "c_custkey"),
              ("customer", "c_nationkey", "nation", "n_nationkey"), ("supplier", "s_nationkey", "nation", "n_nationkey"),
              ("nation", "n_regionkey", "region", "r_regionkey"), ("lineitem", "l_partkey", "part", "p_partkey"),
              ("lineitem", "l_suppkey", "supplier", "s_suppkey"), ("partsupp", "ps_partkey", "part", "p_partkey"),
              ("partsupp", "ps_suppkey", "supplier", "s_suppkey"), ("customer", "c_nationkey", "supplier", "s_nationkey"),
              ("lineitem", "l_partkey", "partsupp", "ps_partkey"))


def schema_of(name: str, con: duckdb.DuckDBPyConnection) -> Schema:
    """Read the tables (views) of an oracle connection into a Schema; `name` is 'tpch' or 'adv'."""
    tables = {}
    for (table,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall():
        described = con.execute(f'DESCRIBE "{table}"').fetchall()
        rows = con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0]
        cols = []
        for c, t, *_ in described:
            distinct, top = con.execute(f'SELECT count(DISTINCT "{c}"), coalesce(max(n), 0) FROM '
                                        f'(SELECT "{c}", count(*) AS n FROM "{table}" GROUP BY ALL) g').fetchall()[0]
            numeric = kind_of(t) == "text" and con.execute(
                f'SELECT coalesce(bool_and(TRY_CAST("{c}" AS BIGINT) IS NOT NULL), true) FROM "{table}" '
                f'WHERE "{c}" IS NOT NULL').fetchall()[0][0]
            cols.append(Column(c, kind_of(t), t, max(distinct, 1), max(top, 1), numeric))
        cols = tuple(cols)
        unique = (TPCH_UNIQUE if name == "tpch" else ADV_UNIQUE).get(table, ())
        tables[table] = Table(table, cols, rows, unique)
    if name == "tpch":
        return Schema(name, tables, edges=TPCH_EDGES)
    return Schema(name, tables, same_name_keys=True)
