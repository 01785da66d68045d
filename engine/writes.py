"""Statements that change tables: INSERT, UPDATE, DELETE, CREATE TABLE (columns), bulk ingest,
ALTER … RENAME, CREATE/DROP SCHEMA.

A table of the data folder is a Parquet file `NAME.parquet` or a folder `NAME/` of Parquet files.
Every change builds the table's next version in a temporary folder of the data folder and renames
it into place: readers see the version before or the one after, never half of a change, and a write
killed half-way leaves a `.tmp-*` folder that is cleaned at the next start. Files that stay the same
are hard links in the new version (an INSERT copies nothing; UPDATE and DELETE rewrite the table
through one distributed query, each rank writing its part). The Session holds every lane while a
write runs, so writers never interleave and no query reads a version being replaced.
"""
from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from engine.catalog import DATABASE, SCHEMA, SCHEMA_MARKER
from engine.constraints import enforce, from_create, from_metadata, with_constraints
from engine.constraints import quote_name as _quote  # (one quoting for the names a write's SQL holds)
from engine.errors import (CatalogError, ConstraintError, ExecutionError, InvalidValueError, NotSupportedError, PlanError,
                           from_duckdb)
from engine.leftovers import owner_tag
from executors.scratch import scratch_cursor
from planner.qualify import Statement, bind_params, object_name

# A file beside the parts a write's ranks make, holding the Arrow schema they write in.
PART_SCHEMA_FILE = "_schema.arrows"
KINDS = ("insert", "update", "delete", "merge", "create_empty_table", "rename", "create_schema", "drop_schema")
# The column that holds a row's place among the rows an INSERT … ON CONFLICT gives.
POSITION = "__flocksql_position"
# Rows per row group of ingested data: ranks split a file by row groups.
INGEST_ROW_GROUP_ROWS = 122_880


def classify_write(ast: exp.Expression, sql: str, catalog=None) -> Statement | None:
    """The Statement of a write, or None when `ast` is not one."""
    if isinstance(ast, (exp.Insert, exp.Update, exp.Delete, exp.Merge)) and ast.args.get("with_") is not None:
        ast = _without_with(ast)
    if isinstance(ast, exp.Insert):
        source_with = ast.expression.args.get("with_") if isinstance(ast.expression, exp.Query) else None
        if source_with is not None and source_with.args.get("recursive"):
            # Such a query runs step by step (engine/recursive.py), not as a plan a write can read.
            raise NotSupportedError("INSERT of a query with WITH RECURSIVE")
        if any(ast.args.get(k) for k in ("overwrite", "where", "partition")) or \
                (ast.args.get("alternative") or "").lower() not in ("", "replace", "ignore"):
            raise NotSupportedError(f"INSERT {ast.args.get('alternative') or 'OVERWRITE'}")
        _check_returning(ast, recomputed=_on_conflict_action(ast) == "update")
        target = ast.this.this if isinstance(ast.this, exp.Schema) else ast.this
        return Statement("insert", ast, name=_table_name(target), sql=sql)
    if isinstance(ast, exp.Merge):
        _check_returning(ast, recomputed=True)
        return Statement("merge", ast, name=_table_name(ast.this), sql=sql)
    if isinstance(ast, exp.Update):
        if ast.args.get("from_") or ast.args.get("from"):
            _check_returning(ast, recomputed=True)
            merge = _update_from_as_merge(ast, catalog)
            merge.set("returning", ast.args.get("returning"))
            return Statement("merge", merge, name=_table_name(ast.this), sql=sql)
        _check_returning(ast)
        if ast.args.get("returning") and any(_volatile(eq) for eq in ast.expressions):
            raise NotSupportedError("UPDATE … RETURNING with a SET value that changes from call to call "
                                    "(random(), uuid(), nextval())")
        return Statement("update", ast, name=_table_name(ast.this), sql=sql)
    if isinstance(ast, exp.Delete):
        _check_returning(ast)
        return Statement("delete", ast, name=_table_name(ast.this), sql=sql)
    if isinstance(ast, exp.Alter):
        kind = (ast.args.get("kind") or "").upper()
        actions = ast.args.get("actions") or []
        if kind in ("TABLE", "VIEW") and len(actions) == 1 and isinstance(actions[0], exp.AlterRename):
            return Statement("rename", ast, name=_table_name(ast.this), if_exists=bool(ast.args.get("exists")),
                             sql=f"{kind}:{_table_name(actions[0].this)}")
        raise NotSupportedError(f"ALTER {kind} other than RENAME TO")
    if isinstance(ast, exp.Create):
        kind = (ast.args.get("kind") or "").upper()
        if kind == "SCHEMA":
            return Statement("create_schema", ast, name=_schema_name(ast.this), if_exists=bool(ast.args.get("exists")),
                             sql=sql)
        if kind == "TABLE" and isinstance(ast.this, exp.Schema) and ast.expression is None:
            return Statement("create_empty_table", ast, name=_table_name(ast.this.this),
                             if_exists=bool(ast.args.get("exists")), or_replace=bool(ast.args.get("replace")), sql=sql)
    if isinstance(ast, exp.Drop) and (ast.args.get("kind") or "").upper() == "SCHEMA":
        tables = ast.args.get("tables") or [ast.this]
        return Statement("drop_schema", ast, name=_schema_name(tables[0]), if_exists=bool(ast.args.get("exists")),
                         sql=sql)
    return None


def _without_with(ast: exp.Expression) -> exp.Expression:
    """`WITH x AS (…) INSERT|UPDATE|DELETE|MERGE …` as the same write without its WITH: an INSERT's
    query takes the CTEs; elsewhere each reference to one becomes its query, a derived table (a
    target named like a CTE is DuckDB's error there; an INSERT's target stays the table, as in DuckDB)."""
    with_ = ast.args["with_"]
    ast = ast.copy()
    ast.set("with_", None)
    if isinstance(ast, exp.Insert) and isinstance(ast.expression, exp.Query):
        own = ast.expression.args.get("with_")
        ast.expression.set("with_", exp.With(expressions=[*with_.expressions, *(own.expressions if own else [])],
                                             recursive=with_.args.get("recursive") or (own and own.args.get("recursive"))))
        return ast
    target = ast.this.this if isinstance(ast.this, exp.Schema) else ast.this
    if isinstance(target, exp.Table) and not target.args.get("db") and \
            target.name.lower() in {cte.alias_or_name.lower() for cte in with_.expressions}:
        raise PlanError({exp.Update: "Can only update base table", exp.Delete: "Can only delete from base table",
                         exp.Merge: "Can only merge into base tables!"}[type(ast)])
    if with_.args.get("recursive"):
        raise NotSupportedError("WITH RECURSIVE before UPDATE, DELETE or MERGE")
    bodies: dict[str, exp.Expression] = {}

    def inline(node):
        if isinstance(node, exp.Table) and not node.args.get("db") and node.name.lower() in bodies:
            name, body = bodies[node.name.lower()]
            columns = name.columns if isinstance(name, exp.TableAlias) else []
            return exp.Subquery(this=body.copy(), alias=exp.TableAlias(this=exp.to_identifier(node.alias_or_name),
                                                                          columns=[c.copy() for c in columns]))
        return node

    for cte in with_.expressions:  # a CTE may read the ones before it
        bodies[cte.alias_or_name.lower()] = (cte.args.get("alias"), cte.this.transform(inline))
    for key, value in list(ast.args.items()):
        if key != "this" and isinstance(value, exp.Expression):
            ast.set(key, value.transform(inline))
        elif key != "this" and isinstance(value, list):
            ast.set(key, [v.transform(inline) if isinstance(v, exp.Expression) else v for v in value])
    return ast


# Functions whose value changes from call to call: an UPDATE's RETURNING, computed apart from the
# rows written, would not show the values written.
_VOLATILE = {"random", "rand", "uuid", "gen_random_uuid", "nextval", "setseed"}


def _volatile(e: exp.Expression) -> bool:
    return any((f.name if isinstance(f, exp.Anonymous) else f.sql_name()).lower() in _VOLATILE
               for f in e.find_all(exp.Func))


def _check_returning(ast: exp.Expression, recomputed: bool = False) -> None:
    """RETURNING is computed over the rows a write touched, apart from the catalog: no subquery.
    recomputed: its rows are computed apart from the write (a MERGE's), so no value in the
    statement may change from call to call."""
    returning = ast.args.get("returning")
    if returning is None:
        return
    if recomputed and _volatile(ast):
        raise NotSupportedError("RETURNING of a MERGE, UPDATE … FROM or ON CONFLICT DO UPDATE with a value that "
                                "changes from call to call (random(), uuid(), nextval())")
    if returning.find(exp.Select, exp.Subquery) is not None:
        raise NotSupportedError("a subquery in RETURNING")
    if returning.find(exp.AggFunc, exp.Window) is not None:
        raise PlanError("aggregate and window functions are not supported in RETURNING")


def _returned(ast: exp.Expression, table, rows: pa.Table) -> pa.Table:
    """RETURNING's select list over `rows` (the rows written or deleted, in the table's columns;
    a MERGE's with MERGE_ACTION too, which `*` leaves out), which it may name by the table's name or
    alias; evaluated on this rank in a sandboxed DuckDB."""
    returning = ast.args["returning"]
    if MERGE_ACTION in rows.column_names:
        returning = returning.copy()
        for star in returning.find_all(exp.Star):
            star.set("except_", [*(star.args.get("except_") or []), exp.column(MERGE_ACTION)])
        ast = ast.copy()
        ast.set("returning", returning)
    target = ast.this.this if isinstance(ast.this, exp.Schema) else ast.this
    # An INSERT's rows go by the table's name (DuckDB's binder knows no alias there).
    name = target.name if isinstance(ast, exp.Insert) else target.alias_or_name
    con = scratch_cursor()
    try:
        con.register("__flocksql_returned", rows)
        items = ", ".join(e.sql("duckdb") for e in returning.expressions)
        return con.sql(f"SELECT {items} FROM __flocksql_returned AS {_quote(name)}").to_arrow_table()
    except duckdb.Error as e:
        raise from_duckdb(e, "RETURNING: ") from None
    finally:
        con.close()


def _update_from_as_merge(ast: exp.Update, catalog=None) -> exp.Merge:
    """UPDATE t SET … FROM s WHERE c is MERGE INTO t USING s ON c WHEN MATCHED THEN UPDATE SET …:
    a row of t is updated when c holds for a row of s. Where several rows of s match one row of t,
    DuckDB takes one of them, which is not defined: the MERGE refuses that, before writing."""
    frm = ast.args.get("from_") or ast.args.get("from")
    if ast.args.get("joins") or frm.this.args.get("joins") or frm.expressions or isinstance(frm.this, exp.Values):
        if catalog is None:
            raise NotSupportedError("UPDATE … FROM with more than one table or a join (write the join in a subquery)")
        return _update_from_join_as_merge(ast, frm, catalog)
    where = ast.args.get("where")
    on = where.this.sql("duckdb") if where is not None else "TRUE"
    sets = ", ".join(_set_sql(eq) for eq in ast.expressions)
    text = (f"MERGE INTO {ast.this.sql('duckdb')} USING {frm.this.sql('duckdb')} ON {on} "
            f"WHEN MATCHED THEN UPDATE SET {sets}")
    return sqlglot.parse_one(text, read="duckdb")


def _refuse_repeated_assignments(assignments) -> None:
    """DuckDB's binder error for `SET v = 1, v = 2` (the last one was written)."""
    seen = set()
    for eq in assignments:
        name = eq.this.name.lower()
        if name in seen:
            raise PlanError(f'Multiple assignments to same column "{eq.this.name}"')
        seen.add(name)


def _set_sql(eq: exp.EQ) -> str:
    """`column = value` of a SET, the keyword DEFAULT kept (sqlglot would write it as a quoted name)."""
    return f"{eq.this.sql('duckdb')} = DEFAULT" if _is_default(eq.expression) else eq.sql("duckdb")


def _update_from_join_as_merge(ast: exp.Update, frm: exp.From, catalog) -> exp.Merge:
    """UPDATE t SET … FROM a, b JOIN c ON … WHERE w: the FROM items become one source, a derived
    table of the columns of theirs that SET and WHERE read (each under a name of its own, so that
    `a.k` and `b.k` stay apart), and the statement the MERGE above over it. Which table each
    column belongs to is the planner's qualification of `SELECT <SET values>, w FROM a, b JOIN c
    ON …, t`, the target joined last: the FROM items' own joins never see it, as in DuckDB."""
    from planner.qualify import qualify_statement
    target = ast.this
    alias = target.alias_or_name
    first = frm.this.copy()
    joins = [j.copy() for j in (first.args.get("joins") or [])] + [exp.Join(this=e.copy()) for e in frm.expressions]
    first.set("joins", None)
    where = ast.args.get("where")
    items = [exp.alias_(exp.null() if _is_default(eq.expression) else eq.expression.copy(), f"__set{i}")
             for i, eq in enumerate(ast.expressions)]
    items.append(exp.alias_(where.this.copy() if where is not None else exp.true(), "__where"))
    select = exp.Select(expressions=items)
    select.set("from_", exp.From(this=first))
    select.set("joins", joins + [exp.Join(this=target.copy())])
    qualified = qualify_statement(select, catalog)
    source = qualified.copy()
    kept = source.args["joins"][:-1]
    source.set("joins", kept or None)
    names: dict[tuple[str, str], str] = {}
    outputs = []

    def to_source(node):
        if isinstance(node, exp.Column) and node.table and node.table != alias:
            key = (node.table, node.name)
            if key not in names:
                names[key] = f"__s{len(names)}"
                outputs.append(exp.alias_(node.copy(), names[key]))
            return exp.column(names[key], table="__src")
        return node

    # WHERE's conjuncts that read no column of the target filter (and join) the FROM items
    # themselves; the others match their rows to the target's.
    conjuncts = list(qualified.expressions[-1].this.flatten()) if isinstance(qualified.expressions[-1].this, exp.And) \
        else [qualified.expressions[-1].this]
    own = [c for c in conjuncts if not any(col.table == alias for col in c.find_all(exp.Column))]
    matching = [c for c in conjuncts if c not in own]
    values = [e.this.transform(to_source) for e in qualified.expressions[:-1]]
    on = exp.and_(*[c.transform(to_source) for c in matching]) if matching else exp.true()
    source.set("expressions", outputs or [exp.alias_(exp.Literal.number(1), "__one")])
    source.set("where", exp.Where(this=exp.and_(*own)) if own else None)
    sets = ", ".join(_set_sql(eq) if _is_default(eq.expression) else f"{eq.this.sql('duckdb')} = {v.sql('duckdb')}"
                     for eq, v in zip(ast.expressions, values))
    text = (f"MERGE INTO {target.sql('duckdb')} USING ({source.sql('duckdb')}) AS __src ON {on.sql('duckdb')} "
            f"WHEN MATCHED THEN UPDATE SET {sets}")
    return sqlglot.parse_one(text, read="duckdb")


def _table_name(table: exp.Expression) -> str:
    return object_name(table)


def _schema_name(node: exp.Expression) -> str:
    """The schema of CREATE/DROP SCHEMA (sqlglot puts it in the table's `db`, the database in `catalog`)."""
    if isinstance(node, exp.Table):
        catalog = node.args.get("catalog")
        if catalog is not None and catalog.name.lower() != DATABASE:
            raise CatalogError(f"unknown catalog: {catalog.name}")
        return (node.args.get("db") or node.this).name.lower()
    return node.name.lower()


# --- running them (rank 0; the caller holds every lane) -------------------------------------------

def run(session, stmt: Statement, params, token, lane) -> pa.Table:
    kind = stmt.kind
    if kind == "create_schema":
        return _create_schema(session, stmt)
    if kind == "drop_schema":
        return _drop_schema(session, stmt)
    if kind == "rename":
        return _rename(session, stmt)
    if kind == "create_empty_table":
        return _create_empty(session, stmt)
    table = _writable(session, stmt.name)
    if kind == "insert":
        return _insert(session, stmt, params, token, lane, table)
    if kind == "delete":
        return _delete(session, stmt, params, token, lane, table)
    if kind == "update":
        return _update(session, stmt, params, token, lane, table)
    if kind == "merge":
        return _merge(session, stmt, params, token, lane, table)
    raise NotSupportedError(f"statement {kind}")


def _create_schema(session, stmt) -> pa.Table:
    """A schema is a folder of the data folder marked as one (engine/catalog.py: SCHEMA_MARKER)."""
    catalog, name = session.catalog, stmt.name
    if name in catalog.schemas:
        if stmt.if_exists:
            return _count(0)
        raise CatalogError(f"schema with name {name} already exists")
    if not _SCHEMA_NAME.match(name) or name in ("information_schema", "pg_catalog", "temp", "system"):
        raise CatalogError(f"cannot create schema {name}")
    folder = catalog.data_dir / name
    if folder.exists():
        raise CatalogError(f"cannot create schema {name}: the data folder holds a table or file of that name")
    tmp = catalog.data_dir / f".tmp-{name}-{owner_tag()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    (tmp / SCHEMA_MARKER).write_text("")
    os.rename(tmp, folder)
    session._refresh_all()
    return _count(0)


def _drop_schema(session, stmt) -> pa.Table:
    catalog, name = session.catalog, stmt.name
    if name == SCHEMA:
        raise CatalogError(f"cannot drop schema {SCHEMA}")
    if name not in catalog.schemas:
        if stmt.if_exists:
            return _count(0)
        raise CatalogError(f"schema with name {name} does not exist")
    members = [t for t in catalog.table_names() if t.startswith(name + ".")] + \
              [v for v in catalog.views if v.startswith(name + ".")]
    if members and not stmt.query.args.get("cascade"):
        raise CatalogError(f"cannot drop schema {name}: it holds {', '.join(sorted(members)[:5])} (use CASCADE)")
    for view in [v for v in catalog.views if v.startswith(name + ".")]:
        del catalog.views[view]
    catalog.save_views()
    trash = catalog.data_dir / f".trash-{name}-{owner_tag()}-{uuid.uuid4().hex[:8]}"
    os.rename(catalog.data_dir / name, trash)
    shutil.rmtree(trash, ignore_errors=True)
    session._refresh_all()
    return _count(0)


_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def _count(n: int) -> pa.Table:
    return pa.table({"Count": pa.array([n], pa.int64())})


def _writable(session, name: str):
    catalog = session.catalog
    if name in catalog.views:
        raise CatalogError(f"{name} is a view, not a table")
    if not catalog.has_table(name):
        raise CatalogError(f"unknown table: {name}")
    table = catalog.table(name)
    if table.format != "parquet" or table.hive:
        raise NotSupportedError(f"writing to {name}: a {table.format}{' (Hive-partitioned)' if table.hive else ''} "
                                f"table is read-only; CREATE TABLE … AS SELECT makes a Parquet copy")
    return table


def _types(session, schema: pa.Schema) -> list[str]:
    from engine.catalog_statements import cursor_of
    cursor = cursor_of(session, session.default_client)
    return [r["column_type"] for r in session.system.describe_schema(cursor, schema).to_pylist()]


def _new_version(session, name: str, keep_files, new_parts_dir: Path | None) -> None:
    """The table's next version: `keep_files` (hard links, or copies across file systems) and the
    Parquet files of `new_parts_dir`, renamed into place at once."""
    data = session.catalog.data_dir
    tmp = data / f".tmp-{name.replace('.', '-')}-{owner_tag()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        stamp = uuid.uuid4().hex[:8]
        for i, f in enumerate(keep_files):
            target = tmp / f"part-{stamp}-k{i:05d}.parquet"
            try:
                os.link(os.path.realpath(f), target)
            except OSError:
                shutil.copyfile(f, target)
        if new_parts_dir is not None:
            for i, f in enumerate(sorted(new_parts_dir.glob("*.parquet"))):
                os.rename(f, tmp / f"part-{stamp}-n{i:05d}.parquet")
        if not any(tmp.iterdir()):
            raise ExecutionError(f"table {name}: a version without files")
        session._replace_dir(tmp, session.catalog.table_path(name).with_suffix(""))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    session._refresh_all()


def _plan(session, sql: str, params):
    query = bind_params(session_parse(sql), params) if params else session_parse(sql)
    with session._plan_lock:
        return session._plan_query(query, None)


def _query(session, sql: str, params, token, lane) -> pa.Table:
    """A query's result, run in the lane the write holds (Session.execute would wait for one)."""
    return session._run(lane, _plan(session, sql, params), "collect", token)


def _write_query(session, sql: str, params, token, lane, schema: pa.Schema | None = None) -> tuple[Path, int]:
    """Runs a query with every rank writing its part of the result into a new folder: (folder, rows).
    schema: the table's, whose generated columns the write computes."""
    if schema is not None:
        sql = _with_generated(session, schema, sql)
    phys = _plan(session, sql, params)
    parts = session.catalog.data_dir / f".tmp-parts-{owner_tag()}-{uuid.uuid4().hex[:8]}"
    parts.mkdir()
    if schema is not None:  # each rank writes its part in the table's own schema (NOT NULL kept)
        with pa.OSFile(str(parts / PART_SCHEMA_FILE), "wb") as f:
            f.write(schema.serialize())
    try:
        session._run(lane, phys, "write", token, str(parts))
    except BaseException:
        shutil.rmtree(parts, ignore_errors=True)
        raise
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts.glob("*.parquet"))
    return parts, rows


def _with_generated(session, schema: pa.Schema, sql: str, keep: tuple[str, ...] = ()) -> str:
    """`sql` (rows in the table's columns, and `keep`) with its generated columns computed from the
    other columns (engine/constraints.py): one layer per generated column, as one may read another."""
    generated = dict(from_metadata(schema.metadata).generated)
    if not generated:
        return sql
    types = _types(session, schema)
    for _ in generated:
        items = [f"CAST(({generated[n]}) AS {t}) AS {_quote(n)}" if n in generated else _quote(n)
                 for n, t in zip(schema.names, types)] + [_quote(k) for k in keep]
        sql = f"SELECT {', '.join(items)} FROM ({sql}) AS __flocksql_generated"
    return sql


def _settable(table) -> list[str]:
    """The columns a write may give values to: all but the generated ones, in the table's order."""
    generated = dict(table.constraints.generated)
    return [n for n in table.schema.names if n not in generated]


def _refuse_generated(table, columns, updating: bool = False) -> None:
    generated = dict(table.constraints.generated)
    hit = [c for c in columns if c in generated]
    if hit:
        raise PlanError(f'Cant update column "{hit[0]}" because it is a generated column!' if updating else
                        "Cannot insert into a generated column")


def session_parse(sql: str) -> exp.Expression:
    from planner.qualify import parse
    return parse(sql)


def _conform_select(session, table, source_sql: str, columns: list[str] | None, source_width: int,
                    positioned: bool = False) -> str:
    """SELECT over `source_sql` that gives the table's columns in its types (missing ones their
    default). positioned: the source has one more column, kept as POSITION."""
    names = table.schema.names
    types = _types(session, table.schema)
    columns = columns or _settable(table)
    unknown = [c for c in columns if c not in names]
    if unknown:
        raise CatalogError(f"table {table.name} has no column {unknown[0]}")
    _refuse_generated(table, columns)
    if len(columns) != source_width:
        raise PlanError(f"table {table.name} has {len(columns)} columns but {source_width} values were supplied")
    src = [f"c{i}" for i in range(source_width)]
    items = []
    for name, sql_type in zip(names, types):
        value = src[columns.index(name)] if name in columns else _default_sql(table, name)
        items.append(f"CAST({value} AS {sql_type}) AS {_quote(name)}")
    if positioned:
        src.append(POSITION)
        items.append(POSITION)
    return f"SELECT {', '.join(items)} FROM ({source_sql}) AS __flocksql_source({', '.join(src)})"


def _insert(session, stmt, params, token, lane, table) -> pa.Table:
    action = _on_conflict_action(stmt.query)
    if action is not None:
        from engine import on_conflict  # (it builds on this module's INSERT and MERGE)
        return on_conflict.insert(session, stmt, params, token, lane, table, action)
    return _append(session, stmt.query, table, _insert_source(session, stmt.query, params, table)[0], params, token,
                   lane)


def _on_conflict_action(ast: exp.Insert) -> str | None:
    """What an INSERT does with a row whose key the table holds: 'nothing', 'update' or None (fail)."""
    alternative = (ast.args.get("alternative") or "").lower()
    if alternative:
        return {"ignore": "nothing", "replace": "update"}[alternative]
    conflict = ast.args.get("conflict")
    if conflict is None:
        return None
    action = conflict.args.get("action")
    words = action.name.upper() if action is not None else ""
    if conflict.args.get("duplicate") or conflict.args.get("constraint") or words not in ("DO NOTHING", "DO UPDATE"):
        raise NotSupportedError(f"INSERT … {conflict.sql('duckdb')}")
    return "nothing" if words == "DO NOTHING" else "update"


def _insert_source(session, ast: exp.Insert, params, table, positioned: bool = False) -> tuple[str, list[str]]:
    """A SELECT of the rows an INSERT gives, in the table's columns and types (defaults where the
    INSERT names no value), and the columns it names. positioned: with a column POSITION, each
    row's place in VALUES (0 for the rows of a query, whose order is not defined)."""
    columns = [c.name for c in ast.this.expressions] if isinstance(ast.this, exp.Schema) else None
    source = ast.expression
    if source is None:  # DEFAULT VALUES: every column its default
        first = _settable(table)[0]
        source, columns = exp.select(sqlglot.parse_one(_default_sql(table, first), read="duckdb")), [first]
    elif isinstance(source, exp.Values):
        source = _values_with_defaults(source, table, columns or _settable(table))
    if positioned and isinstance(source, exp.Values):
        source = source.copy()
        for i, row in enumerate(source.expressions):
            row.append("expressions", exp.Literal.number(i))
    source_sql = source.sql("duckdb")
    if ast.args.get("by_name"):
        # BY NAME: the source's columns go to the table's columns of their names (any case).
        lowered = {n.lower(): n for n in table.schema.names}
        given = session.result_schema(source_sql, params).names
        unknown = [c for c in given if c.lower() not in lowered]
        if unknown:
            raise CatalogError(f'Table "{table.name}" does not have a column with name "{unknown[0]}"')
        columns = [lowered[c.lower()] for c in given]
    named = [] if ast.expression is None else columns or _settable(table)
    if isinstance(source, exp.Values):
        width = len(source.expressions[0].expressions) - (1 if positioned else 0)
        return _conform_select(session, table, source_sql, columns, width, positioned), named
    query = _conform_select(session, table, source_sql, columns, len(session.result_schema(source_sql, params)))
    return (f"SELECT *, 0 AS {POSITION} FROM ({query})" if positioned else query), named


def _append(session, ast: exp.Insert, table, query: str, params, token, lane) -> pa.Table:
    """Adds the rows of `query` (in the table's columns) to the table: its count, or RETURNING's rows."""
    parts, rows = _write_query(session, query, params, token, lane, table.write_schema)
    try:
        _check_nulls(table, parts)
        enforce(table.name, table.constraints, table.files, sorted(parts.glob("*.parquet")))
        returned = _returned(ast, table, _read_parts(table, parts)) if ast.args.get("returning") else None
        _new_version(session, table.name, table.files, parts)
    finally:
        shutil.rmtree(parts, ignore_errors=True)
    return _count(rows) if returned is None else returned


def _default_sql(table, column: str) -> str:
    """The value a row takes in `column` where a write gives none: its DEFAULT, else NULL."""
    return table.constraints.default(column) or "NULL"


def _is_default(node: exp.Expression) -> bool:
    """The keyword DEFAULT where a value goes (sqlglot reads it as a name)."""
    if isinstance(node, exp.Column):
        return not node.table and not node.this.args.get("quoted") and node.name.upper() == "DEFAULT"
    return isinstance(node, exp.Var) and node.name.upper() == "DEFAULT"


def _values_with_defaults(values: exp.Values, table, columns: list[str]) -> exp.Values:
    """VALUES with each DEFAULT replaced by its column's default."""
    if not any(_is_default(v) for row in values.expressions for v in row.expressions):
        return values
    values = values.copy()
    for row in values.expressions:
        for i, v in enumerate(row.expressions):
            if _is_default(v) and i < len(columns):
                v.replace(sqlglot.parse_one(_default_sql(table, columns[i]), read="duckdb"))
    return values


def _read_parts(table, parts: Path) -> pa.Table:
    """The rows the ranks wrote into `parts`, in the table's schema."""
    files = sorted(parts.glob("*.parquet"))
    if not files:
        return table.schema.empty_table()
    return pa.concat_tables([pq.read_table(f, schema=table.schema) for f in files])


def _check_nulls(table, parts: Path) -> None:
    """NOT NULL columns stay so (DuckDB's constraint error, not a silently nullable table)."""
    required = [f.name for f in table.schema if not f.nullable]
    if not required:
        return
    for f in parts.glob("*.parquet"):
        meta = pq.ParquetFile(f).metadata
        schema = meta.schema.to_arrow_schema()
        for g in range(meta.num_row_groups):
            for name in required:
                st = meta.row_group(g).column(schema.get_field_index(name)).statistics
                if st is not None and st.has_null_count and st.null_count:
                    raise ConstraintError(f"NOT NULL constraint failed: {table.name}.{name}")


def _where(ast) -> str | None:
    where = ast.args.get("where")
    return where.this.sql("duckdb") if where is not None else None


def _delete(session, stmt, params, token, lane, table) -> pa.Table:
    using = stmt.query.args.get("using")
    if using:
        # WHERE binds over the target and the USING items together, as in DuckDB (a name two of them
        # hold is ambiguous); the rewrite below reads it inside EXISTS, where the USING items' own
        # columns would shadow the target's. Planned, not run.
        alias = stmt.query.this.alias_or_name
        _plan(session, f"SELECT 1 FROM {_quote(table.name)} AS {_quote(alias)}, "
                       f"{', '.join(u.sql('duckdb') for u in using)} WHERE {_where(stmt.query) or 'TRUE'}", params)
    if stmt.query.args.get("returning"):
        # The rows that go, read before they go (the write holds every lane: nothing changes between).
        # RETURNING is computed first: an error in it writes nothing, as in DuckDB.
        gone = _returned(stmt.query, table, _query(session, _deleted_rows_sql(stmt.query, table), params, token,
                                                   lane))
        _delete_rows(session, stmt, params, token, lane, table)
        return gone
    return _delete_rows(session, stmt, params, token, lane, table)


def _deleted_rows_sql(ast, table) -> str:
    cond = _where(ast) or "TRUE"
    using = ast.args.get("using")
    alias = ast.this.alias_or_name
    if using:
        sources = ", ".join(u.sql("duckdb") for u in using)
        cond = f"EXISTS (SELECT 1 FROM {sources} WHERE {cond})"
    return f"SELECT {_quote(alias)}.* FROM {_quote(table.name)} AS {_quote(alias)} WHERE ({cond}) IS TRUE"


def _delete_rows(session, stmt, params, token, lane, table) -> pa.Table:
    cond = _where(stmt.query)
    before = table.row_count
    using = stmt.query.args.get("using")
    if using:
        # DELETE … USING s WHERE c: a row goes when c holds for a row of s (of their cross product).
        alias = stmt.query.this.alias_or_name
        sources = ", ".join(u.sql("duckdb") for u in using)
        rows = _rewrite(session, table, f"SELECT {_quote(alias)}.* FROM {_quote(table.name)} AS {_quote(alias)} "
                                        f"WHERE NOT EXISTS (SELECT 1 FROM {sources} WHERE {cond or 'TRUE'})",
                        params, token, lane, check=False)
        return _count(before - rows)
    if cond is None:
        empty = session.catalog.data_dir / f".tmp-parts-{owner_tag()}-{uuid.uuid4().hex[:8]}"
        empty.mkdir()
        pq.write_table(table.write_schema.empty_table(), empty / "part-00000.parquet")
        try:
            _new_version(session, table.name, (), empty)
        finally:
            shutil.rmtree(empty, ignore_errors=True)
        return _count(before)
    rows = _rewrite(session, table, f"SELECT * FROM {_quote(table.name)} WHERE ({cond}) IS NOT TRUE", params, token,
                    lane, check=False)
    return _count(before - rows)


def _update(session, stmt, params, token, lane, table) -> pa.Table:
    ast = stmt.query
    cond = _where(ast) or "TRUE"
    assignments = {}
    _refuse_repeated_assignments(ast.expressions)
    for eq in ast.expressions:
        column = eq.this.name
        if column not in table.schema.names:
            raise CatalogError(f"table {table.name} has no column {column}")
        _refuse_generated(table, [column], updating=True)
        assignments[column] = _default_sql(table, column) if _is_default(eq.expression) else eq.expression.sql("duckdb")
    types = _types(session, table.schema)
    target = f"{_quote(table.name)} AS {_quote(ast.this.alias_or_name)}"
    items = []
    for name, sql_type in zip(table.schema.names, types):
        if name in assignments:
            items.append(f"CASE WHEN ({cond}) IS TRUE THEN CAST(({assignments[name]}) AS {sql_type}) "
                         f"ELSE {_quote(name)} END AS {_quote(name)}")
        else:
            items.append(_quote(name))
    if ast.args.get("returning"):
        # The rows as they will be, read before the write (which holds every lane) with the SET
        # values it writes (none changes from call to call: classify_write refuses those).
        new_rows = [f"CAST(({assignments[n]}) AS {t}) AS {_quote(n)}" if n in assignments else _quote(n)
                    for n, t in zip(table.schema.names, types)]
        rows = _with_generated(session, table.write_schema,
                               f"SELECT {', '.join(new_rows)} FROM {target} WHERE ({cond}) IS TRUE")
        updated = _returned(ast, table, _query(session, rows, params, token, lane))
        _rewrite(session, table, f"SELECT {', '.join(items)} FROM {target}", params, token, lane)
        return updated
    count = _query(session, f"SELECT count(*) FROM {target} WHERE {cond}", params, token, lane)
    count = count.column(0)[0].as_py()
    _rewrite(session, table, f"SELECT {', '.join(items)} FROM {target}", params, token, lane)
    return _count(count)


def _rewrite(session, table, sql: str, params, token, lane, check: bool = True) -> int:
    """The table's next version is the result of `sql` (every rank writes its part): its rows.
    check=False: rows only go (a DELETE), so the keys and CHECKs still hold."""
    parts, rows = _write_query(session, sql, params, token, lane, table.write_schema)
    try:
        _ensure_file(table, parts)
        _check_nulls(table, parts)
        if check:
            enforce(table.name, table.constraints, (), sorted(parts.glob("*.parquet")))
        _new_version(session, table.name, (), parts)
    finally:
        shutil.rmtree(parts, ignore_errors=True)
    return rows


def _ensure_file(table, parts: Path) -> None:
    if not any(parts.glob("*.parquet")):
        pq.write_table(table.write_schema.empty_table(), parts / "part-00000.parquet")


def _rename(session, stmt) -> pa.Table:
    kind, new = stmt.sql.split(":", 1)
    catalog, old = session.catalog, stmt.name
    if "." in old and "." not in new:  # RENAME TO keeps the schema
        new = f"{old.rsplit('.', 1)[0]}.{new}"
    if catalog.has_table(new) or new in catalog.views:
        raise CatalogError(f"a table or view named {new} already exists")
    if kind == "VIEW":
        if old not in catalog.views:
            if stmt.if_exists:
                return _count(0)
            raise CatalogError(f"unknown view: {old}")
        catalog.views[new] = catalog.views.pop(old)
        catalog.save_views()
    else:
        if not catalog.has_table(old):
            if stmt.if_exists:
                return _count(0)
            raise CatalogError(f"unknown table: {old}")
        source = catalog.table_path(old)
        target = catalog.table_path(new).with_suffix(source.suffix if source.is_file() else "")
        os.rename(source, target)
    session._refresh_all()
    return _count(0)


def refuse_unwritable_types(schema: pa.Schema) -> None:
    """A table's columns must have a Parquet type pyarrow writes: INTERVAL has none there."""
    for field in schema:
        if pa.types.is_interval(field.type) or pa.types.is_duration(field.type):
            raise NotSupportedError(f"a table column of type INTERVAL ({field.name}): cast it, e.g. to VARCHAR")


def _create_empty(session, stmt) -> pa.Table:
    catalog, name = session.catalog, stmt.name
    exists = catalog.has_table(name) or name in catalog.views
    if exists and stmt.if_exists:
        return _count(0)
    if exists and not stmt.or_replace:
        raise CatalogError(f"table {name} already exists")
    schema = empty_table_schema(stmt.query)
    refuse_unwritable_types(schema)
    parts = catalog.data_dir / f".tmp-parts-{owner_tag()}-{uuid.uuid4().hex[:8]}"
    parts.mkdir()
    try:
        pq.write_table(schema.empty_table(), parts / "part-00000.parquet")
        _new_version(session, name, (), parts)
    finally:
        shutil.rmtree(parts, ignore_errors=True)
    return _count(0)


def empty_table_schema(create: exp.Create) -> pa.Schema:
    """The Arrow schema of `CREATE TABLE t (columns)`, as DuckDB types it (NOT NULL kept), with the
    table's keys, CHECKs and DEFAULTs in its metadata (engine/constraints.py)."""
    schema_node = create.this
    for item in schema_node.expressions:
        kinds = [c.args.get("kind") for c in item.args.get("constraints") or []] if isinstance(item, exp.ColumnDef) \
            else [item]
        for kind in kinds:
            # An identity column (a sequence of its own): refused by name, never a column left NULL.
            if isinstance(kind, exp.GeneratedAsIdentityColumnConstraint) and not kind.args.get("expression"):
                raise NotSupportedError("CREATE TABLE with an identity column")
    # A temporary table: private to this cursor's connection, gone when it closes.
    bare = exp.Create(this=exp.Schema(this=exp.to_table("t"), expressions=schema_node.expressions),
                      kind="TABLE", properties=exp.Properties(expressions=[exp.TemporaryProperty()]))
    con = scratch_cursor()
    try:
        con.execute(bare.sql("duckdb"))
        arrow = con.sql("SELECT * FROM temp.t LIMIT 0").to_arrow_table().schema
        nullable = dict(con.execute("SELECT column_name, is_nullable FROM duckdb_columns() WHERE table_name = 't' "
                                    "AND database_name = 'temp'").fetchall())
    except duckdb.Error as e:
        raise from_duckdb(e) from None
    finally:
        con.close()
    schema = pa.schema([pa.field(f.name, f.type, nullable[f.name]) for f in arrow])
    return with_constraints(schema, from_create(schema_node, schema.names))


def ingest(session, name: str, data: pa.Table, if_not_exist: int, if_exists: int, token, lane) -> int:
    """Flight SQL bulk ingest: `data` becomes table `name` (if_not_exist 1 create / 2 fail;
    if_exists 1 fail / 2 append / 3 replace; unspecified: create, fail)."""
    catalog = session.catalog
    name = name.lower()
    exists = catalog.has_table(name)
    if name in catalog.views:
        raise CatalogError(f"{name} is a view")
    if not exists and if_not_exist == 2:
        raise CatalogError(f"unknown table: {name}")
    if exists and if_exists in (0, 1):
        raise CatalogError(f"table {name} already exists")
    from engine.catalog import plain_schema
    data = data.cast(plain_schema(data.schema))
    parts = catalog.data_dir / f".tmp-parts-{owner_tag()}-{uuid.uuid4().hex[:8]}"
    parts.mkdir()
    try:
        keep = ()
        if exists and if_exists == 2:  # append: the rows in the table's own types
            table = _writable(session, name)
            data = _conform_arrow(session, table, data)
            keep = table.files
        pq.write_table(data, parts / "part-00000.parquet", row_group_size=INGEST_ROW_GROUP_ROWS)
        if keep:
            enforce(name, table.constraints, keep, [parts / "part-00000.parquet"])
        _new_version(session, name, keep, parts)
    finally:
        shutil.rmtree(parts, ignore_errors=True)
    return data.num_rows


def _conform_arrow(session, table, data: pa.Table) -> pa.Table:
    """Ingested rows in the table's own schema: the data names the columns a write gives values
    to (all but the generated ones, which are computed here, as INSERT computes them)."""
    settable = _settable(table)
    if data.schema.names != settable:
        raise CatalogError(f"table {table.name} has columns {settable}, the data {data.schema.names}")
    data = _cast_to(table, data, settable)
    if len(settable) < len(table.schema):
        data = _with_generated_arrow(session, table, data)
    for column, f in zip(data.columns, table.schema):
        if not f.nullable and column.null_count:
            raise ConstraintError(f"NOT NULL constraint failed: {table.name}.{f.name}")
    # In the table's own schema (NOT NULL and constraints kept: the catalog reads them from the files).
    return pa.Table.from_arrays(data.columns, schema=table.write_schema)


def _with_generated_arrow(session, table, data: pa.Table) -> pa.Table:
    """`data` (the table's settable columns) with its generated columns computed, in the table's
    column order, by this process's sandboxed DuckDB."""
    generated = dict(table.constraints.generated)
    items = ", ".join(f"NULL AS {_quote(n)}" if n in generated else _quote(n) for n in table.schema.names)
    con = scratch_cursor()
    try:
        con.register("__flocksql_ingested", data)
        sql = _with_generated(session, table.write_schema, f"SELECT {items} FROM __flocksql_ingested")
        computed = con.sql(sql).to_arrow_table()
    except duckdb.Error as e:
        raise from_duckdb(e) from None
    finally:
        con.close()
    return _cast_to(table, computed, table.schema.names)


def _cast_to(table, data: pa.Table, columns: list[str]) -> pa.Table:
    """`data` (the table's `columns`, in its order) cast to the table's types, NULLs allowed (the
    NOT NULL check names the column after)."""
    try:
        return data.cast(pa.schema([pa.field(f.name, f.type, True) for f in table.schema if f.name in columns]))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise InvalidValueError(f"the data does not fit table {table.name}: {e}") from None


MATCHED_FLAG = "__flocksql_matched"
# The column a MERGE's RETURNING names the action of each row by (DuckDB's name).
MERGE_ACTION = "merge_action"


def _merge(session, stmt, params, token, lane, table) -> pa.Table:
    """MERGE INTO target USING source ON … WHEN … clauses, as DuckDB runs them: each target row
    takes the first WHEN MATCHED clause (for a source row it matches) or WHEN NOT MATCHED BY SOURCE
    clause (when it matches none) whose AND condition holds: UPDATE SET (`SET *` or bare UPDATE:
    the source's columns by position), DELETE or DO NOTHING; each source row that matches no target
    row takes the first WHEN NOT MATCHED [BY TARGET] clause that holds: INSERT [(columns)] VALUES
    (…), `INSERT *` or bare INSERT (the source's columns by position), or DO NOTHING. The table's
    next version is built at once. Where a WHEN MATCHED clause may act, a target row that several
    source rows match is refused before anything is written (DuckDB applies one of them, whichever
    it meets first), unless every match deletes it. Returns DuckDB's count: matches updated or
    deleted, rows inserted."""
    ast = stmt.query
    whens = ast.args["whens"].expressions if ast.args.get("whens") else []
    dest = ast.this.alias_or_name
    target = f"{_quote(table.name)} AS {_quote(dest)}"
    source_node = ast.args["using"]
    src = source_node.alias_or_name
    alias = source_node.args.get("alias")
    if isinstance(source_node, exp.Subquery) and not (alias is not None and alias.columns):
        source_sql = source_node.this.sql("duckdb")
    elif isinstance(source_node, (exp.Table, exp.Subquery)):
        # A table (by its schema too), or a derived table whose alias names its columns (`AS m(a, b)`).
        source_sql = f"SELECT * FROM {source_node.sql('duckdb')}"
    else:
        source_sql = source_node.sql("duckdb")
    on = ast.args["on"].sql("duckdb")
    names, types = table.schema.names, _types(session, table.schema)
    source_columns = _lazy(lambda: [f"{_quote(src)}.{_quote(c)}" for c in session.result_schema(source_sql, params).names])
    flag = f"{_quote(src)}.{MATCHED_FLAG}"
    if any(w.args.get("matched") for w in whens):
        # A row of the target meets each source row it matches (several are refused below).
        joined = f"FROM {target} LEFT JOIN (SELECT *, TRUE AS {MATCHED_FLAG} FROM ({source_sql})) AS {_quote(src)} ON {on}"
        is_matched, is_unmatched = f"{flag} IS TRUE", f"{flag} IS NULL"
    else:
        # Only whether it matches any: each row of the target once, however many source rows match it.
        joined = f"FROM {target}"
        is_matched = f"EXISTS (SELECT 1 FROM ({source_sql}) AS {_quote(src)} WHERE {on})"
        is_unmatched = f"NOT {is_matched}"

    # The target's side: (predicate, action, column values) per clause, in the order written.
    on_target, matched = [], []
    for when in whens:
        if not when.args.get("matched") and not when.args.get("source"):
            continue
        predicate = is_matched if when.args.get("matched") else is_unmatched
        if when.args.get("condition"):
            predicate += f" AND ({when.args['condition'].sql('duckdb')})"
        action, sets = _merge_target_action(when.args["then"], table, names, source_columns)
        values = [f"CAST(({sets[n]}) AS {t})" if n in sets else f"{_quote(dest)}.{_quote(n)}"
                  for n, t in zip(names, types)]
        on_target.append((predicate, action, values))
        if when.args.get("matched"):
            matched.append((predicate, action))
    if matched and matched[0] != (is_matched, "delete"):
        # Which source row would act on a row several match is not defined: refused, not guessed.
        pairs = _query(session, f"SELECT count(*) FROM {target} JOIN ({source_sql}) AS {_quote(src)} ON {on}",
                       params, token, lane).column(0)[0].as_py()
        hit = _query(session, f"SELECT count(*) FROM {target} WHERE EXISTS (SELECT 1 FROM ({source_sql}) AS "
                              f"{_quote(src)} WHERE {on})", params, token, lane).column(0)[0].as_py()
        if pairs > hit:
            raise NotSupportedError("MERGE where a target row matches more than one source row (DuckDB applies one "
                                    "of them, whichever it meets first)")

    def first_clause(picked) -> str:
        """CASE over the target's clauses in order: the first whose predicate holds gives picked(i)."""
        arms = " ".join(f"WHEN {p} THEN {picked(i)}" for i, (p, _, _) in enumerate(on_target))
        return f"CASE {arms} ELSE FALSE END"

    kept = [f"{_quote(dest)}.{_quote(n)}" for n in names]
    where, changed = "", 0
    returning = []  # RETURNING's rows: SELECTs of the table's columns and MERGE_ACTION
    if on_target:
        kept = [f"CASE {' '.join(f'WHEN {p} THEN {v[j]}' for p, _, v in on_target)} ELSE {kept[j]} END"
                for j in range(len(names))]
        if any(a == "delete" for _, a, _ in on_target):
            where = f" WHERE NOT ({first_clause(lambda i: 'TRUE' if on_target[i][1] == 'delete' else 'FALSE')})"
        acted = first_clause(lambda i: 'FALSE' if on_target[i][1] == 'nothing' else 'TRUE')
        changed += _query(session, f"SELECT count(*) {joined} WHERE {acted}", params, token, lane).column(0)[0].as_py()
        action = " ".join(f"WHEN {p} THEN '{a.upper()}'" for p, a, _ in on_target)
        returning.append(f"SELECT {', '.join(f'{e} AS {_quote(n)}' for e, n in zip(kept, names))}, "
                         f"CASE {action} END AS {MERGE_ACTION} {joined} WHERE {acted}")
    parts_sql = [f"SELECT {', '.join(f'{e} AS {_quote(n)}' for e, n in zip(kept, names))} {joined}{where}"]

    # The source's side: rows that match no target row, each to its first WHEN NOT MATCHED clause.
    by_target = [w for w in whens if not w.args.get("matched") and not w.args.get("source")]
    if by_target:
        pick = " ".join(f"WHEN {w.args['condition'].sql('duckdb') if w.args.get('condition') else 'TRUE'} THEN {i + 1}"
                        for i, w in enumerate(by_target))
        unmatched = (f"FROM ({source_sql}) AS {_quote(src)} WHERE NOT EXISTS (SELECT 1 FROM {target} WHERE {on}) "
                     f"AND (CASE {pick} ELSE 0 END)")
        inserting = []
        for i, when in enumerate(by_target):
            inserted = _merge_inserted(when.args["then"], table, names, types, source_columns)
            if inserted is None:
                continue
            inserting.append(str(i + 1))
            items = ', '.join(f'{e} AS {_quote(n)}' for e, n in zip(inserted, names))
            parts_sql.append(f"SELECT {items} {unmatched} = {i + 1}")
            returning.append(f"SELECT {items}, 'INSERT' AS {MERGE_ACTION} {unmatched} = {i + 1}")
        if inserting:
            changed += _query(session, f"SELECT count(*) {unmatched} IN ({', '.join(inserting)})", params, token,
                              lane).column(0)[0].as_py()
    returned = None
    if ast.args.get("returning"):
        # The rows as they will be (deleted ones as they were), read before the write, which holds
        # every lane; RETURNING is computed first: an error in it writes nothing, as in DuckDB.
        rows = _query(session, _with_generated(session, table.write_schema, " UNION ALL ".join(returning),
                                               (MERGE_ACTION,)), params, token, lane) if returning else \
            pa.table({**{f.name: pa.array([], f.type) for f in table.schema}, MERGE_ACTION: pa.array([], pa.string())})
        returned = _returned(ast, table, rows)
    _rewrite(session, table, " UNION ALL ".join(parts_sql), params, token, lane)
    return _count(changed) if returned is None else returned


def _lazy(make):
    """A value made on first use (the source's columns cost a plan: only `SET *` / `INSERT *` need them)."""
    made = []

    def get():
        if not made:
            made.append(make())
        return made[0]
    return get


def _merge_target_action(then: exp.Expression, table, names: list[str], source_columns) -> tuple[str, dict]:
    """A WHEN MATCHED / NOT MATCHED BY SOURCE clause's action ('update', 'delete' or 'nothing') and
    the columns it sets, by name."""
    if isinstance(then, exp.Var) and then.name.upper() in ("DELETE", "DO NOTHING"):
        return ("delete" if then.name.upper() == "DELETE" else "nothing"), {}
    if not isinstance(then, exp.Update):
        raise NotSupportedError(f"MERGE … THEN {then.sql('duckdb')}")
    items = then.expressions or []
    if not items or (len(items) == 1 and isinstance(items[0], exp.Star)):
        values, settable = source_columns(), _settable(table)
        if len(values) != len(settable):
            raise CatalogError(f"Data provided for UPDATE did not match column count in table - expected "
                               f"{len(settable)} columns but got {len(values)}")
        return "update", dict(zip(settable, values))
    _refuse_repeated_assignments(items)
    sets = {eq.this.name: _default_sql(table, eq.this.name) if _is_default(eq.expression) else eq.expression.sql("duckdb")
            for eq in items}
    unknown = [c for c in sets if c not in names]
    if unknown:
        raise CatalogError(f"table {table.name} has no column {unknown[0]}")
    _refuse_generated(table, sets, updating=True)
    return "update", sets


def _merge_inserted(then: exp.Expression, table, names: list[str], types: list[str], source_columns) -> list[str] | None:
    """A WHEN NOT MATCHED clause's row, one expression per column of the table (None: DO NOTHING)."""
    if isinstance(then, exp.Var) and then.name.upper() == "DO NOTHING":
        return None
    if not isinstance(then, exp.Insert):
        raise NotSupportedError(f"MERGE … WHEN NOT MATCHED THEN {then.sql('duckdb')}")
    if isinstance(then.expression, exp.Tuple):
        columns = [c.name for c in then.this.expressions] if isinstance(then.this, exp.Tuple) else _settable(table)
        values = [_default_sql(table, columns[i]) if _is_default(v) and i < len(columns) else v.sql("duckdb")
                  for i, v in enumerate(then.expression.expressions)]
    elif then.expression is None or then.expression is False or isinstance(then.this, exp.Star):
        columns, values = _settable(table), source_columns()
    else:
        raise NotSupportedError(f"MERGE … WHEN NOT MATCHED THEN {then.sql('duckdb')}")
    if len(columns) != len(values):
        raise CatalogError(f"table {table.name} has {len(columns)} columns but {len(values)} values were supplied")
    if any(c not in names for c in columns):
        raise CatalogError(f"MERGE INSERT: columns {columns} do not fit table {table.name}")
    _refuse_generated(table, columns)
    return [f"CAST(({values[columns.index(n)] if n in columns else _default_sql(table, n)}) AS {t})"
            for n, t in zip(names, types)]
