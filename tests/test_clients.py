"""The tools people already use, unmodified, against a real 2-rank server; answers checked against DuckDB.

The GizmoSQL-ecosystem clients (Ibis, SQLAlchemy's dialect, dbt, SQLFrame, the GizmoSQL ADBC
driver) pin versions FlockSQL's own environment cannot have (DuckDB 1.4 for Ibis, an older ADBC
Flight SQL driver for the SQLAlchemy dialect), so they run in an environment of their own, made
once under .test-data/ (tests/client_env.py), as separate processes, exactly as a user runs them.
The ADBC Flight SQL driver, flightsql-dbapi and Polars run here.
"""
from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flight_sql
import duckdb
import pyarrow as pa
import pytest

from tests.client_env import client_python
from tests.server_fixtures import copy_data, start_server, stop_server

CLIENTS = Path(__file__).parent / "clients"
CLIENT_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clients")
    proc = start_server("engine", copy_data(tmp / "data"), tmp / "server.log", ranks=2)
    yield proc
    stop_server(proc)


@pytest.fixture(scope="module")
def oracle(server):
    con = duckdb.connect()
    for f in sorted(Path(server.data_dir).glob("*.parquet")):
        con.execute(f"CREATE VIEW {f.stem} AS SELECT * FROM read_parquet('{f}')")
    return con


def _host_port(server) -> tuple[str, str]:
    host, port = server.uri.split("://", 1)[1].rsplit(":", 1)
    return host, port


def _run_client(script: str, server, *args: str) -> dict:
    out = subprocess.run([str(client_python()), str(CLIENTS / script), *_host_port(server), *args],
                         capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S, cwd=CLIENTS)
    assert out.returncode == 0, f"{script} failed:\n{out.stderr[-4000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def _rows(oracle, sql):
    return [list(r) for r in oracle.execute(sql).fetchall()]


def test_ibis(server, oracle):
    got = _run_client("ibis_client.py", server)
    assert {"nation", "region", "lineitem", "ibis_made"} <= set(got["tables"])
    assert got["nation_columns"] == ["n_nationkey", "n_name", "n_regionkey", "n_comment"]
    want = _rows(oracle, "SELECT r_name, count(n_nationkey), max(n_name) FROM nation JOIN region "
                         "ON n_regionkey = r_regionkey GROUP BY r_name ORDER BY r_name")
    assert [[r["r_name"], r["nations"], r["top"]] for r in got["joined"]] == want
    assert got["made"] == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"a": 3, "b": None}]


def test_sqlalchemy_and_pandas(server, oracle):
    got = _run_client("sqlalchemy_client.py", server)
    assert {"nation", "orders", "pandas_made"} <= set(got["tables"]) and got["has_nation"]
    assert [c[:2] for c in got["columns"]] == [["n_nationkey", "BIGINT"], ["n_name", "VARCHAR"],
                                               ["n_regionkey", "BIGINT"], ["n_comment", "VARCHAR"]]
    assert got["picked"] == _rows(oracle, "SELECT n_name FROM nation WHERE n_nationkey = 7")
    assert got["region_rows"] == 5 and got["region_columns"] == ["r_regionkey", "r_name", "r_comment"]
    assert got["made"] == [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}, {"x": 3, "y": "c"}]


def test_sqlframe(server, oracle):
    got = _run_client("sqlframe_client.py", server)
    want = _rows(oracle, "SELECT o_orderstatus, count(*), sum(o_totalprice)::DOUBLE FROM orders GROUP BY 1 ORDER BY 1")
    assert [r[:2] for r in got["grouped"]] == [r[:2] for r in want]
    assert [r[2] for r in got["grouped"]] == pytest.approx([r[2] for r in want], rel=1e-9)
    assert got["made"] == [[1, "a"], [2, "b"]]


def test_gizmosql_adbc_driver(server, oracle):
    got = _run_client("gizmosql_adbc_client.py", server)
    assert got["rows"] == _rows(oracle, "SELECT o_orderpriority, count(*) FROM orders WHERE o_totalprice > 100000 "
                                        "GROUP BY 1 ORDER BY 1")
    assert got["vendor_version"].startswith(f"duckdb v{duckdb.__version__}") and "FlockSQL" in got["vendor_version"]
    assert (got["catalog"], got["schema"], got["zone"]) == ("memory", "main", "UTC")
    assert got["ingested"] == 3 and got["ingested_back"] == [3, 6, 2]


DBT_MODELS = {
    "nation_names.sql": "select n_nationkey, n_name, n_regionkey from nation",
    "region_counts.sql": "{{ config(materialized='table') }}\n"
                         "select r.r_name, count(*) as nations from {{ ref('nation_names') }} n "
                         "join region r on n.n_regionkey = r.r_regionkey group by r.r_name",
    "orders_inc.sql": "{{ config(materialized='incremental', unique_key='o_orderkey') }}\n"
                      "select o_orderkey, o_custkey, o_totalprice from orders\n"
                      "{% if is_incremental() %} where o_orderkey > (select max(o_orderkey) from {{ this }}) - 1000 "
                      "{% endif %}",
    "schema.yml": "version: 2\nmodels:\n  - name: region_counts\n    columns:\n      - name: r_name\n"
                  "        tests: [unique, not_null]\n  - name: orders_inc\n    columns:\n      - name: o_orderkey\n"
                  "        tests: [unique, not_null]\n",
}


def test_dbt_view_table_incremental_and_tests(server, oracle, tmp_path):
    """dbt's usual workflow in a schema of its own (dbt creates it)."""
    host, port = _host_port(server)
    (tmp_path / "models").mkdir()
    (tmp_path / "dbt_project.yml").write_text("name: flock\nversion: '1.0'\nprofile: flock\n"
                                              "models:\n  flock:\n    +materialized: view\n")
    (tmp_path / "profiles.yml").write_text(
        f"flock:\n  target: dev\n  outputs:\n    dev:\n      type: gizmosql\n      host: {host}\n      port: {port}\n"
        "      use_encryption: false\n      database: memory\n      schema: analytics\n      threads: 1\n")
    for name, text in DBT_MODELS.items():
        (tmp_path / "models" / name).write_text(text)
    dbt = Path(client_python()).parent / "dbt"
    for command in (["run"], ["run"], ["test"]):  # the second run is incremental: a MERGE
        out = subprocess.run([str(dbt), *command, "--profiles-dir", str(tmp_path), "--project-dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S, cwd=tmp_path,
                             env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"})
        assert out.returncode == 0, f"dbt {command[0]}:\n{out.stdout[-4000:]}"
        assert "ERROR=0" in out.stdout
    with flight_sql.connect(server.uri) as conn, conn.cursor() as cur:
        cur.execute("SELECT r_name, nations FROM analytics.region_counts ORDER BY r_name")
        assert [list(r) for r in cur.fetchall()] == _rows(
            oracle, "SELECT r_name, count(*) FROM nation JOIN region ON n_regionkey = r_regionkey GROUP BY 1 ORDER BY 1")
        cur.execute("SELECT count(*), count(DISTINCT o_orderkey), sum(o_totalprice) FROM memory.analytics.orders_inc")
        assert list(cur.fetchone()) == _rows(oracle, "SELECT count(*), count(*), sum(o_totalprice) FROM orders")[0]
        cur.execute("SELECT table_schema, table_name, table_type FROM information_schema.tables "
                    "WHERE table_name = 'nation_names'")
        assert cur.fetchall() == [("analytics", "nation_names", "VIEW")]


def test_flightsql_dbapi_reflection(server):
    import sqlalchemy as sa
    host, port = _host_port(server)
    engine = sa.create_engine(f"datafusion://{host}:{port}?insecure=True")
    inspector = sa.inspect(engine)
    assert {"nation", "lineitem"} <= set(inspector.get_table_names())
    types = {c["name"]: str(c["type"]) for c in inspector.get_columns("nation")}
    assert types == {"n_nationkey": "BIGINT", "n_name": "TEXT", "n_regionkey": "BIGINT", "n_comment": "TEXT"}


def test_adbc_ingest_and_polars(server):
    import polars as pl
    with flight_sql.connect(server.uri) as conn, conn.cursor() as cur:
        assert cur.adbc_ingest("ingested", pa.table({"a": [1, 2, 3], "s": ["x", None, "z"]}), mode="create") == 3
        with pytest.raises(Exception, match="already exists"):
            cur.adbc_ingest("ingested", pa.table({"a": [9], "s": ["q"]}), mode="create")
        assert cur.adbc_ingest("ingested", pa.table({"a": [4], "s": ["w"]}), mode="append") == 1
        cur.execute("SELECT count(*), sum(a), count(s) FROM ingested")
        assert cur.fetchone() == (4, 10, 3)
        cur.adbc_ingest("ingested", pa.table({"a": [7], "s": ["r"]}), mode="replace")
        cur.execute("SELECT * FROM ingested")
        assert cur.fetchall() == [(7, "r")]
        # Appended rows meet the table's keys as an INSERT's do: a key held twice fails, nothing lands.
        cur.execute("CREATE TABLE keyed (a BIGINT PRIMARY KEY, s VARCHAR)")
        assert cur.adbc_ingest("keyed", pa.table({"a": [1, 2], "s": ["x", "y"]}), mode="append") == 2
        with pytest.raises(Exception, match='Duplicate key "a: 2"'):
            cur.adbc_ingest("keyed", pa.table({"a": [3, 2], "s": ["z", "w"]}), mode="append")
        with pytest.raises(Exception, match="NOT NULL constraint failed: keyed.a"):
            cur.adbc_ingest("keyed", pa.table({"a": [4, None], "s": ["z", "w"]}), mode="append")
        cur.execute("SELECT count(*), sum(a) FROM keyed")
        assert cur.fetchone() == (2, 3)
        # A constraint error is the client's (INVALID_ARGUMENT), not the server's (INTERNAL).
        with pytest.raises(flight_sql.ProgrammingError, match='Duplicate key "a: 1"'):
            cur.execute("INSERT INTO keyed VALUES (1, 'again')")
        cur.execute("INSERT INTO keyed VALUES (1, 'again'), (5, 'five') ON CONFLICT (a) DO UPDATE SET s = excluded.s "
                    "RETURNING *")
        assert sorted(cur.fetchall()) == [(1, "again"), (5, "five")]
        # The system catalog and a data table in one query, over the server's prepare-then-execute.
        cur.execute("SELECT t.table_name, count(*) FROM information_schema.tables t JOIN keyed ON t.table_name = "
                    "'keyed' GROUP BY 1")
        assert cur.fetchall() == [("keyed", 3)]
        # Into a table with generated columns, the data gives the other columns and the generated
        # ones are computed, as DuckDB's insert of the same Arrow rows computes them.
        create = ("CREATE TABLE gen (a INTEGER CHECK (a < 30), b INTEGER, total INTEGER GENERATED ALWAYS AS (a + b), "
                  "twice BIGINT GENERATED ALWAYS AS (total * 2))")
        cur.execute(create)
        rows = pa.table({"a": pa.array([1, 2, None], pa.int32()), "b": pa.array([10, 20, 5], pa.int32())})
        assert cur.adbc_ingest("gen", rows, mode="append") == 3
        with pytest.raises(Exception, match="CHECK constraint failed"):
            cur.adbc_ingest("gen", pa.table({"a": pa.array([40], pa.int32()), "b": pa.array([20], pa.int32())}),
                            mode="append")
        with pytest.raises(Exception, match=r"has columns \['a', 'b'\]"):
            cur.adbc_ingest("gen", rows.append_column("total", pa.array([0, 0, 0], pa.int32())), mode="append")
        cur.execute("SELECT * FROM gen ORDER BY a NULLS LAST")
        oracle = duckdb.connect()
        oracle.execute(create)
        oracle.from_arrow(rows).insert_into("gen")
        assert cur.fetchall() == oracle.execute("SELECT * FROM gen ORDER BY a NULLS LAST").fetchall()
        frame = pl.DataFrame({"p": [1.5, 2.5], "q": ["u", "v"]})
        frame.write_database("polars_made", conn, engine="adbc", if_table_exists="replace")
        back = pl.read_database("SELECT * FROM polars_made ORDER BY p", conn)
        assert back.to_dicts() == frame.to_dicts()


def test_concurrent_writers_lose_nothing(server):
    with flight_sql.connect(server.uri) as conn, conn.cursor() as cur:
        cur.execute("CREATE OR REPLACE TABLE appended (writer INTEGER, i INTEGER)")
    errors = []

    def writer(w: int) -> None:
        try:
            with flight_sql.connect(server.uri) as conn, conn.cursor() as cur:
                for i in range(8):
                    cur.execute(f"INSERT INTO appended VALUES ({w}, {i}), ({w}, {i + 100})")
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(CLIENT_TIMEOUT_S)
    assert not errors
    with flight_sql.connect(server.uri) as conn, conn.cursor() as cur:
        cur.execute("SELECT writer, count(*), count(DISTINCT i) FROM appended GROUP BY writer ORDER BY writer")
        assert cur.fetchall() == [(w, 16, 16) for w in range(4)]


def test_a_write_killed_half_way_leaves_the_table_as_before(tmp_path):
    data = copy_data(tmp_path / "data")
    proc = start_server("engine", data, tmp_path / "server.log", ranks=2)
    try:
        with flight_sql.connect(proc.uri) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE big AS SELECT * FROM lineitem")
            cur.execute("SELECT count(*), sum(l_quantity) FROM big")
            before = cur.fetchone()

        def insert():
            try:
                with flight_sql.connect(proc.uri) as conn, conn.cursor() as cur:
                    cur.execute("INSERT INTO big SELECT l.* FROM lineitem l, nation, region")
            except Exception:  # noqa: BLE001 - the server is killed under it
                pass

        thread = threading.Thread(target=insert, daemon=True)
        thread.start()
        deadline = time.monotonic() + 120
        while not any(p.name.startswith(".tmp-") for p in data.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert any(p.name.startswith(".tmp-") for p in data.iterdir()), "the write never started"
        os.killpg(proc.proc.pid, signal.SIGKILL)
        proc.proc.wait(30)
    finally:
        stop_server(proc)
    again = start_server("engine", data, tmp_path / "server2.log", ranks=2)
    try:
        assert not [p.name for p in data.iterdir() if p.name.startswith((".tmp-", ".trash-"))]
        with flight_sql.connect(again.uri) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*), sum(l_quantity) FROM big")
            assert cur.fetchone() == before
    finally:
        stop_server(again)


def test_temporary_tables_are_private_to_their_connection(server):
    with flight_sql.connect(server.uri) as a, flight_sql.connect(server.uri) as b:
        with a.cursor() as ca, b.cursor() as cb:
            ca.execute("CREATE TEMP TABLE scratch AS SELECT n_nationkey AS k FROM nation WHERE n_regionkey = 1")
            ca.execute("SELECT count(*) FROM scratch")
            assert ca.fetchone() == (5,)
            with pytest.raises(Exception, match="unknown table: scratch"):
                cb.execute("SELECT count(*) FROM scratch")
            cb.execute("SHOW TABLES")
            assert "scratch" not in [r[0] for r in cb.fetchall()]
            listed = str(b.adbc_get_objects(depth="tables").read_all().to_pylist())
            assert "scratch" not in listed and "lineitem" in listed


def test_sessions_are_not_shared(server):
    """A SET in one connection is not another's (and CloseSession ends it)."""
    with flight_sql.connect(server.uri) as a, flight_sql.connect(server.uri) as b:
        with a.cursor() as ca, b.cursor() as cb:
            ca.execute("SET search_path = 'memory.main'")
            ca.execute("SELECT current_setting('search_path')")
            cb.execute("SELECT current_setting('search_path')")
            assert ca.fetchone() == ("memory.main",) and cb.fetchone() == ("",)



def test_executemany_counts_writes_not_query_rows(server):
    with flight_sql.connect(server.uri) as conn, conn.cursor() as cur:
        cur.execute("CREATE OR REPLACE TABLE many (a INTEGER)")
        cur.executemany("INSERT INTO many VALUES (?), (?)", [[1, 2], [3, 4], [5, 6]])
        assert cur.rowcount == 6
        cur.executemany("SELECT count(*) FROM nation WHERE n_regionkey = ?", [[1], [2]])
        assert cur.rowcount == -1
        cur.execute("SELECT sum(a) FROM many")
        assert cur.fetchone() == (21,)


def test_returning_rows_reach_the_client(server):
    with flight_sql.connect(server.uri) as conn, conn.cursor() as cur:
        cur.execute("CREATE OR REPLACE TABLE returned (a INTEGER, b VARCHAR)")
        cur.execute("INSERT INTO returned VALUES (1, 'x'), (2, 'y') RETURNING a * 10 AS a10, b")
        assert [d[0] for d in cur.description] == ["a10", "b"]
        assert sorted(cur.fetchall()) == [(10, "x"), (20, "y")]
        cur.execute("UPDATE returned SET b = upper(b) WHERE a = 2 RETURNING *")
        assert cur.fetchall() == [(2, "Y")]
        cur.execute("DELETE FROM returned WHERE a = 1 RETURNING a")
        assert cur.fetchall() == [(1,)]
        cur.execute("SELECT * FROM returned")
        assert cur.fetchall() == [(2, "Y")]


def test_flight_catalogs_agree_with_sql(server):
    """GetCatalogs/GetDbSchemas say what current_database()/current_schema() and information_schema say."""
    with flight_sql.connect(server.uri) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_database(), current_schema()")
        database, schema = cur.fetchone()
        objects = conn.adbc_get_objects(depth="db_schemas").read_all().to_pylist()
        assert [c["catalog_name"] for c in objects] == [database]
        assert schema in [s["db_schema_name"] for s in objects[0]["catalog_db_schemas"]]
        assert (conn.adbc_current_catalog, conn.adbc_current_db_schema) == (database, schema)
        cur.execute("SELECT DISTINCT table_catalog FROM information_schema.tables WHERE table_schema = 'main'")
        assert cur.fetchall() == [(database,)]


def test_prepared_statements_describe_their_parameters(server):
    with flight_sql.connect(server.uri) as conn, conn.cursor() as cur:
        params = cur.adbc_prepare("SELECT count(*) FROM orders WHERE o_totalprice > ? AND o_orderdate < ? "
                                  "AND o_orderpriority = ?")
        assert params is not None and params.types == [pa.decimal128(15, 2), pa.date32(), pa.string()]
        assert cur.adbc_prepare("SELECT 1") in (None, pa.schema([]))
        assert cur.adbc_prepare("SELECT '?', '$1'") in (None, pa.schema([]))
        numbered = cur.adbc_prepare("SELECT count(*) FROM orders WHERE o_orderdate < $1 OR o_orderdate > $1")
        assert numbered is not None and numbered.types == [pa.date32()]
        cur.execute("SELECT count(*) FROM orders WHERE o_totalprice > ? AND o_orderdate < ? AND o_orderpriority = ?",
                    parameters=[100000, datetime.date(1995, 1, 1), "1-URGENT"])
        got = cur.fetchone()[0]
    oracle = duckdb.connect()
    want = oracle.execute(f"SELECT count(*) FROM read_parquet('{Path(server.data_dir) / 'orders.parquet'}') "
                          "WHERE o_totalprice > 100000 AND o_orderdate < DATE '1995-01-01' AND o_orderpriority = '1-URGENT'"
                          ).fetchone()[0]
    assert got == want


def test_flight_session_actions(server):
    """Flight's SetSessionOptions / GetSessionOptions / CloseSession, as a raw Flight client sends them."""
    import pyarrow.flight as flight

    from server import sessions, wire

    def entry(key: str, text: str) -> bytes:
        value = wire._length_delimited(1, text.encode())  # SessionOptionValue.string_value
        return wire._length_delimited(1, wire._length_delimited(1, key.encode()) + wire._length_delimited(2, value))

    def options(client) -> dict:
        body = next(iter(client.do_action(flight.Action("GetSessionOptions", b"")))).body.to_pybytes()
        return {k: v for k, v in sessions.decode_set_request(body).items()}

    client = flight.connect(server.uri)
    try:
        assert options(client)["catalog"] == "memory" and options(client)["schema"] == "main"
        result = next(iter(client.do_action(flight.Action(
            "SetSessionOptions", entry("TimeZone", "UTC") + entry("threads", "1") + entry("schema", "nosuch")))))
        errors = {k: v for k, v in (
            (wire.parse_fields(e)[1][0].decode(), wire.parse_fields(wire.parse_fields(e)[2][0])[1][0])
            for e in wire.parse_fields(result.body.to_pybytes()).get(1, []))}
        assert set(errors) == {"threads", "schema"}  # TimeZone UTC was taken; the others refused
        assert options(client)["TimeZone"] == "UTC"
        closed = next(iter(client.do_action(flight.Action("CloseSession", b"")))).body.to_pybytes()
        assert wire.parse_fields(closed)[1] == [1]  # CLOSED
        assert "TimeZone" not in options(client)  # a new session, with the defaults
    finally:
        client.close()


def test_flight_sql_transaction_actions_autocommit(server):
    """BeginTransaction / EndTransaction as a raw Flight SQL client sends them: statements naming the
    transaction run (and commit at once); another id is refused; a ROLLBACK after a write says it
    cannot undo it."""
    import pyarrow.flight as flight

    from server import wire

    client = flight.connect(server.uri)
    try:
        def action(kind: str, message) -> list:
            return list(client.do_action(flight.Action(kind, message.pack())))

        def update(sql: str, txn: bytes) -> int:
            descriptor = flight.FlightDescriptor.for_command(wire.CommandStatementUpdate(sql, txn).pack())
            writer, reader = client.do_put(descriptor, pa.schema([]))
            writer.done_writing()
            answer = reader.read()
            writer.close()  # a refused statement raises here
            return wire.DoPutUpdateResult.decode(answer.to_pybytes()).record_count

        begun = action("BeginTransaction", wire.ActionBeginTransactionRequest())
        txn = wire.decode_action_body(begun[0].body.to_pybytes(), wire.ActionBeginTransactionResult).transaction_id
        assert txn
        assert update("CREATE OR REPLACE TABLE txn_made (a INTEGER)", txn) >= 0
        assert update("INSERT INTO txn_made VALUES (1), (2)", txn) == 2
        with pytest.raises((flight.FlightError, pa.ArrowInvalid), match="unknown or ended transaction"):
            update("INSERT INTO txn_made VALUES (3)", b"not-ours")
        with pytest.raises((flight.FlightError, pa.ArrowInvalid), match="cannot undo 2 statement"):
            action("EndTransaction", wire.ActionEndTransactionRequest(txn, wire.ActionEndTransactionRequest.ROLLBACK))
        begun = action("BeginTransaction", wire.ActionBeginTransactionRequest())
        txn = wire.decode_action_body(begun[0].body.to_pybytes(), wire.ActionBeginTransactionResult).transaction_id
        assert update("INSERT INTO txn_made VALUES (3)", txn) == 1
        assert action("EndTransaction", wire.ActionEndTransactionRequest(txn, wire.ActionEndTransactionRequest.COMMIT)) == []
    finally:
        client.close()
    with flight_sql.connect(server.uri) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), sum(a) FROM txn_made")
        assert cur.fetchone() == (3, 6)


def test_temporary_views_are_private_to_their_connection(server, oracle):
    with flight_sql.connect(server.uri) as a, flight_sql.connect(server.uri) as b:
        with a.cursor() as ca, b.cursor() as cb:
            ca.execute("CREATE TEMP TABLE few AS SELECT n_nationkey AS k FROM nation WHERE n_regionkey = 2")
            ca.execute("CREATE TEMP VIEW tens AS SELECT k * 10 AS k10 FROM few")
            ca.execute("SELECT sum(k10) FROM tens")
            assert ca.fetchone()[0] == _rows(oracle, "SELECT sum(n_nationkey * 10) FROM nation WHERE n_regionkey = 2")[0][0]
            with pytest.raises(Exception, match="unknown table: tens"):
                cb.execute("SELECT * FROM tens")
            assert "tens" not in str(b.adbc_get_objects(depth="tables").read_all().to_pylist())
            ca.execute("DROP VIEW tens")
            with pytest.raises(Exception, match="unknown table: tens"):
                ca.execute("SELECT * FROM tens")
