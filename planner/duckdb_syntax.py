"""DuckDB statements that sqlglot's DuckDB reader fails on, written so that it reads them.

DuckDB has checked a statement's syntax before (planner/qualify.py), so these rewrites only change
how sqlglot sees what DuckDB already read; each is tried only when sqlglot fails:
- a PIVOT's ON items written as whole expressions (`PIVOT t ON x > 4`): bracketed
  (planner/pivot_syntax.py);
- `VIRTUAL` after a generated column's expression (`b AS (a * 2) VIRTUAL`), DuckDB's only kind of
  generated column: left out.
"""
from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import ParseError
from sqlglot.tokens import TokenType

from planner.pivot_syntax import parenthesise_pivot_on


def parse_statements(sql: str) -> list[exp.Expression]:
    """sqlglot's statements of `sql`, read again as rewritten above where sqlglot fails on it."""
    try:
        return [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except ParseError:
        for rewrite in (parenthesise_pivot_on, _without_virtual):
            rewritten = rewrite(sql)
            if rewritten is None:
                continue
            try:
                return [s for s in sqlglot.parse(rewritten, read="duckdb") if s is not None]
            except ParseError:
                continue
        raise


def _without_virtual(sql: str) -> str | None:
    try:
        tokens = DuckDB().tokenize(sql)
    except Exception:
        return None
    spans = [(t.start, t.end) for before, t in zip(tokens, tokens[1:])
             if before.token_type == TokenType.R_PAREN and t.token_type == TokenType.VAR and t.text.upper() == "VIRTUAL"]
    if not spans:
        return None
    out, last = [], 0
    for start, end in spans:
        out.append(sql[last:start])
        last = end + 1
    return "".join(out) + sql[last:]
