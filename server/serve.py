"""`serve()`: run the Flight SQL server for a Session until SIGINT or SIGTERM.

The caller owns the Session (and, with several ranks, the worker ranks): serve() returns once the
server has stopped, and the caller then closes the Session.
"""

from __future__ import annotations

import errno
import ipaddress
import random
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable, TextIO

import pyarrow as pa
import pyarrow.flight as flight

from server.flight_sql import FlightSqlServer, ServerSettings

# After SIGINT/SIGTERM, how long shutdown waits for the running query and open calls, in seconds.
SHUTDOWN_GRACE_S = 10.0
# A stop signal repeated within this many seconds of the first is the same request: a service manager
# that signals every process of the service reaches rank 0 both directly and through mpiexec, whose
# forwarded SIGINT can land a moment later on a loaded machine. Only a later one forces the exit.
REPEATED_SIGNAL_WINDOW_S = 2.0


class ServeError(Exception):
    """A configuration the server refuses to start with."""


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback address."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def port_in_use(host: str, port: int) -> bool:
    """True when some socket already listens on (or holds) `port` of `host`'s addresses."""
    try:
        infos = socket.getaddrinfo(host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return False
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            # As gRPC binds: SO_REUSEADDR, so that a closed server's TIME_WAIT connections do not count.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return True
    return False


# Ports free_port tries first: below the kernel's ephemeral range, which outgoing connections
# (and every `port 0` listener) draw from.
FREE_PORT_FLOOR = 20000


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str) -> int:
    """A port of `host` that nobody listens on now. The port is chosen here and bound later, by a
    rank of the flock started after it (seconds): one in the kernel's ephemeral range could be
    taken meanwhile by any outgoing connection on the machine (it happened to a test server,
    'port … in use'), so it is picked below that range, at random, and the kernel's choice is the
    fallback."""
    family = socket.getaddrinfo(host.strip("[]") or None, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    floor = _ephemeral_floor()
    rng = random.Random()
    candidates = [rng.randrange(FREE_PORT_FLOOR, floor) for _ in range(50)] if floor > FREE_PORT_FLOOR + 1000 else []
    for port in [*candidates, 0]:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host.strip("[]"), port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise ServeError(f"no free port on {host}")


def client_uri(host: str, port: int, tls: bool) -> str:
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"grpc+tls://{shown}:{port}" if tls else f"grpc://{shown}:{port}"


def connect_help(uri: str, user: str | None, tls_cert: str | None) -> str:
    """How to connect: the URI, and a three-line Python ADBC snippet."""
    kwargs = []
    if user is not None:
        kwargs.append(f'"username": "{user}", "password": "..."')
    if tls_cert is not None:
        kwargs.append(f'"adbc.flight.sql.client_option.tls_root_certs": open("{tls_cert}").read()')
    extra = f", db_kwargs={{{', '.join(kwargs)}}}" if kwargs else ""
    return (
        f"FlockSQL Flight SQL server listening on {uri}\n"
        f"Shell:  flocksql sql {uri}" + (f" --user {user}" if user is not None else "") + "\n"
        "Python (ADBC):\n"
        "    import adbc_driver_flightsql.dbapi as flight_sql\n"
        f'    conn = flight_sql.connect("{uri}"{extra})\n'
        '    print(conn.cursor().execute("SELECT 42").fetch_arrow_table())\n'
    )


def check_config(
    host: str,
    user: str | None,
    password: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    insecure: bool,
    query_timeout: float | None = None,
    console_host: str | None = None,
) -> None:
    """Raise ServeError for a configuration serve() refuses, before any session exists."""
    if (user is None) != (password is None):
        raise ServeError("give both --user and --password, or neither")
    if (tls_cert is None) != (tls_key is None):
        raise ServeError("give both --tls-cert and --tls-key, or neither")
    if user is None and not insecure and not is_loopback(host):
        raise ServeError(
            f"refusing to serve {host} without authentication: anyone who can reach it could run "
            "queries. Give --user and --password, or --insecure to serve it anyway."
        )
    if console_host is not None and user is None and not is_loopback(console_host):
        # --insecure does not cover it: the console shows every client's SQL and can cancel it.
        raise ServeError(f"refusing to serve the console on {console_host} without --user and --password")
    if query_timeout is not None and query_timeout <= 0:
        raise ServeError("--query-timeout must be a positive number of seconds")


def serve(
    session,
    host: str = "127.0.0.1",
    port: int = 8815,
    user: str | None = None,
    password: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    insecure: bool = False,
    query_timeout: float | None = None,
    *,
    settings: ServerSettings | None = None,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
    on_ready: Callable[[FlightSqlServer], None] | None = None,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    console_port: int | None = None,
    console_host: str = "127.0.0.1",
    console_reports: str | None = None,
) -> None:
    """Serve `session` over Flight SQL until SIGINT/SIGTERM (or until `stop` is set).

    Refuses to listen on a non-loopback address without a user and password unless `insecure`.
    `port` 0 picks a free port; the printed URI shows the real one. `metrics_port` (None: none)
    serves Prometheus metrics (server/metrics.py) on `metrics_host`, `console_port` the web console
    (server/console.py) on `console_host`, with the `tpch bench` reports of `console_reports`.
    """
    out = out or sys.stdout
    check_config(host, user, password, tls_cert, tls_key, insecure, query_timeout,
                 console_host if console_port is not None else None)

    tls = tls_cert is not None
    certificates = read_certificates(tls_cert, tls_key)
    bind = f"[{host}]" if ":" in host and not host.startswith("[") else host
    location = f"grpc+tls://{bind}:{port}" if tls else f"grpc://{bind}:{port}"
    settings = settings or ServerSettings()
    if query_timeout is not None:
        settings = ServerSettings(**{**_fields(settings), "query_timeout_s": float(query_timeout)})

    try:
        server = FlightSqlServer(
            session, location, settings=settings, user=user, password=password, tls_certificates=certificates
        )
    except (OSError, ValueError, pa.ArrowException) as exc:  # gRPC's bind failure is a bare ArrowException
        if port and port_in_use(host, port):
            raise ServeError(f"port {port} in use") from None
        raise ServeError(f"cannot listen on {location}: {exc}") from None

    endpoint = None
    if metrics_port is not None:
        from server.metrics import serve_metrics
        try:
            endpoint = serve_metrics(server.runner, metrics_host, metrics_port)
        except OSError as exc:
            server.close(SHUTDOWN_GRACE_S)
            raise ServeError(f"cannot serve metrics on {metrics_host}:{metrics_port}: {exc}") from None
    console = None
    if console_port is not None:
        from server.console import serve_console
        try:
            console = serve_console(server, console_host, console_port, user, password,
                                    (tls_cert, tls_key) if tls else None, client_uri(host, server.port, tls),
                                    reports_dir=console_reports)
        except OSError as exc:
            if endpoint is not None:
                endpoint.close()
            server.close(SHUTDOWN_GRACE_S)
            raise ServeError(f"cannot serve the console on {console_host}:{console_port}: {exc}") from None
    server.warm_up()
    stop = stop or threading.Event()
    previous, signalled = _install_signal_handlers(stop)
    try:
        out.write(connect_help(client_uri(host, server.port, tls), user, tls_cert))
        if endpoint is not None:
            out.write(f"Prometheus metrics on {endpoint.url}\n")
        if console is not None:
            out.write(f"Web console on {console.url}\n")
        out.flush()
        if on_ready is not None:
            on_ready(server)
        # Event.wait in short slices, so that signal handlers run promptly on the main thread.
        while not stop.wait(0.5):
            pass
        out.write("FlockSQL server shutting down\n")
        out.flush()
    finally:
        if console is not None:
            console.close()
        if endpoint is not None:
            endpoint.close()
        server.close(SHUTDOWN_GRACE_S)
        if not signalled:
            _restore_signal_handlers(previous)
        # else the handler stays until the process ends: the caller closes the Session next, and a
        # late copy of the same stop request must not interrupt that (exit status 0, not "Aborted!").


def read_certificates(tls_cert: str | None, tls_key: str | None) -> list | None:
    """The server's TLS certificate and key for pyarrow.flight, None without TLS."""
    if tls_cert is None:
        return None
    try:
        return [flight.CertKeyPair(Path(tls_cert).read_bytes(), Path(tls_key).read_bytes())]
    except OSError as exc:
        raise ServeError(f"cannot read TLS certificate or key: {exc}") from None


def _fields(settings: ServerSettings) -> dict:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


def _install_signal_handlers(stop: threading.Event) -> tuple[dict, list[float]]:
    """Handlers that set `stop`; returns the previous handlers and a list that holds the time of
    the first stop signal once one came."""
    first: list[float] = []
    if threading.current_thread() is not threading.main_thread():
        return {}, first  # only the main thread may set handlers; the caller stops us through `stop`


    def handle(signum, frame):
        now = time.monotonic()
        if not first:
            first.append(now)
            stop.set()
        elif now - first[0] > REPEATED_SIGNAL_WINDOW_S:
            # A second request: the user does not want to wait for the graceful shutdown.
            raise KeyboardInterrupt

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handle)
    return previous, first


def _restore_signal_handlers(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
