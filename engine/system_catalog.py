"""The system catalog: DuckDB's catalog SQL answered exactly as DuckDB answers it.

A small DuckDB instance on rank 0 mirrors the catalog: every table as an empty table of the same
columns (types and NOT NULL), every view with its SQL. Catalog statements and queries that read
only the system catalog run there, so `information_schema.*`, `duckdb_tables()`, `duckdb_columns()`,
`duckdb_constraints()`, `SHOW TABLES`, `DESCRIBE t`, `PRAGMA table_info('t')`, `current_setting()`
… have DuckDB's own column names, types and rows, and clients written for DuckDB read them as they
expect. The mirror holds no data and reads no file (external access is off): nothing a client sends
there can reach the data folder. Each client session has a cursor of its own on the mirror, which
holds its settings (search_path, TimeZone).

Queries that read data tables never run here; in a query that reads both, the system catalog's
parts are read here first and travel with the plan as tables of rows (engine/catalog_statements.py).
"""
from __future__ import annotations

import logging
import threading

import duckdb
import pyarrow as pa
from sqlglot import exp

from engine.constraints import from_metadata
from engine.errors import CatalogError, NotSupportedError, from_duckdb

log = logging.getLogger("flocksql")

# Schemas (sqlglot's `db` of a table) and catalogs that hold only system objects.
SYSTEM_SCHEMAS = ("information_schema", "pg_catalog")
SYSTEM_CATALOGS = ("system", "temp")
# Scalar functions whose answer is the client session's, not a rank's.
SESSION_FUNCTIONS = ("current_setting",)
_PREFIX = "__flocksql_view_body_"


def reads_system_catalog(ast: exp.Expression, cte_names: set[str] | None = None) -> bool:
    """Whether a query reads the system catalog (information_schema, pg_catalog, duckdb_*() and
    pragma_*() table functions) or asks for a session setting."""
    for table in ast.find_all(exp.Table):
        if is_system_table(table):
            return True
    for fn in ast.find_all(exp.Anonymous):
        if fn.name.lower() in SESSION_FUNCTIONS:
            return True
    return False


def reads_data_tables(ast: exp.Expression) -> list[str]:
    """The data tables (not system, not CTE) a query names."""
    ctes = {c.alias_or_name.lower() for c in ast.find_all(exp.CTE)}
    names = []
    for table in ast.find_all(exp.Table):
        if is_system_table(table) or not isinstance(table.this, exp.Identifier):
            continue
        if table.name.lower() in ctes and not table.args.get("db"):
            continue
        names.append(table.sql("duckdb"))
    return names


def is_system_table(table: exp.Table) -> bool:
    fn = table.this
    if isinstance(fn, (exp.Anonymous, exp.Func)) and not isinstance(fn, exp.Identifier):
        name = fn.name.lower() if isinstance(fn, exp.Anonymous) else fn.sql_name().lower()
        return name.startswith(("duckdb_", "pragma_")) or name in ("information_schema",)
    db = (table.args.get("db").name if table.args.get("db") else "").lower()
    catalog = (table.args.get("catalog").name if table.args.get("catalog") else "").lower()
    return db in SYSTEM_SCHEMAS or catalog in SYSTEM_CATALOGS


class SystemCatalog:
    """The mirror instance. Thread-safe: one statement at a time (they take milliseconds)."""

    def __init__(self):
        self.con = duckdb.connect(config={"threads": 1, "enable_external_access": False})
        self._lock = threading.RLock()
        self._signature = None
        self._version = 0

    def sync(self, tables: dict[str, pa.Schema], views: dict[str, str], schemas: list[str] = ("main",)) -> None:
        """Mirror these schemas, tables (name -> schema) and views (name -> SQL), if they changed;
        `s.t` names table t of schema s."""
        signature = (tuple((n, s.to_string(), str(s.metadata)) for n, s in sorted(tables.items())),
                     tuple(sorted(views.items())),
                     tuple(schemas))
        with self._lock:
            if signature == self._signature:
                return
            con = self.con
            for (schema,) in con.execute("SELECT schema_name FROM duckdb_schemas() WHERE database_name = 'memory' "
                                         "AND NOT internal AND schema_name <> 'main'").fetchall():
                con.execute(f'DROP SCHEMA "{_quoted(schema)}" CASCADE')
            for (name, kind) in con.execute(
                    "SELECT table_name, table_type FROM information_schema.tables "
                    "WHERE table_catalog = 'memory' AND table_schema = 'main'").fetchall():
                con.execute(f'DROP {"VIEW" if kind == "VIEW" else "TABLE"} IF EXISTS "{_quoted(name)}" CASCADE')
            # The schemas of the tables and views too: the lists are read one after the other
            # while the catalog may change, and a table must never lack its schema here.
            named = {n.rpartition(".")[0] for n in (*tables, *views) if "." in n}
            for schema in dict.fromkeys([*schemas, *sorted(named)]):
                con.execute(f'CREATE SCHEMA IF NOT EXISTS "{_quoted(schema)}"')
            for name, schema in sorted(tables.items()):
                self._create_table(name, schema)
            pending = dict(views)
            # Views may read other views: create them in rounds until none more can be bound.
            while pending:
                made = []
                for name, sql in sorted(pending.items()):
                    try:
                        con.execute(f'CREATE VIEW {qualified(name)} AS {sql}')
                        made.append(name)
                    except duckdb.Error:
                        continue
                for name in made:
                    del pending[name]
                if not made:
                    for name in pending:
                        log.warning("view %s cannot be described by the system catalog", name)
                    break
            self._signature = signature
            self._version += 1

    def _create_table(self, name: str, schema: pa.Schema) -> None:
        """A table of these columns, NOT NULL and the constraints in the schema's metadata
        (engine/constraints.py) included, so DESCRIBE and duckdb_constraints() show them."""
        view = f"{_PREFIX}{self._version}"
        self.con.register(view, schema.empty_table())
        try:
            constraints = from_metadata(schema.metadata)
            made = False
            if constraints:
                types = self.con.execute(f'SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "{view}")') \
                    .fetchall()
                try:
                    self.con.execute(f"CREATE TABLE {qualified(name)} ({constraints.table_elements(types)})")
                    made = True
                except duckdb.Error as e:  # the columns alone, rather than no catalog at all
                    log.warning("table %s: its constraints cannot be shown (%s)", name, _first_line(e))
            if not made:
                self.con.execute(f'CREATE TABLE {qualified(name)} AS SELECT * FROM "{view}"')
        finally:
            self.con.unregister(view)
        for field in schema:
            if not field.nullable:
                self.con.execute(f'ALTER TABLE {qualified(name)} ALTER COLUMN "{_quoted(field.name)}" SET NOT NULL')

    def cursor(self):
        with self._lock:
            return self.con.cursor()

    def run(self, cursor, sql: str, params=None) -> pa.Table:
        """A catalog statement or a query over the system catalog, on a client's cursor."""
        with self._lock:
            try:
                rel = cursor.sql(sql, params=list(params)) if params else cursor.sql(sql)
                return rel.to_arrow_table() if rel is not None else pa.table({})
            except duckdb.ParserException as e:
                raise NotSupportedError(str(e).splitlines()[0]) from None
            except duckdb.CatalogException as e:
                raise CatalogError(_first_line(e)) from None
            except duckdb.PermissionException as e:
                raise NotSupportedError(f"{_first_line(e)} (the system catalog reads no files)") from None
            except duckdb.Error as e:
                raise from_duckdb(e) from None

    def describe_schema(self, cursor, schema: pa.Schema) -> pa.Table:
        """DESCRIBE of a query whose result schema the planner computed: DuckDB's type names."""
        with self._lock:
            name = f"{_PREFIX}describe"
            cursor.register(name, schema.empty_table())
            try:
                return cursor.sql(f'DESCRIBE SELECT * FROM "{name}"').to_arrow_table()
            finally:
                cursor.unregister(name)

    def close(self) -> None:
        with self._lock:
            self.con.close()


def qualified(name: str) -> str:
    """SQL for the catalog's name `t` (schema main) or `s.t`."""
    schema, _, table = name.rpartition(".")
    return (f'"{_quoted(schema)}".' if schema else "") + f'"{_quoted(table)}"'


def _quoted(name: str) -> str:
    return name.replace('"', '""')


def _first_line(e: Exception) -> str:
    return str(e).splitlines()[0]
