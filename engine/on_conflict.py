"""INSERT … ON CONFLICT DO NOTHING | DO UPDATE, INSERT OR IGNORE and INSERT OR REPLACE.

As DuckDB runs them: a new row whose key the table already holds is left out (DO NOTHING) or
updates that row (DO UPDATE SET …, where its WHERE holds; OR REPLACE sets every column but the key
to the new row's values in the columns the INSERT names). Of the new rows that share a key, the first is taken and the others are
left out (the first in VALUES; of a query's rows, any one: their order is not defined). The key is
the conflict target, or, where the INSERT names none, the table's only key (DO NOTHING: any key;
see _key_new_rows_share for new rows that share a value of one of several keys).

DO NOTHING appends the rows that remain; DO UPDATE is a MERGE of the rows that remain into the
table (engine/writes.py). Either way the new version's keys are checked before it is written, so
a new row that collides on another key fails the statement, as in DuckDB.
"""
from __future__ import annotations

import sqlglot
from sqlglot import exp

from engine import writes
from engine.errors import NotSupportedError, PlanError
from planner.qualify import Statement

EXCLUDED = "excluded"


def insert(session, stmt: Statement, params, token, lane, table, action: str):
    ast = stmt.query
    conflict = ast.args.get("conflict")
    keys = _conflict_keys(table, conflict, action)
    alias = ast.this.this.alias_or_name if isinstance(ast.this, exp.Schema) else ast.this.alias_or_name
    rows, named = writes._insert_source(session, ast, params, table, positioned=True)
    names = table.schema.names
    columns = ", ".join(writes._quote(n) for n in names)
    settable = writes._settable(table)  # a generated column is computed, never inserted
    target = f"{writes._quote(table.name)} AS {writes._quote(alias)}"
    if action == "nothing":
        # New rows that share a key: the first of them is taken, whether or not the table holds its
        # key (a row left out for a key held takes out those after it that share its key).
        firsts = _first_of_each(rows, _key_new_rows_share(session, rows, keys, table, params, token, lane))
        held = " OR ".join(f"({_same(key, alias)})" for key in keys)
        fresh = f"SELECT * FROM ({firsts}) AS {EXCLUDED} WHERE NOT EXISTS (SELECT 1 FROM {target} WHERE {held})"
        return writes._append(session, ast, table, f"SELECT {columns} FROM ({fresh})", params, token, lane)
    key = keys[0]
    if conflict is not None and conflict.expressions:
        sets = [_qualified(eq, alias) for eq in conflict.expressions]
    else:  # OR REPLACE: each column the INSERT names, but the key's, from the new row
        sets = [f"{writes._quote(n)} = {EXCLUDED}.{writes._quote(n)}" for n in named if n not in key] or \
            [f"{writes._quote(key[0])} = {writes._quote(alias)}.{writes._quote(key[0])}"]  # counted, as DuckDB counts it
    where = conflict.args.get("where") if conflict is not None else None
    condition = f" AND ({_qualified(where.this, alias)})" if where is not None else ""
    update = f"WHEN MATCHED{condition} THEN UPDATE SET {', '.join(sets)} "
    merge = (f"MERGE INTO {target} USING (SELECT {columns} FROM ({_first_of_each(rows, key)})) AS {EXCLUDED} "
             f"ON {_same(key, alias)} {update}"
             f"WHEN NOT MATCHED THEN INSERT ({', '.join(writes._quote(n) for n in settable)}) "
             f"VALUES ({', '.join(f'{EXCLUDED}.{writes._quote(n)}' for n in settable)})")
    merge_ast = sqlglot.parse_one(merge, read="duckdb")
    merge_ast.set("returning", ast.args.get("returning"))
    merge_stmt = Statement("merge", merge_ast, name=stmt.name, sql=merge)
    return writes._merge(session, merge_stmt, params, token, lane, table)


def _conflict_keys(table, conflict, action: str) -> tuple[tuple[str, ...], ...]:
    """The keys a new row is compared on, as DuckDB's binder picks them."""
    keys = table.constraints.keys
    named = [(k.this if isinstance(k, exp.Ordered) else k).name.lower()
             for k in (conflict.args.get("conflict_keys") or [] if conflict is not None else [])]
    if named:
        for key in keys:
            if sorted(c.lower() for c in key) == sorted(named):
                return (key,)
        raise PlanError("The specified columns as conflict target are not referenced by a UNIQUE/PRIMARY KEY "
                        "CONSTRAINT or INDEX")
    if not keys:
        raise PlanError("There are no UNIQUE/PRIMARY KEY constraints that refer to this table, specify ON CONFLICT "
                        "columns manually")
    if action == "update" and len(keys) > 1:
        raise PlanError("Conflict target has to be provided for a DO UPDATE operation when the table has multiple "
                        "UNIQUE/PRIMARY KEY constraints")
    return keys


def _same(key: tuple[str, ...], alias: str) -> str:
    """A held row and a new row have the same key (a NULL in it matches nothing)."""
    return " AND ".join(f"{writes._quote(alias)}.{writes._quote(c)} = {EXCLUDED}.{writes._quote(c)}" for c in key)


def _first_of_each(rows: str, key: tuple[str, ...] | None) -> str:
    """`rows` less those a row before them shares a key with (rows with a NULL in it share none)."""
    if key is None:
        return rows
    cols = ", ".join(writes._quote(c) for c in key)
    some_null = " OR ".join(f"{writes._quote(c)} IS NULL" for c in key)
    return (f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY {cols} ORDER BY {writes.POSITION}) AS "
            f"__flocksql_nth FROM ({rows})) WHERE __flocksql_nth = 1 OR {some_null}")


def _key_new_rows_share(session, rows: str, keys, table, params, token, lane) -> tuple[str, ...] | None:
    """The key on which new rows may share a value: the only key compared, or None. On a table with
    several keys, DuckDB takes the first of new rows that share a value of the key written first in
    its CREATE TABLE (its first index), as above; of rows that share a value of another key, which it
    keeps follows no order we can give (not the first in VALUES; not always the same rows). Refused."""
    if len(keys) == 1:
        return keys[0]
    shared = []
    for key in keys:
        cols = ", ".join(writes._quote(c) for c in key)
        present = " AND ".join(f"{writes._quote(c)} IS NOT NULL" for c in key)
        found = writes._query(session, f"SELECT count(*) FROM (SELECT {cols} FROM ({rows}) WHERE {present} "
                                       f"GROUP BY {cols} HAVING count(*) > 1)", params, token, lane)
        if found.column(0)[0].as_py():
            shared.append(key)
    if not shared:
        return None
    if shared == [table.constraints.first_key]:
        return shared[0]
    raise NotSupportedError("INSERT … ON CONFLICT DO NOTHING (or INSERT OR IGNORE) where new rows share a value of "
                            "a key other than the first written, on a table with several keys")


def _qualified(node: exp.Expression, alias: str) -> str:
    """A DO UPDATE value or WHERE: a bare column is the held row's (`excluded.c` the new row's)."""
    if node.find(exp.Select, exp.Subquery) is not None:
        raise NotSupportedError("a subquery in ON CONFLICT DO UPDATE")
    node = node.copy()
    for column in list(node.find_all(exp.Column)):
        if not column.table and not writes._is_default(column):
            column.set("table", exp.to_identifier(alias))
    return node.sql("duckdb")
