"""A test double of engine.session.Session, backed by one DuckDB connection, for the server tests.

It is NOT the engine: it exists so that the Flight SQL server can be tested on its own (protocol,
queueing, cancellation, auth, TLS) whatever state the engine is in. It follows the Session API the
server codes against, raises the engine's error classes, and pretends to have `ranks` ranks by
cutting each result into that many contiguous parts in execute_partitions.

Run as a script, it serves a data folder with server.serve.serve():

    python tests/server_double.py --data DIR --port 0 [--ranks 2] [--user U --password P] ...
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

import duckdb
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.errors import (  # noqa: E402
    CancelledError,
    CatalogError,
    ExecutionError,
    NotSupportedError,
    ParseError,
)


class _Catalog:
    def __init__(self, session: "DuckDBSession"):
        self._session = session

    def _names(self, kind: str) -> list[str]:
        rows = self._session._con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' AND table_type = ?",
            [kind],
        ).fetchall()
        return sorted(r[0] for r in rows)

    def table_names(self) -> list[str]:
        return self._names("BASE TABLE")

    @property
    def views(self) -> dict[str, str]:
        return {name: "" for name in self._names("VIEW")}

    def table_schema(self, name: str) -> pa.Schema:
        if name not in self.table_names():
            raise CatalogError(f"unknown table: {name}")
        return self._session._con.sql(f'SELECT * FROM "{name}" LIMIT 0').to_arrow_table().schema


class DuckDBSession:
    """Session API over DuckDB; every Parquet file NAME.parquet of `data_dir` is a table NAME."""

    def __init__(self, data_dir: str, threads: int | None = None, ranks: int = 1):
        self.ranks = ranks
        self._con = duckdb.connect()
        if threads:
            self._con.execute(f"SET threads = {int(threads)}")
        for path in sorted(Path(data_dir).glob("*.parquet")):
            self._con.execute(f'CREATE TABLE "{path.stem}" AS SELECT * FROM read_parquet(?)', [str(path)])
        self._con.execute("SET enable_external_access = false")
        self._con.execute("SET lock_configuration = true")
        self.catalog = _Catalog(self)
        self._owner: threading.Thread | None = None

    def _check_thread(self) -> None:
        # The server promises to call the Session from one thread at a time; hold it to that.
        me = threading.current_thread()
        if self._owner is None:
            self._owner = me
        elif self._owner is not me:
            raise AssertionError(f"Session used from {me.name} after {self._owner.name}")

    def _run(self, sql: str, params: list | None) -> pa.Table:
        self._check_thread()
        try:
            return self._con.sql(sql, params=params).to_arrow_table() if self._returns_rows(sql) else \
                self._execute(sql, params)
        except duckdb.InterruptException as exc:
            raise CancelledError(f"query cancelled: {exc}") from None
        except duckdb.ParserException as exc:
            raise ParseError(str(exc)) from None
        except (duckdb.CatalogException, duckdb.BinderException) as exc:
            raise CatalogError(str(exc)) from None
        except (duckdb.NotImplementedException, duckdb.PermissionException) as exc:
            raise NotSupportedError(str(exc)) from None
        except duckdb.Error as exc:
            raise ExecutionError(str(exc)) from None

    @staticmethod
    def _returns_rows(sql: str) -> bool:
        head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        return head in ("SELECT", "WITH", "VALUES", "FROM", "(", "TABLE")

    def _execute(self, sql: str, params: list | None) -> pa.Table:
        result = self._con.execute(sql, params) if params else self._con.execute(sql)
        try:
            return result.to_arrow_table()
        except duckdb.InvalidInputException:
            return pa.table({"Count": pa.array([], pa.int64())})

    def execute(self, sql: str, params: list | None = None, token=None, client=None) -> pa.Table:
        return self._run(sql, params)

    def execute_partitions(self, sql: str, params: list | None = None, token=None, client=None) -> list[pa.Table]:
        table = self._run(sql, params)
        size = -(-table.num_rows // self.ranks) if table.num_rows else 0
        return [table.slice(i * size, size) if size else table.slice(0, 0) for i in range(self.ranks)]

    def result_schema(self, sql: str, params=None, client=None) -> pa.Schema:
        self._check_thread()
        if not self._returns_rows(sql):
            raise NotSupportedError("no result schema for a statement that returns no rows")
        try:
            return self._con.sql(sql).limit(0).to_arrow_table().schema
        except duckdb.ParserException as exc:
            raise ParseError(str(exc)) from None
        except (duckdb.CatalogException, duckdb.BinderException) as exc:
            raise CatalogError(str(exc)) from None
        except duckdb.Error as exc:
            raise ExecutionError(str(exc)) from None

    def prepare(self, sql: str, client=None) -> pa.Schema | None:
        return self.result_schema(sql)

    def explain(self, sql: str, analyze: bool = False, token=None) -> str:
        if not sql.lstrip().upper().startswith("EXPLAIN"):
            sql = ("EXPLAIN ANALYZE " if analyze else "EXPLAIN ") + sql
        rows = self._run(sql, None).to_pylist()
        return "\n".join(str(r.get("explain_value", r)) for r in rows)

    def cancel(self, token=None, reason: str = "cancelled") -> None:
        self._con.interrupt()

    def close(self) -> None:
        self._con.close()


def main(argv: list[str] | None = None) -> int:
    from server.serve import ServeError, serve

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ranks", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--insecure", action="store_true")
    parser.add_argument("--query-timeout", type=float)
    parser.add_argument("--max-batch-bytes", type=int)
    args = parser.parse_args(argv)
    from server.flight_sql import ServerSettings

    settings = ServerSettings(max_batch_bytes=args.max_batch_bytes) if args.max_batch_bytes else None
    session = DuckDBSession(args.data, args.threads, args.ranks)
    try:
        serve(session, args.host, args.port, args.user, args.password, args.tls_cert, args.tls_key,
              args.insecure, args.query_timeout, settings=settings)
    except ServeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
