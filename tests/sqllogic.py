"""sqllogictest-style SQL files for FlockSQL, with DuckDB as the oracle.

A test file (`tests/sql/*.test`) is a sequence of blocks separated by blank lines. A line starting
with `#` is a comment wherever it appears. The first line of a block says what the block is:

    # Tables for this file. DuckDB statements (each ending with `;`) run in a fresh in-memory
    # DuckDB; every table they leave behind becomes <data dir>/<table>.parquet, written with
    # row groups of `row_group_size` rows (default 100, so that every rank gets some). A table
    # named in `folder=NAME:N` is written instead as N files <data dir>/NAME/part-K.parquet,
    # split into contiguous row ranges (some parts may be empty). Exactly one data block, first.
    data row_group_size=50 folder=orders:3
    CREATE TABLE orders AS SELECT range AS id, range % 7 AS k FROM range(1000);
    CREATE TABLE empty_t (a INTEGER, b VARCHAR);

    # A query: the SQL runs to the next blank line. Its expected answer is DuckDB's answer on the
    # same Parquet files, computed at test time; nothing is hard-coded. Whether rows must come in
    # order (and which columns may tie) is read from the outermost ORDER BY (tpch.compare.ordering_of).
    query
    SELECT k, count(*) FROM orders GROUP BY k ORDER BY k

    # Where DuckDB itself answers a statement wrongly (or hangs), the query block may give, after a
    # line `----`, an equivalent statement whose answer DuckDB gets right; say why in a comment.
    query
    SELECT k FROM orders o ASOF JOIN empty_t e ON o.k >= e.a
    ----
    SELECT k FROM orders o JOIN empty_t e ON o.k >= e.a
    # An error: the engine must raise an error, never return a result. PATTERN is matched
    # case-insensitively against the message; `*` in it matches any text, so
    # `unknown column*nosuch` asks for both, in that order.
    error unknown column*nosuch
    SELECT nosuch FROM orders

After every `error` block the next statement the engine runs must succeed and match the oracle, so
a failed statement cannot leave the engine hung or poisoned: when the next block is a `query` that
query serves, otherwise the runner inserts a probe (`SELECT count(*)` of the first data table).

The runner side: `parse_test_file` reads a file, `write_data` builds its data folder,
`engine_statements` lists what the engine runs (in one batch), `expected_answers` asks DuckDB, and
`check_results` lists every failure of a file, not just the first.
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from tpch.compare import compare_tables, ordering_of

DEFAULT_ROW_GROUP_SIZE = 100


class TestFileError(Exception):
    """A test file is malformed."""

    __test__ = False  # not a pytest class


@dataclass(frozen=True, slots=True)
class DataBlock:
    sql: str
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE
    folders: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QueryBlock:
    sql: str
    line: int
    oracle_sql: str | None = None  # what DuckDB answers instead, where it gets `sql` wrong


@dataclass(frozen=True, slots=True)
class ErrorBlock:
    sql: str
    pattern: str
    line: int


@dataclass(frozen=True, slots=True)
class TestFile:
    __test__ = False

    path: Path
    data: DataBlock
    blocks: tuple[QueryBlock | ErrorBlock, ...]

    @property
    def queries(self) -> list[QueryBlock]:
        return [b for b in self.blocks if isinstance(b, QueryBlock)]


# --- parsing -----------------------------------------------------------------------------------


def parse_test_file(path: str | Path) -> TestFile:
    path = Path(path)
    chunks: list[tuple[int, list[str]]] = []  # (line number of the header, lines)
    current: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.rstrip()
        if line.lstrip().startswith("#"):
            continue
        if not line.strip():
            if current:
                chunks.append((start, current))
                current = []
            continue
        if not current:
            start = number
        current.append(line)
    if current:
        chunks.append((start, current))

    data, blocks = None, []
    for line, (header, *body) in chunks:
        where = f"{path.name}:{line}"
        sql = "\n".join(body).strip()
        word, _, rest = header.strip().partition(" ")
        if word == "data":
            if data is not None or blocks:
                raise TestFileError(f"{where}: the data block must come first, once")
            data = DataBlock(sql, **_data_options(rest, where))
            continue
        if not sql:
            raise TestFileError(f"{where}: `{header}` block has no SQL")
        if word == "query" and not rest.strip():
            engine_sql, _, oracle_sql = sql.partition("\n----\n")
            blocks.append(QueryBlock(engine_sql.strip(), line, oracle_sql.strip() or None))
        elif word == "error" and rest.strip():
            blocks.append(ErrorBlock(sql, rest.strip(), line))
        else:
            raise TestFileError(f"{where}: expected `data`, `query` or `error PATTERN`, got {header!r}")
    if data is None:
        raise TestFileError(f"{path.name}: no data block")
    return TestFile(path, data, tuple(blocks))


def _data_options(text: str, where: str) -> dict:
    options: dict = {"folders": {}}
    for item in text.split():
        key, _, value = item.partition("=")
        if key == "row_group_size" and value.isdigit() and int(value) > 0:
            options["row_group_size"] = int(value)
        elif key == "folder" and re.fullmatch(r"[A-Za-z_]\w*:[1-9]\d*", value):
            name, parts = value.split(":")
            options["folders"][name.lower()] = int(parts)
        else:
            raise TestFileError(f"{where}: bad data option {item!r}")
    return options


def error_matches(pattern: str, message: str) -> bool:
    """Whether `message` contains `pattern` (case-insensitive; `*` matches any text)."""
    glob = "*" + pattern.lower().replace("[", "[[]").replace("?", "[?]") + "*"
    return fnmatch.fnmatchcase(message.lower(), glob)


# --- data and oracle ---------------------------------------------------------------------------


def write_data(test: TestFile, data_dir: str | Path) -> dict[str, list[Path]]:
    """Run the data block in a fresh DuckDB and write its tables as Parquet; return their files."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        con.execute(test.data.sql)
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() ORDER BY table_name"
        ).fetchall()]
        unknown = set(test.data.folders) - {n.lower() for n in names}
        if unknown:
            raise TestFileError(f"{test.path.name}: folder= names tables the data block does not create: {unknown}")
        files: dict[str, list[Path]] = {}
        for name in names:
            table = con.sql(f'SELECT * FROM "{name}"').to_arrow_table()
            parts = test.data.folders.get(name.lower())
            if parts is None:
                target = data_dir / f"{name.lower()}.parquet"
                pq.write_table(table, target, row_group_size=test.data.row_group_size)
                files[name.lower()] = [target]
                continue
            folder = data_dir / name.lower()
            folder.mkdir()
            files[name.lower()] = []
            step = -(-table.num_rows // parts)  # ceiling: the last parts may be short or empty
            for k in range(parts):
                target = folder / f"part-{k}.parquet"
                pq.write_table(table.slice(k * step, step), target, row_group_size=test.data.row_group_size)
                files[name.lower()].append(target)
        return files
    finally:
        con.close()


def oracle(files: dict[str, list[Path]]) -> duckdb.DuckDBPyConnection:
    """A fresh DuckDB with one view per table, reading exactly the Parquet files the engine reads."""
    con = duckdb.connect()
    for name, paths in files.items():
        listed = ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
        con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet([{listed}])')
    return con


def engine_statements(test: TestFile) -> tuple[list[str], list[QueryBlock | ErrorBlock]]:
    """What the engine runs, in order, and the block each statement checks.

    After an error block not followed by a query, a probe query is inserted (see the module doc).
    """
    probe = QueryBlock(f"SELECT count(*) AS probe FROM {_first_table(test)}", 0)
    checked: list[QueryBlock | ErrorBlock] = []
    for i, block in enumerate(test.blocks):
        checked.append(block)
        following = test.blocks[i + 1] if i + 1 < len(test.blocks) else None
        if isinstance(block, ErrorBlock) and not isinstance(following, QueryBlock):
            checked.append(probe)
    return [b.sql for b in checked], checked


def _first_table(test: TestFile) -> str:
    match = re.search(r"CREATE\s+(?:OR\s+REPLACE\s+)?TABLE\s+([A-Za-z_]\w*)", test.data.sql, re.IGNORECASE)
    if not match:
        raise TestFileError(f"{test.path.name}: the data block creates no table")
    return match.group(1).lower()


def expected_answers(checked: list[QueryBlock | ErrorBlock], files: dict[str, list[Path]]) -> list:
    """DuckDB's answer for each query block (a pa.Table, or the error text); None for error blocks."""
    con = oracle(files)
    answers: list = []
    try:
        for block in checked:
            if isinstance(block, ErrorBlock):
                answers.append(None)
                continue
            try:
                answers.append(con.sql(block.oracle_sql or block.sql).to_arrow_table())
            except duckdb.Error as e:
                answers.append(f"{type(e).__name__}: {e}")
    finally:
        con.close()
    return answers


# --- checking ----------------------------------------------------------------------------------


def check_results(test: TestFile, checked: list, expected: list, results: list) -> list[str]:
    """One description per failed block (query text, then what went wrong); empty when all pass."""
    failures = []
    for i, (block, want, got) in enumerate(zip(checked, expected, results, strict=True)):
        problem = _check_one(block, want, got)
        if problem is None:
            continue
        if block.line == 0:
            where = f"probe after the error at line {checked[i - 1].line}"
        else:
            where = f"line {block.line}"
        after_error = i > 0 and isinstance(checked[i - 1], ErrorBlock) and isinstance(block, QueryBlock)
        note = f" (first query after the error at line {checked[i - 1].line})" if after_error and block.line else ""
        problem = problem.replace("\n", "\n     ")  # multi-line engine messages stay under their query
        failures.append(f"{test.path.name} {where}{note}:\n{_indent(block.sql)}\n  -> {problem}")
    return failures


def _check_one(block, want, got) -> str | None:
    if isinstance(block, ErrorBlock):
        if got.error is None:
            rows = got.table.num_rows if got.table is not None else "no"
            return f"expected an error matching {block.pattern!r}, got a result ({rows} rows)"
        if not error_matches(block.pattern, got.error):
            return f"expected an error matching {block.pattern!r}, got {got.error_type}: {got.error}"
        return None
    if isinstance(want, str):
        return f"TEST BUG: DuckDB itself fails on this query: {want}"
    if got.error is not None:
        return f"engine error {got.error_type}: {got.error}"
    if got.table is None:
        return "engine returned no table"
    order = ordering_of(block.sql)
    diff = compare_tables(got.table, want, ordered=order.ordered, order_keys=order.keys, limited=order.limited, check_names=True)
    if diff is None:
        return None
    return f"{diff}\nactual:   {_preview(got.table)}\nexpected: {_preview(want)}"


def _preview(table: pa.Table, rows: int = 8) -> str:
    shown = [tuple(r.values()) for r in table.slice(0, rows).to_pylist()]
    more = f" ... ({table.num_rows} rows)" if table.num_rows > rows else ""
    return f"{shown}{more}"


def _indent(sql: str) -> str:
    return "\n".join("    " + line for line in sql.splitlines())
