"""Process-wide DuckDB instances for small side work: statistics of a new table version, the
schema of `CREATE TABLE t (…)`, the parser's check, constant table-function calls.

A new DuckDB instance costs 20-40 ms to open, more than most statements take, and statements that
write (each iteration of WITH RECURSIVE writes three tables) used to open one or two each. Callers
take a cursor (its own connection to the shared instance, about 1 ms) so that threads never share
one connection's state.
"""
from __future__ import annotations

import threading

import duckdb

_lock = threading.Lock()
_instances: dict[bool, duckdb.DuckDBPyConnection] = {}


def scratch_cursor(sandboxed: bool = True) -> duckdb.DuckDBPyConnection:
    """A fresh connection to this process's scratch instance: sandboxed (no file or network
    access, one thread) or not (reads the catalog's files; DuckDB's default threads)."""
    with _lock:
        con = _instances.get(sandboxed)
        if con is None:
            config = {"threads": 1, "enable_external_access": False} if sandboxed else {}
            con = _instances[sandboxed] = duckdb.connect(config=config)
        return con.cursor()
