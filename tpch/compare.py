"""Compare a query answer with the oracle's answer, tolerant of harmless type differences.

Engines disagree on result types without disagreeing on answers: DuckDB returns
DECIMAL sums where another engine returns DOUBLE, `count(*)` may be int32 or
int64, strings may be `string`, `large_string`, `string_view` or dictionary
encoded. `compare_tables` normalises both sides to a few comparable kinds
(number, text, temporal, boolean) and then compares whole columns at once, so it
stays fast on results of a few hundred thousand rows.

    >>> compare_tables(actual, expected, ordered=False)   # None when they match
    'row 3, column 1 (revenue): actual 10.5 != expected 10.25 (after sorting both sides)'
"""

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from sqlglot import exp

from planner.duckdb_syntax import parse_statements

# Differences at or below this absolute size count as equal whatever `rel_tol`
# says: it keeps 0.0 (exact DECIMAL) equal to 1e-17 (DOUBLE noise).
DEFAULT_ABS_TOL = 1e-9


@dataclass(frozen=True, slots=True)
class Ordering:
    """What a query's outermost ORDER BY promises about its answer.

    `ordered` is False when the query has no ORDER BY (compare as multisets).
    `keys` names the result columns the ORDER BY sorts on, or is None when some
    key is an expression that is not a result column (compare strictly by row).
    """

    ordered: bool
    keys: tuple[str, ...] | None = None
    # A LIMIT (or FETCH) cuts the ordered rows: which of the rows tied at the cut it keeps is
    # anyone's choice.
    limited: bool = False


def ordering_of(sql: str, dialect: str = "duckdb") -> Ordering:
    """Read the outermost ORDER BY of `sql`: whether rows are ordered, and by which columns."""
    if dialect == "duckdb":
        tree = parse_statements(sql)[0]  # (`PIVOT t ON x > 4`, which sqlglot does not read as it is)
    else:
        tree = sqlglot.parse_one(sql, read=dialect)
    order = tree.args.get("order")
    if order is None:
        return Ordering(ordered=False)
    limited = tree.args.get("limit") is not None or tree.args.get("fetch") is not None
    select = tree if isinstance(tree, exp.Select) else None
    # The items' result names as DuckDB gives them: an alias or a column's name (an unaliased
    # `CAST(x AS VARCHAR)` is not named x: `ORDER BY x` then sorts by the column, not by it).
    names = [e.alias if isinstance(e, exp.Alias) else e.name if isinstance(e, exp.Column) else None
             for e in select.expressions] if select is not None else []
    # An ORDER BY may name what a select item computes rather than its alias (TPC-DS q71: `SELECT
    # i_brand_id brand_id … ORDER BY ext_price DESC, i_brand_id`).
    computed = {}
    for e in select.expressions if select is not None else []:
        if isinstance(e, exp.Alias):
            computed.setdefault(e.this.sql(dialect), e.alias)
    keys = []
    starred = [isinstance(e, exp.Star) or isinstance(e.this, exp.Star) for e in select.expressions] \
        if select is not None else []
    for ordered in order.expressions:
        key = ordered.this
        if isinstance(key, exp.Literal) and key.is_int and int(key.this) > 0 and any(starred[:int(key.this)]):
            # A * before it: the position counts the expanded columns, whose names are not known here.
            keys.append(int(key.this) - 1)
        elif isinstance(key, exp.Literal) and key.is_int and 0 < int(key.this) <= len(names):
            keys.append(names[int(key.this) - 1] or int(key.this) - 1)
        elif isinstance(key, exp.Column) and key.name in names:
            keys.append(key.name)
        elif key.sql(dialect) in computed:
            keys.append(computed[key.sql(dialect)])
        else:
            return Ordering(ordered=True, keys=None, limited=limited)
    return Ordering(ordered=True, keys=tuple(keys), limited=limited)


def compare_tables(
    actual: pa.Table,
    expected: pa.Table,
    ordered: bool,
    rel_tol: float = 1e-6,
    *,
    abs_tol: float = DEFAULT_ABS_TOL,
    order_keys: Sequence[int | str] | None = None,
    check_names: bool = False,
    limited: bool = False,
) -> str | None:
    """Return a description of the first difference between two answers, or None if they match.

    Values compare by kind, not by Arrow type: integers, floats and decimals
    compare numerically (within `rel_tol` relative or `abs_tol` absolute when
    either side is inexact), dates against timestamps as instants, all string
    types as text. NULL equals NULL; NaN equals NaN.

    With `ordered=False` both sides are sorted by every column first (exact
    columns before inexact ones, so float noise cannot reorder rows), making
    the comparison a multiset comparison. With `ordered=True` rows compare
    position by position; if `order_keys` (column names or indexes) are given,
    rows whose keys tie may appear in any order, since SQL leaves their order
    unspecified; `limited` (a LIMIT cut the ordered rows) lets the last run of
    tied rows be any rows with those keys, since the cut may fall inside it.
    Column names are ignored unless `check_names` is set.
    """
    if actual.num_columns != expected.num_columns:
        return (
            f"column count: actual {actual.num_columns} {actual.column_names} "
            f"!= expected {expected.num_columns} {expected.column_names}"
        )
    if check_names:
        a_names = [n.lower() for n in actual.column_names]
        e_names = [n.lower() for n in expected.column_names]
        if a_names != e_names:
            return f"column names: actual {actual.column_names} != expected {expected.column_names}"
    if actual.num_rows != expected.num_rows:
        return f"row count: actual {actual.num_rows} != expected {expected.num_rows}"

    names = expected.column_names
    a_cols, e_cols, inexact = [], [], []
    for i in range(expected.num_columns):
        pair = _normalize_pair(actual.column(i), expected.column(i))
        if isinstance(pair, str):
            return f"column {i} ({names[i]}): {pair}"
        a_cols.append(pair[0])
        e_cols.append(pair[1])
        inexact.append(pair[2])

    how = ""
    if not ordered:
        a_cols = _sort_all(a_cols, inexact)
        e_cols = _sort_all(e_cols, inexact)
        how = " (after sorting both sides)"
    elif order_keys:
        keys = _resolve_keys(order_keys, names)
        # A float key orders only up to its rounding: two engines may round it either way (a
        # variance 6.0 against 5.999999999999999), and the keys after it then order the rows
        # differently. So the keys count up to the first inexact one; rows whose keys agree up
        # to there, that one within the tolerance, may come in any order.
        first_inexact = next((n for n, i in enumerate(keys) if inexact[i]), None)
        if first_inexact is not None:
            keys = keys[:first_inexact + 1]
        # The keys themselves must agree position by position; only rows within a
        # run of equal keys may be permuted.
        for i in keys:
            diff = _first_difference(a_cols[i], e_cols[i], inexact[i], rel_tol, abs_tol)
            if diff is not None:
                return _describe(diff, i, names[i], a_cols[i], e_cols[i], "")
        groups = _tie_groups([e_cols[i] for i in keys], [inexact[i] for i in keys], rel_tol, abs_tol)
        if limited and len(groups):
            # The rows tied at the cut: their keys agreed above; which of the ties they are, the
            # LIMIT leaves open (TPC-DS q65 at SF 10: two items of one description at rows 100
            # and 101, LIMIT 100).
            cut = pc.index(groups, groups[-1]).as_py()
            a_cols, e_cols = [c.slice(0, cut) for c in a_cols], [c.slice(0, cut) for c in e_cols]
            groups = groups.slice(0, cut)
        if len(groups):
            a_cols = _sort_all(a_cols, inexact, leading=groups)
            e_cols = _sort_all(e_cols, inexact, leading=groups)
        how = " (after sorting rows whose ORDER BY keys tie)"

    for i in range(len(names)):
        diff = _first_difference(a_cols[i], e_cols[i], inexact[i], rel_tol, abs_tol)
        if diff is not None:
            return _describe(diff, i, names[i], a_cols[i], e_cols[i], how)
    return None


def _resolve_keys(order_keys: Sequence[int | str], names: list[str]) -> list[int]:
    """Column indexes of the ORDER BY keys; names match case-insensitively."""
    lowered = [n.lower() for n in names]
    resolved = []
    for key in order_keys:
        if isinstance(key, str):
            if key.lower() not in lowered:
                raise ValueError(f"order key {key!r} is not a result column of {names}")
            resolved.append(lowered.index(key.lower()))
        elif 0 <= key < len(names):
            resolved.append(key)
        else:
            raise ValueError(f"order key {key} is out of range for {len(names)} columns")
    return resolved


# --- normalisation ----------------------------------------------------------

_NUMBER, _TEXT, _BINARY, _DATE, _TIMESTAMP, _BOOL, _NULL, _OTHER = range(8)


def _kind(t: pa.DataType) -> int:
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return _NUMBER
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return _TEXT
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return _BINARY
    if pa.types.is_date(t):
        return _DATE
    if pa.types.is_timestamp(t):
        return _TIMESTAMP
    if pa.types.is_boolean(t):
        return _BOOL
    if pa.types.is_null(t):
        return _NULL
    return _OTHER


def _plain(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One contiguous, dictionary-decoded array."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr


def _normalize_pair(actual, expected) -> tuple[pa.Array, pa.Array, bool] | str:
    """Cast a column pair to one comparable type, or explain why they cannot be compared.

    Returns (actual, expected, inexact) where `inexact` says the pair compares
    with tolerance (float64) rather than exactly.
    """
    a, e = _plain(actual), _plain(expected)
    ka, ke = _kind(a.type), _kind(e.type)
    # An all-NULL column of type null matches any column that is all NULL too.
    if ka == _NULL and ke == _NULL:
        return a, e, False
    if ka == _NULL:
        a, ka = pa.nulls(len(a), e.type), ke
    elif ke == _NULL:
        e, ke = pa.nulls(len(e), a.type), ka
    if ka == _NUMBER and ke == _NUMBER:
        if pa.types.is_integer(a.type) and pa.types.is_integer(e.type):
            if pa.types.is_uint64(a.type) or pa.types.is_uint64(e.type):
                # A UBIGINT (hash()) may pass int64's range: both as whole-number decimals.
                return a.cast(pa.decimal128(20, 0)), e.cast(pa.decimal128(20, 0)), False
            return _cast_int(a), _cast_int(e), False
        return a.cast(pa.float64()), e.cast(pa.float64()), True
    if {ka, ke} <= {_DATE, _TIMESTAMP}:
        if ka == ke == _DATE:
            return a.cast(pa.date32()), e.cast(pa.date32()), False
        # Nanoseconds where either side has them (TIMESTAMP_NS), else microseconds.
        unit = "ns" if "ns" in (getattr(a.type, "unit", None), getattr(e.type, "unit", None)) else "us"
        return _as_utc(a, unit), _as_utc(e, unit), False
    if ka == ke and ka in (_TEXT, _BINARY, _BOOL):
        target = {_TEXT: pa.large_string(), _BINARY: pa.large_binary(), _BOOL: pa.bool_()}[ka]
        return a.cast(target), e.cast(target), False
    if ka == ke == _OTHER and a.type == e.type:
        return a, e, False
    return f"types differ: actual {a.type} vs expected {e.type}"


def _cast_int(arr: pa.Array) -> pa.Array:
    return arr.cast(pa.int64())


def _as_utc(arr: pa.Array, unit: str) -> pa.Array:
    if pa.types.is_timestamp(arr.type) and arr.type.tz is not None:
        arr = arr.cast(pa.timestamp(arr.type.unit, tz="UTC")).cast(pa.timestamp(arr.type.unit))
    return arr.cast(pa.timestamp(unit))


# --- sorting ------------------------------------------------------------------


def _sortable(arr: pa.Array) -> bool:
    return _kind(arr.type) != _OTHER or pa.types.is_time(arr.type) or pa.types.is_duration(arr.type)


def _sort_all(cols: list[pa.Array], inexact: list[bool], leading: pa.Array | None = None) -> list[pa.Array]:
    """Reorder every column by all sortable columns: `leading` first, exact ones next, inexact last."""
    names, arrays = [], []
    if leading is not None:
        names.append("__group")
        arrays.append(leading)
    order = [i for i in range(len(cols)) if not inexact[i]] + [i for i in range(len(cols)) if inexact[i]]
    for i in order:
        if _sortable(cols[i]) and _kind(cols[i].type) != _NULL:
            names.append(f"c{i}")
            arrays.append(cols[i])
    if not arrays:
        return cols
    keys = pa.table(arrays, names=names)
    indices = pc.sort_indices(keys, sort_keys=[(n, "ascending") for n in names])  # NULLs last by default
    return [c.take(indices) for c in cols]


def _tie_groups(key_cols: list[pa.Array], inexact: list[bool] | None = None, rel_tol: float = 0.0,
                abs_tol: float = 0.0) -> pa.Array:
    """Number the runs of consecutive rows whose keys are all equal: 0, 0, 1, 2, 2, ... An inexact
    key equal within the tolerance ties too: two engines may round a float key (a variance,
    6.0 against 5.999999999999999) either way, and the keys after it then order the rows
    differently."""
    n = len(key_cols[0])
    if n == 0:
        return pa.array([], pa.int64())
    starts = pa.array([True] + [False] * (n - 1))
    for i, col in enumerate(key_cols):
        close = inexact is not None and inexact[i]
        same = _equal_to_previous(col) if not close else _close_to_previous(col, rel_tol, abs_tol)
        changed = pa.concat_arrays([pa.array([True]), pc.invert(same)])
        starts = pc.or_(starts, changed)
    return pc.subtract(pc.cumulative_sum(starts.cast(pa.int64())), 1)


def _equal_to_previous(col: pa.Array) -> pa.Array:
    """For rows 1..n-1: whether the value equals the one in the row before (NULL equals NULL)."""
    cur, prev = col.slice(1), col.slice(0, len(col) - 1)
    both_null = pc.and_(cur.is_null(), prev.is_null())
    return pc.or_(both_null, pc.fill_null(pc.equal(cur, prev), False))


def _close_to_previous(col: pa.Array, rel_tol: float, abs_tol: float) -> pa.Array:
    """For rows 1..n-1 of a float column: whether the value is within the tolerance of the one before."""
    cur, prev = col.slice(1), col.slice(0, len(col) - 1)
    return pc.invert(_differs(cur, prev, True, rel_tol, abs_tol))


# --- comparison ---------------------------------------------------------------


def _first_difference(a: pa.Array, e: pa.Array, inexact: bool, rel_tol: float, abs_tol: float) -> int | None:
    """Index of the first row where the columns differ, or None."""
    first = pc.index(_differs(a, e, inexact, rel_tol, abs_tol), True).as_py()
    return None if first < 0 else first


def _differs(a: pa.Array, e: pa.Array, inexact: bool, rel_tol: float, abs_tol: float) -> pa.Array:
    """Per row: whether the values differ (NULL equals NULL; floats within the tolerance agree)."""
    differs = pc.not_equal(a.is_null(), e.is_null())
    if inexact:
        av, ev = pc.fill_null(a, 0.0), pc.fill_null(e, 0.0)
        tol = pc.max_element_wise(pc.multiply(pc.max_element_wise(pc.abs(av), pc.abs(ev)), rel_tol), abs_tol)
        gap = pc.abs(pc.subtract(av, ev))
        close = pc.and_(pc.less_equal(gap, tol), pc.is_finite(gap))  # an infinite gap is never close
        close = pc.or_(close, pc.equal(av, ev))  # equal infinities
        close = pc.or_(close, pc.and_(pc.is_nan(av), pc.is_nan(ev)))
        differs = pc.or_(differs, pc.invert(close))
    elif _kind(a.type) != _NULL:
        try:
            equal = pc.fill_null(pc.equal(a, e), True)
        except pa.ArrowNotImplementedError:
            # Nested or interval values: rare in answers, compared as Python objects.
            equal = pa.array([x == y for x, y in zip(a.to_pylist(), e.to_pylist())], pa.bool_())
        differs = pc.or_(differs, pc.invert(equal))
    return differs


def _describe(row: int, col: int, name: str, a: pa.Array, e: pa.Array, how: str) -> str:
    return f"row {row}, column {col} ({name}): actual {a[row].as_py()!r} != expected {e[row].as_py()!r}{how}"
