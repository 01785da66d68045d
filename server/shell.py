"""`flocksql sql`: an interactive SQL shell, remote (Flight SQL through ADBC) or embedded.

    flocksql sql grpc://host:port            talk to a running `flocksql serve`
    flocksql sql --data DIR                  run queries in this process (one rank)
    flocksql sql URL -c "SELECT 1"           run statements and exit (status 1 on the first error)

Statements end with `;` and may span lines. Lines starting with `.` or `\\` are shell commands:
`.tables` (or `\\dt`), `\\d TABLE`, `.explain SQL`, `.help`, `.quit`. Results print as aligned
tables with their row count and time, or as CSV or JSON with --format. History is kept in
~/.flocksql_history.
"""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

import pyarrow as pa

from server.errors import client_message

HISTORY_FILE = "~/.flocksql_history"
HISTORY_LENGTH = 2000
# The table format prints at most this many rows of one result (the row count is always exact).
MAX_TABLE_ROWS = 1000
# A column of the table format is cut to this many characters.
MAX_COLUMN_WIDTH = 60

PROMPT = "flocksql> "
CONTINUATION_PROMPT = "     ...> "

HELP = """\
Statements end with ';' and may span several lines.
  .tables, \\dt         list tables and views
  \\d TABLE             show the columns of TABLE
  .explain SQL         show the distributed plan of SQL
  .help, \\?            this help
  .quit, \\q            leave (or Ctrl-D)
"""


class ShellError(Exception):
    """A shell command used wrongly."""


# --- statements ----------------------------------------------------------------------------------


def split_statements(text: str) -> tuple[list[str], str]:
    """The complete `;`-terminated statements of `text`, and the unfinished rest.

    Semicolons inside quotes, quoted identifiers and comments do not end a statement.
    """
    statements: list[str] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in ("'", '"'):
            end = text.find(ch, i + 1)
            while end != -1 and end + 1 < n and text[end + 1] == ch:  # doubled quote escapes it
                end = text.find(ch, end + 2)
            if end == -1:
                break  # unterminated: the statement continues on the next line
            i = end + 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            if end == -1:
                break
            i = end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end == -1:
                break
            i = end + 2
        elif ch == ";":
            statement = text[start:i].strip()
            if statement:
                statements.append(statement)
            start = i + 1
            i += 1
        else:
            i += 1
    return statements, text[start:]


# --- backends ------------------------------------------------------------------------------------


class RemoteBackend:
    """A FlockSQL server reached through the ADBC Flight SQL driver."""

    def __init__(self, uri: str, user: str | None = None, password: str | None = None,
                 tls_root_cert: str | None = None):
        import adbc_driver_flightsql.dbapi as flight_sql

        kwargs: dict[str, str] = {}
        if user is not None:
            kwargs["username"] = user
            kwargs["password"] = password or ""
        if tls_root_cert is not None:
            kwargs["adbc.flight.sql.client_option.tls_root_certs"] = Path(tls_root_cert).read_text()
        self.name = uri
        self._conn = flight_sql.connect(uri, db_kwargs=kwargs, autocommit=True)
        self._cursor = None

    def execute(self, sql: str) -> pa.Table:
        cursor = self._conn.cursor()
        self._cursor = cursor
        try:
            cursor.execute(sql)
            return cursor.fetch_arrow_table()
        finally:
            self._cursor = None
            cursor.close()

    def cancel(self) -> None:
        cursor = self._cursor
        if cursor is not None:
            cursor.adbc_cancel()

    def tables(self) -> list[tuple[str, str]]:
        objects = self._conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        return sorted(
            (table["table_name"], table["table_type"])
            for catalog in objects
            for schema in catalog["catalog_db_schemas"] or []
            for table in schema["db_schema_tables"] or []
        )

    def describe(self, table: str) -> pa.Schema:
        return self._conn.adbc_get_table_schema(table)

    def explain(self, sql: str) -> str:
        result = self.execute(f"EXPLAIN {sql}")
        return "\n".join(str(v) for v in result.column(0).to_pylist())

    def close(self) -> None:
        self._conn.close()


class EmbeddedBackend:
    """A Session in this process, called through a QueryRunner, as the server does."""

    def __init__(self, session, name: str = "embedded"):
        from server.runner import QueryRunner

        self.session = session
        self.name = name
        self._runner = QueryRunner(session)

    def _run(self, label: str, fn):
        return self._runner.run(label, fn)

    def execute(self, sql: str) -> pa.Table:
        return self._run(sql, lambda session, token: session.execute(sql, token=token))

    def cancel(self) -> None:
        current = self._runner.current
        if current is not None:
            self._runner.cancel(current, "cancelled from the shell (Ctrl-C)")

    def tables(self) -> list[tuple[str, str]]:
        def run(session, token):
            catalog = session.catalog
            rows = [(name, "TABLE") for name in catalog.table_names()]
            rows += [(name, "VIEW") for name in (getattr(catalog, "views", None) or {})]
            return sorted(rows)

        return self._run(".tables", run)

    def describe(self, table: str) -> pa.Schema:
        def run(session, token):
            catalog = session.catalog
            if table.lower() in (getattr(catalog, "views", None) or {}):
                return session.result_schema(f'SELECT * FROM "{table}"')
            return catalog.table_schema(table)

        return self._run(f"\\d {table}", run)

    def explain(self, sql: str) -> str:
        return self._run(f".explain {sql}", lambda session, token: session.explain(sql, token=token))

    def close(self) -> None:
        self._runner.stop()


# --- output --------------------------------------------------------------------------------------


def _text(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    return str(value)


def _json_value(value):
    if isinstance(value, (datetime.date, datetime.time, datetime.datetime, datetime.timedelta)):
        return value.isoformat() if hasattr(value, "isoformat") else str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def format_table(table: pa.Table, max_rows: int = MAX_TABLE_ROWS) -> str:
    """An aligned text table: a header, a rule, the rows; numbers right-aligned."""
    names = table.column_names
    shown = table.slice(0, max_rows)
    columns = [[_text(v) for v in column.to_pylist()] for column in shown.columns]
    numeric = [pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
               for t in table.schema.types]
    cut = [[v if len(v) <= MAX_COLUMN_WIDTH else v[:MAX_COLUMN_WIDTH - 1] + "…" for v in col] for col in columns]
    widths = [max([len(name)] + [len(v) for v in col]) for name, col in zip(names, cut)]

    def line(values: list[str], align: list[bool]) -> str:
        cells = [v.rjust(w) if right else v.ljust(w) for v, w, right in zip(values, widths, align)]
        return " | ".join(cells).rstrip()

    out = [line(names, [False] * len(names)), "-+-".join("-" * w for w in widths)]
    for row in zip(*cut):
        out.append(line(list(row), numeric))
    if table.num_rows > max_rows:
        out.append(f"... {table.num_rows - max_rows} more rows (use --format csv to see them all)")
    return "\n".join(out) + "\n"


def format_csv(table: pa.Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.column_names)
    columns = [column.to_pylist() for column in table.columns]
    for row in zip(*columns):
        writer.writerow(["" if v is None else v for v in row])
    return buffer.getvalue()


def format_json(table: pa.Table) -> str:
    """One JSON array of row objects."""
    return json.dumps(table.to_pylist(), default=_json_value) + "\n"


FORMATS: dict[str, Callable[[pa.Table], str]] = {"table": format_table, "csv": format_csv, "json": format_json}


def format_schema(schema: pa.Schema) -> pa.Table:
    return pa.table({
        "column": [f.name for f in schema],
        "type": [str(f.type) for f in schema],
        "nullable": [f.nullable for f in schema],
    })


# --- the shell -----------------------------------------------------------------------------------


@dataclass
class Shell:
    backend: object
    fmt: str = "table"
    out: TextIO = sys.stdout
    err: TextIO = sys.stderr
    timer: bool = True

    def run_text(self, text: str) -> bool:
        """Run every statement and shell command of `text`; stop at the first error (False)."""
        pending = ""
        for line in text.splitlines():
            if not pending.strip() and line.strip().startswith((".", "\\")):
                if not self.run_command(line.strip()):
                    return False
                continue
            pending += line + "\n"
            statements, pending = split_statements(pending)
            for statement in statements:
                if not self.run_statement(statement):
                    return False
        if pending.strip() and not _only_comments(pending):
            return self.run_statement(pending.strip())  # a last statement may omit its ';'
        return True

    def run_statement(self, sql: str) -> bool:
        started = time.perf_counter()
        try:
            table = self._interruptible(lambda: self.backend.execute(sql))
        except KeyboardInterrupt:
            self.err.write("Cancelled\n")
            return False
        except Exception as exc:  # noqa: BLE001 - every error is the user's to read
            self.err.write(f"Error: {client_message(exc)}\n")
            return False
        elapsed = time.perf_counter() - started
        self.show(table, elapsed)
        return True

    def show(self, table: pa.Table, elapsed: float | None = None) -> None:
        self.out.write(FORMATS[self.fmt](table))
        if self.fmt == "table":
            rows = f"{table.num_rows} row{'s' if table.num_rows != 1 else ''}"
            timing = f", {elapsed:.3f} s" if elapsed is not None and self.timer else ""
            self.out.write(f"({rows}{timing})\n")
        self.out.flush()

    def run_command(self, line: str) -> bool:
        word, _, rest = line.partition(" ")
        rest = rest.strip().rstrip(";").strip()
        try:
            if word in (".quit", ".exit", "\\q"):
                raise EOFError
            if word in (".help", "\\?", "\\h"):
                self.out.write(HELP)
            elif word in (".tables", "\\dt") or (word == "\\d" and not rest):
                rows = self.backend.tables()
                self.show(pa.table({"name": [r[0] for r in rows], "type": [r[1] for r in rows]}))
            elif word in ("\\d", ".schema", ".describe"):
                self.show(format_schema(self.backend.describe(rest)))
            elif word == ".explain":
                if not rest:
                    raise ShellError("usage: .explain SQL")
                self.out.write(self.backend.explain(rest).rstrip("\n") + "\n")
            else:
                raise ShellError(f"unknown command {word}; try .help")
        except EOFError:
            raise
        except Exception as exc:  # noqa: BLE001
            self.err.write(f"Error: {client_message(exc)}\n")
            return False
        return True

    def _interruptible(self, call: Callable[[], pa.Table]) -> pa.Table:
        """Run `call` on a helper thread so that Ctrl-C can cancel it on the backend."""
        box: dict = {}

        def target():
            try:
                box["value"] = call()
            except BaseException as exc:  # noqa: BLE001
                box["error"] = exc

        worker = threading.Thread(target=target, name="flocksql-shell-statement", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.1)
        except KeyboardInterrupt:
            self.backend.cancel()
            worker.join(10)
            raise
        if "error" in box:
            raise box["error"]
        return box["value"]

    def interact(self, stdin: TextIO = sys.stdin) -> int:
        """The read-eval-print loop; returns the exit status."""
        # Ctrl-C cancels the running statement. A shell started from a script or a background job
        # can inherit SIGINT as ignored, and Python then never raises KeyboardInterrupt: restore it.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)
        history = _open_history()
        self.err.write(f"FlockSQL shell on {self.backend.name}. Statements end with ';'; .help for help.\n")
        pending = ""
        try:
            while True:
                try:
                    line = input(CONTINUATION_PROMPT if pending.strip() else PROMPT)
                except KeyboardInterrupt:
                    self.err.write("\n")
                    pending = ""
                    continue
                if not pending.strip() and line.strip().startswith((".", "\\")):
                    self.run_command(line.strip())
                    continue
                pending += line + "\n"
                statements, pending = split_statements(pending)
                for statement in statements:
                    self.run_statement(statement)
        except EOFError:
            self.err.write("\n")
            return 0
        finally:
            history()


def _only_comments(text: str) -> bool:
    lines = [ln.strip() for ln in text.splitlines()]
    return all(not ln or ln.startswith("--") for ln in lines)


def _open_history() -> Callable[[], None]:
    """Load the readline history; return the function that saves it."""
    try:
        import readline
    except ImportError:  # no readline on this platform: a shell without history
        return lambda: None
    path = Path(os.environ.get("FLOCKSQL_HISTORY", HISTORY_FILE)).expanduser()
    try:
        readline.read_history_file(path)
    except (FileNotFoundError, OSError):
        pass
    readline.set_history_length(HISTORY_LENGTH)

    def save() -> None:
        try:
            readline.write_history_file(path)
        except OSError:
            pass

    return save


def run_shell(backend, command: str | None = None, fmt: str = "table",
              stdin: TextIO = sys.stdin, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run `command`, or the statements piped on stdin, or an interactive session; the exit status."""
    shell = Shell(backend, fmt, out, err)
    try:
        if command is not None:
            return 0 if shell.run_text(command) else 1
        if not stdin.isatty():
            return 0 if shell.run_text(stdin.read()) else 1
        return shell.interact(stdin)
    except EOFError:  # .quit inside a script
        return 0
