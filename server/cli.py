"""Click commands `serve_command` (flocksql serve) and `sql_command` (flocksql sql).

The top-level cli.py adds them to the `flocksql` group; `python -m server serve|sql` runs them too.
"""

from __future__ import annotations

import logging
import sys

import click
import pyarrow as pa

from server.flight_sql import ServerSettings
from server.serve import ServeError, check_config, free_port, port_in_use, serve


def _server_logging() -> None:
    """Server log lines (queries cancelled, internal errors) go to stderr unless already routed."""
    logger = logging.getLogger("flocksql.server")
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


@click.command("serve")
@click.option("--data", "data_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Data folder: one table per NAME.parquet file or NAME/ folder of Parquet files.")
@click.option("--ranks", default=1, show_default=True, type=click.IntRange(min=1),
              help="Number of MPI ranks (processes) that run queries.")
@click.option("--threads", type=click.IntRange(min=1), help="DuckDB threads per rank.")
@click.option("--memory-limit", default=None, metavar="SIZE",
              help="Memory budget per rank, e.g. 4GB (default: 75% of RAM / ranks on the node), shared by its "
                   "DuckDB instances and exchanges; beyond it queries spill to a temporary folder.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8815, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port).")
@click.option("--user", envvar="FLOCKSQL_USER", help="Require this user name (with --password).")
@click.option("--password", envvar="FLOCKSQL_PASSWORD",
              help="Require this password; better given in $FLOCKSQL_PASSWORD.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="PEM certificate: serve grpc+tls.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="PEM private key of --tls-cert.")
@click.option("--insecure", is_flag=True, help="Allow a non-loopback --host without --user/--password.")
@click.option("--query-timeout", type=click.FloatRange(min=0, min_open=True),
              help="Cancel a query that runs longer than this many seconds.")
@click.option("--max-sql-bytes", type=click.IntRange(min=1), default=None, metavar="BYTES",
              help="Refuse SQL texts longer than this (default 1 MiB).")
@click.option("--lanes", type=click.IntRange(min=1), default=None,
              help="Queries that run on the ranks at once (default 4); big and small ones take at most one "
                   "lane per two threads and one lane more, light ones any lane.")
@click.option("--restart/--no-restart", default=True, show_default=True,
              help="With --ranks > 1: start the ranks again when one dies (waiting 1 s, 2 s, 4 s … at most 30 s "
                   "between quick failures), on the same port with the same options.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Serve Prometheus metrics on this port of --metrics-host (0: any free port; default: none).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address of the metrics endpoint.")
@click.option("--console-port", type=click.IntRange(0, 65535), default=None,
              help="Serve the web console on this port of --console-host (0: any free port; default: none).")
@click.option("--console-host", default="127.0.0.1", show_default=True,
              help="Address of the web console; other than loopback only with --user/--password.")
@click.option("--console-reports", type=click.Path(exists=True, file_okay=False), default=None,
              help="Show the `flocksql tpch bench` reports (and charts) of this folder in the web console.")
def serve_command(data_dir, ranks, threads, memory_limit, host, port, user, password, tls_cert, tls_key, insecure,
                  query_timeout, max_sql_bytes, lanes, restart, metrics_port, metrics_host, console_port, console_host,
                  console_reports):
    """Serve the tables of a data folder over Arrow Flight SQL."""
    # Check the options before starting any rank, so that a mistake fails fast and alone.
    try:
        check_config(host, user, password, tls_cert, tls_key, insecure, query_timeout,
                     console_host if console_port is not None else None)
    except ServeError as exc:
        raise click.UsageError(str(exc)) from None
    from engine.launch import open_session
    from engine.session import _under_mpi

    relaunch_args = ()
    if not _under_mpi():
        if port and port_in_use(host, port):
            raise click.ClickException(f"port {port} in use")
        if port == 0 and ranks > 1:
            # Chosen once, here, so that a restarted flock listens where clients already connect.
            port = free_port(host)
            relaunch_args = ("--port", str(port))
        if metrics_port == 0 and ranks > 1:
            metrics_port = free_port(metrics_host)
            relaunch_args += ("--metrics-port", str(metrics_port))
        if console_port == 0 and ranks > 1:
            console_port = free_port(console_host)
            relaunch_args += ("--console-port", str(console_port))
    _server_logging()

    def port_taken() -> str | None:
        return f"port {port} in use" if port and port_in_use(host, port) else None

    def serve_parts(session):  # each worker rank's endpoint for its parts of partitioned results
        from server.part_server import PartServer
        from server.serve import read_certificates
        try:
            server = PartServer(session, host, user=user, password=password,
                                tls_certificates=read_certificates(tls_cert, tls_key))
        except (OSError, ServeError, pa.ArrowException) as exc:
            # Without it this rank still computes; partitioned results say it serves no parts.
            logging.getLogger("flocksql.server").warning("rank %d: no part server: %s", session.rank, exc)
            return None
        return server.shutdown

    with open_session(data_dir, ranks, threads, memory_limit=memory_limit, lanes=lanes, restart=restart,
                      relaunch_args=relaunch_args, precheck=port_taken, on_worker=serve_parts) as session:
        try:
            settings = ServerSettings(max_sql_bytes=max_sql_bytes) if max_sql_bytes else None
            serve(session, host, port, user, password, tls_cert, tls_key, insecure, query_timeout, settings=settings,
                  metrics_port=metrics_port, metrics_host=metrics_host, console_port=console_port,
                  console_host=console_host, console_reports=console_reports)
        except ServeError as exc:
            raise click.ClickException(str(exc)) from None


@click.command("sql")
@click.argument("url", required=False)
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False),
              help="Without URL: run embedded on this data folder (one rank).")
@click.option("-c", "--command", help="Run these statements and exit.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--user", envvar="FLOCKSQL_USER", help="User name for a server that requires one.")
@click.option("--password", envvar="FLOCKSQL_PASSWORD", help="Password (prompted for when --user is given alone).")
@click.option("--tls-root-cert", type=click.Path(exists=True, dir_okay=False),
              help="PEM certificate to trust for grpc+tls:// (a self-signed server certificate).")
@click.option("--threads", type=click.IntRange(min=1), help="Embedded mode: DuckDB threads.")
def sql_command(url, data_dir, command, fmt, user, password, tls_root_cert, threads):
    """Run SQL against a FlockSQL server (URL such as grpc://localhost:8815) or a data folder."""
    from server.shell import EmbeddedBackend, RemoteBackend, run_shell

    if (url is None) == (data_dir is None):
        raise click.UsageError("give a server URL or --data DIR (not both)")
    if url is not None:
        if user is not None and password is None:
            password = click.prompt("Password", hide_input=True, err=True)
        try:
            backend = RemoteBackend(url, user, password, tls_root_cert)
        except Exception as exc:  # noqa: BLE001 - connection errors come from the driver
            from server.errors import client_message

            raise click.ClickException(f"cannot connect to {url}: {client_message(exc)}") from None
        try:
            status = run_shell(backend, command, fmt)
        finally:
            backend.close()
    else:
        from engine.session import Session

        session = Session(data_dir, threads=threads)
        backend = EmbeddedBackend(session, data_dir)
        try:
            status = run_shell(backend, command, fmt)
        finally:
            backend.close()
            session.close()
    sys.exit(status)
