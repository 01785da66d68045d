"""Catalog, session and write statements at 1, 2 and 3 ranks, with DuckDB as the oracle.

Catalog answers are checked against what DuckDB says of the same Parquet files (types, NOT NULL),
not against our own mirror; writes run the same statements on DuckDB tables and compare the counts
and the tables' rows afterwards.

The statements of every test at one rank count run in one job (`ran`), each test's list in a
Session of its own, over a folder of its own where it writes.
"""
from __future__ import annotations

import shutil

import duckdb
import pyarrow.parquet as pq
import pytest

from engine.batch import run_queries, run_query_lists
from tpch.compare import compare_tables

RANKS = (1, 2, 3)
SMALL = ("nation", "region", "supplier", "orders")


@pytest.fixture(scope="module")
def data(tpch_sf001, tmp_path_factory):
    """A private copy of some TPC-H tables: these tests write."""
    folder = tmp_path_factory.mktemp("catalog-sql")
    for name in SMALL:
        shutil.copy(tpch_sf001 / f"{name}.parquet", folder / f"{name}.parquet")
    return folder


@pytest.fixture(scope="module")
def ran(data, tmp_path_factory):
    """Per rank count, built on first use: {test: (its folder, its results)}, the lists of all
    tests (LISTS) run in one job. A test that writes gets a copy of `data` of its own."""
    cache = {}

    def get(ranks: int, test: str):
        if ranks not in cache:
            folders = {}
            for name in LISTS:
                folders[name] = data
                if name in WRITING:
                    folders[name] = tmp_path_factory.mktemp(f"{name}-r{ranks}") / "d"
                    shutil.copytree(data, folders[name])
            results = run_query_lists([(str(folders[name]), queries) for name, queries in LISTS.items()], ranks,
                                      timeout_s=300)
            cache[ranks] = {name: (folders[name], got) for name, got in zip(LISTS, results)}
        return cache[ranks][test]

    return get


def _ok(result):
    assert result.error is None, result.error
    return result.table


CATALOG_STATEMENTS = [
    # Comments before and after a statement, as tools send them (dbt's query comment), change
    # nothing, not even for statements known by their first word.
    "/* {\"app\": \"dbt\", \"node_id\": \"model.x\"} */ SHOW TABLES",
    "-- the table's columns\nDESCRIBE nation; -- done",
    "SELECT table_catalog, table_schema, table_name, table_type FROM information_schema.tables ORDER BY table_name",
    "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = 'nation' "
    "ORDER BY ordinal_position",
    "SELECT table_name, column_count FROM duckdb_tables() ORDER BY 1",
    "SELECT current_database(), current_schema()",
    "SELECT count(*) AS n, max(memory.main.nation.n_name) AS m FROM memory.main.nation",
    "/* columns */ PRAGMA table_info('nation') -- by position",
]


@pytest.mark.parametrize("ranks", RANKS)
def test_catalog_statements_describe_the_files_as_duckdb_does(data, ran, ranks):
    duck = duckdb.connect()
    file = data / "nation.parquet"
    described = duck.execute(f"DESCRIBE SELECT * FROM read_parquet('{file}')").fetchall()
    required = {f.name for f in pq.read_schema(file) if not f.nullable}
    show, describe, info, columns, tables, current, qualified, pragma = map(_ok, ran(ranks, "catalog")[1])
    assert show.column("name").to_pylist() == sorted(SMALL)
    assert [(r["column_name"], r["column_type"]) for r in describe.to_pylist()] == [(n, t) for n, t, *_ in described]
    assert [r["null"] for r in describe.to_pylist()] == ["NO" if n in required else "YES" for n, *_ in described]
    assert info.to_pylist() == [{"table_catalog": "memory", "table_schema": "main", "table_name": n,
                                 "table_type": "BASE TABLE"} for n in sorted(SMALL)]
    assert [(r["column_name"], r["data_type"]) for r in columns.to_pylist()] == [(n, t) for n, t, *_ in described]
    assert {r["table_name"]: r["column_count"] for r in tables.to_pylist()} == \
        {n: len(pq.read_schema(data / f"{n}.parquet")) for n in SMALL}
    assert list(current.to_pylist()[0].values()) == ["memory", "main"]
    want = duck.execute(f"SELECT count(*), max(n_name) FROM read_parquet('{file}')").fetchone()
    assert tuple(qualified.to_pylist()[0].values()) == want
    assert [(r["name"], r["type"], r["notnull"]) for r in pragma.to_pylist()] == \
        [(n, t, n in required) for n, t, *_ in described]


NAMED_QUERY = ("SELECT n_regionkey, count(*), sum(n_nationkey), avg(n_nationkey) * 2, upper(min(n_name)) "
               "FROM nation GROUP BY n_regionkey")


@pytest.mark.parametrize("ranks", RANKS)
def test_result_names_and_described_types_are_duckdbs(data, ran, ranks):
    duck = duckdb.connect()
    for name in SMALL:
        duck.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{data / name}.parquet')")
    result, described = map(_ok, ran(ranks, "names")[1])
    oracle = duck.execute(NAMED_QUERY)
    assert result.column_names == [d[0] for d in oracle.description]
    assert described.column("column_name").to_pylist() == result.column_names
    assert described.column("column_type").to_pylist() == \
        [r[1] for r in duck.execute(f"DESCRIBE {NAMED_QUERY}").fetchall()]


@pytest.mark.parametrize("ranks", RANKS)
def test_summarize_gives_duckdbs_statistics(data, ran, ranks):
    duck = duckdb.connect()
    duck.execute(f"CREATE VIEW orders AS SELECT * FROM read_parquet('{data / 'orders.parquet'}')")
    ours = {r["column_name"]: r for r in _ok(ran(ranks, "summarize")[1][0]).to_pylist()}
    theirs = {r[0]: r for r in duck.execute("SUMMARIZE orders").fetchall()}
    assert list(ours) == list(theirs)
    for name, row in theirs.items():
        mine = ours[name]
        assert (mine["column_type"], mine["min"], mine["max"], mine["count"]) == (row[1], row[2], row[3], row[10])
        assert float(mine["null_percentage"]) == pytest.approx(float(row[11]))
        numeric = row[6] is not None
        if numeric:  # avg and std; quartiles and approx_unique are estimates on both sides
            assert float(mine["avg"]) == pytest.approx(float(row[5]), rel=1e-9)
            assert float(mine["std"]) == pytest.approx(float(row[6]), rel=1e-9)
            for q in ("q25", "q50", "q75"):
                assert float(mine[q]) == pytest.approx(float(row[("q25", "q50", "q75").index(q) + 7]), rel=0.02)
        else:
            assert mine["avg"] == row[5]
            assert (mine["q25"] is None) == (row[7] is None)
        assert mine["approx_unique"] == pytest.approx(row[4], rel=0.1)


WRITES = [
    "CREATE TABLE t (k INTEGER NOT NULL, name VARCHAR, price DECIMAL(12,2))",
    "INSERT INTO t VALUES (1, 'one', 1.5), (2, 'two', NULL), (3, NULL, 3.25)",
    "INSERT INTO t (name, k) SELECT n_name, n_nationkey + 100 FROM nation WHERE n_regionkey IN (1, 3)",
    "INSERT INTO t SELECT o_orderkey, o_orderstatus, o_totalprice FROM orders WHERE o_orderkey % 97 = 0",
    "UPDATE t SET price = coalesce(price, 0) + k, name = name || '!' WHERE k % 2 = 0",
    "DELETE FROM t WHERE name LIKE 'A%' OR price > 200000",
    "INSERT INTO t VALUES (NULL, 'no key', 1)",  # NOT NULL: an error, the table unchanged
    "UPDATE t SET k = NULL WHERE k = 1",          # the same
    "CREATE TABLE s AS SELECT k + 1 AS k, 'merged' AS name FROM t WHERE k < 5",
    "MERGE INTO t AS d USING s ON s.k = d.k WHEN MATCHED THEN UPDATE SET name = s.name "
    "WHEN NOT MATCHED THEN INSERT (k, name) VALUES (s.k, s.name)",
    "MERGE INTO t USING (SELECT 3 AS k) AS x ON x.k = t.k WHEN MATCHED THEN DELETE",
    "MERGE INTO t USING (SELECT 2 AS k UNION ALL SELECT 2) AS x ON x.k = t.k WHEN MATCHED THEN DELETE",
    "UPDATE t SET price = s.k * 10 FROM s WHERE t.k = s.k",
    "UPDATE t AS d SET name = x.n, price = NULL FROM (SELECT k, 'from x' AS n FROM s) AS x WHERE d.k = x.k AND d.k > 3",
    "UPDATE t SET name = upper(n.n_name) FROM nation n WHERE t.k = n.n_nationkey + 100 AND n.n_regionkey = 3",
    "DELETE FROM t USING nation n WHERE t.k = n.n_nationkey + 100 AND n.n_regionkey = 1",
    "DELETE FROM t AS d USING s, region r WHERE d.k = s.k AND r.r_regionkey = 0 AND s.k = 4",
    "DELETE FROM t USING (SELECT NULL::INTEGER AS k) AS x WHERE t.k = x.k",
    "CREATE TABLE u AS SELECT * FROM t WHERE k < 100",
    "ALTER TABLE u RENAME TO v",
    "DELETE FROM v",
    "INSERT INTO v SELECT * FROM t WHERE k BETWEEN 100 AND 200",
    # Several WHEN clauses: each row takes the first that holds; DO NOTHING, BY SOURCE, SET *, INSERT *.
    "MERGE INTO t USING (SELECT k + k % 2 AS k, name FROM t WHERE k % 3 = 0) AS s ON s.k = t.k "
    "WHEN MATCHED AND t.price IS NULL THEN DELETE WHEN MATCHED AND s.k % 4 = 0 THEN DO NOTHING "
    "WHEN MATCHED THEN UPDATE SET price = coalesce(t.price, 0) + 1 "
    "WHEN NOT MATCHED BY SOURCE AND t.k % 5 = 0 THEN UPDATE SET name = 'by source' "
    "WHEN NOT MATCHED AND s.k % 4 = 0 THEN INSERT (k, name) VALUES (s.k, 'new') WHEN NOT MATCHED THEN DO NOTHING",
    "MERGE INTO t AS d USING (SELECT k + 500000 AS k, name, 9.5 AS price FROM s) AS x ON x.k = d.k "
    "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED BY TARGET AND x.k % 2 = 0 THEN INSERT * "
    "WHEN NOT MATCHED THEN INSERT VALUES (x.k, 'odd', NULL)",
    "MERGE INTO t USING (SELECT k + 500000 AS k, 'again' AS name, 1.0 AS price FROM s) AS x ON x.k = t.k "
    "WHEN MATCHED AND t.name = 'odd' THEN DELETE WHEN MATCHED THEN UPDATE SET * "
    "WHEN NOT MATCHED BY SOURCE AND t.k < 3 THEN DELETE",
    # Without a WHEN MATCHED clause a target row stays one row however many source rows match it
    # (here every row whose key is a multiple of 97, twice; it was kept once per match).
    "MERGE INTO t USING (SELECT k FROM t WHERE k % 97 = 0 UNION ALL SELECT k FROM t WHERE k % 97 = 0) AS x ON x.k = t.k "
    "WHEN NOT MATCHED BY SOURCE AND t.k > 500000 THEN DELETE WHEN NOT MATCHED THEN INSERT (k) VALUES (x.k)",
    # UPDATE … FROM several tables and joins: their columns kept apart (both have a key column).
    "UPDATE t SET name = n.n_name || '/' || r_name, price = r.r_regionkey FROM nation n JOIN region r "
    "ON n.n_regionkey = r.r_regionkey WHERE t.k = n.n_nationkey + 100",
    "INSERT INTO t BY NAME SELECT n_name AS name, n_nationkey + 900 AS k FROM nation WHERE n_regionkey = 4",
    "INSERT INTO t DEFAULT VALUES",  # NOT NULL k: an error, as in DuckDB
    "INSERT INTO v DEFAULT VALUES",
    "UPDATE t AS d SET price = x.k * 10 + r.r_regionkey FROM (SELECT n_nationkey AS k, n_regionkey AS rk FROM "
    "nation) AS x, region r WHERE x.rk = r.r_regionkey AND d.k = x.k + 100 AND r.r_name <> 'ASIA'",
]


def _duck_outcomes(data):
    duck = duckdb.connect()
    for name in SMALL:
        duck.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet('{data / name}.parquet')")
    out = []
    for sql in WRITES:
        try:
            rows = duck.execute(sql).fetchall()
            out.append(rows[0][0] if rows and rows[0] and not sql.startswith(("CREATE", "ALTER")) else None)
        except duckdb.Error:
            out.append("error")
    return out, duck


@pytest.mark.parametrize("ranks", RANKS)
def test_writes_change_tables_as_in_duckdb(ran, ranks):
    folder, results = ran(ranks, "writes")
    want, duck = _duck_outcomes(folder)
    for sql, got, expected in zip(WRITES, results, want):
        if expected == "error":
            assert got.error is not None, f"{sql} should fail as in DuckDB"
            continue
        assert got.error is None, f"{sql}: {got.error}"
        if expected is not None:
            assert got.table.column(0)[0].as_py() == expected, sql
    for result, table in zip(results[len(WRITES):], ("t", "v")):
        why = compare_tables(_ok(result), duck.sql(f"SELECT * FROM {table}").to_arrow_table(), ordered=False)
        assert why is None, f"{table}: {why}"
    assert _ok(results[-1]).column("name").to_pylist() == sorted([*SMALL, "s", "t", "v"])
    # Every version was renamed into place: no temporary folder stays behind.
    assert not [p.name for p in folder.iterdir() if p.name.startswith((".tmp-", ".trash-"))]


RETURNING = [
    "CREATE TABLE r (k INTEGER NOT NULL, name VARCHAR, price DECIMAL(12,2))",
    "INSERT INTO r VALUES (1, 'one', 1.5), (2, 'two', NULL), (3, NULL, 3.25) RETURNING *",
    "INSERT INTO r (name, k) SELECT n_name, n_nationkey + 10 FROM nation WHERE n_regionkey = 2 "
    "RETURNING k, upper(name) AS up, r.price IS NULL AS no_price",
    "INSERT INTO r SELECT o_orderkey, o_orderstatus, o_totalprice FROM orders WHERE o_orderkey < 0 RETURNING *",
    "UPDATE r SET price = coalesce(price, 0) + k, name = name || '!' WHERE k % 2 = 1 RETURNING *",
    "UPDATE r AS d SET name = 'z' WHERE d.k = 2 RETURNING d.k, name, price IS NULL AS p",
    "DELETE FROM r WHERE k BETWEEN 2 AND 12 RETURNING k, name",
    "DELETE FROM r USING nation n WHERE r.k = n.n_nationkey + 10 RETURNING r.*, n.n_nationkey",  # error, no write
    "DELETE FROM r USING nation n WHERE r.k = n.n_nationkey + 10 AND n.n_name < 'J' RETURNING r.*",
    "INSERT INTO r VALUES (NULL, 'no key', 1) RETURNING *",  # NOT NULL: an error, nothing written
    "DELETE FROM r RETURNING count(*)",                      # an error in DuckDB too
    "MERGE INTO r USING (SELECT 1 AS k, 'm' AS name UNION ALL SELECT 77, 'new' UNION ALL SELECT 13, 'gone') s "
    "ON s.k = r.k WHEN MATCHED AND s.name = 'gone' THEN DELETE WHEN MATCHED THEN UPDATE SET name = s.name "
    "WHEN NOT MATCHED THEN INSERT (k, name) VALUES (s.k, s.name) RETURNING *",
    "MERGE INTO r USING (SELECT 77 AS k, 'again' AS name UNION ALL SELECT 78, 'more') s ON s.k = r.k "
    "WHEN MATCHED THEN UPDATE SET name = s.name WHEN NOT MATCHED THEN INSERT (k, name) VALUES (s.k, s.name) "
    "RETURNING merge_action, k, upper(name) AS up",
    "UPDATE r SET name = s.name FROM (SELECT 78 AS k, 'from' AS name) s WHERE s.k = r.k RETURNING *",
    "MERGE INTO r USING (SELECT 1 AS k) s ON s.k = r.k WHEN NOT MATCHED BY SOURCE AND r.k > 50 THEN DELETE "
    "RETURNING merge_action, r.*",
    "MERGE INTO r USING (SELECT 1 AS k) s ON s.k = r.k WHEN MATCHED THEN UPDATE SET price = random() RETURNING *",
    "SELECT * FROM r",
]


@pytest.mark.parametrize("ranks", RANKS)
def test_returning_gives_the_rows_written_as_duckdb_does(data, tmp_path, ranks):
    results = _each_as_in_duckdb(data, tmp_path, RETURNING, ranks, refused=[RETURNING[-2]])
    assert "not supported" in results[-2].error


CONSTRAINTS = [
    "CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER, u VARCHAR UNIQUE, d INTEGER DEFAULT 7, CHECK (v > 0))",
    "INSERT INTO t (k, v, u) VALUES (1, 1, 'a'), (2, 2, 'b')",
    "INSERT INTO t (k, v, u) VALUES (1, 1, 'c')",              # the primary key held: an error, nothing written
    "INSERT INTO t (k, v, u) VALUES (3, 1, 'a')",              # the UNIQUE column held
    "INSERT INTO t (k, v, u) VALUES (3, -1, 'c')",             # the CHECK is false
    "INSERT INTO t (k, v, u) VALUES (3, NULL, NULL), (4, NULL, NULL)",  # NULL passes a CHECK and a UNIQUE
    "INSERT INTO t (k, v, u) VALUES (5, 1, 'e'), (5, 2, 'f')",  # a key twice among the new rows
    "INSERT INTO t VALUES (6, 1, 'g', DEFAULT), (7, 2, 'h', 70)",
    "INSERT INTO t (k, v) SELECT n_nationkey + 100, n_regionkey + 1 FROM nation RETURNING *",
    "INSERT INTO t (k, v) SELECT n_nationkey + 100, 5 FROM nation WHERE n_nationkey = 3",
    "INSERT OR IGNORE INTO t (k, v, u) VALUES (8, 1, 'i'), (8, 2, 'j'), (1, 9, 'k') RETURNING *",
    "INSERT INTO t (k, v, u) VALUES (2, 99, 'b2') ON CONFLICT (k) DO UPDATE SET v = excluded.v + v",
    "INSERT INTO t (k, v, u) VALUES (2, 99, 'b3') ON CONFLICT (k) DO UPDATE SET v = excluded.v WHERE v < 50",
    "INSERT INTO t (k, v, u) VALUES (9, 9, 'b') ON CONFLICT (k) DO NOTHING",  # collides on u: an error
    "INSERT INTO t (k, v, u) VALUES (9, 9, 'b') ON CONFLICT DO NOTHING",
    "INSERT INTO t (k, v, u) VALUES (10, 3, 'x'), (10, 4, 'y') ON CONFLICT (k) DO UPDATE SET v = excluded.v",
    "INSERT INTO t (k, v, u) VALUES (1, 5, 'z') ON CONFLICT (u) DO UPDATE SET v = 1",
    "INSERT INTO t (k, v, u) VALUES (1, 5, 'z') ON CONFLICT (v) DO NOTHING",  # not a key: an error
    "INSERT INTO t (k, v, u) VALUES (1, 5, 'z') ON CONFLICT DO UPDATE SET v = 1",  # two keys, no target: an error
    "INSERT INTO t (k, v, u) VALUES (11, -5, 'z') ON CONFLICT (k) DO NOTHING",  # the CHECK: an error
    "UPDATE t SET d = DEFAULT WHERE k = 7",
    "UPDATE t SET k = 2 WHERE k = 1",                          # the key held: an error
    "UPDATE t SET v = 0 WHERE k = 6",                          # the CHECK
    "UPDATE t SET k = k + 1000 WHERE k > 100",
    "DELETE FROM t WHERE k = 1",
    "INSERT INTO t (k, v, u) VALUES (1, 1, 'a')",              # free again
    "MERGE INTO t USING (SELECT 2 AS k) s ON s.k = t.k WHEN MATCHED THEN UPDATE SET u = 'a'",  # u held: an error
    "MERGE INTO t USING (SELECT 50 AS k) s ON s.k = t.k WHEN NOT MATCHED THEN INSERT (k, v) VALUES (s.k, 1)",
    "INSERT INTO t (k, v, u) VALUES (2, 7, 'q'), (60, 6, 'r') ON CONFLICT (k) DO UPDATE SET v = excluded.v RETURNING *",
    "SELECT * FROM t",
    "CREATE TABLE p (a INTEGER, b VARCHAR, c INTEGER DEFAULT 3, PRIMARY KEY (a, b))",
    "INSERT INTO p VALUES (1, 'x', 1), (1, 'y', DEFAULT)",
    "INSERT INTO p VALUES (1, 'x', 5)",
    "INSERT OR REPLACE INTO p (a, b) VALUES (1, 'x'), (2, 'x')",
    "INSERT INTO p DEFAULT VALUES",                            # a key column NULL: an error
    "SELECT * FROM p",
    "CREATE TABLE kg (k INTEGER PRIMARY KEY, v VARCHAR DEFAULT 'none', g AS (k * 2))",
    "INSERT INTO kg (k) VALUES (1), (2)",
    "INSERT INTO kg VALUES (2, 'two'), (3, 'three') ON CONFLICT (k) DO UPDATE SET v = excluded.v RETURNING *",
    "INSERT OR REPLACE INTO kg VALUES (1, 'one')",
    "INSERT OR IGNORE INTO kg VALUES (1, 'uno'), (4, 'four')",
    "SELECT * FROM kg",
    "DESCRIBE p",
    "SELECT table_name, constraint_type, constraint_text, constraint_column_names FROM duckdb_constraints() "
    "WHERE table_name IN ('t', 'p')",
    "SELECT column_name, column_default, is_nullable FROM information_schema.columns WHERE table_name = 't'",
    "CREATE TABLE n (a INTEGER, b INTEGER)",
    "INSERT INTO n VALUES (1, 1) ON CONFLICT DO NOTHING",      # no key: an error
    "INSERT OR REPLACE INTO n VALUES (1, 1)",
]


@pytest.mark.parametrize("ranks", RANKS)
def test_keys_checks_and_defaults_hold_as_in_duckdb(data, tmp_path, ranks):
    """PRIMARY KEY, UNIQUE, CHECK and DEFAULT, and INSERT … ON CONFLICT / OR IGNORE / OR REPLACE
    over them: each statement's answer or error and the tables after, as DuckDB's."""
    _each_as_in_duckdb(data, tmp_path, CONSTRAINTS, ranks)


GENERATED = [
    "CREATE TABLE g (a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL, c VARCHAR, d AS (a + 1), "
    "e INTEGER DEFAULT 5, f AS (d * 10 + b))",
    "INSERT INTO g VALUES (1, 'x', 3)",
    "INSERT INTO g (a, c) VALUES (2, 'y') RETURNING *",
    "INSERT INTO g (a, b) VALUES (3, 4)",                      # a generated column: an error
    "INSERT INTO g BY NAME SELECT n_nationkey AS a, n_name AS c FROM nation WHERE n_regionkey = 1",
    "INSERT INTO g DEFAULT VALUES",
    "UPDATE g SET a = a + 10 WHERE a < 3 RETURNING a, b, f",
    "UPDATE g SET b = 1",                                      # an error
    "MERGE INTO g USING (SELECT 11 AS a UNION ALL SELECT 99) s ON s.a = g.a WHEN MATCHED THEN UPDATE SET a = 0 "
    "WHEN NOT MATCHED THEN INSERT (a, c) VALUES (s.a, 'm') RETURNING merge_action, a, b, d, f",
    "DELETE FROM g WHERE b > 40 RETURNING *",
    "SELECT * FROM g",
    "SELECT column_name, is_generated, generation_expression FROM information_schema.columns "
    "WHERE table_name = 'g'",
]


@pytest.mark.parametrize("ranks", RANKS)
def test_generated_columns_as_in_duckdb(data, tmp_path, ranks):
    """Generated columns, which DuckDB computes on each read, are computed by each write and kept."""
    _each_as_in_duckdb(data, tmp_path, GENERATED, ranks)


# Found by the write fuzzer (tests/fuzz/writes.py), each was answered where DuckDB answers otherwise.
WRITE_FUZZ_FINDINGS = [
    "CREATE TABLE t (k INTEGER PRIMARY KEY, u VARCHAR UNIQUE, v INTEGER NOT NULL DEFAULT -1)",
    "INSERT INTO t (k, u, v) VALUES (2, NULL, 6), (9, NULL, 12)",
    "INSERT OR IGNORE INTO t (k, u) VALUES (3, 'u3'), (9, 'u5'), (4, 'u9')",  # no new rows share a value
    "INSERT INTO t (k, u) VALUES (5, 'u3'), (6, 'u6') ON CONFLICT DO NOTHING",
    "CREATE TABLE src (k INTEGER, v INTEGER)",
    "INSERT INTO src VALUES (2, 10), (3, 30)",
    # A bare name that the target and a source both hold is ambiguous, also in SET and where a select
    # alias has the name (these wrote, or answered, through the alias or the inner scope).
    "UPDATE t SET v = k * 3 FROM src WHERE t.k = src.k",
    "MERGE INTO t USING src ON t.k = src.k WHEN MATCHED THEN UPDATE SET v = k * 3",
    "DELETE FROM t USING src WHERE k = 2",
    "SELECT t.k AS k, k * 3 AS x FROM t, src",
    "SELECT t.v + 100 AS k, k * 3 AS x FROM t",
    # DEFAULT in UPDATE … FROM (it failed: read as a column named default).
    "UPDATE t SET v = DEFAULT FROM (SELECT k, max(v) AS v FROM src GROUP BY k) AS m WHERE t.k = m.k",
    "UPDATE t SET v = 7 WHERE k = 2",
    "UPDATE t SET v = DEFAULT, u = 'x' || src.v FROM src, region r WHERE t.k = src.k AND r.r_regionkey = 0",
    "SELECT * FROM t",
    # New rows that share a value of the key written first: the first of them is taken, even where
    # the table holds its value of the other key (then none is). This took (11, 'u7') and (14, 'x'):
    # duplicates were looked for only among the rows whose keys the table did not hold.
    "INSERT OR IGNORE INTO t (k, u) VALUES (11, 'u3'), (11, 'u7'), (12, 'u8'), (13, 'u9'), (13, 'u10')",
    "INSERT INTO t (k, u) VALUES (14, 'u3'), (14, 'x') ON CONFLICT DO NOTHING",
    "SELECT * FROM t",
    # New rows that share a value of the other key: DuckDB kept neither (8, 'u4') nor (6, 'u4') here,
    # and of two such rows on an empty table, not always the first. Refused, nothing written.
    "INSERT OR IGNORE INTO t (k, u) VALUES (2, 'u2'), (0, 'u1'), (8, 'u4'), (9, 'u4')",
]


@pytest.mark.parametrize("ranks", RANKS)
def test_write_fuzzer_findings_as_in_duckdb(data, tmp_path, ranks):
    results = _each_as_in_duckdb(data, tmp_path, WRITE_FUZZ_FINDINGS, ranks, refused=WRITE_FUZZ_FINDINGS[-1:])
    assert results[-1].error.startswith("not supported:") and "other than the first written" in results[-1].error


# A WITH before a write: an INSERT's query takes its CTEs; in an UPDATE, DELETE or MERGE each
# reference to one reads its query (these failed: `unknown table`). A MERGE source read by its
# schema, or with its columns named in its alias (these read another table, or failed).
WITH_WRITES = [
    "CREATE TABLE w (k INTEGER PRIMARY KEY, v INTEGER DEFAULT 4)",
    "WITH x AS (SELECT n_nationkey AS k FROM nation WHERE n_regionkey = 1) INSERT INTO w (k) SELECT k FROM x",
    "WITH x AS (SELECT 70 AS k) INSERT INTO w (k) WITH y AS (SELECT k + 1 AS k FROM x) SELECT k FROM y",
    "WITH x AS (SELECT n_nationkey AS k FROM nation WHERE n_name LIKE 'A%') UPDATE w SET v = 9 WHERE k IN (SELECT k FROM x)",
    "WITH m(kk, vv) AS (SELECT n_nationkey, n_regionkey * 100 FROM nation) UPDATE w SET v = m.vv FROM m WHERE w.k = m.kk",
    "WITH x AS (SELECT 3 AS k), y AS (SELECT k + 0 AS k FROM x) DELETE FROM w WHERE k IN (SELECT k FROM y) RETURNING *",
    "WITH s AS (SELECT r_regionkey + 70 AS k, r_regionkey AS v FROM region) MERGE INTO w USING s ON w.k = s.k "
    "WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT (k, v) VALUES (s.k, s.v)",
    "WITH w AS (SELECT 1 AS k) DELETE FROM w",  # the CTE is the target: DuckDB's error
    "CREATE SCHEMA sc",
    "CREATE TABLE sc.region AS SELECT r_regionkey + 70 AS r_regionkey, 'other' AS r_name FROM region",
    "MERGE INTO w USING sc.region ON w.k = region.r_regionkey WHEN MATCHED THEN UPDATE SET v = -1",
    "MERGE INTO w USING sc.region AS q(a, b) ON w.k = q.a WHEN MATCHED THEN UPDATE SET v = length(q.b)",
    "MERGE INTO w USING (SELECT 71, 710) AS q(a, b) ON w.k = q.a WHEN MATCHED THEN UPDATE SET v = q.b",
    "SELECT * FROM w",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) INSERT INTO w (k) SELECT n + 200 FROM r",
    "SELECT * FROM w",
]


@pytest.mark.parametrize("ranks", RANKS)
def test_writes_after_with_as_in_duckdb(data, tmp_path, ranks):
    _each_as_in_duckdb(data, tmp_path, WITH_WRITES, ranks)


# Writes of recursive queries: each recursive CTE is computed into a hidden table first, with every
# lane held, then the write reads it (these were refused). The 3-column INSERT fails as in DuckDB
# after its recursion ran; no hidden table may be left behind.
RECURSIVE_WRITES = [
    "CREATE TABLE t (a INTEGER PRIMARY KEY, b VARCHAR)",
    "CREATE TABLE u AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT n FROM r",
    "SELECT * FROM u",
    "INSERT INTO t WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 4) SELECT n, 'x' || n FROM r",
    "WITH RECURSIVE r(n) AS (SELECT 10 UNION SELECT n + 10 FROM r WHERE n < 30) INSERT INTO t SELECT n, NULL FROM r",
    "INSERT INTO t (b, a) WITH RECURSIVE r(n) AS (SELECT 100 UNION ALL SELECT n + 1 FROM r WHERE n < 102) "
    "SELECT 'y', n FROM r RETURNING a, b",
    "INSERT OR REPLACE INTO t WITH RECURSIVE r(n) AS (SELECT 3 UNION ALL SELECT n + 1 FROM r WHERE n < 11) "
    "SELECT n, 'r' FROM r",
    "SELECT * FROM t",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) UPDATE t SET b = 'upd' FROM r "
    "WHERE t.a = r.n",
    "WITH RECURSIVE r(n) AS (SELECT 100 UNION ALL SELECT n + 1 FROM r WHERE n < 101) DELETE FROM t "
    "WHERE a IN (SELECT n FROM r) RETURNING *",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 2 FROM r WHERE n < 13) MERGE INTO t USING r ON t.a = r.n "
    "WHEN MATCHED THEN UPDATE SET b = 'm' WHEN NOT MATCHED THEN INSERT VALUES (r.n, 'new')",
    "SELECT * FROM t",
    "CREATE OR REPLACE TABLE u AS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5), "
    "s AS (SELECT n * 2 AS m FROM r) SELECT m FROM s JOIN u ON s.m = u.n",
    "SELECT * FROM u",
    "INSERT INTO t WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT n, 'x', 3 FROM r",
    "INSERT INTO t WITH RECURSIVE r(n) AS (SELECT 50 UNION ALL SELECT n + 1 FROM r WHERE n < 52) SELECT 51, 'dup' FROM r",
    "SELECT * FROM t",
    "SELECT table_name FROM information_schema.tables",
]


@pytest.mark.parametrize("ranks", RANKS)
def test_writes_of_recursive_queries_as_in_duckdb(data, tmp_path, ranks):
    _each_as_in_duckdb(data, tmp_path, RECURSIVE_WRITES, ranks)
    from engine.leftovers import TEMP_MARK
    assert not [p.name for p in (tmp_path / "d").rglob(f"*{TEMP_MARK}*")]


def test_schema_of_a_recursive_query_before_it_runs(data, tmp_path):
    """A prepared statement's schema (ADBC prepares before it executes) of a query the planner does
    not plan: it was empty, and an INSERT of such a query then read no columns."""
    from engine.session import Session
    shutil.copytree(data, tmp_path / "d")
    session = Session(str(tmp_path / "d"))
    try:
        sql = ("WITH RECURSIVE r(n, s) AS (SELECT 1, 'a' UNION ALL SELECT n + 1, s || 'b' FROM r WHERE n < 3) "
               "SELECT n, s, n_name FROM r JOIN nation ON n = n_nationkey")
        schema = session.result_schema(sql)
        assert schema.names == ["n", "s", "n_name"]
        assert schema.types == session.execute(sql).schema.types
    finally:
        session.close()


# Tables of every kind of column DuckDB writes to Parquet, dates past year 9999 and before year 1
# among them (a date past 9999 broke the catalog's statistics, after the write had landed).
WIDE_TYPES = [
    "CREATE TABLE ty AS SELECT 170141183460469231731687303715884105727::HUGEINT AS h, "
    "'00000000-0000-0000-0000-000000000001'::UUID AS u, TIME '23:59:59' AS tm, TIMESTAMPTZ '2020-01-01 00:00:00+00' AS tz, "
    "'ab'::BLOB AS b, [1, 2] AS l, {'a': 1} AS st, MAP {'k': 1} AS m, 1.5::FLOAT AS f, "
    "12345678901234567890.12::DECIMAL(38,2) AS d38, 255::UTINYINT AS ut, 18446744073709551615::UBIGINT AS ub, "
    "TIMESTAMP_NS '2020-01-01 00:00:00.123456789' AS tns, DATE '-0044-03-15' AS bc, DATE '9999-12-31' AS late",
    "INSERT INTO ty SELECT * FROM ty",
    "UPDATE ty SET late = late + 1, bc = bc - 1 WHERE ut = 255",
    "SELECT h::VARCHAR AS h, u, tm, tz, b, l, st, m, f, d38, ut, ub, tns, bc::VARCHAR AS bc, late::VARCHAR AS late FROM ty",
    "SELECT count(*), max(h)::VARCHAR, min(u), max(late)::VARCHAR, min(bc)::VARCHAR FROM ty WHERE late > DATE '9999-12-31'",
]


@pytest.mark.parametrize("ranks", RANKS)
def test_tables_of_every_column_type_as_in_duckdb(data, tmp_path, ranks):
    _each_as_in_duckdb(data, tmp_path, WIDE_TYPES, ranks)


SYSTEM_AND_DATA = [
    "SELECT t.table_name, count(*) AS n FROM information_schema.tables t JOIN nation ON true GROUP BY ALL ORDER BY 1",
    "SELECT n_name FROM nation WHERE lower(n_name) IN (SELECT table_name FROM information_schema.tables) "
    "OR n_nationkey < 2",
    "SELECT count(*) FROM orders, duckdb_tables() d WHERE d.table_name = 'region'",
    "SELECT tables.table_name, (SELECT count(*) FROM region) AS r FROM information_schema.tables "
    "WHERE table_name LIKE 'r%'",
    "SELECT c.column_name, n.n_name FROM information_schema.columns c JOIN nation n "
    "ON c.ordinal_position = n.n_nationkey + 1 WHERE c.table_name = 'nation' ORDER BY 1",
    "WITH cols AS (SELECT table_name, count(*) AS k FROM duckdb_columns() GROUP BY 1) "
    "SELECT n_regionkey, max(k) FROM nation JOIN cols ON cols.k > n_regionkey GROUP BY 1",
    "SELECT current_setting('search_path') AS path, count(*) FROM nation",
    "SELECT * FROM information_schema.tables t, nation WHERE t.table_name = nation.n_name",  # no rows
]


@pytest.mark.parametrize("ranks", RANKS)
def test_queries_over_the_system_catalog_and_data_tables_as_in_duckdb(data, tmp_path, ranks):
    """The system catalog's parts are read on rank 0 first and travel with the plan as tables of rows."""
    _each_as_in_duckdb(data, tmp_path, SYSTEM_AND_DATA, ranks)


def _each_as_in_duckdb(data, tmp_path, statements, ranks, refused=()):
    """Runs `statements` over a copy of the data and asserts each one's rows or error is DuckDB's
    (over the same tables); `refused`: statements answered `not supported: …` instead."""
    shutil.copytree(data, tmp_path / "d")
    got = run_queries(str(tmp_path / "d"), statements, ranks, timeout_s=300)
    duck = duckdb.connect()
    for name in SMALL:
        duck.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet('{data / name}.parquet')")
    for sql, result in zip(statements, got):
        if sql in refused:
            continue
        try:
            want = duck.sql(sql).to_arrow_table() if not sql.startswith("CREATE") else duck.execute(sql)
        except duckdb.Error:
            assert result.error is not None, f"{sql} should fail as in DuckDB"
            continue
        if sql.startswith("CREATE"):
            continue
        why = compare_tables(_ok(result), want, ordered=False, check_names=True)
        assert why is None, f"{sql}: {why}"
    return got


def test_merge_that_several_source_rows_match_is_refused_and_changes_nothing(data, tmp_path):
    """Which of several matching source rows acts on a target row DuckDB leaves to chance: refused,
    unless every match deletes the row. (A conditional DELETE once kept such a row once per match.)"""
    shutil.copytree(data, tmp_path / "d")
    source = "(SELECT n_nationkey AS k, 1 AS x FROM nation UNION ALL SELECT 3, 2) AS s"
    results = run_queries(str(tmp_path / "d"), [
        "CREATE TABLE t AS SELECT n_nationkey AS k, n_name AS name FROM nation",
        f"MERGE INTO t USING {source} ON s.k = t.k WHEN MATCHED AND s.x > 5 THEN DELETE",
        f"MERGE INTO t USING {source} ON s.k = t.k WHEN MATCHED AND s.x = 2 THEN UPDATE SET name = 'two'",
        "SELECT count(*) AS n, count(DISTINCT k) AS keys, count(*) FILTER (WHERE name = 'two') AS twos FROM t",
        f"MERGE INTO t USING {source} ON s.k = t.k WHEN MATCHED THEN DELETE",
        "SELECT count(*) FROM t",
    ], 2, timeout_s=300)
    assert results[0].error is None
    for refused in results[1:3]:
        assert "not supported" in refused.error and "more than one source row" in refused.error
    assert results[3].table.to_pylist() == [{"n": 25, "keys": 25, "twos": 0}]
    assert results[4].error is None and results[4].table.column(0)[0].as_py() == 26  # every match deletes
    assert results[5].table.column(0)[0].as_py() == 0


def test_session_statements(data, tmp_path):
    shutil.copytree(data, tmp_path / "d")
    results = run_queries(str(tmp_path / "d"), [
        "SET search_path = 'main'", "SELECT current_setting('search_path')",
        "SET TimeZone = 'UTC'", "SET TimeZone = 'America/New_York'", "SET threads = 1", "SET GLOBAL search_path = 'main'",
        "BEGIN", "BEGIN", "COMMIT", "ROLLBACK",
        "BEGIN", "CREATE TABLE w AS SELECT 1 AS x", "ROLLBACK", "SELECT count(*) FROM w",
        "USE memory.main", "RESET search_path", "SELECT current_setting('search_path')",
    ], 1, timeout_s=300)
    errors = [r.error for r in results]
    assert errors[0] is None and results[1].table.column(0)[0].as_py() == "main"
    assert errors[2] is None
    assert "time zone" in errors[3] and "set only" in errors[4] and "SET GLOBAL" in errors[5]
    assert errors[6] is None and "within a transaction" in errors[7] and errors[8] is None and errors[9] is None
    assert errors[10] is None and errors[11] is None
    assert "cannot undo 1 statement" in errors[12] and "CREATE TABLE w" in errors[12]
    assert results[13].table.column(0)[0].as_py() == 1  # the write stands, as the ROLLBACK said
    assert errors[14] is None and errors[15] is None and results[16].table.column(0)[0].as_py() == ""



SCHEMA_STATEMENTS = [
    "CREATE SCHEMA analytics",
    "CREATE SCHEMA IF NOT EXISTS analytics",
    "CREATE SCHEMA analytics",  # an error: it exists
    "CREATE TABLE analytics.nation AS SELECT n_nationkey, upper(n_name) AS n_name FROM nation WHERE n_regionkey = 2",
    "INSERT INTO analytics.nation VALUES (99, 'ATLANTIS')",
    "CREATE VIEW analytics.big_orders AS SELECT o_orderkey, o_custkey FROM orders WHERE o_totalprice > 300000",
    "SELECT a.n_name, count(*) FROM analytics.nation a JOIN main.nation n ON a.n_nationkey = n.n_nationkey "
    "GROUP BY ALL",
    "SELECT count(*) FROM memory.analytics.big_orders",
    "SET search_path = 'analytics,main'",
    "SELECT count(*) FROM nation",          # analytics.nation first
    "SELECT count(*) FROM region",          # found in main
    "RESET search_path",
    "SELECT count(*) FROM nation",
    "SELECT table_schema, table_name, table_type FROM information_schema.tables WHERE table_schema = 'analytics' "
    "ORDER BY 2",
    "DROP SCHEMA analytics",                # an error: not empty
    "DROP SCHEMA analytics CASCADE",
    "SELECT count(*) FROM analytics.nation",  # an error: gone
]


@pytest.mark.parametrize("ranks", RANKS)
def test_schemas_as_in_duckdb(ran, ranks):
    folder, got = ran(ranks, "schemas")
    duck = duckdb.connect()
    for name in SMALL:
        duck.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet('{folder / name}.parquet')")
    for sql, result in zip(SCHEMA_STATEMENTS, got):
        try:
            want = duck.sql(sql)
            want = want.to_arrow_table() if want is not None else None
        except duckdb.Error:
            assert result.error is not None, f"{sql} should fail as in DuckDB"
            continue
        assert result.error is None, f"{sql}: {result.error}"
        if sql.startswith("SELECT"):
            why = compare_tables(result.table, want, ordered="ORDER BY" in sql)
            assert why is None, f"{sql}: {why}"


# Each test's statements, run for all tests at once by `ran`; those of WRITING over a copy of the data.
LISTS = {
    "catalog": CATALOG_STATEMENTS,
    "names": [NAMED_QUERY, f"DESCRIBE {NAMED_QUERY}"],
    "summarize": ["SUMMARIZE orders"],
    "writes": WRITES + ["SELECT * FROM t", "SELECT * FROM v", "SHOW TABLES"],
    "schemas": SCHEMA_STATEMENTS,
}
WRITING = {"writes", "schemas"}


def test_create_table_schemas_typed_at_once_from_threads_stay_apart():
    """`CREATE TABLE t (…)` is typed by DuckDB in a temporary table of a process-wide instance
    (executors/scratch.py): statements of several clients typed at the same moment each get
    their own columns, all named t."""
    from concurrent.futures import ThreadPoolExecutor

    import sqlglot

    from engine.writes import empty_table_schema

    def typed(i: int):
        create = sqlglot.parse_one(f"CREATE TABLE t (c{i} DECIMAL({i % 30 + 5}, 2) NOT NULL, d{i} VARCHAR)", read="duckdb")
        return i, empty_table_schema(create)

    with ThreadPoolExecutor(8) as pool:
        for i, schema in pool.map(typed, range(40)):
            assert schema.names == [f"c{i}", f"d{i}"]
            assert str(schema.field(0).type) == f"decimal128({i % 30 + 5}, 2)" and not schema.field(0).nullable


def test_the_mirror_gives_every_table_its_schema_even_when_the_schema_list_lags():
    """The system catalog mirrors the tables, views and schemas it is given; they are read one
    after the other while a lane may refresh the catalog, so a table of a schema missing from the
    list (it once was: a refresh built the list in place) still lands in its schema, not in an error."""
    import pyarrow as pa

    from engine.system_catalog import SystemCatalog
    system = SystemCatalog()
    system.sync({"nation": pa.schema([("n", pa.int64())]), "analytics.t": pa.schema([("a", pa.int32())])},
                {"analytics.v": "SELECT a FROM analytics.t"}, ["main"])
    rows = system.con.execute("SELECT table_schema, table_name FROM information_schema.tables "
                              "ORDER BY 1, 2").fetchall()
    assert rows == [("analytics", "t"), ("analytics", "v"), ("main", "nation")]
