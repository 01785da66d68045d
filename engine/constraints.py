"""A table's constraints beyond NOT NULL: PRIMARY KEY, UNIQUE, CHECK, column DEFAULTs and
generated columns.

A table of the data folder is Parquet files, so its constraints travel in the files: every file a
write makes carries them in its Arrow schema's metadata (one JSON value), and the catalog reads them
back from the table's files. Every write checks its new version before it is renamed into place,
as DuckDB checks a statement before it commits: a key held twice, or a row for which a CHECK is
false, fails the statement and nothing is written.

The checks run in this process's DuckDB over the Parquet files (every rank reads the same data
folder): the key columns of a new version, or only the rows a write adds against those it keeps.

A generated column (`b AS (a * 2)`, which DuckDB computes on every read) is computed by every write
and stored: a table's rows change only through writes, so a read finds what DuckDB would compute.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb
import pyarrow as pa
from sqlglot import exp

from engine.errors import CatalogError, ConstraintError, from_duckdb

METADATA_KEY = b"flocksql.constraints"


@dataclass(frozen=True)
class TableConstraints:
    primary_key: tuple[str, ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()  # each UNIQUE constraint's columns
    defaults: tuple[tuple[str, str], ...] = ()  # (column, DuckDB SQL of its DEFAULT)
    checks: tuple[str, ...] = ()  # DuckDB SQL of each CHECK
    generated: tuple[tuple[str, str], ...] = ()  # (column, DuckDB SQL of its expression), in table order
    # The key written first in CREATE TABLE (DuckDB's first index; engine/on_conflict.py): () where
    # unknown (a table made before it was kept) or where the table has no key.
    first_key: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.primary_key or self.unique or self.defaults or self.checks or self.generated)

    @property
    def keys(self) -> tuple[tuple[str, ...], ...]:
        """The columns of each key (PRIMARY KEY first), as ON CONFLICT names them."""
        return ((self.primary_key,) if self.primary_key else ()) + self.unique

    def default(self, column: str) -> str | None:
        return dict(self.defaults).get(column)

    def table_elements(self, types) -> str:
        """`CREATE TABLE t (…)`'s list for columns of these (name, DuckDB type) and these constraints."""
        generated = dict(self.generated)
        items = [f"{quote_name(n)} {t}" + (f" DEFAULT {self.default(n)}" if self.default(n) else "") +
                 (f" GENERATED ALWAYS AS ({generated[n]})" if n in generated else "") for n, t in types]
        if self.primary_key:
            items.append(f"PRIMARY KEY ({', '.join(quote_name(c) for c in self.primary_key)})")
        items += [f"UNIQUE ({', '.join(quote_name(c) for c in u)})" for u in self.unique]
        items += [f"CHECK ({c})" for c in self.checks]
        return ", ".join(items)

    def metadata(self) -> dict[bytes, bytes]:
        if not self:
            return {}
        value = {"primary_key": list(self.primary_key), "unique": [list(u) for u in self.unique],
                 "defaults": dict(self.defaults), "checks": list(self.checks),
                 "generated": [list(g) for g in self.generated], "first_key": list(self.first_key)}
        return {METADATA_KEY: json.dumps(value, sort_keys=True).encode()}


NONE = TableConstraints()


def from_metadata(metadata: dict | None) -> TableConstraints:
    raw = (metadata or {}).get(METADATA_KEY)
    if not raw:
        return NONE
    value = json.loads(raw)
    return TableConstraints(tuple(value.get("primary_key", ())), tuple(tuple(u) for u in value.get("unique", ())),
                            tuple(sorted(value.get("defaults", {}).items())), tuple(value.get("checks", ())),
                            tuple(tuple(g) for g in value.get("generated", ())), tuple(value.get("first_key", ())))


def with_constraints(schema: pa.Schema, constraints: TableConstraints) -> pa.Schema:
    """The schema a write's files are made in: the table's columns and its constraints."""
    return schema.with_metadata(constraints.metadata()) if constraints else schema.remove_metadata()


def from_create(schema_node: exp.Schema, names: list[str]) -> TableConstraints:
    """The constraints of `CREATE TABLE t (…)`: column and table constraints, by the columns' names
    as the table holds them (`names`, matched in any case, as DuckDB binds them)."""
    by_lower = {n.lower(): n for n in names}

    def column(name: str) -> str:
        if name.lower() not in by_lower:
            raise CatalogError(f'table has no column "{name}" named in a constraint')
        return by_lower[name.lower()]

    primary, unique, defaults, checks, generated = [], [], {}, [], []
    keys = []  # every key, in the order written
    for item in schema_node.expressions:
        if isinstance(item, exp.ColumnDef):
            name = column(item.name)
            for c in item.args.get("constraints") or []:
                kind = c.args.get("kind")
                if isinstance(kind, exp.PrimaryKeyColumnConstraint):
                    primary.append((name,))
                    keys.append((name,))
                elif isinstance(kind, exp.UniqueColumnConstraint):
                    unique.append((name,))
                    keys.append((name,))
                elif isinstance(kind, exp.DefaultColumnConstraint):
                    defaults[name] = kind.this.sql("duckdb")
                elif isinstance(kind, exp.CheckColumnConstraint):
                    checks.append(kind.this.sql("duckdb"))
                elif isinstance(kind, exp.ComputedColumnConstraint):
                    generated.append((name, kind.this.unnest().sql("duckdb")))
                elif isinstance(kind, exp.GeneratedAsIdentityColumnConstraint) and kind.args.get("expression"):
                    generated.append((name, kind.args["expression"].sql("duckdb")))
            continue
        for kind in (item.expressions if isinstance(item, exp.Constraint) else [item]):
            if isinstance(kind, exp.PrimaryKey):
                primary.append(tuple(column(e.name) for e in kind.expressions))
                keys.append(primary[-1])
            elif isinstance(kind, exp.UniqueColumnConstraint):
                unique.append(tuple(column(e.name) for e in kind.this.expressions))
                keys.append(unique[-1])
            elif isinstance(kind, exp.CheckColumnConstraint):
                checks.append(kind.this.sql("duckdb"))
    if len(primary) > 1:
        raise CatalogError("table can only have a single primary key")
    return TableConstraints(primary[0] if primary else (), tuple(dict.fromkeys(unique)), tuple(sorted(defaults.items())),
                            tuple(checks), tuple(generated), keys[0] if keys else ())


def _files(files) -> str:
    return "read_parquet([" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "])"


def quote_name(name: str) -> str:
    """A column or table name as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def enforce(table_name: str, constraints: TableConstraints, kept_files, new_files) -> None:
    """Raises DuckDB's constraint error where the version of `kept_files` (checked before) and
    `new_files` (the rows a write makes) holds a key twice, or a new row fails a CHECK."""
    new_files = [str(f) for f in new_files]
    kept_files = [str(f) for f in kept_files]
    if not constraints or not new_files or not (constraints.keys or constraints.checks):
        return
    from executors.scratch import scratch_cursor
    con = scratch_cursor(sandboxed=False)
    try:
        new = _files(new_files)
        for check in constraints.checks:
            if con.execute(f"SELECT 1 FROM {new} WHERE ({check}) IS FALSE LIMIT 1").fetchone():
                raise ConstraintError(f'CHECK constraint failed on table "{table_name}" with expression '
                                      f'CHECK({check})')
        for key in constraints.keys:
            cols = ", ".join(quote_name(c) for c in key)
            present = " AND ".join(f"{quote_name(c)} IS NOT NULL" for c in key)
            held = con.execute(f"SELECT {cols} FROM {new} WHERE {present} GROUP BY ALL HAVING count(*) > 1 "
                           f"LIMIT 1").fetchone()
            if held is None and kept_files:
                same = " AND ".join(f"n.{quote_name(c)} = o.{quote_name(c)}" for c in key)
                held = con.execute(f"SELECT {', '.join('n.' + quote_name(c) for c in key)} FROM {new} AS n "
                               f"SEMI JOIN {_files(kept_files)} AS o ON {same} LIMIT 1").fetchone()
            if held is not None:
                raise ConstraintError(_duplicate_message(constraints, key, held))
    except duckdb.Error as e:
        raise from_duckdb(e, f"checking the constraints of {table_name}: ") from None
    finally:
        con.close()


def _duplicate_message(constraints: TableConstraints, key: tuple[str, ...], values: tuple) -> str:
    """DuckDB's words for a key held twice."""
    if len(key) > 1:
        return ("PRIMARY KEY or UNIQUE constraint violation: duplicate key "
                f'"{", ".join(str(v) for v in values)}"')
    what = "primary key" if key == constraints.primary_key else "unique"
    return f'Duplicate key "{key[0]}: {values[0]}" violates {what} constraint.'
