"""WITH RECURSIVE, run as iterations of ordinary distributed statements.

For `WITH RECURSIVE t(cols) AS (anchor UNION [ALL] step) outer`, rank 0 drives:

    result := anchor                      (CREATE TABLE AS: each rank writes its part)
    work   := result
    repeat: new := step with t read from work
            (UNION: minus the rows result holds already, distinct)
            stop when new is empty; else append new to result; work := new
    outer, with t read from result

so each iteration is a stage that runs on every rank like any query, and UNION's new rows are
deduplicated by a distributed EXCEPT. The tables live only for the statement, under names no client
writes (engine/temp_tables.py: hidden, and removed at the next start if the server dies). One
recursive CTE per statement (others may sit beside it); a recursion that has not ended after
MAX_ITERATIONS iterations is stopped with an error, as a runaway query.
"""
from __future__ import annotations

import uuid

import pyarrow as pa
from sqlglot import exp

from engine.errors import ExecutionError, NotSupportedError
from engine.temp_tables import TEMP_MARK

MAX_ITERATIONS = 10_000


def recursive_cte(ast: exp.Expression) -> exp.CTE | None:
    """The recursive CTE of a WITH RECURSIVE query, None when it has none."""
    with_ = ast.args.get("with_") or ast.args.get("with")
    if with_ is None or not with_.args.get("recursive"):
        return None
    found = [c for c in with_.expressions if _reads(c.this, c.alias_or_name)]
    if len(found) > 1:
        raise NotSupportedError("WITH RECURSIVE with more than one recursive CTE")
    return found[0] if found else None


def _reads(query: exp.Expression, name: str) -> bool:
    return any(t.name.lower() == name.lower() and not t.args.get("db") for t in query.find_all(exp.Table))


def run(session, ast: exp.Expression, params, token, client) -> pa.Table:
    cte = recursive_cte(ast)
    body = cte.this
    if not isinstance(body, exp.Union) or _reads(body.this, cte.alias_or_name):
        raise NotSupportedError("WITH RECURSIVE whose CTE is not `anchor UNION [ALL] step`")
    if params:
        raise NotSupportedError("parameters in WITH RECURSIVE")
    distinct = bool(body.args.get("distinct"))
    name = cte.alias_or_name
    with_ = ast.args.get("with_") or ast.args.get("with")
    others = [c for c in with_.expressions if c is not cte]
    columns = [c.name for c in cte.args["alias"].columns] if cte.args.get("alias") and cte.args["alias"].columns \
        else None
    tag = uuid.uuid4().hex[:12]
    tables = {role: f"rec_{role}{TEMP_MARK}{tag}" for role in ("result", "work", "new")}
    quoted = {role: f'"{t}"' for role, t in tables.items()}

    def with_others(query: exp.Expression, bound: str | None) -> str:
        ctes = [c.copy() for c in others]
        if bound is not None:
            ctes.append(exp.CTE(this=exp.select("*").from_(bound), alias=exp.TableAlias(
                this=exp.to_identifier(name), columns=[exp.to_identifier(c) for c in columns] if columns else None)))
        query = query.copy()
        if ctes:
            query.set("with_", exp.With(expressions=ctes))
        return query.sql("duckdb")

    def sql(text: str) -> pa.Table:
        return session.execute(text, token=token, client=client)

    anchor = with_others(body.this, None)
    renamed = f"(SELECT * FROM ({anchor}) AS __a({', '.join(columns)}))" if columns else f"({anchor})"
    try:
        sql(f"CREATE TABLE {quoted['result']} AS SELECT {'DISTINCT ' if distinct else ''}* FROM {renamed}")
        if columns is None:
            columns = list(session.catalog.table_schema(tables["result"]).names)
        sql(f"CREATE TABLE {quoted['work']} AS SELECT * FROM {quoted['result']}")
        step = with_others(body.expression, quoted["work"])
        for _ in range(MAX_ITERATIONS):
            new = f"SELECT DISTINCT * FROM ({step}) EXCEPT SELECT * FROM {quoted['result']}" if distinct else step
            sql(f"CREATE OR REPLACE TABLE {quoted['new']} AS {new}")
            if sql(f"SELECT count(*) FROM {quoted['new']}").column(0)[0].as_py() == 0:
                break
            sql(f"INSERT INTO {quoted['result']} SELECT * FROM {quoted['new']}")
            sql(f"CREATE OR REPLACE TABLE {quoted['work']} AS SELECT * FROM {quoted['new']}")
        else:
            raise ExecutionError(f"WITH RECURSIVE {name} did not end after {MAX_ITERATIONS} iterations")
        outer = ast.copy()
        outer_with = outer.args.get("with_") or outer.args.get("with")
        for c in outer_with.expressions:
            if c.alias_or_name == name:
                c.set("this", exp.select("*").from_(quoted["result"]))
        outer_with.set("recursive", False)
        return sql(outer.sql("duckdb"))
    finally:
        for table in quoted.values():
            try:
                session.execute(f"DROP TABLE IF EXISTS {table}", client=client)
            except Exception:  # noqa: BLE001 - a leftover is removed at the next start
                pass
