"""Table functions in FROM that generate data: `range`, `generate_series` and `unnest` of a list.

Their arguments are constants here (a call that reads a column was made a LATERAL subquery before,
planner/rules/lateral_table_functions.py), so the planner can
bind a call once, when the plan is made, in a DuckDB instance of its own that reads nothing (external
access off): DuckDB's binder gives the column's name and type, and the rows are counted — an integer
series by arithmetic, anything else by DuckDB. The plan then holds a Generate node (planner/logical.py)
with its exact row count, from which each rank makes its own slice.

sqlglot's qualify does not know these functions' columns (it leaves `SELECT *` unexpanded), so
`hide` puts a stand-in table of the function's columns in each call's place before qualify, and
`restore` puts the calls back after it.

File functions (read_parquet, read_csv, …) stay refused: clients read the catalog's tables only.
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import duckdb
from sqlglot import exp

from engine.errors import CatalogError, NotSupportedError, from_duckdb
from executors.scratch import scratch_cursor

# The stand-in tables' names: `__flocksql_generated_<n>`.
STAND_IN = "__flocksql_generated_"
SERIES = {"range": False, "generate_series": True}  # function name -> stop included
GENERATORS = tuple(SERIES) + ("unnest",)

_lock = threading.Lock()
_con = None


@dataclass(frozen=True, slots=True)
class Bound:
    """What binding a call found: DuckDB's text of the call, its one column's name and type, how
    many rows it makes, and for an integer series its first value and step."""

    call: str
    name: str
    type: str
    rows: int
    series: tuple[int, int] | None = None
    lo: object = None
    hi: object = None


def function_name(call: exp.Expression) -> str | None:
    """The generator a FROM item calls (range, generate_series, unnest), None for anything else."""
    if isinstance(call, exp.GenerateSeries):
        return "range" if call.args.get("is_end_exclusive") else "generate_series"
    if isinstance(call, (exp.Unnest, exp.Explode)):
        return "unnest"
    if isinstance(call, exp.Anonymous) and call.name.lower() in GENERATORS:
        return call.name.lower()
    return None


def call_of(item: exp.Expression) -> exp.Expression | None:
    """The generator call of a FROM item (`range(3) AS r`, `unnest([…]) AS u(x)`), else None."""
    if isinstance(item, exp.Table) and function_name(item.this) is not None:
        return item.this
    if isinstance(item, exp.Unnest):
        return item
    return None


def name_columns(ast: exp.Expression, columns_of_item) -> exp.Expression:
    """DuckDB names a generator's one column after the call's table alias where it gives no column
    alias (`range(3) AS r` makes a column `r`), and the function's name reads that column too:
    `r.range`, or a bare `range` that no other FROM item of the SELECT has (else DuckDB calls it
    ambiguous). Returns ast (a copy, when it changes) with each such call given its column alias and
    each reference by the function's name written by the alias, a select item keeping its name
    (`r.range` → `r.r AS range`), so that `SELECT *`, the lateral form and the stand-in agree.

    columns_of_item(item): the column names of another FROM item, None where unknown."""
    if not any(_named_by_alias(n) for n in ast.walk()):
        return ast
    ast = ast.copy()
    for item in [n for n in ast.walk() if _named_by_alias(n)]:
        call = call_of(item)
        name = function_name(call)
        alias = call.args["alias"] if isinstance(call, exp.Unnest) else item.args["alias"]
        table = alias.name
        alias.set("columns", [exp.to_identifier(table)])
        select = item.find_ancestor(exp.Select)
        if select is None:
            continue
        for column in list(select.find_all(exp.Column)):
            if column.name.lower() != name or inside(column, item):
                continue
            if column.table:
                if column.table.lower() != table.lower():
                    continue
            elif column.find_ancestor(exp.Select) is not select:
                continue  # a subquery's bare name is its own FROM items' first
            elif any(name in _names_of(other, columns_of_item) for other in _from_items(select) if other is not item):
                raise CatalogError(f'Ambiguous reference to column name "{name}"')
            replacement = exp.column(exp.to_identifier(table), table=exp.to_identifier(table))
            if isinstance(column.parent, exp.Select) and column.arg_key == "expressions":
                replacement = exp.alias_(replacement, column.name, quoted=True)
            column.replace(replacement)
    return ast


def inside(node: exp.Expression, ancestor: exp.Expression) -> bool:
    """Whether node is ancestor or lies under it."""
    while node is not None:
        if node is ancestor:
            return True
        node = node.parent
    return False


def _named_by_alias(item: exp.Expression) -> bool:
    call = call_of(item)
    if call is None or not _in_from(item) or with_ordinality(item):
        return False
    alias = call.args.get("alias") if isinstance(call, exp.Unnest) else item.args.get("alias")
    return alias is not None and bool(alias.name) and not alias.columns and alias.name.lower() != function_name(call)


def _from_items(select: exp.Select) -> list[exp.Expression]:
    first = select.args.get("from_")
    return ([first.this] if first is not None else []) + [j.this for j in select.args.get("joins") or []]


def _names_of(item: exp.Expression, columns_of_item) -> set[str]:
    """The lower-cased column names a FROM item offers (a generator: its alias and its name)."""
    call = call_of(item)
    if call is not None:
        alias = call.args.get("alias") if isinstance(call, exp.Unnest) else item.args.get("alias")
        names = [c.name for c in alias.columns] if alias is not None and alias.columns else \
            [n for n in (alias.name if alias is not None else None, function_name(call)) if n]
    else:
        names = columns_of_item(item) or []
    return {n.lower() for n in names}


def with_ordinality(item: exp.Expression) -> bool:
    """Whether a FROM item asks for its rows' numbers too (`range(3) WITH ORDINALITY`)."""
    call = call_of(item)
    return bool(item.args.get("ordinality")) or (isinstance(call, exp.Unnest) and bool(call.args.get("offset")))


def _sandbox():
    global _con
    if _con is None:
        _con = scratch_cursor()
    return _con


def _ask(sql: str):
    with _lock:
        try:
            return _sandbox().execute(sql).fetchall()
        except duckdb.BinderException as e:
            raise CatalogError(str(e).split("\n")[0].replace("Binder Error: ", "")) from None
        except duckdb.Error as e:
            raise from_duckdb(e) from None


def call_sql(call: exp.Expression) -> str:
    """DuckDB's text of a call, without an alias (sqlglot's Unnest holds its alias inside)."""
    if isinstance(call, exp.Unnest):
        call = call.copy()
        call.set("alias", None)
        return call.sql("duckdb")
    if isinstance(call, exp.Explode):
        return exp.Unnest(expressions=[call.this.copy()]).sql("duckdb")
    return call.sql("duckdb")


def _check_constant(call: exp.Expression, name: str) -> None:
    from planner.build import FORBIDDEN_FUNCTIONS  # the scalar functions refused everywhere
    for n in call.walk():
        if isinstance(n, exp.Column):
            hint = "; write unnest() in the select list instead" if name == "unnest" else ""
            raise NotSupportedError(f"{name}() in FROM whose arguments read a column ({n.sql('duckdb')}), "
                                    f"a LATERAL join{hint}")
        if isinstance(n, (exp.Select, exp.Subquery)):
            raise NotSupportedError(f"{name}() with a subquery argument")
        if isinstance(n, (exp.Placeholder, exp.Parameter)):
            raise NotSupportedError(f"a parameter in the arguments of {name}()")
        fn = n.name.lower() if isinstance(n, exp.Anonymous) else type(n).__name__.lower()
        if fn in FORBIDDEN_FUNCTIONS:
            raise NotSupportedError(f"function {fn}")


@functools.lru_cache(maxsize=256)
def bind(call_text: str, name: str) -> Bound:
    """Binds one call (DuckDB's text) of generator `name`."""
    described = _ask(f"DESCRIBE SELECT * FROM {call_text}")
    if len(described) != 1:
        raise NotSupportedError(f"{name}() that makes {len(described)} columns")
    column, typ = described[0][0], described[0][1]
    if name in SERIES and typ == "BIGINT":
        return _integer_series(call_text, name, column, typ)
    rows = _ask(f"SELECT count(*) FROM {call_text}")[0][0]
    lo = hi = None
    if name in SERIES:
        lo, hi = _ask(f"SELECT min(x), max(x) FROM {call_text} AS _g(x)")[0]
    return Bound(call_text, column, typ, int(rows), None, lo, hi)


def _integer_series(call_text: str, name: str, column: str, typ: str) -> Bound:
    """An integer range / generate_series, counted by arithmetic (it may have billions of rows)."""
    inner = call_text[call_text.index("(") + 1:call_text.rindex(")")]
    args = _ask(f"SELECT [{inner}]::BIGINT[]")[0][0] if inner.strip() else []
    if any(a is None for a in args):
        return Bound(call_text, column, typ, 0)  # DuckDB makes no rows of a NULL argument
    if len(args) == 1:
        start, stop, step = 0, args[0], 1
    else:
        start, stop, step = args[0], args[1], args[2] if len(args) > 2 else 1
    if step == 0:
        raise CatalogError("interval cannot be 0!")
    inclusive = SERIES[name]
    if step > 0:
        span = stop - start + (1 if inclusive else 0)
        rows = max(0, -(-span // step))
    else:
        span = start - stop + (1 if inclusive else 0)
        rows = max(0, -(-span // -step))
    if rows == 0:
        return Bound(call_text, column, typ, 0)
    last = start + (rows - 1) * step
    return Bound(call_text, column, typ, rows, (start, step), min(start, last), max(start, last))


def hide(ast: exp.Expression) -> tuple[exp.Expression, dict[str, tuple[exp.Expression, Bound]], dict]:
    """ast (a copy, when it holds generator calls) with a stand-in table in each call's place;
    returns (ast, {stand-in name: (the call, what binding found)}, the stand-ins' schema for qualify)."""
    items = [n for n in ast.walk() if call_of(n) is not None and _in_from(n)]
    if not items:
        return ast, {}, {}
    ast = ast.copy()
    items = [n for n in ast.walk() if call_of(n) is not None and _in_from(n)]
    calls, schema = {}, {}
    for i, item in enumerate(items):
        call = call_of(item)
        name = function_name(call)
        if with_ordinality(item):
            # Its second column would be lost without a word (sqlglot keeps the flag aside).
            raise NotSupportedError(f"{name}() WITH ORDINALITY")
        _check_constant(call, name)
        bound = bind(call_sql(call), name)
        alias = item.args.get("alias")
        if isinstance(call, exp.Unnest):
            alias = call.args.get("alias")
        if alias is None or not alias.name:
            alias = exp.TableAlias(this=exp.to_identifier(name), columns=list(alias.columns) if alias else [])
        stand_in = f"{STAND_IN}{i}"
        bare = call.copy()
        if isinstance(bare, exp.Unnest):
            bare.set("alias", None)  # the stand-in's alias is the item's
        calls[stand_in] = (bare, bound)
        schema[stand_in] = {bound.name: bound.type}
        item.replace(exp.Table(this=exp.to_identifier(stand_in), alias=alias.copy()))
    return ast, calls, schema


def _in_from(node: exp.Expression) -> bool:
    """Whether a node is a FROM item or a joined item (not a select-list UNNEST)."""
    parent = node.parent
    return isinstance(parent, (exp.From, exp.Join))


def restore(ast: exp.Expression, calls: dict) -> exp.Expression:
    """Puts each call back where hide() put its stand-in (qualify kept the stand-in's alias)."""
    if not calls:
        return ast
    for table in list(ast.find_all(exp.Table)):
        if isinstance(table.this, exp.Identifier) and table.name in calls:
            table.set("this", calls[table.name][0].copy())
    return ast


def bound_of(call: exp.Expression) -> Bound:
    """What binding a call found (cached from hide)."""
    name = function_name(call)
    return bind(call_sql(call), name)
