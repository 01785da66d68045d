"""The `flocksql sql` shell: statement splitting, output formats, commands, remote and embedded use."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import select
import subprocess
import sys
import termios
import time

import pyarrow as pa
import pytest

from server.shell import EmbeddedBackend, Shell, format_csv, format_json, format_table, split_statements
from tests.server_fixtures import (
    BACKENDS,
    SLOW_SQL,
    DATA,
    REPO,
    assert_same_answer,
    copy_data,
    oracle,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.timeout(180)


# --- statement splitting and formats -----------------------------------------------------------------


@pytest.mark.parametrize("text, statements, rest", [
    ("SELECT 1;", ["SELECT 1"], ""),
    ("SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"], ""),
    ("SELECT 1", [], "SELECT 1"),
    ("SELECT ';' AS s;", ["SELECT ';' AS s"], ""),
    ("SELECT 'it''s;' AS s;", ["SELECT 'it''s;' AS s"], ""),
    ('SELECT 1 AS "a;b";', ['SELECT 1 AS "a;b"'], ""),
    ("SELECT 1 -- not; the end\n, 2;", ["SELECT 1 -- not; the end\n, 2"], ""),
    ("SELECT /* ; */ 1;", ["SELECT /* ; */ 1"], ""),
    ("SELECT 'open;\nstill", [], "SELECT 'open;\nstill"),
    (";;", [], ""),
])
def test_split_statements(text, statements, rest):
    assert split_statements(text) == (statements, rest)


SAMPLE = pa.table({
    "id": pa.array([1, 22, None], pa.int64()),
    "name": ["a", "bé", None],
    "price": pa.array([1.5, 10.25, 0.0]),
})


def test_format_table_aligns_columns():
    lines = format_table(SAMPLE).splitlines()
    assert lines[0] == "id   | name | price"
    assert lines[1] == "-----+------+------"
    assert lines[2] == "   1 | a    |   1.5"
    assert lines[3] == "  22 | bé   | 10.25"
    assert lines[4] == "NULL | NULL |   0.0"
    many = pa.table({"n": list(range(30))})
    shown = format_table(many, max_rows=10).splitlines()
    assert len(shown) == 2 + 10 + 1 and "20 more rows" in shown[-1]


def test_format_csv_and_json():
    rows = list(csv.reader(io.StringIO(format_csv(SAMPLE))))
    assert rows == [["id", "name", "price"], ["1", "a", "1.5"], ["22", "bé", "10.25"], ["", "", "0.0"]]
    assert json.loads(format_json(SAMPLE)) == SAMPLE.to_pylist()


# --- against a server ----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"shell-{request.param}")
    proc = start_server(request.param, copy_data(tmp / "data"), tmp / "server.log")
    yield proc
    stop_server(proc)


def shell(*args, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "server", "sql", *args],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


def test_command_csv_matches_duckdb(server):
    sql = "SELECT n_nationkey, n_name FROM nation WHERE n_regionkey = 1 ORDER BY n_nationkey"
    result = shell(server.uri, "-c", sql, "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["n_nationkey", "n_name"]
    assert rows[1:] == [[str(r["n_nationkey"]), r["n_name"]] for r in oracle(sql).to_pylist()]


def test_several_statements_as_json(server):
    result = shell(server.uri, "-c", "SELECT 1 AS a; SELECT r_name FROM region ORDER BY r_regionkey LIMIT 2;",
                   "--format", "json")
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert json.loads(first) == [{"a": 1}]
    assert json.loads(second) == [{"r_name": "AFRICA"}, {"r_name": "AMERICA"}]


def test_table_format_shows_rows_and_timing(server):
    result = shell(server.uri, "-c", "SELECT r_regionkey, r_name FROM region ORDER BY r_regionkey")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split("|")[0].strip() == "r_regionkey"
    assert lines[2].split("|")[1].strip() == "AFRICA"
    assert lines[-1].startswith("(5 rows, ") and lines[-1].endswith(" s)")


def test_piped_multiline_script_stops_at_first_error(server):
    script = "SELECT 1 AS a\n, 2 AS b;\nSELECT 'x;y' AS s; -- comment;\nSELEKT 3;\nSELECT 4 AS never;\n"
    result = shell(server.uri, "--format", "json", stdin=script)
    assert result.returncode == 1
    assert result.stdout.splitlines() == ['[{"a": 1, "b": 2}]', '[{"s": "x;y"}]']
    assert result.stderr.startswith("Error: ") and "ParseError" in result.stderr
    assert "Traceback" not in result.stderr


def test_dot_commands(server):
    tables = shell(server.uri, "-c", ".tables", "--format", "csv")
    assert tables.returncode == 0, tables.stderr
    assert {"lineitem,TABLE", "nation,TABLE", "region,TABLE"} <= set(tables.stdout.splitlines())
    described = shell(server.uri, "-c", "\\d region", "--format", "csv")
    assert described.returncode == 0, described.stderr
    assert [line.split(",")[0] for line in described.stdout.splitlines()] == [
        "column", "r_regionkey", "r_name", "r_comment"]
    explained = shell(server.uri, "-c", ".explain SELECT count(*) FROM nation")
    assert explained.returncode == 0, explained.stderr
    assert explained.stdout.strip()
    unknown = shell(server.uri, "-c", ".frobnicate")
    assert unknown.returncode == 1 and "unknown command" in unknown.stderr


def test_unreachable_server():
    result = shell("grpc://127.0.0.1:1", "-c", "SELECT 1")
    assert result.returncode != 0
    assert "Error" in result.stderr or "cannot connect" in result.stderr


def test_interactive_session_with_history(server, tmp_path):
    """A real terminal: prompts, a statement over two lines, a command, Ctrl-C, history saved on exit."""
    history = tmp_path / "history"
    main, secondary = pty.openpty()
    def controlling_terminal():
        # A session of its own whose controlling terminal is the pty: Ctrl-C then sends SIGINT.
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "sql", server.uri],
        cwd=REPO, stdin=secondary, stdout=secondary, stderr=secondary,
        env={**os.environ, "FLOCKSQL_HISTORY": str(history), "TERM": "dumb"},
        preexec_fn=controlling_terminal,
    )
    os.close(secondary)
    output = b""

    def read_until(marker: bytes, timeout: float = 60) -> None:
        nonlocal output
        deadline = time.monotonic() + timeout
        while marker not in output and time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.2)
            if ready:
                try:
                    output += os.read(main, 65536)
                except OSError:
                    break
        assert marker in output, output.decode(errors="replace")

    try:
        read_until(b"flocksql> ")
        os.write(main, b"SELECT 40 + 2\n")
        read_until(b"...> ")
        os.write(main, b"AS answer;\n")
        read_until(b"(1 row, ")
        os.write(main, b".tables\n")
        read_until(b"lineitem")
        # Ctrl-C cancels a running statement on the server and returns to the prompt.
        os.write(main, SLOW_SQL.encode() + b";\n")
        time.sleep(1.5)
        os.write(main, b"\x03")
        read_until(b"Cancelled")
        started = time.monotonic()
        os.write(main, b"SELECT 'after' AS word;\n")
        read_until(b"after\r\n(1 row, ")
        assert time.monotonic() - started < 20
        os.write(main, b".quit\n")
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)
    text = output.decode(errors="replace")
    assert "answer" in text and "42" in text
    saved = history.read_text()
    assert "SELECT 40 + 2" in saved and ".tables" in saved


# --- embedded ------------------------------------------------------------------------------------


def test_embedded_backend_with_the_double(tmp_path):
    from tests.server_double import DuckDBSession

    session = DuckDBSession(str(DATA), threads=1)
    out, err = io.StringIO(), io.StringIO()
    backend = EmbeddedBackend(session)
    shell_ = Shell(backend, fmt="csv", out=out, err=err)
    assert shell_.run_text("SELECT count(*) AS n FROM orders;\n.tables\n\\d nation\n")
    text = out.getvalue().splitlines()
    assert text[:2] == ["n", str(oracle("SELECT count(*) FROM orders").column(0)[0].as_py())]
    assert "orders,TABLE" in text and "n_comment,string,True" in text
    assert not shell_.run_text("SELECT * FROM missing_table;")
    assert "missing_table" in err.getvalue()
    backend.close()
    session.close()


def test_embedded_shell_on_the_engine(tmp_path):
    data = copy_data(tmp_path / "data")
    sql = "SELECT l_returnflag, count(*) AS c FROM lineitem GROUP BY l_returnflag ORDER BY l_returnflag"
    result = shell("--data", str(data), "-c", sql, "--format", "json")
    assert result.returncode == 0, result.stderr
    assert_same_answer(pa.Table.from_pylist(json.loads(result.stdout)), sql)


def test_catalog_statements_at_the_shell(server):
    """SHOW TABLES, DESCRIBE and SUMMARIZE, as a newcomer types them (the engine answers them as
    DuckDB does; the DuckDB test double runs them in DuckDB itself)."""
    result = shell(server.uri, "-c", "SHOW TABLES; DESCRIBE region; SUMMARIZE region;", "--format", "json")
    assert result.returncode == 0, result.stderr
    tables, described, summary = (json.loads(line) for line in result.stdout.splitlines())
    assert {"nation", "region", "lineitem"} <= {t["name"] for t in tables}
    assert [(c["column_name"], c["column_type"]) for c in described] == \
        [("r_regionkey", "BIGINT"), ("r_name", "VARCHAR"), ("r_comment", "VARCHAR")]
    want = []
    for name in ("r_regionkey", "r_name", "r_comment"):
        row = oracle(f"SELECT min({name})::VARCHAR AS lo, max({name})::VARCHAR AS hi, count(*) AS n FROM region")
        want.append((name, *row.to_pylist()[0].values()))
    assert [(r["column_name"], r["min"], r["max"], r["count"]) for r in summary] == want
