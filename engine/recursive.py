"""WITH RECURSIVE, run as iterations of ordinary distributed statements.

For `WITH RECURSIVE t(cols) AS (anchor UNION [ALL] step) outer`, rank 0 drives:

    result := anchor                      (CREATE TABLE AS: each rank writes its part)
    work   := result
    repeat: new := step with t read from work
            (UNION: minus the rows result holds already, distinct)
            stop when new is empty; else append new to result; work := new
            (two tables take turns as new and work: nothing is copied)
    outer, with t read from result

so each iteration is a stage that runs on every rank like any query, and UNION's new rows are
deduplicated by a distributed EXCEPT. The tables live only for the statement, under names no client
writes (engine/temp_tables.py: hidden, and removed at the next start if the server dies). A
recursion that has not ended after MAX_ITERATIONS iterations is stopped with an error, as a runaway
query. Several recursive CTEs are computed one after the other, in the WITH's order: each later
CTE (recursive or not) and the outer query read the tables of those before it. A write that reads
a recursive query (INSERT, CREATE TABLE AS, or a WITH RECURSIVE before UPDATE, DELETE or MERGE) has
its recursive CTEs computed so while it holds every lane, then runs over their tables.
"""
from __future__ import annotations

import pyarrow as pa
from sqlglot import exp

from engine.errors import CatalogError, ExecutionError, NotSupportedError
from engine.leftovers import TEMP_MARK, temp_tag

MAX_ITERATIONS = 10_000


def recursive_withs(ast: exp.Expression) -> list[exp.With]:
    """Every WITH RECURSIVE clause of `ast` that has a recursive CTE, the statement's own and those
    of its derived tables, CTEs and subqueries, inner ones first (an outer one may read them)."""
    found = [w for w in ast.find_all(exp.With) if w.args.get("recursive")
             and any(_reads(c.this, c.alias_or_name) for c in w.expressions)]
    return sorted(found, key=_depth, reverse=True)


def _depth(node: exp.Expression) -> int:
    depth = 0
    while node.parent is not None:
        node, depth = node.parent, depth + 1
    return depth


def _reads(query: exp.Expression, name: str) -> bool:
    return any(t.name.lower() == name.lower() and not t.args.get("db") for t in query.find_all(exp.Table))


def run(session, ast: exp.Expression, params, token, client) -> pa.Table:
    """Computes each recursive CTE in the WITH's order into a table of its own; the CTEs after it
    (a later recursive CTE among them) and the outer query then read that table. For a write
    (in_write), the caller holds every lane (LanePool.exclusive), so that no other write comes
    between the recursion and the write."""
    if params:
        raise NotSupportedError("parameters in WITH RECURSIVE")
    made: list[str] = []  # tables to drop
    try:
        outer = ast.copy()
        for with_ in recursive_withs(outer):
            _materialize(session, with_, token, client, made)
        return session.execute(outer.sql("duckdb"), token=token, client=client)
    finally:
        _drop(session, made, client)


def in_write(ast: exp.Expression) -> list[exp.With]:
    """The WITH RECURSIVE clauses with recursive CTEs of a write (before it, in the query an INSERT
    or CREATE TABLE AS writes, or in its subqueries): [] when it has none."""
    if not isinstance(ast, (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create)) or \
            (isinstance(ast, exp.Create) and (ast.args.get("kind") or "").upper() != "TABLE"):
        return []  # (a view's recursion runs each time it is read)
    return recursive_withs(ast)


def _materialize(session, with_: exp.With, token, client, made: list[str]) -> None:
    """Replaces (in place) each recursive CTE of `with_` by a read of a table of its rows, computed
    now; `with_` is then no longer RECURSIVE. The tables made are added to `made`."""
    ctes = list(with_.expressions)
    recursive = {c.alias_or_name.lower() for c in ctes if _reads(c.this, c.alias_or_name)}
    current = [c.copy() for c in ctes]
    own = {c.alias_or_name.lower() for c in ctes}
    around = [c for c in _ctes_around(with_) if c.alias_or_name.lower() not in own]
    for i, cte in enumerate(ctes):
        name = cte.alias_or_name.lower()
        if name not in recursive:
            continue
        later = [c.alias_or_name for c in ctes[i + 1:] if c.alias_or_name.lower() in recursive
                 and _reads(cte.this, c.alias_or_name)]
        if later:
            raise NotSupportedError(f"a recursive CTE ({cte.alias_or_name}) that reads a recursive CTE defined "
                                    f"after it ({later[0]})")
        pending = {c.alias_or_name.lower() for c in ctes[i:] if c.alias_or_name.lower() in recursive}
        others = around + [c for j, c in enumerate(current) if j != i and not _reads_any(c, current, pending)]
        try:
            result = _recursion(session, cte, others, token, client, made)
        except CatalogError as e:
            if with_.parent is None or with_.parent.parent is None:
                raise
            # Computed apart from the query around it, a subquery's recursion cannot read its columns.
            raise NotSupportedError(f"WITH RECURSIVE in a subquery that reads a column of the query around it "
                                    f"({e})") from None
        current[i] = exp.CTE(this=exp.select("*").from_(result), alias=cte.args["alias"].copy())
    with_.set("expressions", current)
    with_.set("recursive", False)


def _ctes_around(with_: exp.With) -> list[exp.CTE]:
    """The CTEs of the queries around a WITH that it can read (copies, outermost first): those
    defined before the CTE that holds it, recursive ones left out (computed after it)."""
    levels = []
    node = with_.parent
    while node is not None:
        outer = node.args.get("with_") if isinstance(node, exp.Query) else None
        if outer is not None and outer is not with_:
            level = []
            for cte in outer.expressions:
                if any(w is with_ for w in cte.this.find_all(exp.With)):
                    break
                if not _reads(cte.this, cte.alias_or_name):
                    level.append(cte.copy())
            levels.append(level)
        node = node.parent
    return [cte for level in reversed(levels) for cte in level]


def _drop(session, tables: list[str], client) -> None:
    for table in tables:
        try:
            session.execute(f"DROP TABLE IF EXISTS {table}", client=client)
        except Exception:  # noqa: BLE001 - a leftover is removed at the next start
            pass


def _reads_any(cte: exp.CTE, ctes: list[exp.CTE], names: set[str]) -> bool:
    """Whether cte reads one of names, directly or through the other CTEs it reads."""
    by_name = {c.alias_or_name.lower(): c for c in ctes}
    seen, stack = set(), [cte]
    while stack:
        for t in stack.pop().this.find_all(exp.Table):
            n = t.name.lower()
            if t.args.get("db"):
                continue
            if n in names:
                return True
            if n in by_name and n not in seen:
                seen.add(n)
                stack.append(by_name[n])
    return False


def _recursion(session, cte: exp.CTE, others: list[exp.CTE], token, client, made: list[str]) -> str:
    """Runs one recursive CTE to its end; returns the (quoted) table that holds its rows."""
    body = cte.this
    if not isinstance(body, exp.Union) or _reads(body.this, cte.alias_or_name):
        raise NotSupportedError("WITH RECURSIVE whose CTE is not `anchor UNION [ALL] step`")
    distinct = bool(body.args.get("distinct"))
    name = cte.alias_or_name
    columns = [c.name for c in cte.args["alias"].columns] if cte.args.get("alias") and cte.args["alias"].columns \
        else None
    tag = temp_tag()
    # The result, and two tables the iterations take turns to write (each reads the other's rows,
    # the result's at first): a turn is two statements, the step's CREATE (its count says whether
    # the recursion ended) and the INSERT into the result, with no copy between turns.
    tables = {role: f"rec_{role}{TEMP_MARK}{tag}" for role in ("result", "even", "odd")}
    quoted = {role: f'"{t}"' for role, t in tables.items()}
    made += quoted.values()

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

    def named(query: str, alias: str) -> str:
        # The rows under the CTE's column names: DuckDB names an unaliased item by its text
        # (`'N'`, `(r.depth + 1)`), which the tables between iterations could not be read back by.
        listed = ", ".join(exp.to_identifier(c).sql("duckdb") for c in columns)
        return f"(SELECT * FROM ({query}) AS {alias}({listed}))"

    anchor = with_others(body.this, None)
    renamed = named(anchor, "__a") if columns else f"({anchor})"
    sql(f"CREATE TABLE {quoted['result']} AS SELECT {'DISTINCT ' if distinct else ''}* FROM {renamed}")
    if columns is None:
        columns = list(session.catalog.table_schema(tables["result"]).names)
    work, new = quoted["result"], quoted["even"]
    for _ in range(MAX_ITERATIONS):
        step = named(with_others(body.expression, work), "__s")
        rows = (f"SELECT DISTINCT * FROM {step} EXCEPT SELECT * FROM {quoted['result']}" if distinct
                else f"SELECT * FROM {step}")
        if sql(f"CREATE OR REPLACE TABLE {new} AS {rows}").column(0)[0].as_py() == 0:
            break
        sql(f"INSERT INTO {quoted['result']} SELECT * FROM {new}")
        work, new = new, (quoted["odd"] if new == quoted["even"] else quoted["even"])
    else:
        raise ExecutionError(f"WITH RECURSIVE {name} did not end after {MAX_ITERATIONS} iterations")
    return quoted["result"]
