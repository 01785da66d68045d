"""A Flight SQL server in front of a FlockSQL Session.

How a query travels (the ADBC driver always prepares first):

    DoAction CreatePreparedStatement      -> handle, and the result schema when the engine can plan it
    DoPut CommandPreparedStatementQuery   -> bound parameter rows, when the client binds any
    GetFlightInfo CommandPreparedStatementQuery (or CommandStatementQuery)
        plans a query (which DoGet then streams: one endpoint that holds every row) or runs a
        statement and keeps its result; with the partitioned-results option
        (server/call_options.py) a query runs at once and each rank keeps its part, served by
        that rank's own endpoint (server/part_server.py; rank 0's here), in rank order
    DoGet ticket                          -> that rank's table as record batches of bounded size
    DoAction ClosePreparedStatement

Statements run inside GetFlightInfo, so the FlightInfo schema is the schema of the real result and a
client that cancels (or times out) its GetFlightInfo call cancels the query on the ranks. A kept
result is served once per ticket and then dropped, or dropped after RESULT_TTL_S.

Implemented commands: CommandStatementQuery, CommandStatementUpdate, CommandPreparedStatementQuery,
CommandPreparedStatementUpdate, CommandGetSqlInfo, CommandGetXdbcTypeInfo, CommandGetCatalogs,
CommandGetDbSchemas, CommandGetTables, CommandGetTableTypes, CommandGetPrimaryKeys,
CommandGetExportedKeys, CommandGetImportedKeys, CommandGetCrossReference (the key commands answer
empty: FlockSQL tables have no keys). Actions: CreatePreparedStatement, ClosePreparedStatement,
CancelFlightInfo, CancelQuery. Not implemented (UNIMPLEMENTED): transactions and savepoints,
Substrait plans, bulk ingest (CommandStatementIngest), PollFlightInfo, session options.

`EXPLAIN [ANALYZE] <statement>` is answered by `Session.explain` as a one-column table `explain`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.flight as flight

from engine.errors import CancelledError, FlockError, InternalError, NotSupportedError
from engine import client_session as cs
from engine.lanes import QueryToken
from engine.system_catalog import qualified
from engine.temp_tables import is_temp_name
from server import call_options, metadata, sessions, wire
from server.auth import NoOpAuthHandler, PasswordAuthMiddlewareFactory
from server.errors import RequestError, UnsupportedRequest, flight_call, to_flight_error
from server.feed import Feed, InlineFeed
from server.runner import QueryRunner

log = logging.getLogger("flocksql.server")

# Target size of one record batch sent by DoGet, in bytes. gRPC clients refuse messages over
# 16 MiB by default; a margin below leaves room for IPC framing and for uneven variable-width rows.
MAX_BATCH_BYTES = 4 * 1024 * 1024
# A result not fetched within this many seconds of its GetFlightInfo is dropped.
RESULT_TTL_S = 600.0
# Computed results kept for their DoGet (partitioned results, DDL) hold at most this many bytes
# together; the oldest are dropped first. Streamed results hold nothing until fetched.
MAX_RESULT_BYTES = 1 * 2**30
# A prepared statement unused for this many seconds is dropped (clients normally close them).
PREPARED_TTL_S = 6 * 3600.0
# Once the flock is lost, how long rank 0 waits for the calls in flight to answer their clients, and
# then for gRPC to send those answers, in seconds (the process ends after: engine/lifeline.py).
LOST_CALLS_WAIT_S = 1.5
ANSWER_FLUSH_S = 0.2
# The longest SQL text accepted, in UTF-8 bytes: parsing and planning a huge text would hold the
# ranks for everyone (TPC-H's longest query is under 2 KiB).
MAX_SQL_BYTES = 1024 * 1024

_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(?:(ANALYZE)\s+)?(.*?)[\s;]*$", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Tunables of one server; each documented where it is defined above.

    partitioned_results: the default for calls that do not say (server/call_options.py): answer a
      query with one endpoint per rank (Session.execute_partitions) rather than one endpoint that
      holds the whole result (Session.execute). Off, so that a client that reads only the first
      endpoint (flightsql-dbapi does) still gets every row; clients opt in per connection.
    """

    max_batch_bytes: int = MAX_BATCH_BYTES
    result_ttl_s: float = RESULT_TTL_S
    prepared_ttl_s: float = PREPARED_TTL_S
    query_timeout_s: float | None = None
    max_sql_bytes: int = MAX_SQL_BYTES
    partitioned_results: bool = False
    max_result_bytes: int = MAX_RESULT_BYTES


# --- kept results and prepared statements --------------------------------------------------------


@dataclass(slots=True)
class PendingStream:
    """A planned query whose DoGet runs it, streaming (Session.stream); `token` cancels it."""

    sql: str
    params: list | None
    schema: pa.Schema
    token: QueryToken = field(default_factory=QueryToken)
    client: object = None  # the ClientSession that asked for it
    alone: bool = False  # no rank but rank 0 takes part (see Session.streams_on_rank0_alone)


@dataclass(slots=True)
class _Result:
    parts: dict[int, pa.Table | PendingStream]
    expires_at: float
    nbytes: int


def _nbytes(part: pa.Table | PendingStream) -> int:
    # get_total_buffer_size, not nbytes: nbytes raises for view types (string_view).
    return part.get_total_buffer_size() if isinstance(part, pa.Table) else 0


class ResultStore:
    """Results of GetFlightInfo calls, kept until each part has been fetched once: computed tables,
    or pending streams that cost nothing until fetched. Computed results expire after `ttl_s`, and
    the oldest go first while all together hold more than `max_bytes`."""

    def __init__(self, ttl_s: float, max_bytes: int | None = None):
        self._ttl_s = ttl_s
        self._max_bytes = max_bytes
        self._results: dict[str, _Result] = {}
        self._lock = threading.Lock()

    def put(self, parts: list[pa.Table | PendingStream] | dict[int, pa.Table], result_id: str | None = None) -> str:
        """Keeps `parts` (a list, or parts by number) under `result_id` (default: a new one)."""
        result_id = result_id or uuid.uuid4().hex
        now = time.monotonic()
        parts = parts if isinstance(parts, dict) else dict(enumerate(parts))
        result = _Result(parts, now + self._ttl_s, sum(_nbytes(p) for p in parts.values()))
        with self._lock:
            self._results = {k: r for k, r in self._results.items() if r.expires_at > now}
            self._results[result_id] = result
            if self._max_bytes is not None:
                held = sum(r.nbytes for r in self._results.values())
                for key in list(self._results):  # oldest first (insertion order)
                    if held <= self._max_bytes or key == result_id:
                        break
                    held -= self._results.pop(key).nbytes
        return result_id

    def take(self, result_id: str, part: int) -> pa.Table | PendingStream:
        with self._lock:
            result = self._results.get(result_id)
            table = result.parts.pop(part, None) if result else None
            if table is not None:
                result.nbytes -= _nbytes(table)
            if result is not None and not result.parts:
                del self._results[result_id]
        if table is None:
            raise RequestError("unknown, expired, cancelled or already fetched ticket")
        return table

    def drop(self, result_id: str) -> bool:
        with self._lock:
            result = self._results.pop(result_id, None)
        if result is None:
            return False
        for part in result.parts.values():
            if isinstance(part, PendingStream):
                part.token.cancel("the client cancelled the FlightInfo")
        return True

    @property
    def held_bytes(self) -> int:
        with self._lock:
            return sum(r.nbytes for r in self._results.values())


@dataclass(slots=True)
class PreparedStatement:
    sql: str
    dataset_schema: pa.Schema | None
    param_sets: list[list] | None = None  # one list of values per bound row
    last_used: float = field(default_factory=time.monotonic)


def _ticket(result_id: str, part: int) -> flight.Ticket:
    return flight.Ticket(wire.TicketStatementQuery(f"{result_id}/{part}".encode()).pack())


def parse_ticket(ticket: flight.Ticket) -> tuple[str, int]:
    try:
        cmd = wire.decode_command(ticket.ticket)
        if not isinstance(cmd, wire.TicketStatementQuery):
            raise wire.WireError(f"a {type(cmd).__name__} is not a ticket")
        result_id, _, part = cmd.statement_handle.decode().partition("/")
        return result_id, int(part)
    except (wire.WireError, ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"malformed ticket: {exc}") from None


def _refuse_transaction(transaction_id: bytes | None, client=None) -> None:
    """A statement may name only its session's open transaction (BeginTransaction)."""
    if transaction_id and (client is None or transaction_id != getattr(client, "transaction_id", None)):
        raise RequestError("unknown or ended transaction: statements name the one BeginTransaction gave "
                           "this session")


def record_batches(table: pa.Table, max_bytes: int) -> list[pa.RecordBatch]:
    """`table` as record batches of at most about `max_bytes` each (always at least one row).

    Sizes come from `RecordBatch.nbytes`, which counts only the sliced range of each buffer; that
    holds for every type except the view types, which `transfer_table` replaces beforehand.
    """
    out: list[pa.RecordBatch] = []
    for batch in table.to_batches():
        pending = [batch]
        while pending:
            piece = pending.pop()
            if piece.num_rows > 1 and piece.nbytes > max_bytes:
                rows = max(1, int(piece.num_rows * max_bytes / piece.nbytes))
                # Split, then check each piece again: variable-width rows may be uneven.
                pending.append(piece.slice(rows))
                pending.append(piece.slice(0, rows))
            else:
                out.append(piece)
    return out


def transfer_table(table: pa.Table) -> pa.Table:
    """`table` with string_view/binary_view columns as plain string/binary.

    A slice of a view column drags all its data buffers into every IPC message, which would break
    the bound on message sizes, and many Flight SQL clients do not read view types at all.
    """

    def plain(t: pa.DataType, large: bool) -> pa.DataType:
        if pa.types.is_string_view(t):
            return pa.large_utf8() if large else pa.utf8()
        if pa.types.is_binary_view(t):
            return pa.large_binary() if large else pa.binary()
        return t

    if not any(pa.types.is_string_view(t) or pa.types.is_binary_view(t) for t in table.schema.types):
        return table
    for large in (False, True):  # 64-bit offsets only past 2 GiB of values in one chunk
        schema = pa.schema([f.with_type(plain(f.type, large)) for f in table.schema], metadata=table.schema.metadata)
        try:
            return table.cast(schema)
        except pa.ArrowInvalid:
            if large:
                raise
    raise AssertionError("unreachable")


def transfer_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` as transfer_table sends it: view types as plain string/binary. Kept per schema:
    each query's GetFlightInfo asks, and casting an empty table costs ~70 µs a column."""
    key = schema.serialize().to_pybytes()  # exact, metadata included (== and hash ignore it)
    sent = _transfer_schemas.get(key)
    if sent is None:
        if len(_transfer_schemas) >= TRANSFER_SCHEMAS_MAX:
            _transfer_schemas.clear()
        sent = _transfer_schemas[key] = transfer_table(schema.empty_table()).schema
    return sent


_transfer_schemas: dict[bytes, pa.Schema] = {}
TRANSFER_SCHEMAS_MAX = 1024


def conform_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` as sent in `schema` (a transfer_schema): view types plain, the announced types."""
    table = transfer_table(table)
    if table.schema.equals(schema):
        return table
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InternalError(f"ranks returned results of different schemas: {exc}") from None


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """`batch` in the announced `schema` (view types plain; the types the plan's schema said)."""
    if batch.schema.equals(schema):
        return batch
    if batch.num_rows == 0:
        return pa.RecordBatch.from_pylist([], schema=schema)
    try:
        return pa.Table.from_batches([batch]).cast(schema).combine_chunks().to_batches()[0]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InternalError(f"a streamed batch does not fit the announced schema: {exc}") from None


def _uniform_schema(parts: list[pa.Table]) -> tuple[pa.Schema, list[pa.Table]]:
    """One schema for all parts: clients check every endpoint's schema against the first."""
    parts = [transfer_table(p) for p in parts]
    reference = next((p.schema for p in parts if p.num_rows), parts[0].schema)
    return reference, [conform_table(part, reference) for part in parts]


def _affected_rows(table: pa.Table) -> int:
    """The row count a DDL or DML statement reports (DuckDB style: one row, one `Count` column)."""
    if table.num_columns == 1 and table.num_rows == 1 and pa.types.is_integer(table.schema.types[0]):
        value = table.column(0)[0].as_py()
        return -1 if value is None else int(value)
    return 0 if table.num_rows == 0 else -1


def _param_sets(reader: flight.MetadataRecordBatchReader) -> list[list]:
    rows: list[list] = []
    for chunk in reader:
        if chunk.data is not None:
            columns = [column.to_pylist() for column in chunk.data.columns]
            rows.extend(list(row) for row in zip(*columns))
    return rows


# --- the server ----------------------------------------------------------------------------------


# The statement warm_up plans and runs.
WARM_UP_SQL = "SELECT 1"


class FlightSqlServer(flight.FlightServerBase):
    """Serves one Session over Flight SQL; it starts listening as soon as it is constructed."""

    def __init__(
        self,
        session,
        location: str | flight.Location,
        *,
        settings: ServerSettings = ServerSettings(),
        user: str | None = None,
        password: str | None = None,
        tls_certificates: list[tuple[bytes, bytes]] | None = None,
    ):
        if (user is None) != (password is None):
            raise ValueError("give both a user name and a password, or neither")
        # Everything a handler touches exists before the base class starts serving.
        self.settings = settings
        self.runner = QueryRunner(session, settings.query_timeout_s)
        self.results = ResultStore(settings.result_ttl_s, settings.max_result_bytes)
        self._prepared: dict[bytes, PreparedStatement] = {}
        self._prepared_lock = threading.Lock()
        self._streams: set[QueryToken] = set()  # tokens of the queries DoGet calls stream now
        self._streams_lock = threading.Lock()
        self.sessions = sessions.Sessions(on_close=self._end_session)
        if hasattr(session, "keep_parts"):  # rank 0's part of a partitioned result waits here
            session.part_keeper = self._keep_part
        self._lost: BaseException | None = None  # set when a rank dies: every call fails with it
        if getattr(session, "lifeline", None) is not None:
            session.lifeline.on_lost(self._flock_lost)
        middleware = {call_options.MIDDLEWARE_KEY: call_options.CallOptionsFactory(),
                      sessions.MIDDLEWARE_KEY: sessions.SessionCookieFactory()}
        if user is not None:
            middleware["auth"] = PasswordAuthMiddlewareFactory(user, password)
        super().__init__(
            location,
            auth_handler=NoOpAuthHandler(),
            tls_certificates=tls_certificates,
            middleware=middleware,
        )

    def warm_up(self) -> None:
        """Pays, before the server says it listens, what its first client would: pyarrow's lazy
        import of pandas behind GetSqlInfo (which ADBC calls on connect), the parser's DuckDB
        cursor, and the planning and run of a first statement. Measured on the 2-core VM (ADBC's
        driver loaded beforehand), a fresh server's first connection took 90-98 ms where later
        ones take 5-14 ms; with the warm-up, 9-14 ms.
        Nothing of it is a client's query: the query log and the metrics stay empty."""
        def first_statement(session):
            if hasattr(session, "prepare"):
                session.prepare(WARM_UP_SQL)
                session.execute(WARM_UP_SQL)
        try:
            metadata.sql_info_table(())
            self.runner.unlogged("warm-up", first_statement)
        except Exception as exc:  # noqa: BLE001 - a failed warm-up costs the first client time, no more
            log.warning("warm-up failed: %s", exc)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop running queries and stop serving; waits at most about `timeout_s` for each."""
        with self._streams_lock:
            streams = list(self._streams)
        for token in streams:
            token.cancel("the server is shutting down")
        if not self.runner.stop(timeout_s):
            log.warning("the running query did not stop within %g s of its cancellation", timeout_s)
        stopper = threading.Thread(target=self.shutdown, name="flocksql-flight-shutdown", daemon=True)
        stopper.start()
        stopper.join(timeout_s)

    # --- Flight RPCs -----------------------------------------------------------------------------

    @flight_call
    def get_flight_info(self, context, descriptor):
        cmd = self._command(descriptor)
        if isinstance(cmd, wire.CommandStatementQuery):
            _refuse_transaction(cmd.transaction_id, self.sessions.of(context))
            sql, param_sets = self._sql(cmd.query), None
        elif isinstance(cmd, wire.CommandPreparedStatementQuery):
            prepared = self._prepared_statement(cmd.prepared_statement_handle)
            sql, param_sets = prepared.sql, prepared.param_sets
        else:
            return self._publish(descriptor, [self._metadata_table(cmd, context)])
        client = self.sessions.of(context)
        pending = self._pending_stream(sql, param_sets, context, client)
        if pending is not None:
            endpoint = flight.FlightEndpoint(_ticket(self.results.put([pending]), 0), [])
            return flight.FlightInfo(pending.schema, descriptor, [endpoint], total_records=-1, total_bytes=-1,
                                     ordered=True)
        kept = self._kept_parts(sql, param_sets, context, client)
        if kept is not None:
            return self._publish_kept(descriptor, kept)
        return self._publish(descriptor, self._run_statement(sql, param_sets, context, client))

    @flight_call
    def get_schema(self, context, descriptor):
        cmd = self._command(descriptor)
        if isinstance(cmd, wire.CommandStatementQuery):
            _refuse_transaction(cmd.transaction_id, self.sessions.of(context))
            schema = self._plan_schema(self._sql(cmd.query), context)
        elif isinstance(cmd, wire.CommandPreparedStatementQuery):
            prepared = self._prepared_statement(cmd.prepared_statement_handle)
            schema = prepared.dataset_schema or self._plan_schema(prepared.sql, context)
        else:
            schema = self._metadata_table(cmd, context, schema_only=True).schema
        return flight.SchemaResult(schema)

    @flight_call
    def do_get(self, context, ticket):
        result_id, part = parse_ticket(ticket)
        table = self.results.take(result_id, part)
        if isinstance(table, PendingStream):
            return flight.GeneratorStream(table.schema, self._streamed(table, context))
        batches = record_batches(table, self.settings.max_batch_bytes)
        return flight.RecordBatchStream(pa.RecordBatchReader.from_batches(table.schema, batches))

    @flight_call
    def do_put(self, context, descriptor, reader, writer):
        cmd = self._command(descriptor)
        if isinstance(cmd, wire.CommandStatementUpdate):
            _refuse_transaction(cmd.transaction_id, self.sessions.of(context))
            count = self._run_update(self._sql(cmd.query), None, context)
            writer.write(pa.py_buffer(wire.DoPutUpdateResult(count).encode()))
        elif isinstance(cmd, wire.CommandPreparedStatementQuery):
            prepared = self._prepared_statement(cmd.prepared_statement_handle)
            prepared.param_sets = _param_sets(reader)
            result = wire.DoPutPreparedStatementResult(cmd.prepared_statement_handle)
            writer.write(pa.py_buffer(result.encode()))
        elif isinstance(cmd, wire.CommandPreparedStatementUpdate):
            prepared = self._prepared_statement(cmd.prepared_statement_handle)
            bound = _param_sets(reader)
            count = self._run_update(prepared.sql, bound or prepared.param_sets, context)
            writer.write(pa.py_buffer(wire.DoPutUpdateResult(count).encode()))
        elif isinstance(cmd, wire.CommandStatementIngest):
            count = self._ingest(cmd, reader, context)
            writer.write(pa.py_buffer(wire.DoPutUpdateResult(count).encode()))
        else:
            raise RequestError(f"{type(cmd).__name__} is not a DoPut command")

    def list_actions(self, context):
        return [
            ("CreatePreparedStatement", "Prepare a SQL statement (ActionCreatePreparedStatementRequest)"),
            ("ClosePreparedStatement", "Close a prepared statement (ActionClosePreparedStatementRequest)"),
            ("CancelFlightInfo", "Cancel the query of a FlightInfo and drop its result"),
            ("CancelQuery", "Deprecated Flight SQL form of CancelFlightInfo"),
            ("SetSessionOptions", "Set the session's options (schema, TimeZone)"),
            ("GetSessionOptions", "The session's options (catalog, schema and settings)"),
            ("CloseSession", "End the session: its settings go"),
            ("BeginTransaction", "BEGIN: accepted, but every statement commits on its own (autocommit)"),
            ("EndTransaction", "COMMIT, or ROLLBACK (which says what it cannot undo)"),
        ]

    @flight_call
    def do_action(self, context, action):
        body = action.body.to_pybytes() if action.body is not None else b""
        kind = action.type
        if kind == "CreatePreparedStatement":
            request = self._decode_action(body, wire.ActionCreatePreparedStatementRequest)
            _refuse_transaction(request.transaction_id, self.sessions.of(context))
            return [flight.Result(self._create_prepared(self._sql(request.query), context).pack())]
        if kind == "ClosePreparedStatement":
            request = self._decode_action(body, wire.ActionClosePreparedStatementRequest)
            with self._prepared_lock:
                self._prepared.pop(request.prepared_statement_handle, None)
            return []
        if kind == "CancelFlightInfo":
            request = self._decode_action(body, wire.CancelFlightInfoRequest, bare=True)
            status = self._cancel(request.info)
            return [flight.Result(wire.CancelFlightInfoResult(status).encode())]
        if kind == "CancelQuery":
            request = self._decode_action(body, wire.ActionCancelQueryRequest)
            status = self._cancel(request.info)
            return [flight.Result(wire.ActionCancelQueryResult(status).pack())]
        if kind == "SetSessionOptions":
            return [flight.Result(self._set_session_options(body, context))]
        if kind == "GetSessionOptions":
            client = self.sessions.of(context)
            return [flight.Result(sessions.encode_get_result(sessions.options_of(client)))]
        if kind == "BeginTransaction":
            self._decode_action(body, wire.ActionBeginTransactionRequest)
            client = self.sessions.of(context)
            self.runner.metadata("BEGIN", lambda session: session.execute("BEGIN", client=client), context.is_cancelled)
            client.transaction_id = uuid.uuid4().bytes
            return [flight.Result(wire.ActionBeginTransactionResult(client.transaction_id).pack())]
        if kind == "EndTransaction":
            request = self._decode_action(body, wire.ActionEndTransactionRequest)
            client = self.sessions.of(context)
            _refuse_transaction(request.transaction_id or b"?", client)
            verb = "ROLLBACK" if request.action == wire.ActionEndTransactionRequest.ROLLBACK else "COMMIT"
            client.transaction_id = None
            self.runner.metadata(verb, lambda session: session.execute(verb, client=client), context.is_cancelled)
            return []
        if kind == "CloseSession":
            return [flight.Result(sessions.encode_close_result(self.sessions.close(context)))]
        raise UnsupportedRequest(f"action {kind!r}")

    # --- statements -------------------------------------------------------------------------------

    def _sql(self, text: str) -> str:
        """`text`, if it is within the server's limit on SQL text size."""
        size = len(text.encode("utf-8"))
        if size > self.settings.max_sql_bytes:
            raise RequestError(f"the SQL text is {size} bytes long, over this server's limit of "
                               f"{self.settings.max_sql_bytes} bytes (flocksql serve --max-sql-bytes)")
        return text

    def _run_statement(self, sql: str, param_sets: list[list] | None, context, client=None) -> list[pa.Table]:
        client = client or self.sessions.of(context)
        explain = _EXPLAIN.match(sql)
        if explain:
            def run(session, token):  # the statement's own options (ANALYZE, VERBOSE, FORMAT)
                return [pa.table({"explain": [session.explain(sql.strip().rstrip(";"), token=token)]})]

        elif param_sets is not None and len(param_sets) > 1:
            # Several bound rows run as one job, one after the other, their results concatenated.
            def run(session, token):
                tables = [session.execute(sql, params, token=token, client=client) for params in param_sets]
                return [pa.concat_tables(tables, promote_options="permissive")]

        else:
            params = param_sets[0] if param_sets else None
            if self._partitioned(context, client):
                def run(session, token):
                    return list(session.execute_partitions(sql, params, token=token, client=client))
            else:
                def run(session, token):
                    return [session.execute(sql, params, token=token, client=client)]

        return self.runner.run(_label(sql), run, context.is_cancelled, sql=sql)

    def _kept_parts(self, sql: str, param_sets: list[list] | None, context, client):
        """A query whose client asked for partitioned results, run with each rank's part left on
        that rank (Session.keep_parts, server/part_server.py); None for everything else."""
        if (not hasattr(self.runner.session, "keep_parts") or _EXPLAIN.match(sql)
                or (param_sets is not None and len(param_sets) > 1)
                or not self._partitioned(context, client)):
            return None
        params = param_sets[0] if param_sets else None
        return self.runner.run(_label(sql), lambda session, token: session.keep_parts(
            sql, params, token=token, client=client), context.is_cancelled, sql=sql)

    def _partitioned(self, context, client) -> bool:
        return call_options.partitioned(context, self.settings.partitioned_results, cs.partitioned_results(client))

    def _keep_part(self, result_id: str, table: pa.Table, schema: pa.Schema) -> None:
        self.results.put({0: conform_table(table, transfer_schema(schema))}, result_id=result_id)

    def _publish_kept(self, descriptor, kept) -> flight.FlightInfo:
        """One endpoint per part (the ranks that hold rows, or one empty part), each at its rank's
        own server; rank 0's at this one (no location)."""
        parts = kept.parts
        endpoints = [flight.FlightEndpoint(_ticket(kept.result_id, p.rank), [p.location] if p.location else [])
                     for p in parts]
        return flight.FlightInfo(transfer_schema(kept.schema), descriptor, endpoints,
                                 total_records=sum(p.rows for p in parts), total_bytes=sum(p.nbytes for p in parts),
                                 ordered=True)

    def _pending_stream(self, sql: str, param_sets: list[list] | None, context, client) -> PendingStream | None:
        """A plain query that a single endpoint serves, planned (errors in it surface now) but not
        run: its DoGet streams it. None for what runs at once here (statements, EXPLAIN, several
        parameter rows, partitioned results) or a Session that cannot stream."""
        if (not hasattr(self.runner.session, "stream") or _EXPLAIN.match(sql)
                or (param_sets is not None and len(param_sets) > 1)
                or self._partitioned(context, client)):
            return None
        params = param_sets[0] if param_sets else None
        if not self.runner.metadata(_label(sql), lambda session: session.is_query(sql, params, client=client),
                                    context.is_cancelled):
            return None
        schema = self.runner.metadata(_label(sql), lambda session: session.result_schema(sql, params, client=client),
                                      context.is_cancelled)
        alone = getattr(self.runner.session, "streams_on_rank0_alone", None)
        return PendingStream(sql, params, transfer_schema(schema), client=client,
                             alone=alone is not None and alone(sql, params, client=client))

    def _streamed(self, pending: PendingStream, context):
        """DoGet of a pending stream: the query runs as the client reads; the server's query
        timeout, the client going away and CancelFlightInfo all stop it on every rank. The batches
        are computed on a thread of their own (server/feed.py), so that a lost flock is answered
        even while that thread is stuck in an MPI call."""
        token = pending.token
        timer = None
        if self.settings.query_timeout_s:
            timer = threading.Timer(self.settings.query_timeout_s, token.cancel,
                                    (f"it ran past the server's query timeout of {self.settings.query_timeout_s:g} s",))
            timer.daemon = True
            timer.start()
        feed = None
        with self._streams_lock:
            self._streams.add(token)
        record, rows, error = self.runner.log.queued(_label(pending.sql), pending.sql, token.cancel), 0, None
        self.runner.log.running(record)

        def give_up() -> BaseException | None:
            if self._lost is not None:
                return self._lost
            if context.is_cancelled():
                token.cancel("the client cancelled the call")
                return CancelledError("query cancelled: the client cancelled the call")
            return None

        try:
            if self._lost is not None:
                raise self._lost
            feed = (InlineFeed if pending.alone else Feed)(
                lambda: self.runner.session.stream(pending.sql, pending.params, token, client=pending.client)[1])
            while (batch := feed.next_batch(give_up)) is not None:
                if self._lost is not None:  # not one batch more: the client must hear it while we live
                    raise self._lost
                rows += batch.num_rows
                batch = _conform(batch, pending.schema)
                yield from record_batches(pa.Table.from_batches([batch]), self.settings.max_batch_bytes)
        except GeneratorExit:
            error = CancelledError("the client stopped reading")
            raise
        except BaseException as exc:  # noqa: BLE001 - every error must become a Flight status
            error = exc
            raise to_flight_error(exc) from None
        finally:
            if timer is not None:
                timer.cancel()
            if feed is not None:
                # Stops the query on every rank if it has not ended; waits for that, unless the
                # flock is lost (the computing thread may never come back).
                feed.close(wait=self._lost is None)
            # After the close: the stream's end brought every rank's statistics.
            self.runner.log.ended(record, token.stats, error or (CancelledError(token.reason) if token.cancelled
                                                                 else None), rows)
            with self._streams_lock:
                self._streams.discard(token)

    def _flock_lost(self, lost) -> None:
        """A rank died (engine/lifeline.py calls this on rank 0 before it ends the process): every
        call in flight and every new one fails with Flight UNAVAILABLE naming the lost rank; returns
        once those in flight have answered (at most about LOST_CALLS_WAIT_S)."""
        error = lost.error()
        self._lost = error
        self.runner.fail(error)
        deadline = time.monotonic() + LOST_CALLS_WAIT_S
        while (self.runner.waiting or self._streams) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(ANSWER_FLUSH_S)

    def _run_update(self, sql: str, param_sets: list[list] | None, context) -> int:
        client = self.sessions.of(context)

        def run(session, token):
            counts = [_affected_rows(session.execute(sql, params, token=token, client=client))
                      for params in (param_sets or [None])]
            # A query's result is no row count (executemany of a SELECT reports -1, unknown).
            if hasattr(session, "is_query") and session.is_query(sql, (param_sets or [None])[0], client=client):
                return -1
            return -1 if -1 in counts else sum(counts)

        return self.runner.run(_label(sql), run, context.is_cancelled, sql=sql)

    def _plan_schema(self, sql: str, context) -> pa.Schema:
        explain = _EXPLAIN.match(sql)
        if explain:
            return pa.schema([pa.field("explain", pa.utf8())])
        client = self.sessions.of(context)
        return self.runner.metadata(_label(sql), lambda session: session.result_schema(sql, client=client),
                                    context.is_cancelled)

    def _create_prepared(self, sql: str, context) -> wire.ActionCreatePreparedStatementResult:
        client = self.sessions.of(context)
        try:
            # Plans into the Session's plan cache, which the execution then uses.
            schema = (pa.schema([pa.field("explain", pa.utf8())]) if _EXPLAIN.match(sql) else
                      self.runner.metadata(_label(sql), lambda session: session.prepare(sql, client=client),
                                           context.is_cancelled))
        except Exception as exc:  # noqa: BLE001 - the same error reaches the client when it executes
            # DDL, statements with parameters and statements the planner cannot describe without
            # running them have no dataset schema; a real error surfaces on execution.
            log.debug("no result schema at prepare time for %s: %s", _label(sql), exc)
            schema = None
        handle = uuid.uuid4().bytes
        now = time.monotonic()
        with self._prepared_lock:
            self._prepared = {
                h: p for h, p in self._prepared.items() if now - p.last_used < self.settings.prepared_ttl_s
            }
            self._prepared[handle] = PreparedStatement(sql, schema)
        parameters = b""
        if hasattr(self.runner.session, "parameter_schema"):
            try:
                parameters = self.runner.metadata(
                    _label(sql), lambda session: session.parameter_schema(sql, client=client),
                    context.is_cancelled).serialize().to_pybytes()
            except Exception as exc:  # noqa: BLE001 - the statement's own error surfaces when it runs
                log.debug("no parameter schema for %s: %s", _label(sql), exc)
        return wire.ActionCreatePreparedStatementResult(
            prepared_statement_handle=handle,
            dataset_schema=schema.serialize().to_pybytes() if schema is not None else b"",
            parameter_schema=parameters,
        )

    def _end_session(self, client) -> None:
        """A client session closed or expired: its temporary tables go (in the background: an
        expiry is noticed inside another client's call)."""
        if not client.temp or not hasattr(self.runner.session, "end_client"):
            client.close()
            return
        self.runner.submit(f"end session {client.id}", lambda session, token: session.end_client(client))

    def _set_session_options(self, body: bytes, context) -> bytes:
        """SetSessionOptions: each option as the SET it means; the ones refused come back as errors."""
        client = self.sessions.of(context)
        errors = {}
        for name, value in sessions.decode_set_request(body).items():
            try:
                statement = sessions.setting_statement(name, value)
            except ValueError:
                errors[name] = sessions.INVALID_VALUE
                continue
            if statement is None:
                continue
            try:
                self.runner.metadata(f"session option {name}",
                                     lambda session, sql=statement: session.execute(sql, client=client),
                                     context.is_cancelled)
            except NotSupportedError:
                errors[name] = sessions.INVALID_NAME
            except FlockError:
                errors[name] = sessions.INVALID_VALUE
        return sessions.encode_set_result(errors)

    def _ingest(self, cmd: wire.CommandStatementIngest, reader, context) -> int:
        """Bulk ingest (ADBC adbc_ingest, pandas to_sql, Polars write_database): the rows become
        a table of the data folder, created, appended to or replaced as the options say."""
        options = wire.TableDefinitionOptions.decode(cmd.table_definition_options or b"")
        if cmd.temporary:
            raise UnsupportedRequest("temporary tables")
        data = reader.read_all()
        client = self.sessions.of(context)

        def run(session, token):
            return session.ingest(cmd.table, data, options.if_not_exist, options.if_exists, token=token,
                                  client=client, schema=cmd.schema or None, catalog=cmd.catalog or None)

        return self.runner.run(f"ingest into {cmd.table}", run, context.is_cancelled)

    def _prepared_statement(self, handle: bytes) -> PreparedStatement:
        with self._prepared_lock:
            prepared = self._prepared.get(handle)
        if prepared is None:
            raise RequestError("unknown or closed prepared statement handle")
        prepared.last_used = time.monotonic()
        return prepared

    def _publish(self, descriptor, parts: list[pa.Table]) -> flight.FlightInfo:
        if not parts:
            raise InternalError("the engine returned no result tables")
        schema, parts = _uniform_schema(parts)
        result_id = self.results.put(parts)
        endpoints = [flight.FlightEndpoint(_ticket(result_id, i), []) for i in range(len(parts))]
        return flight.FlightInfo(
            schema,
            descriptor,
            endpoints,
            total_records=sum(p.num_rows for p in parts),
            total_bytes=sum(_nbytes(p) for p in parts),
            ordered=True,
        )

    def _cancel(self, serialized_info: bytes) -> int:
        """Cancel the query behind a FlightInfo: drop its kept result and stop it if still running."""
        try:
            info = flight.FlightInfo.deserialize(serialized_info)
            tickets = [parse_ticket(endpoint.ticket) for endpoint in info.endpoints]
        except (pa.ArrowException, RequestError, TypeError) as exc:
            raise RequestError(f"cannot cancel: not a FlightInfo from this server ({exc})") from None
        dropped = {result_id for result_id, _ in tickets if self.results.drop(result_id)}
        return wire.CancelFlightInfoResult.CANCELLED if dropped else wire.CancelFlightInfoResult.NOT_CANCELLABLE

    # --- metadata ----------------------------------------------------------------------------------

    def _metadata_table(self, cmd: wire.Message, context, schema_only: bool = False) -> pa.Table:
        if isinstance(cmd, wire.CommandGetSqlInfo):
            return metadata.sql_info_table(cmd.info)
        if isinstance(cmd, wire.CommandGetXdbcTypeInfo):
            return metadata.xdbc_type_info_table(cmd.data_type)
        if isinstance(cmd, wire.CommandGetCatalogs):
            return metadata.catalogs_table()
        if isinstance(cmd, wire.CommandGetDbSchemas):
            schemas = self.runner.metadata("list schemas", lambda session: list(getattr(
                session.catalog, "schemas", [metadata.DB_SCHEMA])), context.is_cancelled)
            return metadata.db_schemas_table(cmd.catalog, cmd.db_schema_filter_pattern, schemas)
        if isinstance(cmd, wire.CommandGetTableTypes):
            return metadata.table_types_table()
        if isinstance(cmd, wire.CommandGetPrimaryKeys):
            return metadata.primary_keys_table()
        if isinstance(cmd, (wire.CommandGetExportedKeys, wire.CommandGetImportedKeys, wire.CommandGetCrossReference)):
            return metadata.keys_table()
        if isinstance(cmd, wire.CommandGetTables):
            if schema_only:
                return metadata.tables_table([], None, None, None, (), cmd.include_schema)
            tables = self.runner.metadata(
                "list tables", lambda session: _list_tables(session, cmd.include_schema), context.is_cancelled
            )
            return metadata.tables_table(
                tables,
                cmd.catalog,
                cmd.db_schema_filter_pattern,
                cmd.table_name_filter_pattern,
                cmd.table_types,
                cmd.include_schema,
            )
        if isinstance(cmd, (wire.CommandStatementUpdate, wire.CommandPreparedStatementUpdate)):
            raise RequestError(f"{type(cmd).__name__} is sent with DoPut, not GetFlightInfo")
        if isinstance(cmd, wire.CommandStatementSubstraitPlan):
            raise UnsupportedRequest("Substrait plans")
        raise RequestError(f"{type(cmd).__name__} is not a GetFlightInfo command")

    @staticmethod
    def _command(descriptor: flight.FlightDescriptor) -> wire.Message:
        if descriptor.descriptor_type != flight.DescriptorType.CMD:
            raise RequestError("FlockSQL serves Flight SQL commands, not paths")
        try:
            return wire.decode_command(descriptor.command)
        except wire.WireError as exc:
            raise RequestError(str(exc)) from None

    @staticmethod
    def _decode_action(body: bytes, cls: type[wire.Message], bare: bool = False) -> wire.Message:
        try:
            return cls.decode(body) if bare else wire.decode_action_body(body, cls)
        except wire.WireError as exc:
            raise RequestError(f"malformed {cls.__name__}: {exc}") from None


def _list_tables(session, include_schema: bool) -> list[tuple[str, str, pa.Schema | None]]:
    """(name, TABLE or VIEW, schema or None) for every table and view (QueryRunner.metadata)."""
    catalog = session.catalog
    out = []
    for name in catalog.table_names():
        if is_temp_name(name):  # a session's temporary table (engine/temp_tables.py)
            continue
        out.append((name, "TABLE", catalog.table_schema(name) if include_schema else None))
    # Views: the catalog keeps their SQL by name; their schema is that of their query.
    for name in sorted(getattr(catalog, "views", None) or {}):
        if is_temp_name(name):
            continue
        schema = session.result_schema(f"SELECT * FROM {qualified(name)}") if include_schema else None
        out.append((name, "VIEW", schema))
    return out


def _label(sql: str) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= 80 else text[:77] + "..."
