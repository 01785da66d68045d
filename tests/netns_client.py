"""The multi-host tests' client, run inside the client namespace (tests/netns_hosts.py) with
`python tests/netns_client.py MODE URI …`; the test reads what it writes. Credentials come from
FLOCKSQL_TEST_USER / FLOCKSQL_TEST_PASSWORD when set.

  run URI OUT SQLFILE…  each query's answer to OUT/<stem>.arrow, or its error to OUT/<stem>.error
  once URI SQL           one query; prints 'ok <rows>' or 'error <message>', exit status 0 either way
  until-ok URI SQL S     retries (a fresh connection each time) until an answer or S seconds;
                         prints 'ok <first value> after <attempts> failed attempts' or fails
  parts URI OUT SQL      the query with partitioned results, each part fetched (raw Flight) from
                         its endpoint's location; writes OUT/parts.arrow (all rows) and prints one
                         'part <rows> <location or ->' line per endpoint
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow as pa

# Every RPC gives up after this long, so that a stuck server fails the test instead of hanging it.
RPC_TIMEOUT_S = "120"


def connect(uri: str):
    kwargs = {f"adbc.flight.sql.rpc.timeout_seconds.{k}": RPC_TIMEOUT_S for k in ("query", "fetch", "update")}
    if os.environ.get("FLOCKSQL_TEST_USER"):
        kwargs.update(username=os.environ["FLOCKSQL_TEST_USER"], password=os.environ["FLOCKSQL_TEST_PASSWORD"])
    return flight_sql.connect(uri, db_kwargs=kwargs, autocommit=True)


def query(uri: str, sql: str) -> pa.Table:
    with connect(uri) as con, con.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def main(argv: list[str]) -> int:
    mode, uri, *rest = argv
    if mode == "run":
        out = Path(rest[0])
        for path in map(Path, rest[1:]):
            try:
                table = query(uri, path.read_text())
            except Exception as exc:  # noqa: BLE001 - reported to the test
                (out / f"{path.stem}.error").write_text(f"{type(exc).__name__}: {exc}")
                continue
            with pa.OSFile(str(out / f"{path.stem}.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
                w.write_table(table)
        return 0
    if mode == "once":
        try:
            print(f"ok {query(uri, rest[0]).num_rows}", flush=True)
        except Exception as exc:  # noqa: BLE001
            print(f"error {type(exc).__name__}: {exc}", flush=True)
        return 0
    if mode == "until-ok":
        sql, within = rest[0], float(rest[1])
        deadline, failures, last = time.monotonic() + within, 0, None
        while time.monotonic() < deadline:
            try:
                value = query(uri, sql).column(0)[0].as_py()
                print(f"ok {value} after {failures} failed attempts", flush=True)
                return 0
            except Exception as exc:  # noqa: BLE001 - refused while the flock restarts
                failures, last = failures + 1, exc
                time.sleep(0.25)
        print(f"no answer within {within} s after {failures} attempts; last: {last}", flush=True)
        return 1
    if mode == "parts":
        out, sql = Path(rest[0]), rest[1]
        tables = []
        for rows, location, table in fetch_parts(uri, sql):
            print(f"part {rows} {location or '-'}", flush=True)
            tables.append(table)
        table = pa.concat_tables(tables)
        with pa.OSFile(str(out / "parts.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
        return 0
    raise SystemExit(f"unknown mode {mode}")


def fetch_parts(uri: str, sql: str):
    """(rows, location, table) per endpoint of `sql` asked with partitioned results."""
    import pyarrow.flight as flight
    from server import wire
    from server.call_options import PARTITIONED_HEADER

    client = flight.connect(uri)
    headers = [(PARTITIONED_HEADER.encode(), b"true")]
    if os.environ.get("FLOCKSQL_TEST_USER"):
        headers.append(client.authenticate_basic_token(os.environ["FLOCKSQL_TEST_USER"],
                                                       os.environ["FLOCKSQL_TEST_PASSWORD"]))
    options = flight.FlightCallOptions(headers=headers, timeout=float(RPC_TIMEOUT_S))
    info = client.get_flight_info(flight.FlightDescriptor.for_command(wire.CommandStatementQuery(sql).pack()), options)
    for endpoint in info.endpoints:
        location = endpoint.locations[0].uri.decode() if endpoint.locations else None
        source = flight.connect(location) if location else client
        table = source.do_get(endpoint.ticket, options).read_all()
        yield table.num_rows, location, table


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
