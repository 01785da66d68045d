"""Join keys that hash alike on both sides.

A shuffle sends a row to the rank `hash(key) % P`; the exchange normalises numbers to DOUBLE and
dates to TIMESTAMP, so equal values of those types meet. DuckDB also compares values of different
kinds: `7 = '07'` casts the VARCHAR to the other side's type, `true = 1` casts the BOOLEAN to the
number's. Hashed as they are, such keys land on different ranks and matches are lost. So the
binder makes the cast explicit: both keys then have one kind and hash alike.

Where a key's type is unknown (sqlglot could not type a function), both keys are replaced by a
canonical text form that is equal whenever DuckDB's comparison could say equal, and the original
equality is kept as a residual predicate: collisions only put rows on the same rank.

    >>> comparable_pair(a.id :: BIGINT, CAST(b.id AS VARCHAR))
    (a.id, CAST(CAST(b.id AS VARCHAR) AS BIGINT), None)
"""
from __future__ import annotations

import sqlglot
from sqlglot import exp

T = exp.DataType.Type


def _types(*names: str) -> frozenset:
    return frozenset(T[n] for n in names if n in T.__members__)


NUMBER = _types("TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "INT128", "INT256", "UTINYINT", "USMALLINT",
                "UMEDIUMINT", "UINT", "UBIGINT", "UINT128", "UINT256", "DECIMAL", "DECIMAL32", "DECIMAL64",
                "DECIMAL128", "DECIMAL256", "BIGDECIMAL", "UDECIMAL", "FLOAT", "DOUBLE", "UDOUBLE")
TEXT = _types("VARCHAR", "TEXT", "CHAR", "NCHAR", "NVARCHAR", "BPCHAR")
TEMPORAL = _types("DATE", "DATE32", "DATETIME", "TIMESTAMP", "TIMESTAMPNTZ", "TIMESTAMPTZ", "TIMESTAMPLTZ",
                  "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS")
BOOLEAN = _types("BOOLEAN")

# Equal (for DuckDB's `=` between any two kinds) implies equal text here; only rows whose keys
# compare equal are joined, by the residual.
_CANONICAL = sqlglot.parse_one(
    "COALESCE("
    "'n' || CAST(TRY_CAST(CAST(__k AS VARCHAR) AS DOUBLE) + 0.0 AS VARCHAR), "
    "'n' || CAST(CAST(TRY_CAST(CAST(__k AS VARCHAR) AS BOOLEAN) AS DOUBLE) AS VARCHAR), "
    "'t' || CAST(TRY_CAST(CAST(__k AS VARCHAR) AS TIMESTAMP) AS VARCHAR), "
    "'s' || CAST(__k AS VARCHAR))", read="duckdb")


def kind_of(t: exp.DataType | None) -> str | None:
    """number | text | temporal | boolean | other, or None when the type is unknown."""
    if t is None or t.this in (T.UNKNOWN, T.NULL):
        return None
    if t.this in NUMBER:
        return "number"
    if t.this in TEXT:
        return "text"
    if t.this in TEMPORAL:
        return "temporal"
    if t.this in BOOLEAN:
        return "boolean"
    return "other"


def _cast(e: exp.Expression, to: exp.DataType) -> exp.Expression:
    # A strict CAST, as DuckDB's own comparison: a text that does not convert is an error, not a
    # non-match. The exchange hashes the key with TRY_CAST (executors/runner.py), so the error is
    # raised by the join, on the rows that reach it (filters above outer joins are pushed first).
    out = exp.Cast(this=e, to=to.copy())
    out.type = to.copy()
    return out


def never_raising(key: exp.Expression) -> exp.Expression:
    """key with its casts made TRY_CASTs: for keys that only narrow what is computed (a magic-set
    restriction, an exchange's hash), where a value that does not convert must not raise before
    the real comparison decides whether DuckDB raises."""
    return key.transform(lambda n: exp.TryCast(this=n.this.copy(), to=n.to.copy()) if type(n) is exp.Cast else n)


def canonical(e: exp.Expression) -> exp.Expression:
    return _CANONICAL.transform(lambda n: e.copy() if isinstance(n, exp.Column) and n.name == "__k" else n)


def comparable_pair(a: exp.Expression, b: exp.Expression):
    """(left key, right key, residual or None) that compare as `a = b` does and hash alike."""
    ka, kb = kind_of(a.type), kind_of(b.type)
    if ka is not None and ka == kb:
        return a, b, None
    if ka is not None and kb is not None:
        if ka == "text" and kb != "text":
            return _cast(a, b.type), b, None
        if kb == "text" and ka != "text":
            return a, _cast(b, a.type), None
        if ka == "boolean" and kb == "number":
            return _cast(a, b.type), b, None
        if kb == "boolean" and ka == "number":
            return a, _cast(b, a.type), None
        # Kinds DuckDB cannot compare (a date with a number): its binder reports it in the fragment.
        return a, b, None
    return canonical(a), canonical(b), exp.EQ(this=a.copy(), expression=b.copy())


def common_setop_type(a: exp.DataType | None, b: exp.DataType | None) -> exp.DataType | None:
    """The type to cast a set operation's column to when its two sides differ in kind (DuckDB takes
    VARCHAR over anything, a number over a BOOLEAN), else None."""
    ka, kb = kind_of(a), kind_of(b)
    if ka is None or kb is None or ka == kb:
        return None
    if "text" in (ka, kb):
        return exp.DataType.build("VARCHAR")
    if {ka, kb} == {"number", "boolean"}:
        return a if ka == "number" else b
    return None
