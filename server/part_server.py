"""Each rank's own Flight endpoint for its part of a partitioned result (parallel fetch).

A client that asks for partitioned results (server/call_options.py) gets a FlightInfo with one
endpoint per rank that holds rows: rank 0's part is served by the Flight SQL server itself, every
other rank's by that rank's PartServer, whose location the endpoint names. The parts never pass
through rank 0, so the ranks stream them to the client in parallel.

A PartServer answers DoGet only, for tickets of the parts its rank keeps (Session.keep_parts); each
part is served once, and kept parts expire like rank 0's kept results (time and total bytes). It
listens on the Flight SQL server's address (an ephemeral port) with the same users and TLS
certificate, so a client needs nothing it does not already have.
"""
from __future__ import annotations

import socket

import pyarrow as pa
import pyarrow.flight as flight

from server.auth import NoOpAuthHandler, PasswordAuthMiddlewareFactory
from server.errors import flight_call
from server.flight_sql import (MAX_BATCH_BYTES, MAX_RESULT_BYTES, RESULT_TTL_S, ResultStore, conform_table,
                               parse_ticket, record_batches, transfer_schema)


class PartServer(flight.FlightServerBase):
    """One worker rank's DoGet-only Flight server. It becomes the Session's part keeper: the
    rank's parts of kept results (Session.keep_parts) wait here for their DoGet."""

    def __init__(self, session, host: str, *, user: str | None = None, password: str | None = None,
                 tls_certificates: list | None = None):
        self.rank = session.rank
        self.results = ResultStore(RESULT_TTL_S, MAX_RESULT_BYTES)
        scheme = "grpc+tls" if tls_certificates else "grpc"
        middleware = {"auth": PasswordAuthMiddlewareFactory(user, password)} if user is not None else {}
        super().__init__(f"{scheme}://{_bracketed(host)}:0", auth_handler=NoOpAuthHandler(),
                         tls_certificates=tls_certificates, middleware=middleware)
        self.location = f"{scheme}://{_bracketed(advertised_host(host))}:{self.port}"
        session.part_location = self.location
        session.part_keeper = self.keep

    def keep(self, result_id: str, table: pa.Table, schema: pa.Schema) -> None:
        self.results.put({self.rank: conform_table(table, transfer_schema(schema))}, result_id=result_id)

    @flight_call
    def do_get(self, context, ticket):
        result_id, part = parse_ticket(ticket)
        table = self.results.take(result_id, part)
        batches = record_batches(table, MAX_BATCH_BYTES)
        return flight.RecordBatchStream(pa.RecordBatchReader.from_batches(table.schema, batches))


def advertised_host(host: str) -> str:
    """The address clients use for a server bound to `host`: this machine's name for a wildcard
    address (each rank runs on its own host), the address itself otherwise."""
    return socket.gethostname() if host in ("0.0.0.0", "::", "") else host


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
