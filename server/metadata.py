"""Answers to the Flight SQL metadata commands, as Arrow tables of the schemas the protocol fixes.

The schemas must match FlightSql.proto field for field, nullability included: the ADBC Flight SQL
driver compares them with what it expects and rejects a mismatch.

FlockSQL has one catalog, `memory` (DuckDB's name for an in-memory database, what current_database()
says), whose schemas are `main` (the data folder's tables) and those made with CREATE SCHEMA.
"""

from __future__ import annotations

from importlib import metadata as importlib_metadata

import pyarrow as pa

DB_SCHEMA = "main"
# The one catalog (DuckDB's name for an in-memory database): what current_database() says.
CATALOG = "memory"
TABLE_TYPES = ("TABLE", "VIEW")

# --- result schemas (FlightSql.proto) ----------------------------------------------------------

CATALOGS_SCHEMA = pa.schema([pa.field("catalog_name", pa.utf8(), nullable=False)])
DB_SCHEMAS_SCHEMA = pa.schema(
    [pa.field("catalog_name", pa.utf8()), pa.field("db_schema_name", pa.utf8(), nullable=False)]
)
TABLES_SCHEMA = pa.schema(
    [
        pa.field("catalog_name", pa.utf8()),
        pa.field("db_schema_name", pa.utf8()),
        pa.field("table_name", pa.utf8(), nullable=False),
        pa.field("table_type", pa.utf8(), nullable=False),
    ]
)
TABLES_WITH_SCHEMA_SCHEMA = TABLES_SCHEMA.append(pa.field("table_schema", pa.binary(), nullable=False))
TABLE_TYPES_SCHEMA = pa.schema([pa.field("table_type", pa.utf8(), nullable=False)])
PRIMARY_KEYS_SCHEMA = pa.schema(
    [
        pa.field("catalog_name", pa.utf8()),
        pa.field("db_schema_name", pa.utf8()),
        pa.field("table_name", pa.utf8(), nullable=False),
        pa.field("column_name", pa.utf8(), nullable=False),
        pa.field("key_sequence", pa.int32(), nullable=False),
        pa.field("key_name", pa.utf8()),
    ]
)
KEYS_SCHEMA = pa.schema(
    [
        pa.field("pk_catalog_name", pa.utf8()),
        pa.field("pk_db_schema_name", pa.utf8()),
        pa.field("pk_table_name", pa.utf8(), nullable=False),
        pa.field("pk_column_name", pa.utf8(), nullable=False),
        pa.field("fk_catalog_name", pa.utf8()),
        pa.field("fk_db_schema_name", pa.utf8()),
        pa.field("fk_table_name", pa.utf8(), nullable=False),
        pa.field("fk_column_name", pa.utf8(), nullable=False),
        pa.field("key_sequence", pa.int32(), nullable=False),
        pa.field("fk_key_name", pa.utf8()),
        pa.field("pk_key_name", pa.utf8()),
        pa.field("update_rule", pa.uint8(), nullable=False),
        pa.field("delete_rule", pa.uint8(), nullable=False),
    ]
)

_SQL_INFO_VALUE = pa.dense_union(
    [
        pa.field("string_value", pa.utf8(), nullable=False),
        pa.field("bool_value", pa.bool_(), nullable=False),
        pa.field("bigint_value", pa.int64(), nullable=False),
        pa.field("int32_bitmask", pa.int32(), nullable=False),
        pa.field("string_list", pa.list_(pa.utf8()), nullable=False),
        pa.field("int32_to_int32_list_map", pa.map_(pa.int32(), pa.list_(pa.int32())), nullable=False),
    ],
    type_codes=[0, 1, 2, 3, 4, 5],
)
SQL_INFO_SCHEMA = pa.schema(
    [pa.field("info_name", pa.uint32(), nullable=False), pa.field("value", _SQL_INFO_VALUE, nullable=False)]
)

XDBC_TYPE_INFO_SCHEMA = pa.schema(
    [
        pa.field("type_name", pa.utf8(), nullable=False),
        pa.field("data_type", pa.int32(), nullable=False),
        pa.field("column_size", pa.int32()),
        pa.field("literal_prefix", pa.utf8()),
        pa.field("literal_suffix", pa.utf8()),
        pa.field("create_params", pa.list_(pa.field("item", pa.utf8(), nullable=False))),
        pa.field("nullable", pa.int32(), nullable=False),
        pa.field("case_sensitive", pa.bool_(), nullable=False),
        pa.field("searchable", pa.int32(), nullable=False),
        pa.field("unsigned_attribute", pa.bool_()),
        pa.field("fixed_prec_scale", pa.bool_(), nullable=False),
        pa.field("auto_increment", pa.bool_()),
        pa.field("local_type_name", pa.utf8()),
        pa.field("minimum_scale", pa.int32()),
        pa.field("maximum_scale", pa.int32()),
        pa.field("sql_data_type", pa.int32(), nullable=False),
        pa.field("datetime_subcode", pa.int32()),
        pa.field("num_prec_radix", pa.int32()),
        pa.field("interval_precision", pa.int32()),
    ]
)


# --- SqlInfo -----------------------------------------------------------------------------------


class Bitmask(int):
    """An int32 SqlInfo value (a bitmask or an enum ordinal), as opposed to an int64 one."""


def server_version() -> str:
    try:
        return importlib_metadata.version("flocksql")
    except importlib_metadata.PackageNotFoundError:
        return "0.1.0"


def vendor_version() -> str:
    """The server version clients see: the DuckDB dialect FlockSQL follows first (DuckDB-dialect
    clients such as Ibis and the GizmoSQL SQLAlchemy dialect check for `duckdb v…`), then our own."""
    import duckdb
    return f"duckdb v{duckdb.__version__} (FlockSQL {server_version()})"


def sql_info_values() -> dict[int, object]:
    """SqlInfo id -> value; the ids and enums are those of FlightSql.proto."""
    return {
        0: "FlockSQL",  # FLIGHT_SQL_SERVER_NAME
        1: vendor_version(),  # FLIGHT_SQL_SERVER_VERSION
        2: pa.__version__,  # FLIGHT_SQL_SERVER_ARROW_VERSION
        3: False,  # FLIGHT_SQL_SERVER_READ_ONLY
        4: True,  # FLIGHT_SQL_SERVER_SQL
        5: False,  # FLIGHT_SQL_SERVER_SUBSTRAIT
        8: Bitmask(0),  # FLIGHT_SQL_SERVER_TRANSACTION: SQL_SUPPORTED_TRANSACTION_NONE
        9: True,  # FLIGHT_SQL_SERVER_CANCEL
        100: Bitmask(0),  # FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT: prepared handles never time out
        101: Bitmask(0),  # FLIGHT_SQL_SERVER_TRANSACTION_TIMEOUT
        500: False,  # SQL_DDL_CATALOG
        501: True,  # SQL_DDL_SCHEMA: CREATE SCHEMA, DROP SCHEMA
        502: True,  # SQL_DDL_TABLE: CREATE TABLE AS, DROP TABLE, CREATE VIEW, DROP VIEW
        503: Bitmask(1),  # SQL_IDENTIFIER_CASE: CASE_INSENSITIVE
        504: '"',  # SQL_IDENTIFIER_QUOTE_CHAR
        505: Bitmask(1),  # SQL_QUOTED_IDENTIFIER_CASE: CASE_INSENSITIVE
        506: True,  # SQL_ALL_TABLES_ARE_SELECTABLE
        507: Bitmask(3),  # SQL_NULL_ORDERING: NULLS_SORTED_AT_END
        513: "\\",  # SQL_SEARCH_STRING_ESCAPE
        514: "",  # SQL_EXTRA_NAME_CHARACTERS
        515: True,  # SQL_SUPPORTS_COLUMN_ALIASING
        516: True,  # SQL_NULL_PLUS_NULL_IS_NULL
        518: True,  # SQL_SUPPORTS_TABLE_CORRELATION_NAMES
        519: False,  # SQL_SUPPORTS_DIFFERENT_TABLE_CORRELATION_NAMES
        520: True,  # SQL_SUPPORTS_EXPRESSIONS_IN_ORDER_BY
        521: True,  # SQL_SUPPORTS_ORDER_BY_UNRELATED
        522: Bitmask(0b11),  # SQL_SUPPORTED_GROUP_BY: UNRELATED | BEYOND_SELECT
        523: True,  # SQL_SUPPORTS_LIKE_ESCAPE_CLAUSE
        524: True,  # SQL_SUPPORTS_NON_NULLABLE_COLUMNS
        525: Bitmask(0b11),  # SQL_SUPPORTED_GRAMMAR: MINIMUM | CORE
        526: Bitmask(0b001),  # SQL_ANSI92_SUPPORTED_LEVEL: ENTRY
        527: False,  # SQL_SUPPORTS_INTEGRITY_ENHANCEMENT_FACILITY
        528: Bitmask(2),  # SQL_OUTER_JOINS_SUPPORT_LEVEL: FULL_OUTER_JOINS
        529: "schema",  # SQL_SCHEMA_TERM
        530: "",  # SQL_PROCEDURE_TERM
        531: "database",  # SQL_CATALOG_TERM: one, `memory`, as current_database() says
        532: True,  # SQL_CATALOG_AT_START
        533: Bitmask(0),  # SQL_SCHEMAS_SUPPORTED_ACTIONS
        534: Bitmask(0),  # SQL_CATALOGS_SUPPORTED_ACTIONS
        535: Bitmask(0),  # SQL_SUPPORTED_POSITIONED_COMMANDS
        536: False,  # SQL_SELECT_FOR_UPDATE_SUPPORTED
        537: False,  # SQL_STORED_PROCEDURES_SUPPORTED
        538: Bitmask(0b1111),  # SQL_SUPPORTED_SUBQUERIES: comparisons, EXISTS, IN, quantified
        539: True,  # SQL_CORRELATED_SUBQUERIES_SUPPORTED
        540: Bitmask(0b11),  # SQL_SUPPORTED_UNIONS: UNION | UNION ALL
        562: Bitmask(0),  # SQL_DEFAULT_TRANSACTION_ISOLATION: NONE
        563: False,  # SQL_TRANSACTIONS_SUPPORTED
        564: Bitmask(0),  # SQL_SUPPORTED_TRANSACTIONS_ISOLATION_LEVELS
        565: False,  # SQL_DATA_DEFINITION_CAUSES_TRANSACTION_COMMIT
        566: False,  # SQL_DATA_DEFINITIONS_IN_TRANSACTIONS_IGNORED
        567: Bitmask(0b10),  # SQL_SUPPORTED_RESULT_SET_TYPES: FORWARD_ONLY
        576: False,  # SQL_BATCH_UPDATES_SUPPORTED
        577: False,  # SQL_SAVEPOINTS_SUPPORTED
        578: False,  # SQL_NAMED_PARAMETERS_SUPPORTED
        579: False,  # SQL_LOCATORS_UPDATE_COPY
        580: False,  # SQL_STORED_FUNCTIONS_USING_CALL_SYNTAX_SUPPORTED
    }


def sql_info_table(requested: tuple[int, ...]) -> pa.Table:
    """One row per requested id that we know (all of them when none is requested)."""
    values = sql_info_values()
    ids = [i for i in requested if i in values] if requested else sorted(values)
    type_ids, offsets, children = [], [], [[] for _ in range(6)]
    for info_id in ids:
        value = values[info_id]
        if isinstance(value, str):
            code = 0
        elif isinstance(value, bool):
            code = 1
        elif isinstance(value, Bitmask):
            code = 3
        elif isinstance(value, int):
            code = 2
        else:
            code = 4
        type_ids.append(code)
        offsets.append(len(children[code]))
        children[code].append(value)
    union_type = SQL_INFO_SCHEMA.field("value").type
    child_arrays = [
        pa.array(children[code], type=union_type.field(code).type) for code in range(len(children))
    ]
    union = pa.UnionArray.from_dense(
        pa.array(type_ids, pa.int8()),
        pa.array(offsets, pa.int32()),
        child_arrays,
        [union_type.field(code).name for code in range(len(children))],
        list(range(len(children))),
    )
    # from_dense builds nullable child fields; cast to the exact declared type.
    union = union.view(union_type) if union.type != union_type else union
    return pa.Table.from_arrays([pa.array(ids, pa.uint32()), union], schema=SQL_INFO_SCHEMA)


# --- catalogs, schemas, tables -------------------------------------------------------------------


def like_match(pattern: str, value: str) -> bool:
    """A Flight SQL filter pattern: % any run, _ any one character, backslash escapes.

    Matched without backtracking, in O(len(pattern) * len(value)) at worst: the pattern is cut at
    each % into segments, the first anchored at the start, the last at the end, and each one in
    between matched at its leftmost place after the previous one (leftmost is always safe: a later
    segment can only gain room). A regex such as `.*.*.*!` takes exponential time instead.
    """
    segments: list[list[str | None]] = [[]]  # None stands for _
    escaped = False
    for ch in pattern:
        if escaped:
            segments[-1].append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "%":
            segments.append([])
        else:
            segments[-1].append(None if ch == "_" else ch)
    if escaped:
        segments[-1].append("\\")  # a trailing backslash stands for itself

    def fits(segment, at: int) -> bool:
        return all(want is None or value[at + i] == want for i, want in enumerate(segment))

    first, last = segments[0], segments[-1]
    if len(segments) == 1:
        return len(value) == len(first) and fits(first, 0)
    if len(first) + len(last) > len(value) or not fits(first, 0) or not fits(last, len(value) - len(last)):
        return False
    pos, stop = len(first), len(value) - len(last)
    for segment in segments[1:-1]:
        if not segment:
            continue
        at = next((i for i in range(pos, stop - len(segment) + 1) if fits(segment, i)), None)
        if at is None:
            return False
        pos = at + len(segment)
    return True


def _matches(pattern: str | None, value: str) -> bool:
    return pattern is None or like_match(pattern, value)


def catalogs_table() -> pa.Table:
    return pa.table({"catalog_name": [CATALOG]}, schema=CATALOGS_SCHEMA)


def _our_catalog(catalog: str | None) -> bool:
    return catalog in (None, "", CATALOG)


def db_schemas_table(catalog: str | None, schema_pattern: str | None, schemas=(DB_SCHEMA,)) -> pa.Table:
    rows = [s for s in schemas if _matches(schema_pattern, s)] if _our_catalog(catalog) else []
    return pa.table({"catalog_name": [CATALOG] * len(rows), "db_schema_name": rows},
                    schema=DB_SCHEMAS_SCHEMA)


def tables_table(
    tables: list[tuple[str, str, pa.Schema | None]],
    catalog: str | None,
    schema_pattern: str | None,
    table_pattern: str | None,
    table_types: tuple[str, ...],
    include_schema: bool,
) -> pa.Table:
    """`tables` holds (name, type, schema) for every table, `s.t` for table t of schema s; the
    schema is needed with include_schema."""
    wanted_types = {t.upper() for t in table_types}
    rows = []
    if _our_catalog(catalog):
        for full, kind, schema in sorted(tables, key=lambda t: t[0]):
            db, _, name = full.rpartition(".")
            db = db or DB_SCHEMA
            if _matches(schema_pattern, db) and _matches(table_pattern, name) and (
                    not wanted_types or kind in wanted_types):
                rows.append((db, name, kind, schema))
    columns = {
        "catalog_name": [CATALOG] * len(rows),
        "db_schema_name": [db for db, _, _, _ in rows],
        "table_name": [name for _, name, _, _ in rows],
        "table_type": [kind for _, _, kind, _ in rows],
    }
    if not include_schema:
        return pa.table(columns, schema=TABLES_SCHEMA)
    columns["table_schema"] = [
        annotate_schema(schema, name, db).serialize().to_pybytes() for db, name, _, schema in rows
    ]
    return pa.table(columns, schema=TABLES_WITH_SCHEMA_SCHEMA)


def annotate_schema(schema: pa.Schema, table_name: str, db_schema: str = DB_SCHEMA) -> pa.Schema:
    """The column metadata FlightSql.proto defines for table schemas (scope of each column)."""
    fields = []
    for field in schema:
        meta = dict(field.metadata or {})
        meta.update({
            b"ARROW:FLIGHT:SQL:DB_SCHEMA_NAME": db_schema.encode(),
            b"ARROW:FLIGHT:SQL:TABLE_NAME": table_name.encode(),
            b"ARROW:FLIGHT:SQL:TYPE_NAME": sql_type_name(field.type).encode(),
        })
        fields.append(field.with_metadata(meta))
    return pa.schema(fields, metadata=schema.metadata)


def table_types_table() -> pa.Table:
    return pa.table({"table_type": list(TABLE_TYPES)}, schema=TABLE_TYPES_SCHEMA)


def primary_keys_table() -> pa.Table:
    return PRIMARY_KEYS_SCHEMA.empty_table()  # FlockSQL tables have no keys


def keys_table() -> pa.Table:
    return KEYS_SCHEMA.empty_table()


# --- types ---------------------------------------------------------------------------------------


def sql_type_name(arrow_type: pa.DataType) -> str:
    """The SQL name of an Arrow type, as DuckDB spells it."""
    if pa.types.is_boolean(arrow_type):
        return "BOOLEAN"
    for check, name in (
        (pa.types.is_int8, "TINYINT"), (pa.types.is_int16, "SMALLINT"), (pa.types.is_int32, "INTEGER"),
        (pa.types.is_int64, "BIGINT"), (pa.types.is_uint8, "UTINYINT"), (pa.types.is_uint16, "USMALLINT"),
        (pa.types.is_uint32, "UINTEGER"), (pa.types.is_uint64, "UBIGINT"), (pa.types.is_float32, "FLOAT"),
        (pa.types.is_float64, "DOUBLE"), (pa.types.is_date, "DATE"), (pa.types.is_time, "TIME"),
        (pa.types.is_interval, "INTERVAL"), (pa.types.is_string, "VARCHAR"),
        (pa.types.is_large_string, "VARCHAR"), (pa.types.is_string_view, "VARCHAR"),
        (pa.types.is_binary, "BLOB"), (pa.types.is_large_binary, "BLOB"),
    ):
        if check(arrow_type):
            return name
    if pa.types.is_decimal(arrow_type):
        return f"DECIMAL({arrow_type.precision},{arrow_type.scale})"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP WITH TIME ZONE" if arrow_type.tz else "TIMESTAMP"
    return str(arrow_type).upper()


# (type_name, XDBC data_type, column_size, literal prefix/suffix, case_sensitive, unsigned,
#  fixed_prec_scale, sql_data_type, datetime_subcode, num_prec_radix); XDBC codes from FlightSql.proto.
_XDBC_TYPES = [
    ("BIGINT", -5, 19, None, None, False, False, False, -5, None, 10),
    ("BOOLEAN", 16, 1, None, None, False, None, False, 16, None, None),
    ("BLOB", -3, None, "'", "'", False, None, False, -3, None, None),
    ("DATE", 91, 10, "DATE '", "'", False, None, False, 9, 1, None),
    ("DECIMAL", 3, 38, None, None, False, False, True, 3, None, 10),
    ("DOUBLE", 8, 53, None, None, False, False, False, 8, None, 2),
    ("FLOAT", 6, 24, None, None, False, False, False, 6, None, 2),
    ("INTEGER", 4, 10, None, None, False, False, False, 4, None, 10),
    ("SMALLINT", 5, 5, None, None, False, False, False, 5, None, 10),
    ("TIME", 92, 15, "TIME '", "'", False, None, False, 9, 2, None),
    ("TIMESTAMP", 93, 26, "TIMESTAMP '", "'", False, None, False, 9, 3, None),
    ("TINYINT", -6, 3, None, None, False, False, False, -6, None, 10),
    ("VARCHAR", 12, None, "'", "'", True, None, False, 12, None, None),
]


def xdbc_type_info_table(data_type: int | None) -> pa.Table:
    rows = sorted((r for r in _XDBC_TYPES if data_type is None or r[1] == data_type), key=lambda r: (r[1], r[0]))
    n = len(rows)
    return pa.table(
        {
            "type_name": [r[0] for r in rows],
            "data_type": [r[1] for r in rows],
            "column_size": [r[2] for r in rows],
            "literal_prefix": [r[3] for r in rows],
            "literal_suffix": [r[4] for r in rows],
            "create_params": [["precision", "scale"] if r[0] == "DECIMAL" else None for r in rows],
            "nullable": [1] * n,  # NULLABILITY_NULLABLE
            "case_sensitive": [r[5] for r in rows],
            "searchable": [3] * n,  # SEARCHABLE_FULL
            "unsigned_attribute": [r[6] for r in rows],
            "fixed_prec_scale": [r[7] for r in rows],
            "auto_increment": [None] * n,
            "local_type_name": [r[0] for r in rows],
            "minimum_scale": [0 if r[0] == "DECIMAL" else None for r in rows],
            "maximum_scale": [38 if r[0] == "DECIMAL" else None for r in rows],
            "sql_data_type": [r[8] for r in rows],
            "datetime_subcode": [r[9] for r in rows],
            "num_prec_radix": [r[10] for r in rows],
            "interval_precision": [None] * n,
        },
        schema=XDBC_TYPE_INFO_SCHEMA,
    )
