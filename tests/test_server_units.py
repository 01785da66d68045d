"""Unit tests of the server's parts: protobuf codec, batching, metadata, error mapping, query runner."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from engine.errors import (
    CancelledError,
    CatalogError,
    CommError,
    ConstraintError,
    ExecutionError,
    InternalError,
    InvalidValueError,
    NotSupportedError,
    ParseError,
    PlanError,
)
from server import metadata, wire
from server.errors import RequestError, ShuttingDown, UnsupportedRequest, client_message, to_flight_error
from server.flight_sql import _affected_rows, record_batches, transfer_table
from server.runner import QueryRunner

pytestmark = pytest.mark.timeout(60)


# --- protobuf wire format ----------------------------------------------------------------------------


def test_varints():
    for value in (0, 1, 127, 128, 300, 2**31, 2**63 - 1):
        encoded = wire.encode_varint(value)
        assert wire.decode_varint(encoded, 0) == (value, len(encoded))
    assert wire.encode_varint(300) == b"\xac\x02"
    assert len(wire.encode_varint(-1)) == 10  # negative: 64-bit two's complement


@pytest.mark.parametrize("message", [
    wire.CommandStatementQuery("SELECT 'é' ;"),
    wire.CommandStatementQuery("SELECT 1", transaction_id=b"txn"),
    wire.CommandGetTables(catalog="", db_schema_filter_pattern="m%", table_types=("TABLE", "VIEW"),
                          include_schema=True),
    wire.CommandGetTables(),
    wire.CommandGetDbSchemas(catalog=None, db_schema_filter_pattern="main"),
    wire.CommandGetSqlInfo(info=(0, 1, 500, 10000)),
    wire.CommandGetXdbcTypeInfo(data_type=-5),
    wire.ActionCreatePreparedStatementResult(b"\x00handle", b"schema", b""),
    wire.DoPutUpdateResult(-1),
    wire.DoPutUpdateResult(2**40),
    wire.DoPutPreparedStatementResult(b""),
    wire.TicketStatementQuery(b"abc/1"),
    wire.CancelFlightInfoResult(wire.CancelFlightInfoResult.CANCELLED),
])
def test_messages_round_trip(message):
    assert type(message).decode(message.encode()) == message
    assert wire.unpack_any(message.pack()) == (type(message).__name__, message.encode())


def test_known_encodings():
    # Bytes as protoc would write them (proto3: defaults left out, optional fields kept).
    assert wire.CommandStatementQuery("ab").encode() == b"\x0a\x02ab"
    assert wire.CommandGetDbSchemas(catalog="").encode() == b"\x0a\x00"
    assert wire.CommandGetDbSchemas().encode() == b""
    assert wire.DoPutUpdateResult(5).encode() == b"\x08\x05"
    assert wire.CommandGetTables(include_schema=True).encode() == b"\x28\x01"


def test_packed_and_unpacked_repeated_scalars():
    unpacked = b"\x08\x00\x08\x01\x08\xf4\x03"  # three separate varint fields
    packed = b"\x0a\x04\x00\x01\xf4\x03"  # one length-delimited run
    assert wire.CommandGetSqlInfo.decode(unpacked).info == (0, 1, 500)
    assert wire.CommandGetSqlInfo.decode(packed).info == (0, 1, 500)


def test_unknown_fields_are_skipped():
    data = wire.CommandStatementQuery("q").encode() + b"\x98\x01\x07" + b"\x19" + b"\x00" * 8 + b"\x25" + b"\x00" * 4
    assert wire.CommandStatementQuery.decode(data) == wire.CommandStatementQuery("q")


@pytest.mark.parametrize("data", [b"\x0a\x05ab", b"\x08", b"\x0b", b"\x00\x01"])
def test_malformed_messages(data):
    with pytest.raises(wire.WireError):
        wire.CommandStatementQuery.decode(data)


def test_decode_command_rejects_foreign_any():
    foreign = wire.pack_any("X", b"")[: 0] + b"\x0a\x10type.example/Foo" + b"\x12\x00"
    with pytest.raises(wire.WireError, match="not a Flight SQL message"):
        wire.decode_command(foreign)
    with pytest.raises(wire.WireError, match="unknown Flight SQL command"):
        wire.decode_command(wire.pack_any("CommandNoSuchThing", b""))


# --- batching ------------------------------------------------------------------------------------


def _wide_table(rows: int) -> pa.Table:
    return pa.table({
        "id": pa.array(range(rows), pa.int64()),
        "text": pa.array([("x" * (i % 500)) for i in range(rows)], pa.utf8()),
    })


def test_record_batches_are_bounded_and_complete():
    table = _wide_table(100_000)  # about 25 MB
    limit = 1 << 20
    batches = record_batches(table, limit)
    assert len(batches) > 10
    assert all(b.nbytes <= limit or b.num_rows == 1 for b in batches)
    assert all(pa.ipc.get_record_batch_size(b) < 16 << 20 for b in batches)
    assert pa.Table.from_batches(batches).equals(table)


def test_record_batches_of_small_and_empty_tables():
    small = _wide_table(10)
    assert pa.Table.from_batches(record_batches(small, 1 << 20)).equals(small)
    assert record_batches(small.slice(0, 0), 1 << 20) == [] or all(
        b.num_rows == 0 for b in record_batches(small.slice(0, 0), 1 << 20))
    huge_row = pa.table({"s": ["y" * (3 << 20)]})
    assert [b.num_rows for b in record_batches(huge_row, 1 << 20)] == [1]  # one row cannot be split


def test_view_columns_become_plain_and_slice_small():
    table = _wide_table(50_000)
    viewed = table.cast(pa.schema([("id", pa.int64()), ("text", pa.string_view())]))
    plain = transfer_table(viewed)
    assert plain.schema.field("text").type == pa.utf8()
    assert plain.equals(table)
    batches = record_batches(plain, 1 << 20)
    assert sum(pa.ipc.get_record_batch_size(b) for b in batches) < 2 * table.nbytes


def test_affected_rows():
    assert _affected_rows(pa.table({"Count": pa.array([42], pa.int64())})) == 42
    assert _affected_rows(pa.table({"Count": pa.array([], pa.int64())})) == 0
    assert _affected_rows(pa.table({"a": [1, 2]})) == -1


# --- metadata ------------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern, value, matches", [
    ("n_t%", "nation", True),
    ("n_t%", "lineitem", False),
    ("%item", "lineitem", True),
    ("line\\_item", "line_item", True),
    ("line\\_item", "lineXitem", False),
    ("a.b", "axb", False),
    ("%", "", True),
    ("", "", True),
    ("", "a", False),
    ("_", "", False),
    ("a%b%c", "abc", True),
    ("a%b%c", "acb", False),
    ("%ab%ab", "abab", True),
    ("%ab%ab", "aab", False),
    ("100\\%", "100%", True),
    ("100\\%", "1000", False),
    # Backtracking regexes take exponential time on these; the matcher answers at once.
    ("%" * 32 + "!", "x" * 200, False),
    ("%" * 32 + "!", "x" * 200 + "!", True),
    ("%a" * 40 + "%b", "a" * 100 + "c", False),
    ("%a_" * 40 + "%", "ab" * 39, False),
    ("%a_" * 40 + "%", "ab" * 40, True),
])
def test_like_patterns(pattern, value, matches):
    assert metadata.like_match(pattern, value) == matches


def test_sql_info_table():
    table = metadata.sql_info_table((0, 3, 8, 504, 99999))
    assert table.schema.equals(metadata.SQL_INFO_SCHEMA)
    values = {r["info_name"]: r["value"] for r in table.to_pylist()}
    assert values == {0: "FlockSQL", 3: False, 8: 0, 504: '"'}
    # Type ids: string 0, bool 1, int32 3 (FLIGHT_SQL_SERVER_TRANSACTION is an int32).
    assert table.column("value").chunk(0).type_codes.to_pylist() == [0, 1, 3, 0]
    assert metadata.sql_info_table(()).num_rows == len(metadata.sql_info_values())


def test_tables_table_filters():
    schema = pa.schema([("a", pa.int64())])
    rows = [("orders", "TABLE", schema), ("nation", "TABLE", schema), ("v", "VIEW", schema)]
    names = lambda t: t.column("table_name").to_pylist()  # noqa: E731
    assert names(metadata.tables_table(rows, None, None, None, (), False)) == ["nation", "orders", "v"]
    assert names(metadata.tables_table(rows, None, None, None, ("VIEW",), False)) == ["v"]
    assert names(metadata.tables_table(rows, "other_catalog", None, None, (), False)) == []
    assert names(metadata.tables_table(rows, None, "nope", None, (), False)) == []
    with_schema = metadata.tables_table(rows, "", "main", "ord%", (), True)
    assert names(with_schema) == ["orders"]
    assert with_schema.schema.equals(metadata.TABLES_WITH_SCHEMA_SCHEMA)
    restored = pa.ipc.read_schema(pa.py_buffer(with_schema.column("table_schema")[0].as_py()))
    assert restored.names == ["a"]
    assert restored.field("a").metadata[b"ARROW:FLIGHT:SQL:TABLE_NAME"] == b"orders"


def test_xdbc_type_info():
    everything = metadata.xdbc_type_info_table(None)
    assert everything.schema.equals(metadata.XDBC_TYPE_INFO_SCHEMA)
    assert everything.column("data_type").to_pylist() == sorted(everything.column("data_type").to_pylist())
    assert metadata.xdbc_type_info_table(4).column("type_name").to_pylist() == ["INTEGER"]


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("error, expected", [
    (ParseError("syntax error at line 1"), pa.ArrowInvalid),
    (CatalogError("unknown table: t"), pa.ArrowInvalid),
    (PlanError("bad plan"), pa.ArrowInvalid),
    (NotSupportedError("read_csv"), pa.ArrowInvalid),
    (RequestError("bad ticket"), pa.ArrowInvalid),
    (ConstraintError('Duplicate key "k: 1" violates primary key constraint.'), pa.ArrowInvalid),
    (CancelledError("stop"), flight.FlightCancelledError),
    (ExecutionError("rank 1 failed"), flight.FlightInternalError),
    (InvalidValueError("Conversion Error: Could not convert string 'x' to INT32"), pa.ArrowInvalid),
    (CommError("lost rank"), flight.FlightInternalError),
    (InternalError("bug"), flight.FlightInternalError),
    (ZeroDivisionError("oops"), flight.FlightInternalError),
    (UnsupportedRequest("transactions"), NotImplementedError),
    (ShuttingDown("bye"), flight.FlightUnavailableError),
])
def test_error_mapping_keeps_the_message(error, expected):
    mapped = to_flight_error(error)
    # The mapped classes are subclasses that drop the server-side traceback; the status code
    # the client sees follows from the base class.
    assert isinstance(mapped, expected)
    assert str(error) in str(mapped)


def test_a_temporary_table_is_named_as_its_session_knows_it():
    """A temp table is stored under a hidden name (engine/temp_tables.py); errors name it as the
    client wrote it."""
    from engine.leftovers import TEMP_MARK
    mapped = to_flight_error(PlanError(f"table tt{TEMP_MARK}0bbfd16a00001ef3edb04fc1 has 1 columns but 2 values"))
    assert isinstance(mapped, pa.ArrowInvalid) and str(mapped) == "PlanError: table tt has 1 columns but 2 values"


def test_client_message_drops_the_traceback_detail():
    raw = "INVALID_ARGUMENT: [FlightSQL] ParseError: bad. Detail: Python exception: Traceback (most recent ..."
    assert client_message(Exception(raw)) == "INVALID_ARGUMENT: [FlightSQL] ParseError: bad"


# --- the query runner ------------------------------------------------------------------------------


class _SlowSession:
    """Records which threads call it; `sleep` jobs stop early when cancelled."""

    def __init__(self):
        self.threads: set[str] = set()
        self.cancelled = threading.Event()
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def sleep(self, seconds: float):
        self.threads.add(threading.current_thread().name)
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if self.cancelled.is_set():
                    self.cancelled.clear()
                    raise CancelledError("interrupted")
                time.sleep(0.01)
            return seconds
        finally:
            with self._lock:
                self.active -= 1

    def cancel(self, token=None, reason=""):
        self.cancelled.set()


def test_runner_runs_jobs_one_at_a_time_on_one_thread():
    session = _SlowSession()
    runner = QueryRunner(session)
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(runner.run(f"j{i}", lambda s, t: s.sleep(0.05))))
               for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [0.05] * 6
    assert session.max_active == 1
    assert session.threads == {"flocksql-query-runner"}
    assert runner.stop()


def test_runner_cancels_running_and_queued_jobs():
    session = _SlowSession()
    runner = QueryRunner(session)
    running = runner.submit("long", lambda s, t: s.sleep(30))
    queued = runner.submit("next", lambda s, t: s.sleep(30))
    while runner.current is not running:
        time.sleep(0.01)
    assert runner.cancel(queued, "test")
    assert runner.cancel(running, "test")
    with pytest.raises(CancelledError, match="test"):
        runner.wait(running)
    with pytest.raises(CancelledError, match="queued"):
        runner.wait(queued)
    assert runner.run("after", lambda s, t: s.sleep(0.01)) == 0.01
    assert not runner.cancel(running, "again")  # already done
    runner.stop()


def test_runner_timeout():
    session = _SlowSession()
    runner = QueryRunner(session, query_timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(CancelledError, match="timeout of 0.2 s"):
        runner.run("long", lambda s, t: s.sleep(30))
    assert time.monotonic() - started < 5
    assert runner.run("short", lambda s, t: s.sleep(0.05)) == 0.05
    runner.stop()


def test_runner_client_gone_cancels():
    session = _SlowSession()
    runner = QueryRunner(session)
    gone = threading.Event()
    threading.Timer(0.2, gone.set).start()
    with pytest.raises(CancelledError, match="client"):
        runner.run("long", lambda s, t: s.sleep(30), client_gone=gone.is_set)
    assert runner.run("short", lambda s, t: s.sleep(0.01)) == 0.01  # the long job was really stopped
    runner.stop()


def test_runner_stop_fails_waiting_jobs():
    session = _SlowSession()
    runner = QueryRunner(session)
    running = runner.submit("long", lambda s, t: s.sleep(30))
    queued = runner.submit("next", lambda s, t: s.sleep(30))
    while runner.current is not running:
        time.sleep(0.01)
    assert runner.stop(5)
    with pytest.raises(CancelledError):
        runner.wait(running)
    with pytest.raises(ShuttingDown):
        runner.wait(queued)
    with pytest.raises(ShuttingDown):
        runner.submit("late", lambda s, t: 1)
