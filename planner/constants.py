"""Constant SQL expressions evaluated while planning, as DuckDB evaluates them.

Some clauses need a value before a plan exists: a PIVOT IN list's constants (their text names the
columns), a LIMIT written as an expression (`LIMIT 1 + 1`, `LIMIT 2.7`), a COLUMNS lambda over
the column names. Each is evaluated by a DuckDB of its own, in memory, with external access off,
so that the value is DuckDB's (its casts, its rounding) and nothing outside the statement is read.
"""
from __future__ import annotations

import duckdb
from sqlglot import exp

from engine.errors import CatalogError


def is_constant(e: exp.Expression) -> bool:
    """Whether e reads no column, runs no query and holds no parameter."""
    return e.find(exp.Column, exp.Query, exp.Placeholder, exp.Parameter, exp.Star) is None


def evaluate(sql: str, params: list | None = None, what: str = "a constant"):
    """The one value of `SELECT <sql>` (params bound to its `?`s); a DuckDB error becomes a
    CatalogError that names `what`."""
    con = duckdb.connect(config={"enable_external_access": False})
    try:
        return con.execute(f"SELECT {sql}", params or []).fetchone()[0]
    except duckdb.Error as e:
        raise CatalogError(f"{what}: {str(e).splitlines()[0]}") from None
    finally:
        con.close()
