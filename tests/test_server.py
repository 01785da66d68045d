"""End-to-end tests of the Flight SQL server with the real ADBC Flight SQL driver.

Each test module's server runs in a subprocess (see server_fixtures.py), on both backends: the
real engine (when it exists) and the DuckDB double that isolates the server layer.
"""

from __future__ import annotations

import threading
import time

import adbc_driver_manager
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute in the SF 0.1 test
import pyarrow.flight as flight
import pytest

from server import wire
from server.call_options import PARTITIONED_HEADER, PARTITIONED_OPTION
from tests.server_fixtures import (
    BACKENDS,
    DATA,
    SLOW_SQL,
    assert_same_answer,
    client_timeouts,
    copy_data,
    oracle,
    run_clients,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.timeout(300)

QUERIES = [
    "SELECT count(*) AS n FROM lineitem",
    "SELECT n_name, n_regionkey FROM nation ORDER BY n_nationkey",
    "SELECT l_returnflag, l_linestatus, sum(l_quantity) AS q, avg(l_extendedprice) AS p, count(*) AS c "
    "FROM lineitem GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus",
    "SELECT o_orderpriority, count(*) AS c FROM orders WHERE o_orderdate >= DATE '1995-01-01' "
    "GROUP BY o_orderpriority ORDER BY o_orderpriority",
    "SELECT c.c_name, sum(o.o_totalprice) AS total FROM customer c JOIN orders o ON c.c_custkey = o.o_custkey "
    "GROUP BY c.c_name ORDER BY total DESC, c.c_name LIMIT 10",
    "SELECT r_name, r_comment FROM region WHERE r_regionkey < 0",  # empty result
]


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"server-{request.param}")
    proc = start_server(request.param, copy_data(tmp / "data"), tmp / "server.log")
    yield proc
    stop_server(proc)


@pytest.fixture
def conn(server):
    connection = server.connect()
    yield connection
    connection.close()


def fetch(conn, sql, params=None) -> pa.Table:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetch_arrow_table()


def status_of(exc_info) -> adbc_driver_manager.AdbcStatusCode:
    return exc_info.value.status_code


# --- queries ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", QUERIES)
def test_query_matches_duckdb(conn, sql):
    assert_same_answer(fetch(conn, sql), sql)


@pytest.mark.parametrize("number", [1, 3, 5, 6, 10, 12, 14, 19])
def test_tpch_query_matches_duckdb(conn, number):
    import tpch

    sql = tpch.query_text(number)
    assert_same_answer(fetch(conn, sql), sql)


def test_statement_query_without_prepare(server):
    """The plain Flight SQL path (CommandStatementQuery), as non-ADBC clients use it."""
    client = flight.connect(server.uri)
    sql = "SELECT n_nationkey, n_name FROM nation ORDER BY n_nationkey"
    descriptor = flight.FlightDescriptor.for_command(wire.CommandStatementQuery(sql).pack())
    schema = client.get_schema(descriptor).schema
    info = client.get_flight_info(descriptor)
    assert info.schema.names == ["n_nationkey", "n_name"]
    assert schema.names == ["n_nationkey", "n_name"]
    # The engine streams (the count is unknown until the rows have gone: -1); the double knows it.
    assert info.total_records == (-1 if server.backend == "engine" else 25)
    tables = [client.do_get(endpoint.ticket).read_all() for endpoint in info.endpoints]
    assert_same_answer(pa.concat_tables(tables), sql)
    # A ticket is served once.
    with pytest.raises(pa.ArrowInvalid, match="ticket"):
        client.do_get(info.endpoints[0].ticket).read_all()
    client.close()


def test_errors_keep_their_message_and_kind(conn):
    with pytest.raises(adbc_driver_manager.ProgrammingError) as syntax:
        fetch(conn, "SELEKT 1")
    assert status_of(syntax) == adbc_driver_manager.AdbcStatusCode.INVALID_ARGUMENT
    with pytest.raises(adbc_driver_manager.ProgrammingError) as unknown:
        fetch(conn, "SELECT * FROM no_such_table")
    assert status_of(unknown) == adbc_driver_manager.AdbcStatusCode.INVALID_ARGUMENT
    assert "no_such_table" in str(unknown.value)
    assert fetch(conn, "SELECT 1 AS one").to_pylist() == [{"one": 1}]  # the connection still works


def test_sql_text_over_the_size_limit_is_refused(server, conn):
    from server.flight_sql import MAX_SQL_BYTES

    sql = "SELECT 1 AS one" + " " * MAX_SQL_BYTES
    with pytest.raises(adbc_driver_manager.ProgrammingError) as refused:
        fetch(conn, sql)
    assert status_of(refused) == adbc_driver_manager.AdbcStatusCode.INVALID_ARGUMENT
    assert "limit" in str(refused.value) and "--max-sql-bytes" in str(refused.value)
    client = flight.connect(server.uri)
    with pytest.raises(pa.ArrowInvalid, match="limit"):
        client.get_flight_info(flight.FlightDescriptor.for_command(wire.CommandStatementQuery(sql).pack()))
    client.close()
    assert fetch(conn, sql[:MAX_SQL_BYTES]).to_pylist() == [{"one": 1}]  # at the limit: accepted


# --- prepared statements and parameters --------------------------------------------------------------


def test_prepared_statement_with_parameters(conn):
    sql = "SELECT n_name, n_regionkey FROM nation WHERE n_nationkey = ? OR n_regionkey = ? ORDER BY n_name"
    with conn.cursor() as cur:
        for params in ([3, 1], [7, 4], [24, 0]):
            cur.execute(sql, params)  # the same text: the driver reuses its prepared statement
            assert_same_answer(cur.fetch_arrow_table(), sql, params)


def test_parameter_types(conn):
    sql = (
        "SELECT count(*) AS n FROM orders "
        "WHERE o_orderdate BETWEEN ? AND ? AND o_orderpriority = ? AND o_totalprice > ?"
    )
    import datetime

    params = [datetime.date(1994, 1, 1), datetime.date(1994, 12, 31), "1-URGENT", 1000.5]
    actual = fetch(conn, sql, params)
    assert actual.column(0).to_pylist() == oracle(sql, params).column(0).to_pylist()
    assert actual.column(0)[0].as_py() > 0


def test_several_parameter_rows_over_raw_flight(server):
    """DoPut binds a batch of parameter rows; executing runs each row and concatenates the results."""
    client = flight.connect(server.uri)
    sql = "SELECT n_nationkey, n_name FROM nation WHERE n_nationkey = $1"
    request = wire.ActionCreatePreparedStatementRequest(sql).pack()
    reply = next(iter(client.do_action(flight.Action("CreatePreparedStatement", request)))).body.to_pybytes()
    name, payload = wire.unpack_any(reply)
    assert name == "ActionCreatePreparedStatementResult"
    handle = wire.ActionCreatePreparedStatementResult.decode(payload).prepared_statement_handle
    command = wire.CommandPreparedStatementQuery(handle).pack()
    descriptor = flight.FlightDescriptor.for_command(command)
    params = pa.record_batch({"$1": pa.array([5, 1, 17], pa.int64())})
    writer, metadata_reader = client.do_put(descriptor, params.schema)
    writer.write_batch(params)
    writer.done_writing()
    put_result = metadata_reader.read()
    writer.close()
    assert wire.DoPutPreparedStatementResult.decode(put_result.to_pybytes()).prepared_statement_handle == handle
    info = client.get_flight_info(descriptor)
    rows = pa.concat_tables([client.do_get(e.ticket).read_all() for e in info.endpoints]).to_pylist()
    assert [r["n_nationkey"] for r in rows] == [5, 1, 17]
    close = wire.ActionClosePreparedStatementRequest(handle).pack()
    list(client.do_action(flight.Action("ClosePreparedStatement", close)))
    with pytest.raises(pa.ArrowInvalid, match="prepared statement"):
        client.get_flight_info(descriptor)
    client.close()


def test_prepared_result_schema(conn):
    with conn.cursor() as cur:
        schema = cur.adbc_execute_schema("SELECT n_nationkey, n_name FROM nation")
    assert schema.names == ["n_nationkey", "n_name"]
    assert pa.types.is_integer(schema.field("n_nationkey").type)


# --- metadata ------------------------------------------------------------------------------------


def test_get_info(conn):
    info = conn.adbc_get_info()
    assert info["vendor_name"] == "FlockSQL"
    assert info["vendor_version"]
    assert info["vendor_arrow_version"] == pa.__version__


def test_get_objects(conn):
    objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
    tables = {
        t["table_name"]: t
        for catalog in objects
        for schema in catalog["catalog_db_schemas"]
        for t in schema["db_schema_tables"]
    }
    assert {"lineitem", "orders", "nation", "region"} <= set(tables)
    assert tables["nation"]["table_type"] == "TABLE"
    columns = [c["column_name"] for c in tables["nation"]["table_columns"]]
    assert columns == ["n_nationkey", "n_name", "n_regionkey", "n_comment"]
    # Filters are LIKE patterns.
    filtered = conn.adbc_get_objects(depth="tables", table_name_filter="n_t%").read_all().to_pylist()
    names = [t["table_name"] for c in filtered for s in c["catalog_db_schemas"] for t in s["db_schema_tables"]]
    assert names == ["nation"]


def test_pathological_filter_patterns_answer(conn):
    """32 % and a ! made a backtracking regex that stalled the server for many seconds."""
    def table_names(**filters):
        objects = conn.adbc_get_objects(depth="tables", **filters).read_all().to_pylist()
        return sorted(t["table_name"] for c in objects for s in c["catalog_db_schemas"] or []
                      for t in s["db_schema_tables"] or [])

    assert table_names(table_name_filter="%" * 32 + "!") == []
    assert table_names(table_name_filter="%" * 32 + "m") == ["lineitem"]
    assert table_names(db_schema_filter="%" * 32 + "!") == []
    assert "nation" in table_names(db_schema_filter="%" * 32 + "n")


def test_get_table_schema(conn):
    import pyarrow.parquet as pq

    schema = conn.adbc_get_table_schema("orders")
    expected = pq.read_schema(DATA / "orders.parquet")
    assert schema.names == expected.names
    for field, want in zip(schema, expected):
        assert field.type == want.type or (pa.types.is_string(field.type) and "string" in str(want.type)), field
    with pytest.raises(adbc_driver_manager.Error):
        conn.adbc_get_table_schema("no_such_table")


def test_table_types_and_sql_info_over_raw_flight(server, conn):
    assert conn.adbc_get_table_types() == ["TABLE", "VIEW"]
    client = flight.connect(server.uri)
    descriptor = flight.FlightDescriptor.for_command(wire.CommandGetSqlInfo(info=(0, 3, 502, 504)).pack())
    info = client.get_flight_info(descriptor)
    rows = client.do_get(info.endpoints[0].ticket).read_all().to_pylist()
    assert {r["info_name"]: r["value"] for r in rows} == {0: "FlockSQL", 3: False, 502: True, 504: '"'}
    descriptor = flight.FlightDescriptor.for_command(wire.CommandGetXdbcTypeInfo().pack())
    info = client.get_flight_info(descriptor)
    types = client.do_get(info.endpoints[0].ticket).read_all()
    assert "BIGINT" in types.column("type_name").to_pylist()
    client.close()


# --- big results and partitions --------------------------------------------------------------------


def test_big_result_whole_lineitem(server, conn):
    sql = "SELECT * FROM lineitem"
    actual = fetch(conn, sql)
    assert actual.num_rows == 60175
    assert_same_answer(actual, sql)
    # Over raw Flight: every message is a bounded slice, never the whole 10 MB result at once.
    client = flight.connect(server.uri)
    info = client.get_flight_info(flight.FlightDescriptor.for_command(wire.CommandStatementQuery(sql).pack()))
    sizes = []
    for endpoint in info.endpoints:
        for chunk in client.do_get(endpoint.ticket):
            sizes.append(pa.ipc.get_record_batch_size(chunk.data))
    assert max(sizes) < 16 * 1024 * 1024
    assert len(sizes) >= 3, sizes
    assert max(sizes) <= 5 * 1024 * 1024, sizes
    client.close()


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("backend", BACKENDS)
def test_big_result_lineitem_sf01(backend, tpch_sf01, tmp_path):
    """All of lineitem at SF 0.1 (600k rows, about 100 MB) through one plain fetch."""
    proc = start_server(backend, tpch_sf01, tmp_path / "server.log")
    try:
        connection = proc.connect()
        with connection.cursor() as cur:
            cur.execute("SELECT * FROM lineitem")
            table = cur.fetch_arrow_table()
        connection.close()
    finally:
        stop_server(proc)
    import pyarrow.parquet as pq

    single = tpch_sf01 / "lineitem.parquet"
    expected = pq.read_table(single if single.exists() else tpch_sf01 / "lineitem", columns=["l_orderkey"])
    assert table.num_rows == expected.num_rows
    assert pa.compute.sum(table.column("l_orderkey")).as_py() == pa.compute.sum(expected.column(0)).as_py()


def _dbapi_connection(server):
    """flightsql-dbapi, a pure-Python client that reads only the first endpoint of a result."""
    from flightsql import FlightSQLClient, connect

    host, port = server.uri.removeprefix("grpc://").rsplit(":", 1)
    return connect(FlightSQLClient(host=host, port=int(port), insecure=True))


@pytest.mark.parametrize("sql", [
    "SELECT * FROM orders",
    "SELECT o_orderpriority, count(*) AS c, sum(o_totalprice) AS s FROM orders GROUP BY o_orderpriority",
    "SELECT l_orderkey, l_linenumber FROM lineitem WHERE l_quantity > 45",
])
def test_single_endpoint_client_gets_every_row(server, sql):
    connection = _dbapi_connection(server)
    try:
        cursor = connection.cursor()
        cursor.execute(sql)
        rows = cursor.fetchall()
        names = [d[0] for d in cursor.description]
    finally:
        connection.close()
    expected = oracle(sql)
    assert len(rows) == expected.num_rows
    actual = pa.table({name: [row[i] for row in rows] for i, name in enumerate(names)})
    assert_same_answer(actual.cast(expected.schema), sql)


def test_one_endpoint_by_default(server, conn):
    sql = "SELECT o_orderkey, o_custkey, o_totalprice FROM orders"
    with conn.cursor() as cur:
        partitions, schema = cur.adbc_execute_partitions(sql)
    assert len(partitions) == 1
    with conn.cursor() as cur:
        cur.adbc_read_partition(partitions[0])
        assert_same_answer(cur.fetch_arrow_table(), sql)


def test_partitions(server):
    sql = "SELECT o_orderkey, o_custkey, o_totalprice FROM orders"
    conn = server.connect(**{PARTITIONED_OPTION: "true"})
    with conn.cursor() as cur:
        partitions, schema = cur.adbc_execute_partitions(sql)
        # The same connection's plain execute reads every partition in order.
        cur.execute(sql)
        assert_same_answer(cur.fetch_arrow_table(), sql)
    conn.close()
    assert schema.names == ["o_orderkey", "o_custkey", "o_totalprice"]
    assert len(partitions) == server.ranks
    # Any connection can read any partition, in any order.
    other = server.connect()
    tables = []
    for partition in reversed(partitions):
        with other.cursor() as cur:
            cur.adbc_read_partition(partition)
            tables.append(cur.fetch_arrow_table())
    other.close()
    assert_same_answer(pa.concat_tables(tables), sql)


def test_partitions_are_served_by_the_ranks_themselves(server):
    """With partitioned results, each rank's part is fetched from that rank's own endpoint (the
    endpoint's location); rank 0's from the Flight SQL server itself. Every row exactly once."""
    sql = "SELECT o_orderkey, o_custkey, o_comment FROM orders"
    client = flight.connect(server.uri)
    options = flight.FlightCallOptions(headers=[(PARTITIONED_HEADER.encode(), b"true")])
    info = client.get_flight_info(flight.FlightDescriptor.for_command(wire.CommandStatementQuery(sql).pack()), options)
    tables = []
    for endpoint in info.endpoints:
        locations = [str(loc.uri.decode() if isinstance(loc.uri, bytes) else loc.uri) for loc in endpoint.locations]
        source = flight.connect(locations[0]) if locations else client
        tables.append(source.do_get(endpoint.ticket).read_all())
        if locations:
            assert locations[0] != server.uri
            with pytest.raises(pa.ArrowInvalid, match="ticket"):  # a part is served once
                source.do_get(endpoint.ticket).read_all()
            source.close()
    client.close()
    assert info.total_records == sum(t.num_rows for t in tables)
    assert_same_answer(pa.concat_tables(tables), sql)
    if server.backend == "engine" and server.ranks > 1:
        # orders spans several row groups: every rank holds a part, and all but rank 0's are elsewhere.
        assert len(info.endpoints) == server.ranks
        assert [bool(e.locations) for e in info.endpoints] == [False] + [True] * (server.ranks - 1)
        assert len({e.locations[0].uri for e in info.endpoints[1:]}) == server.ranks - 1


def test_partitioned_results_asked_for_by_set_or_session_option(engine_server):
    """Clients that cannot send headers ask per session: SET, or the Flight SQL session option."""
    server = engine_server
    sql = "SELECT o_orderkey FROM orders"
    conn = server.connect()
    try:
        with conn.cursor() as cur:
            assert len(cur.adbc_execute_partitions(sql)[0]) == 1
            cur.execute("SET flocksql_partitioned_results = true")
            cur.fetchall()
            assert len(cur.adbc_execute_partitions(sql)[0]) == server.ranks
            cur.execute(sql)  # a plain execute still gets every row, from every rank
            assert_same_answer(cur.fetch_arrow_table(), sql)
            with pytest.raises(adbc_driver_manager.ProgrammingError, match="true or false"):
                cur.execute("SET flocksql_partitioned_results = maybe")
            cur.execute("RESET flocksql_partitioned_results")
            cur.fetchall()
            assert len(cur.adbc_execute_partitions(sql)[0]) == 1
    finally:
        conn.close()
    other = server.connect()
    try:
        other.adbc_connection.set_options(**{"adbc.flight.sql.session.option.flocksql_partitioned_results": "true"})
        with other.cursor() as cur:
            assert len(cur.adbc_execute_partitions(sql)[0]) == server.ranks
    finally:
        other.close()


@pytest.mark.parametrize("sql", [
    "SELECT o_orderkey FROM orders ORDER BY o_orderkey DESC LIMIT 5",  # one part: rank 0's
    "SELECT r_name FROM region WHERE r_regionkey < 0",  # no rows: one empty part
    "SELECT l_orderkey, count(*) AS n FROM lineitem GROUP BY l_orderkey",
])
def test_partitioned_results_of_every_shape(server, sql):
    conn = server.connect(**{PARTITIONED_OPTION: "true"})
    try:
        with conn.cursor() as cur:
            partitions, schema = cur.adbc_execute_partitions(sql)
        tables = []
        for partition in partitions:
            with conn.cursor() as cur:
                cur.adbc_read_partition(partition)
                tables.append(cur.fetch_arrow_table())
    finally:
        conn.close()
    assert all(t.schema.names == schema.names for t in tables)
    assert_same_answer(pa.concat_tables(tables), sql)


# --- DDL ---------------------------------------------------------------------------------------


def test_ddl_create_and_drop(server, conn):
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE asia_nations AS SELECT n_nationkey, n_name FROM nation WHERE n_regionkey = 2")
        cur.fetchall()
        cur.execute("CREATE VIEW europe_nations AS SELECT n_name FROM nation WHERE n_regionkey = 3")
        cur.fetchall()
    try:
        assert sorted(fetch(conn, "SELECT n_name FROM asia_nations").column(0).to_pylist()) == sorted(
            oracle("SELECT n_name FROM nation WHERE n_regionkey = 2").column(0).to_pylist()
        )
        assert fetch(conn, "SELECT count(*) FROM europe_nations").column(0)[0].as_py() == 5
        kinds = dict(
            (t["table_name"], t["table_type"])
            for c in conn.adbc_get_objects(depth="tables").read_all().to_pylist()
            for s in c["catalog_db_schemas"]
            for t in s["db_schema_tables"]
        )
        assert kinds["asia_nations"] == "TABLE"
        assert kinds["europe_nations"] == "VIEW"
    finally:
        # The update path (DoPut CommandStatementUpdate), without a prepared statement.
        with conn.cursor() as cur:
            for sql in ("DROP VIEW europe_nations", "DROP TABLE asia_nations"):
                cur.adbc_statement.set_sql_query(sql)
                assert cur.adbc_statement.execute_update() >= -1
    with pytest.raises(adbc_driver_manager.ProgrammingError):
        fetch(conn, "SELECT * FROM asia_nations")


def test_update_reports_row_count(server, conn):
    with conn.cursor() as cur:
        cur.adbc_statement.set_sql_query("CREATE TABLE few_orders AS SELECT * FROM orders WHERE o_orderkey < 100")
        count = cur.adbc_statement.execute_update()
        cur.adbc_statement.set_sql_query("DROP TABLE few_orders")
        cur.adbc_statement.execute_update()
    expected = oracle("SELECT count(*) FROM orders WHERE o_orderkey < 100").column(0)[0].as_py()
    assert count in (expected, -1)  # -1: the engine does not report counts


# --- cancellation ------------------------------------------------------------------------------------


def test_cancel_running_query_frees_the_ranks(conn):
    with conn.cursor() as cur:
        timer = threading.Timer(1.5, cur.adbc_cancel)
        started = time.monotonic()
        timer.start()
        with pytest.raises(adbc_driver_manager.Error) as cancelled:
            cur.execute(SLOW_SQL)
            cur.fetchall()
        timer.join()
    assert time.monotonic() - started < 30
    assert status_of(cancelled) == adbc_driver_manager.AdbcStatusCode.CANCELLED
    # The ranks were freed: the next query does not wait for the slow one (or it times out).
    started = time.monotonic()
    with conn.cursor() as cur:
        cur.adbc_statement.set_options(**client_timeouts(15))
        cur.execute("SELECT count(*) AS n FROM nation")
        assert cur.fetchone()[0] == 25
    assert time.monotonic() - started < 10


def test_cancel_flight_info_actions(server):
    client = flight.connect(server.uri)
    for action_type in ("CancelFlightInfo", "CancelQuery"):
        descriptor = flight.FlightDescriptor.for_command(wire.CommandStatementQuery("SELECT * FROM region").pack())
        info = client.get_flight_info(descriptor)
        if action_type == "CancelFlightInfo":
            body = wire.CancelFlightInfoRequest(info.serialize()).encode()
            result = wire.CancelFlightInfoResult.decode(
                next(iter(client.do_action(flight.Action(action_type, body)))).body.to_pybytes()
            )
            assert result.status == wire.CancelFlightInfoResult.CANCELLED
        else:
            body = wire.ActionCancelQueryRequest(info.serialize()).pack()
            reply = next(iter(client.do_action(flight.Action(action_type, body)))).body.to_pybytes()
            name, payload = wire.unpack_any(reply)
            assert name == "ActionCancelQueryResult"
            assert wire.ActionCancelQueryResult.decode(payload).result == wire.ActionCancelQueryResult.CANCELLED
        with pytest.raises(pa.ArrowInvalid):
            client.do_get(info.endpoints[0].ticket).read_all()
    client.close()


# --- concurrency ---------------------------------------------------------------------------------


def test_concurrent_clients_each_get_their_own_answer(server):
    expected = {key: oracle(f"SELECT count(*) AS n, sum(o_totalprice) AS s FROM orders WHERE o_custkey % 7 = {key}")
                for key in range(7)}
    failures: list[str] = []

    def client(worker: int):
        try:
            connection = server.connect()
            for i in range(4):
                key = (worker + i) % 7
                actual = fetch(connection, "SELECT count(*) AS n, sum(o_totalprice) AS s FROM orders "
                                           "WHERE o_custkey % 7 = ?", [key])
                if actual.to_pylist() != expected[key].to_pylist():
                    failures.append(f"worker {worker} key {key}: {actual.to_pylist()} != {expected[key].to_pylist()}")
            connection.close()
        except Exception as exc:  # noqa: BLE001
            failures.append(f"worker {worker}: {exc!r}")

    run_clients(client, 8, 240)
    assert not failures, failures


# --- sandbox ---------------------------------------------------------------------------------------

SANDBOX_REFUSALS = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM glob('*')",
    "SELECT * FROM read_text('/etc/passwd')",
    "COPY nation TO '/tmp/flocksql_sandbox_test.csv'",
    "EXPORT DATABASE '/tmp/flocksql_sandbox_test'",
    "ATTACH '/tmp/flocksql_sandbox_test.db' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "PRAGMA memory_limit = '1GB'",
    "SET threads = 1",
    "SELECT getenv('HOME')",
]


@pytest.fixture(scope="module")
def engine_server(tmp_path_factory):
    """The real engine only: the sandbox is the engine's (the double does not implement it)."""
    tmp = tmp_path_factory.mktemp("server-sandbox")
    proc = start_server("engine", copy_data(tmp / "data"), tmp / "server.log")
    yield proc
    stop_server(proc)


@pytest.mark.parametrize("sql", SANDBOX_REFUSALS)
def test_sandbox_refusals_reach_the_client(engine_server, sql):
    conn = engine_server.connect()
    try:
        _check_refused(conn, sql)
    finally:
        conn.close()


def _check_refused(conn, sql):
    with pytest.raises(adbc_driver_manager.Error) as refused:
        fetch(conn, sql)
    assert status_of(refused) == adbc_driver_manager.AdbcStatusCode.INVALID_ARGUMENT, refused.value
    assert fetch(conn, "SELECT 1 AS one").num_rows == 1
