"""A query run whole by rank 0's DuckDB, as one statement over the catalog's files, where its
tables are small: where the distributed way is slow for them (WITH RECURSIVE, each of whose
iterations is two writes on every rank: a 20-step recursion over a small table took 1.4 s at 2
ranks, DuckDB 6 ms) or cannot plan the query at all (what the planner refuses with `not supported`).
The answer is then DuckDB's own, by construction.

Only a query whose every table reference is plainly one runs so: a CTE of the statement or a catalog
table (no view, temporary table, table function, name that is both a CTE and a table, which only
each reference's scope decides), with no function that reaches outside the catalog
(planner/build.py FORBIDDEN_FUNCTIONS), for a client on the default search path, and only while
rank-0-alone plans are on (planner/single_rank.py; the tests turn them off to exercise the ranks).
"""
from __future__ import annotations

import sqlglot
from sqlglot import exp

from engine.catalog import SCHEMA
from engine.client_session import DEFAULT_SCHEMA, search_path
from planner.build import FORBIDDEN_FUNCTIONS

# Rows of the tables a query reads, together, up to which rank 0 may run it alone in DuckDB.
MAX_ROWS = 1_000_000


def text_for_rank0(session, ast: exp.Expression, client) -> str | None:
    """The text rank 0's DuckDB runs `ast` by, every catalog table read from its files; None when
    the query may not run so (see the module's text)."""
    catalog = session.catalog
    if session.alone_max_cost <= 0 or (client is not None and (client.temp or search_path(client) != [DEFAULT_SCHEMA])):
        return None
    ctes = {c.alias_or_name.lower() for w in ast.find_all(exp.With) for c in w.expressions}
    if any(catalog.has_table(n) or n in catalog.views for n in ctes):
        return None
    for f in ast.find_all(exp.Func):
        name = (f.name if isinstance(f, exp.Anonymous) else f.sql_name()).lower()
        if name in FORBIDDEN_FUNCTIONS:
            return None
    out = ast.copy()
    rows = 0
    for t in list(out.find_all(exp.Table)):
        if not isinstance(t.this, exp.Identifier) or t.args.get("catalog") is not None:
            return None
        name, db = t.name.lower(), t.args.get("db")
        if db is None and name in ctes:
            continue
        if (db is not None and db.name.lower() != SCHEMA) or name in catalog.views or not catalog.has_table(name):
            return None
        table = catalog.table(name)
        rows += table.row_count
        source = sqlglot.parse_one(f"SELECT * FROM {table.sql_source(table.files)}", read="duckdb").args["from_"].this
        source.set("alias", t.args.get("alias") or exp.TableAlias(this=exp.to_identifier(t.name)))
        t.replace(source)
    if rows > MAX_ROWS:
        return None
    return out.sql("duckdb")
