"""The web console of a FlockSQL server (`flocksql serve --console-port N`): static pages from
server/console_static/ and the JSON they fetch, on a port of rank 0's own, with the standard
library's http.server on a thread (no build step, no dependency).

    GET  /api/flock                     ranks, threads, lanes, memory budget and peak per rank, uptime, restarts
    GET  /api/queries                   running and recent queries (server/query_log.py)
    GET  /api/queries/<id>              one of them
    POST /api/queries/<id>/cancel       stop it, through the server's own cancel path
    GET  /api/queries/<id>/plan         EXPLAIN (FORMAT JSON) of its statement, planned now
    POST /api/queries/<id>/analyze      EXPLAIN (ANALYZE, FORMAT JSON) of it: runs it again
    GET  /api/reports                   the `tpch bench` reports of --console-reports DIR
    GET  /reports/<name>.png            one of their charts

Security: the console listens on loopback unless `--console-host` says otherwise, which the server
refuses without --user/--password (serve.check_config); with them, every request must carry the
same user and password (HTTP Basic; over HTTPS with the server's --tls-cert). A POST must carry the
header X-FlockSQL-Console, which a page of another origin cannot send without a CORS preflight
that the console never grants; on loopback, a Host header naming anything but a loopback address
is refused (DNS rebinding).
"""
from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from engine.supervisor import RESTARTS_ENV
from server import query_log
from server.errors import client_message
from server.metrics import MEMORY_JOB, FlockMetrics

log = logging.getLogger("flocksql.server")

STATIC = Path(__file__).with_name("console_static")
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
# Header every POST must carry (see the module's docstring).
POST_HEADER = "X-FlockSQL-Console"
CANCEL_REASON = "cancelled from the web console"
# A connection that sends nothing for this many seconds is closed.
REQUEST_TIMEOUT_S = 30
# Queries the console's own EXPLAIN ANALYZE runs are labelled so.
ANALYZE_LABEL = "console: EXPLAIN ANALYZE of query {id}"
_EXPLAIN_PREFIX = re.compile(r"^\s*EXPLAIN\b", re.IGNORECASE)


class Console:
    """What the pages show, read from a FlightSqlServer (its runner, query log and session)."""

    def __init__(self, server, user: str | None = None, flight_uri: str = "", reports_dir: str | None = None):
        self.server = server
        self.reports_dir = Path(reports_dir).resolve() if reports_dir else None
        self.runner = server.runner
        self.session = server.runner.session
        self.user = user
        self.flight_uri = flight_uri
        self.metrics = FlockMetrics(server.runner)  # its peak-memory question, cached

    def flock(self) -> dict:
        s = self.session
        return {
            "ranks": getattr(s, "nranks", 1),
            "host": socket.gethostname(),  # rank 0's
            "hosts": list(getattr(s, "hosts", None) or [socket.gethostname()]),  # each rank's, in rank order
            "threads_per_rank": getattr(s, "threads", None),
            "lanes": getattr(s, "concurrent_queries", 1),
            "memory_budget_bytes": getattr(s, "memory_budget", None),
            "peak_memory_bytes": self.metrics.peak_memory_bytes(),
            "started": self.metrics.started,
            "uptime_seconds": time.time() - self.metrics.started,
            "restarts": int(os.environ.get(RESTARTS_ENV, "0") or 0),
            "data": str(getattr(getattr(s, "catalog", None), "data_dir", "") or ""),
            "flight_uri": self.flight_uri,
            "auth": self.user is not None,
        }

    def queries(self) -> dict:
        live, recent = self.runner.log.snapshot()
        return {"running": [self._query(r) for r in live if r.label != MEMORY_JOB],
                "recent": [self._query(r) for r in recent if r.label != MEMORY_JOB],
                "now": time.time()}

    def query(self, qid: int) -> dict | None:
        record = self._record(qid)
        return None if record is None else self._query(record)

    def _record(self, qid: int) -> query_log.QueryRecord | None:
        live, recent = self.runner.log.snapshot()
        return next((r for r in (*live, *recent) if r.id == qid), None)

    def _query(self, r: query_log.QueryRecord) -> dict:
        return {"id": r.id, "sql": r.sql or r.label, "label": r.label,
                # Every client signs in as the server's one user, if it has one.
                "user": self.user, "state": r.state, "submitted": r.submitted, "started": r.started,
                "ended": r.ended, "seconds": r.seconds, "rows": r.rows, "bytes_moved": r.bytes_moved,
                "bytes_spilled": r.bytes_spilled, "peak_memory_bytes": r.peak_memory_bytes, "error": r.error,
                "cancellable": r.cancel is not None and r.state in (query_log.QUEUED, query_log.RUNNING),
                "explainable": r.sql is not None}

    def cancel(self, qid: int) -> tuple[HTTPStatus, dict]:
        record = self._record(qid)
        if record is None:
            return HTTPStatus.NOT_FOUND, {"error": f"no query {qid}"}
        if record.state not in (query_log.QUEUED, query_log.RUNNING):
            return HTTPStatus.CONFLICT, {"error": f"query {qid} has already {record.state}"}
        if record.cancel is None:
            return HTTPStatus.CONFLICT, {"error": f"query {qid} cannot be cancelled from here"}
        log.info("query %d (%s) %s", qid, record.label, CANCEL_REASON)
        record.cancel(CANCEL_REASON)
        return HTTPStatus.ACCEPTED, {"cancelling": qid}

    def explain(self, qid: int, analyze: bool) -> tuple[HTTPStatus, dict]:
        """EXPLAIN (FORMAT JSON) of query `qid`'s statement (of the statement inside an EXPLAIN)."""
        record = self._record(qid)
        if record is None:
            return HTTPStatus.NOT_FOUND, {"error": f"no query {qid}"}
        if record.sql is None:
            return HTTPStatus.CONFLICT, {"error": f"the server kept no SQL of query {qid} ({record.label})"}
        sql = _statement(record.sql)
        try:
            if analyze:
                text = self.runner.run(ANALYZE_LABEL.format(id=qid), lambda session, token: session.explain(
                    sql, analyze=True, fmt="json", token=token), sql=f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
            else:  # planning only: rank 0, no lane
                text = self.runner.metadata(f"console: EXPLAIN of query {qid}",
                                            lambda session: session.explain(sql, fmt="json"))
        except Exception as exc:  # noqa: BLE001 - the page shows the engine's message
            return HTTPStatus.UNPROCESSABLE_ENTITY, {"error": client_message(exc), "sql": sql}
        return HTTPStatus.OK, {"sql": sql, "explain": json.loads(text)}


    def reports(self) -> dict:
        """The `tpch bench` reports (tpch/report.py: NAME.json, NAME.md, NAME_*.png) in the reports
        folder, newest first, each with its Markdown and the names of its charts."""
        found = []
        if self.reports_dir is not None:
            for path in self.reports_dir.glob("*.json"):
                try:
                    doc = json.loads(path.read_text())
                    markdown = path.with_suffix(".md").read_text()
                except (OSError, ValueError):
                    continue  # not a report, or one being written
                if not (isinstance(doc, dict) and "runs" in doc and "queries" in doc):
                    continue
                found.append({"name": path.stem, "kind": doc.get("kind"), "modified": path.stat().st_mtime,
                              "runs": [r.get("label") for r in doc["runs"]], "markdown": markdown,
                              "charts": sorted(p.name for p in self.reports_dir.glob(f"{path.stem}_*.png"))})
        found.sort(key=lambda r: r["modified"], reverse=True)
        return {"folder": str(self.reports_dir) if self.reports_dir else None, "reports": found}

    def chart(self, name: str) -> bytes | None:
        """A chart of the reports folder by file name; None for anything else."""
        if self.reports_dir is None or not name.endswith(".png"):
            return None
        target = (self.reports_dir / name).resolve()
        if target.parent != self.reports_dir or not target.is_file():
            return None
        return target.read_bytes()


def _statement(sql: str) -> str:
    """The statement an `EXPLAIN [options] stmt` explains; any other SQL as it is."""
    if not _EXPLAIN_PREFIX.match(sql):
        return sql
    from planner.explain import parse_options
    return parse_options(_EXPLAIN_PREFIX.sub("", sql, count=1))[1]


class _Handler(BaseHTTPRequestHandler):
    server_version = "FlockSQL-console"
    timeout = REQUEST_TIMEOUT_S
    console: Console
    credentials: tuple[str, str] | None
    loopback_only: bool

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        log.debug("console %s: " + format, self.address_string(), *args)

    def do_GET(self):
        if not self._allowed():
            return
        path = self.path.split("?", 1)[0]
        if path == "/api/flock":
            return self._json(HTTPStatus.OK, self.console.flock())
        if path == "/api/queries":
            return self._json(HTTPStatus.OK, self.console.queries())
        if path == "/api/reports":
            return self._json(HTTPStatus.OK, self.console.reports())
        if path.startswith("/reports/"):
            chart = self.console.chart(urllib.parse.unquote(path[len("/reports/"):]))
            if chart is None:
                return self._json(HTTPStatus.NOT_FOUND, {"error": f"no chart {path}"})
            return self._send(HTTPStatus.OK, "image/png", chart)
        m = re.fullmatch(r"/api/queries/(\d+)(/plan)?", path)
        if m:
            if m[2]:
                return self._json(*self.console.explain(int(m[1]), analyze=False))
            found = self.console.query(int(m[1]))
            return self._json(HTTPStatus.OK, found) if found else self._json(HTTPStatus.NOT_FOUND,
                                                                               {"error": f"no query {m[1]}"})
        self._static(path)

    def do_POST(self):
        if not self._allowed():
            return
        if not self.headers.get(POST_HEADER):
            return self._json(HTTPStatus.FORBIDDEN, {"error": f"a POST must carry the header {POST_HEADER}"})
        m = re.fullmatch(r"/api/queries/(\d+)/(cancel|analyze)", self.path.split("?", 1)[0])
        if not m:
            return self._json(HTTPStatus.NOT_FOUND, {"error": "no such action"})
        if m[2] == "cancel":
            return self._json(*self.console.cancel(int(m[1])))
        return self._json(*self.console.explain(int(m[1]), analyze=True))

    def _allowed(self) -> bool:
        if self.loopback_only and not _loopback_host_header(self.headers.get("Host", "")):
            self._json(HTTPStatus.FORBIDDEN, {"error": "the console answers only to a loopback Host"})
            return False
        if self.credentials is None or _basic_auth_matches(self.headers.get("Authorization", ""), self.credentials):
            return True
        body = b'{"error": "user and password required"}'
        self.send_response(HTTPStatus.UNAUTHORIZED)
        self.send_header("WWW-Authenticate", 'Basic realm="FlockSQL console", charset="UTF-8"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return False

    def _json(self, status: HTTPStatus, doc) -> None:
        body = json.dumps(doc).encode()
        self._send(status, "application/json", body)

    def _static(self, path: str) -> None:
        name = "index.html" if path in ("/", "") else path.lstrip("/")
        target = (STATIC / name).resolve()
        if target.parent != STATIC.resolve() or not target.is_file() or target.suffix not in CONTENT_TYPES:
            return self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {path}"})
        self._send(HTTPStatus.OK, CONTENT_TYPES[target.suffix], target.read_bytes())

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:")
        self.end_headers()
        self.wfile.write(body)


def _basic_auth_matches(header: str, credentials: tuple[str, str]) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    # Both compared, always, so that the time taken says nothing about which one was wrong.
    ok_user = hmac.compare_digest(user.encode(), credentials[0].encode())
    ok_password = hmac.compare_digest(password.encode(), credentials[1].encode())
    return ok_user and ok_password


def _loopback_host_header(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]").lower()
    return name in ("localhost", "127.0.0.1", "::1") or name.startswith("127.")


class ConsoleEndpoint:
    """The console's HTTP server, on a daemon thread until close()."""

    def __init__(self, console: Console, host: str, port: int, user: str | None = None,
                 password: str | None = None, tls: tuple[str, str] | None = None):
        from server.serve import is_loopback

        handler = type("ConsoleHandler", (_Handler,), {
            "console": console, "credentials": None if user is None else (user, password),
            "loopback_only": is_loopback(host)})
        server_class = type("ConsoleHTTPServer", (ThreadingHTTPServer,), {
            "address_family": socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0][0],
            "daemon_threads": True})
        self._server = server_class((host.strip("[]"), port), handler)
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            # The handshake happens on the request's thread (its first read), not in accept().
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True,
                                                      do_handshake_on_connect=False)
            self.scheme = "https"
        self.host, self.port = host, self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="flocksql-console", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{self.scheme}://{shown}:{self.port}/"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def serve_console(server, host: str, port: int, user: str | None = None, password: str | None = None,
                  tls: tuple[str, str] | None = None, flight_uri: str = "",
                  reports_dir: str | None = None) -> ConsoleEndpoint:
    """Starts the console of `server` (a FlightSqlServer) on `host`:`port` (0: any free port);
    `reports_dir` is a folder of `tpch bench` reports to show."""
    return ConsoleEndpoint(Console(server, user, flight_uri, reports_dir), host, port, user, password, tls)
