"""A Flight SQL server that answers every query with one constant row and runs nothing: the floor
under a `select 1` round trip (the client library, gRPC, pyarrow's Flight server and our Flight SQL
layer), which tpch/service_bench.py measures beside FlockSQL's own round trips.

    python -m tpch.flight_floor [--port 0]

Everything but a query's GetFlightInfo and DoGet (GetSqlInfo, prepared statements, sessions) is the
real server's, over an embedded Session of an empty folder.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading

import pyarrow as pa
import pyarrow.flight as flight

from engine.session import Session
from server import wire
from server.flight_sql import FlightSqlServer

ONE_ROW = pa.table({"1": pa.array([1], pa.int32())})
TICKET = b"flocksql-floor"


class FloorServer(FlightSqlServer):
    def get_flight_info(self, context, descriptor):
        if isinstance(self._command(descriptor), (wire.CommandStatementQuery, wire.CommandPreparedStatementQuery)):
            endpoint = flight.FlightEndpoint(TICKET, [])
            return flight.FlightInfo(ONE_ROW.schema, descriptor, [endpoint], ONE_ROW.num_rows, -1)
        return super().get_flight_info(context, descriptor)

    def do_get(self, context, ticket):
        if ticket.ticket == TICKET:
            return flight.RecordBatchStream(ONE_ROW)
        return super().do_get(context, ticket)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flocksql-floor-") as empty:
        server = FloorServer(Session(empty), f"grpc://127.0.0.1:{args.port}")
        print(f"listening on grpc://127.0.0.1:{server.port}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
