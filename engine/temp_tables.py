"""Temporary tables and views: private to the client session that made them, gone with it.

`CREATE TEMP TABLE x …` makes an ordinary table of the data folder under a name no client writes,
`x__flocksql_temp_<session tag>`, so every rank reads it like any table; in that session's statements
an unqualified `x` (or `temp.x`, `temp.main.x`) means it, before a table `x` of schema main, as in
DuckDB. Other sessions never see it: the system catalog lists it only to its session (as DuckDB's
temp catalog does), and GetTables leaves it out. It is dropped when the session closes or expires,
and any left by a server that died are removed at the next start on its host (engine/leftovers.py).
"""
from __future__ import annotations

import re

from sqlglot import exp

from engine.errors import NotSupportedError
from engine.leftovers import TEMP_MARK
TEMP_NAME = re.compile(rf"^[a-z_][a-z0-9_]*{TEMP_MARK}[0-9a-f]+$")


def is_temp_name(name: str) -> bool:
    return TEMP_MARK in name


def stored_name(client, name: str) -> str:
    return f"{name.lower()}{TEMP_MARK}{client.temp_tag}"


def plan_key(client) -> str:
    """What the plan cache must add to a statement's key when a session's temp tables rename it."""
    return "" if client is None or not client.temp else "\x01" + repr(sorted(client.temp.items()))


def _is_temporary(create: exp.Create) -> bool:
    props = create.args.get("properties")
    return props is not None and any(isinstance(p, exp.TemporaryProperty) for p in props.expressions)


def rewrite(ast: exp.Expression, client) -> exp.Expression:
    """`ast` with the session's temp tables under their stored names, and a CREATE TEMP made an
    ordinary CREATE of the stored name (the Session records it once it succeeded)."""
    creates = isinstance(ast, exp.Create) and _is_temporary(ast)
    qualified_temp = any(_temp_qualified(t) for t in ast.find_all(exp.Table))
    if client is None or (not client.temp and not creates and not qualified_temp):
        return ast
    ast = ast.copy()
    if creates:
        if (ast.args.get("kind") or "").upper() not in ("TABLE", "VIEW"):
            raise NotSupportedError(f"CREATE TEMPORARY {ast.args.get('kind')}")
        props = ast.args["properties"]
        props.set("expressions", [p for p in props.expressions if not isinstance(p, exp.TemporaryProperty)])
        if not props.expressions:
            ast.set("properties", None)
        target = ast.this.this if isinstance(ast.this, exp.Schema) else ast.this
        target.set("this", exp.to_identifier(stored_name(client, target.name)))
        target.set("db", None)
        target.set("catalog", None)
    ctes = {c.alias_or_name.lower() for c in ast.find_all(exp.CTE)}
    for table in ast.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier) or (creates and table is _create_target(ast)):
            continue
        name = table.name.lower()
        temp_qualified = _temp_qualified(table)
        plain = table.args.get("db") is None and table.args.get("catalog") is None
        if name in client.temp and (temp_qualified or (plain and name not in ctes)):
            if table.alias is None or not table.alias:
                table.set("alias", exp.TableAlias(this=exp.to_identifier(table.name)))
            table.set("this", exp.to_identifier(client.temp[name]))
            table.set("db", None)
            table.set("catalog", None)
        elif temp_qualified:
            from engine.errors import CatalogError
            raise CatalogError(f"unknown temporary table: {table.name}")
    return ast


def _create_target(create: exp.Create):
    return create.this.this if isinstance(create.this, exp.Schema) else create.this


def _temp_qualified(table: exp.Table) -> bool:
    catalog, db = table.args.get("catalog"), table.args.get("db")
    return (catalog is not None and catalog.name.lower() == "temp") or (
        catalog is None and db is not None and db.name.lower() == "temp")
