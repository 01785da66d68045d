"""Session and catalog statements: SET/RESET/USE, BEGIN/COMMIT/ROLLBACK, SHOW, DESCRIBE, PRAGMA
table_info, SUMMARIZE, and queries over the system catalog.

Recognised from the text before the SQL parser sees it (DuckDB-only syntax that sqlglot does not
model). Catalog statements run on rank 0 against the system catalog's mirror (see
engine/system_catalog.py); SUMMARIZE reads data, so its aggregates are one distributed query
whose single row rank 0 turns into DuckDB's SUMMARIZE table; DESCRIBE of a query takes the
planner's result schema, the one its results will have.
"""
from __future__ import annotations

import decimal
import re

import pyarrow as pa
from sqlglot import exp

from engine import client_session as cs
from engine.errors import FlockError, NotSupportedError
from engine.system_catalog import SESSION_FUNCTIONS, is_system_table, reads_data_tables, reads_system_catalog
from engine.temp_tables import TEMP_MARK, is_temp_name
from planner.qualify import Statement, extract_statements, parse

# Statement kinds handled here (Session.execute hands them over).
KINDS = ("session", "catalog", "describe_query", "summarize", "system_query", "use", "script")

# PRAGMAs that only read the catalog.
READ_ONLY_PRAGMAS = ("table_info", "show", "show_tables", "show_tables_expanded", "database_list", "version",
                     "storage_info")
_SHOW = re.compile(r"^\s*SHOW\s+(ALL\s+)?TABLES\s*;?\s*$", re.IGNORECASE)
_DESCRIBE = re.compile(r"^\s*(DESCRIBE|DESC|SHOW)\s+(.+?)\s*;?\s*$", re.IGNORECASE | re.DOTALL)
_SUMMARIZE = re.compile(r"^\s*SUMMARIZE\s+(?:TABLE\s+)?(.+?)\s*;?\s*$", re.IGNORECASE | re.DOTALL)
_PRAGMA = re.compile(r"^\s*PRAGMA\s+([A-Za-z_]+)\s*(\(.*\))?\s*;?\s*$", re.IGNORECASE | re.DOTALL)
_USE = re.compile(r"^\s*USE\s+(.+?)\s*;?\s*$", re.IGNORECASE)
_QUERY_START = re.compile(r"^\s*(\(|SELECT\b|WITH\b|FROM\b|VALUES\b|TABLE\b)", re.IGNORECASE)
_NAME = re.compile(r'^(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)(?:\.(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)){0,2}$')

SUMMARIZE_SCHEMA = pa.schema([
    ("column_name", pa.string()), ("column_type", pa.string()), ("min", pa.string()), ("max", pa.string()),
    ("approx_unique", pa.int64()), ("avg", pa.string()), ("std", pa.string()), ("q25", pa.string()),
    ("q50", pa.string()), ("q75", pa.string()), ("count", pa.int64()), ("null_percentage", pa.decimal128(9, 2)),
])
DESCRIBE_SCHEMA = pa.schema([(n, pa.string()) for n in ("column_name", "column_type", "null", "key", "default",
                                                       "extra")])


def recognise(sql: str) -> Statement | None:
    """The Statement of a session or catalog statement or of a script of several statements, or
    None for anything else."""
    if len(split_script(sql)) > 1:
        return Statement("script", sql=sql)
    if cs.session_statement(sql) is not None:
        return Statement("session", sql=sql)
    if _SHOW.match(sql):
        return Statement("catalog", sql=sql)
    m = _USE.match(sql)
    if m:
        return Statement("use", name=m.group(1), sql=sql)
    m = _PRAGMA.match(sql)
    if m:
        if m.group(1).lower() not in READ_ONLY_PRAGMAS:
            raise NotSupportedError(f"PRAGMA {m.group(1)}: only PRAGMAs that read the catalog "
                                    f"({', '.join(READ_ONLY_PRAGMAS)})")
        return Statement("catalog", sql=sql)
    m = _SUMMARIZE.match(sql)
    if m:
        return Statement("summarize", sql=_source(m.group(1)))
    m = _DESCRIBE.match(sql)
    if m:
        rest = m.group(2)
        if _QUERY_START.match(rest):
            return Statement("describe_query", sql=rest)
        if _NAME.match(rest):
            return Statement("catalog", sql=f"DESCRIBE {rest}")
    return None


def split_script(sql: str) -> list[str]:
    """The statements of a text, split by DuckDB's parser (a `;` inside a string or a comment does
    not split); the text itself when it holds one statement or does not parse."""
    if ";" not in sql.strip().rstrip(";"):
        return [sql]
    try:
        return [s.query.strip().rstrip(";") for s in extract_statements(sql)] or [sql]
    except Exception:  # noqa: BLE001 - the statement's own parse reports the error with its position
        return [sql]


def _source(text: str) -> str:
    """A FROM item for SUMMARIZE's argument: a table name, or a query in parentheses."""
    if _NAME.match(text):
        return text
    if _QUERY_START.match(text):
        return text if text.startswith("(") else f"({text})"
    raise NotSupportedError(f"SUMMARIZE of {text[:40]!r}: give a table name or a query")


def system_query(stmt: Statement) -> Statement:
    """A query that reads the system catalog becomes a 'system_query' (it runs on the mirror).
    The server's own settings stay private: duckdb_settings() is refused, and current_setting()
    answers only a session's settings (engine/client_session.py)."""
    if stmt.kind != "query" or not reads_system_catalog(stmt.query):
        return stmt
    for table in stmt.query.find_all(exp.Table):
        if isinstance(table.this, exp.Anonymous) and table.this.name.lower() == "duckdb_settings":
            raise NotSupportedError("duckdb_settings(): the server's settings are not shown; "
                                    "current_setting() gives a session's search_path, schema and TimeZone")
    for fn in stmt.query.find_all(exp.Anonymous):
        if fn.name.lower() == "current_setting":
            arg = fn.expressions[0] if fn.expressions else None
            if not isinstance(arg, exp.Literal) or arg.name.lower() not in cs.SETTINGS:
                raise NotSupportedError(f"current_setting({arg.sql('duckdb') if arg is not None else ''}): only "
                                        f"{', '.join(sorted(cs.SETTINGS.values()))}")
    if reads_data_tables(stmt.query):
        return stmt  # a query over both: the Session plans it with its system parts read first (below)
    return Statement("system_query", stmt.query, sql=stmt.sql)


def with_system_parts_read(session, query: exp.Expression, client: cs.ClientSession):
    """A query that reads data tables and the system catalog: (the query with each system table
    or table function replaced by a virtual table of its rows, read on the mirror now; those
    tables by name). current_setting('x') becomes the client's value. The ranks then run it as
    any other query."""
    if not reads_system_catalog(query):
        return query, {}
    from engine.catalog import virtual_table
    query = query.copy()
    tables = {}
    with client.lock:
        cursor = cursor_of(session, client)
        for i, node in enumerate([t for t in query.find_all(exp.Table) if is_system_table(t)]):
            name = f"__flocksql_system_{i}"
            bare = node.copy()
            bare.set("alias", None)
            tables[name] = virtual_table(name, session.system.run(cursor, f"SELECT * FROM {bare.sql('duckdb')}"))
            # Unaliased, it keeps the name its columns are qualified by (`tables.table_name`).
            alias = node.args.get("alias") or exp.TableAlias(this=exp.to_identifier(
                node.this.name if isinstance(node.this, (exp.Anonymous, exp.Identifier)) else node.this.sql_name()))
            node.replace(exp.Table(this=exp.to_identifier(name), alias=alias))
        for fn in list(query.find_all(exp.Anonymous)):
            if fn.name.lower() in SESSION_FUNCTIONS:
                value = session.system.run(cursor, f"SELECT {fn.sql('duckdb')}").column(0)[0].as_py()
                fn.replace(exp.Literal.string(str(value)) if value is not None else exp.null())
    return query, tables


def cursor_of(session, client: cs.ClientSession):
    """The client's cursor on the system catalog, the mirror brought up to date first."""
    cursor_sync(session)
    if client.cursor is None:
        client.cursor = session.system.cursor()
        for name, value in client.settings.items():
            if name not in cs.OWN_SETTINGS:
                client.cursor.execute(f"SET {name} = {_literal(value)}")
    return client.cursor


def run(session, stmt: Statement, params, token, client: cs.ClientSession) -> pa.Table:
    if stmt.kind == "script":
        return _run(session, stmt, params, token, client)
    with client.lock:
        return _run(session, stmt, params, token, client)


def _run(session, stmt: Statement, params, token, client: cs.ClientSession) -> pa.Table:
    kind = stmt.kind
    if kind == "script":  # as DuckDB runs one: in order, stopping at the first error; the last result
        if params:
            raise NotSupportedError("parameters for a script of several statements")
        result = pa.table({})
        for part in split_script(stmt.sql):
            result = session.execute(part, token=token, client=client)
        return result
    if kind == "session":
        return _session_statement(session, stmt.sql, client)
    if kind == "use":
        _set(session, client, "search_path", stmt.name)
        return pa.table({})
    if kind == "summarize":
        return summarize(session, stmt.sql, token, client)
    if kind == "describe_query":
        # DuckDB's binder over the mirror types the query as DuckDB would (HUGEINT, not the
        # DECIMAL(38,0) it becomes in Arrow); where it cannot, the planner's result schema.
        parse(stmt.sql)  # a syntax error is the user's, with its position
        try:
            return session.system.run(cursor_of(session, client), f"DESCRIBE {stmt.sql}", params)
        except FlockError:
            schema = session.result_schema(stmt.sql, params)
            return session.system.describe_schema(cursor_of(session, client), schema)
    # catalog statements and system queries: DuckDB's own answer over the mirror
    return session.system.run(cursor_of(session, client), stmt.sql, params)


_SCHEMA_TABLE = re.compile(r'"([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)"')


def describe_names(session, sql: str, client: cs.ClientSession | None = None) -> list[str]:
    """DuckDB's names of a query's result columns, from its binder over the mirror (on the
    client's own cursor when the query reads its temporary tables, named as the client names them)."""
    return [row["column_name"] for row in _on_mirror(session, f"DESCRIBE {sql}", client).to_pylist()]


def query_schema(session, sql: str, client: cs.ClientSession | None = None) -> pa.Schema:
    """A query's result schema as DuckDB makes it, run over the mirror's empty tables: for what the
    planner does not plan (a recursive CTE, run step by step by engine/recursive.py)."""
    return _on_mirror(session, f"SELECT * FROM ({sql}) LIMIT 0", client).schema


def _on_mirror(session, sql: str, client: cs.ClientSession | None) -> pa.Table:
    sql = _SCHEMA_TABLE.sub(r'"\1"."\2"', sql)  # the planner's "s.t" is table t of schema s
    if client is not None and (client.temp or cs.search_path(client) != [cs.DEFAULT_SCHEMA]):
        for original, stored in client.temp.items():
            sql = sql.replace(stored, original)
        with client.lock:
            return session.system.run(cursor_of(session, client), sql)
    cursor = session.system.cursor()
    try:
        cursor_sync(session)
        return session.system.run(cursor, sql)
    finally:
        cursor.close()


def cursor_sync(session) -> None:
    """The mirror brought up to date (temporary tables are their sessions' own: see track_temp)."""
    catalog = session.catalog
    session.system.sync({n: catalog.table(n).write_schema for n in catalog.table_names() if not is_temp_name(n)},
                        {n: v for n, v in catalog.views.items() if not is_temp_name(n)}, list(catalog.schemas))


def track_temp(session, client: cs.ClientSession, stmt: Statement) -> None:
    """After a statement on a temporary table's stored name: the session knows the table under its
    own name (and its mirror cursor has it as a DuckDB temp table), or forgets a dropped one."""
    original = stmt.name.split(TEMP_MARK)[0]
    with client.lock:
        cursor = cursor_of(session, client)
        if stmt.kind in ("create_table", "create_empty_table") and session.catalog.has_table(stmt.name):
            client.temp[original] = stmt.name
            schema = session.catalog.table_schema(stmt.name)
            view = "__flocksql_temp_schema"
            cursor.register(view, schema.empty_table())
            try:
                session.system.run(cursor, f'CREATE OR REPLACE TEMP TABLE "{original}" AS SELECT * FROM "{view}"')
            finally:
                cursor.unregister(view)
        elif stmt.kind == "create_view" and stmt.name in session.catalog.views:
            client.temp[original] = stmt.name
            client.temp_views.add(stmt.name)
            body = session.catalog.views[stmt.name]
            for name, stored in client.temp.items():  # the body as the client wrote it
                body = body.replace(stored, name)
            session.system.run(cursor, f'CREATE OR REPLACE TEMP VIEW "{original}" AS {body}')
        elif stmt.kind in ("drop_table", "drop_view") and not session.catalog.has_table(stmt.name) \
                and stmt.name not in session.catalog.views:
            client.temp.pop(original, None)
            client.temp_views.discard(stmt.name)
            session.system.run(cursor, f'DROP {"VIEW" if stmt.kind == "drop_view" else "TABLE"} IF EXISTS '
                                       f'temp.main."{original}"')


def result_schema(session, stmt: Statement, params, client: cs.ClientSession) -> pa.Schema:
    """The schema of a statement's result without changing anything (prepare, GetFlightInfo)."""
    if stmt.kind in ("session", "use", "script"):
        return pa.schema([])
    if stmt.kind == "summarize":
        return SUMMARIZE_SCHEMA
    if stmt.kind == "describe_query":
        return DESCRIBE_SCHEMA
    with client.lock:
        cursor = cursor_of(session, client)
        if stmt.kind == "system_query" and not params:
            return session.system.run(cursor, f"SELECT * FROM ({stmt.sql}) LIMIT 0").schema
        return session.system.run(cursor, stmt.sql, params).schema


def _session_statement(session, sql: str, client: cs.ClientSession) -> pa.Table:
    parsed = cs.session_statement(sql)
    if parsed[0] == "transaction":
        cs.transaction(client, parsed[1])
        return pa.table({})
    if parsed[0] == "reset":
        _, scope, name = parsed
        names = list(client.settings) if name.upper() == "ALL" else [cs.canonical_setting(name, scope)]
        cursor = cursor_of(session, client)
        for canon in names:
            client.settings.pop(canon, None)
            if canon not in cs.OWN_SETTINGS:
                session.system.run(cursor, f"RESET {canon}")
        return pa.table({})
    _, scope, name, value = parsed
    _set(session, client, cs.canonical_setting(name, scope), cs.unquote_value(value))
    return pa.table({})


def _set(session, client: cs.ClientSession, canon: str, value: str) -> None:
    if canon in cs.OWN_SETTINGS:
        client.settings[canon] = cs.check_own_setting(canon, value)
        return
    cursor = cursor_of(session, client)
    if canon in ("search_path", "schema"):
        cs.check_search_path(value, schemas=list(session.catalog.schemas))
    before = session.system.run(cursor, f"SELECT current_setting('{canon}') AS v").column(0)[0].as_py()
    session.system.run(cursor, f"SET {canon} = {_literal(value)}")
    if canon == "TimeZone" and not _same_clock(session, cursor):
        session.system.run(cursor, f"SET {canon} = {_literal(before)}")
        raise NotSupportedError(f"SET TimeZone = {value!r}: the ranks compute in the server's time zone "
                                f"({_server_zone(session)}); a session may set only that one")
    client.settings[canon] = value


_CLOCK = ("SELECT (TIMESTAMPTZ '2001-01-15 12:00:00+00')::TIMESTAMP AS w, "
          "(TIMESTAMPTZ '2001-07-15 12:00:00+00')::TIMESTAMP AS s")


def _same_clock(session, cursor) -> bool:
    """Whether the cursor's time zone shows instants as the server's does (winter and summer)."""
    mine = session.system.run(cursor, _CLOCK).to_pylist()
    server = session.system.con.cursor()
    try:
        return mine == session.system.run(server, _CLOCK).to_pylist()
    finally:
        server.close()


def _server_zone(session) -> str:
    server = session.system.con.cursor()
    try:
        return session.system.run(server, "SELECT current_setting('TimeZone')").column(0)[0].as_py()
    finally:
        server.close()


def _literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


# --- SUMMARIZE ------------------------------------------------------------------------------------

_NUMERIC = re.compile(r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|"
                      r"FLOAT|DOUBLE|DECIMAL.*)$")


def summarize(session, source: str, token, client: cs.ClientSession) -> pa.Table:
    """DuckDB's SUMMARIZE: per column its type, min, max, distinct estimate, average, standard
    deviation, quartiles (numeric columns), row count and share of NULLs. One distributed query
    computes every aggregate; rank 0 turns its one row into one row per column."""
    schema = session.result_schema(f"SELECT * FROM {source}")
    types = [row["column_type"] for row in session.system.describe_schema(cursor_of(session, client), schema).to_pylist()]
    items = ["count(*)"]
    for i, (field, sql_type) in enumerate(zip(schema, types)):
        col = '"' + field.name.replace('"', '""') + '"'
        items += [f"min({col})::VARCHAR", f"max({col})::VARCHAR", f"approx_count_distinct({col})", f"count({col})"]
        quartiles = [f"approx_quantile({col}, {q})::VARCHAR" for q in ("0.25", "0.5", "0.75")]
        if _NUMERIC.match(sql_type):
            items += [f"avg({col})::VARCHAR", f"stddev_samp({col})::VARCHAR", *quartiles]
        elif sql_type in ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIME"):
            items += [f"avg({col})::VARCHAR", "NULL::VARCHAR", *quartiles]
        else:
            items += ["NULL::VARCHAR"] * 5
    names = [f"s{i}" for i in range(len(items))]
    select = ", ".join(f"{item} AS {name}" for item, name in zip(items, names))
    row = session.execute(f"SELECT {select} FROM {source}", token=token).to_pylist()[0]
    values = [row[n] for n in names]
    total, rows = values[0], []
    for i, (field, sql_type) in enumerate(zip(schema, types)):
        lo, hi, distinct, non_null, avg, std, q25, q50, q75 = values[1 + 9 * i: 10 + 9 * i]
        nulls = 0 if not total else round(100 * (total - non_null) / total, 2)
        rows.append((field.name, sql_type, lo, hi, distinct, avg, std, q25, q50, q75, total,
                     decimal.Decimal(str(nulls)).quantize(decimal.Decimal("0.01"))))
    return pa.Table.from_pylist([dict(zip(SUMMARIZE_SCHEMA.names, r)) for r in rows], schema=SUMMARIZE_SCHEMA)



def parameter_schema(session, sql: str, client: cs.ClientSession) -> pa.Schema:
    """The parameters of a statement, in order: `$n` / `?` named p1, p2, …, each typed as the column
    or value it is compared with or assigned to (as DuckDB's binder would infer it), else null
    (any type). Clients such as JDBC read how many parameters a prepared statement takes from it."""
    from sqlglot import exp

    from planner.qualify import qualify_statement
    if "?" not in sql and "$" not in sql:
        # A parameter is `?`, `$n` or `$name`: without either character there is none, and parsing
        # to find out was half a millisecond of every ADBC execute (it prepares each statement).
        return pa.schema([])
    ast = parse(sql)
    holders = [n for n in ast.walk(bfs=False) if isinstance(n, (exp.Placeholder, exp.Parameter))]
    if not holders:
        return pa.schema([])
    with session._plan_lock:
        try:
            typed = qualify_statement(ast, session.catalog)
        except Exception:  # noqa: BLE001 - typing is best effort: unknown types are null
            typed = ast
    names: dict[int, object] = {}
    for position, holder in enumerate(n for n in typed.walk(bfs=False) if isinstance(n, (exp.Placeholder, exp.Parameter))):
        key = holder.this if isinstance(holder, exp.Placeholder) else holder.name
        index = int(str(key)) - 1 if key is not None and str(key).isdigit() else position
        other = _compared_with(holder)
        sql_type = other.type.sql("duckdb") if other is not None and other.type is not None and \
            not other.type.is_type(exp.DataType.Type.UNKNOWN, exp.DataType.Type.NULL) else None
        names.setdefault(index, sql_type)
    fields = []
    with client.lock:
        cursor = cursor_of(session, client)
        for index in range(max(names) + 1):
            sql_type = names.get(index)
            arrow = pa.null()
            if sql_type:
                try:
                    arrow = session.system.run(cursor, f"SELECT NULL::{sql_type} AS p").schema.field(0).type
                except FlockError:
                    arrow = pa.null()
            fields.append(pa.field(f"p{index + 1}", arrow))
    return pa.schema(fields)


def _compared_with(holder):
    """The expression a parameter is compared with, assigned to or computed with, if any."""
    from sqlglot import exp
    parent = holder.parent
    if isinstance(parent, exp.Cast):
        return parent
    if isinstance(parent, (exp.Binary, exp.EQ)) and not isinstance(parent, (exp.And, exp.Or)):
        return parent.expression if parent.this is holder else parent.this
    if isinstance(parent, exp.Between):
        return parent.this
    if isinstance(parent, exp.In):
        return parent.this
    return None
