"""Per-call options a client sends as gRPC headers (an ADBC connection property).

Flight SQL has no per-connection state that a plain GetFlightInfo carries, and ADBC's
`adbc_execute_partitions` sends the same GetFlightInfo as a plain execute. So the one choice a client
makes per call travels as a header, which the ADBC Flight SQL driver sends on every call of a
connection when given the database or connection option `adbc.flight.sql.rpc.call_header.<name>`:

    x-flocksql-partitioned-results: true
        answer queries with one endpoint per rank (parallel fetch) instead of the default single
        endpoint that holds every row. A client that reads only the first endpoint must not set it.

Python: `flight_sql.connect(uri, db_kwargs={PARTITIONED_OPTION: "true"})`. A client that cannot set
headers asks once per session instead: `SET flocksql_partitioned_results = true`, or the Flight SQL
session option of that name (engine/client_session.py).
"""

from __future__ import annotations

import pyarrow.flight as flight

from server.auth import _header

PARTITIONED_HEADER = "x-flocksql-partitioned-results"
# The ADBC Flight SQL option that makes the driver send PARTITIONED_HEADER on every call.
PARTITIONED_OPTION = "adbc.flight.sql.rpc.call_header." + PARTITIONED_HEADER
MIDDLEWARE_KEY = "flocksql-call-options"

_TRUE = {"1", "true", "on", "yes"}
_FALSE = {"0", "false", "off", "no"}


class CallOptions(flight.ServerMiddleware):
    """What one call asked for; None where it did not say."""

    def __init__(self, partitioned: bool | None):
        super().__init__()
        self.partitioned = partitioned


class CallOptionsFactory(flight.ServerMiddlewareFactory):
    """Reads the option headers of each call; calls without any get no middleware (no cost)."""

    def start_call(self, info, headers):
        value = _header(headers, PARTITIONED_HEADER)
        if value is None:
            return None
        text = value.strip().lower()
        if text in _TRUE:
            return CallOptions(True)
        if text in _FALSE:
            return CallOptions(False)
        raise flight.FlightServerError(f"header {PARTITIONED_HEADER} must be true or false, not {value!r}")


def partitioned(context, default: bool, session_choice: bool | None = None) -> bool:
    """Whether this call's query result is published as one endpoint per rank: the call's header
    decides, else the client session's setting (SET flocksql_partitioned_results, or the session
    option of that name), else the server's default."""
    options = context.get_middleware(MIDDLEWARE_KEY) if context is not None else None
    if options is not None and options.partitioned is not None:
        return options.partitioned
    return default if session_choice is None else session_choice

