"""sample_clause: TABLESAMPLE and USING SAMPLE, written as a filter or a top-N over a hash of each row.

Run on the statement before qualify, with the tables' columns known:

    FROM t TABLESAMPLE 10%                  → FROM (SELECT * FROM t WHERE hash(s, c1, …, cn) < 10% of 2^64) AS t
    FROM t USING SAMPLE 50 ROWS             → FROM (SELECT * FROM t ORDER BY hash(s, c1, …, cn) LIMIT 50) AS t
    FROM t TABLESAMPLE reservoir(10%)       → … ORDER BY hash(…) LIMIT 10 PERCENT (exactly a tenth of the rows)
    FROM a JOIN b … USING SAMPLE 10%        → … WHERE (…) AND hash(s, a.c1, …, b.c1, …) < 10% of 2^64

A sample must be one sample wherever it is evaluated. DuckDB draws it with a random generator as it
scans; here the rows of one table are spread over ranks, a small table may be read whole by every
rank (a broadcast computed everywhere) and DuckDB may move a filter through a join, so a draw made
per evaluation would give each rank a different sample. A hash of the row's values with a seed
decides the same way on every rank and in every position, and each row is kept with the asked
probability. The differences from DuckDB, none of which makes a sample wrong: SYSTEM sampling (whole
vectors of 2048 rows in DuckDB) is row by row here like BERNOULLI; rows equal in every column are
kept or dropped together; and REPEATABLE (seed) gives the same rows at any rank count, but not
DuckDB's rows. Without REPEATABLE the seed is drawn when the statement is planned, and such a plan
is not cached, so each run draws a new sample.

USING SAMPLE applies to the FROM clause's rows, after its joins and before WHERE; a percentage over
joins of tables hashes the joined row. A row count over a join, and any sample of a derived table,
a CTE or a table function, stay refused.
"""
from __future__ import annotations

import random

from sqlglot import exp

from engine.errors import NotSupportedError

HASH_RANGE = 2 ** 64  # DuckDB's hash() is a UBIGINT


def has_unseeded_sample(ast: exp.Expression) -> bool:
    """Whether a statement samples without REPEATABLE (its plan draws a seed: not to be cached)."""
    return any(s.args.get("seed") is None for s in ast.find_all(exp.TableSample))


def rewrite_samples(ast: exp.Expression, columns_of) -> exp.Expression:
    """ast with every sample clause written as above. columns_of(table name): the table's columns,
    None when the name is not a table or view of the catalog."""
    if not any(ast.find_all(exp.TableSample)):
        return ast
    ast = ast.copy()
    for sample in ast.find_all(exp.TableSample):
        if not isinstance(sample.parent, (exp.Table, exp.Select)):
            raise NotSupportedError("TABLESAMPLE of a derived table (sample a table inside it)")
    for select in [s for s in ast.find_all(exp.Select) if s.args.get("sample") is not None]:
        _from_clause_sample(select, columns_of)
    for table in [t for t in ast.find_all(exp.Table) if t.args.get("sample") is not None]:
        _table_sample(table, columns_of)
    return ast


def _from_clause_sample(select: exp.Select, columns_of) -> None:
    sample = select.args["sample"]
    select.set("sample", None)
    first = select.args.get("from_")
    joins = select.args.get("joins") or []
    if first is not None and not joins and isinstance(first.this, exp.Table) and first.this.args.get("sample") is None:
        first.this.set("sample", sample)  # the FROM clause is one table: its sample
        return
    items = ([first.this] if first is not None else []) + [j.this for j in joins]
    if not items or not all(isinstance(i, exp.Table) and isinstance(i.this, exp.Identifier) for i in items):
        raise NotSupportedError("USING SAMPLE over a derived table or a table function (sample a table: "
                                "FROM t TABLESAMPLE …)")
    size, percent = _size(sample)
    if not percent:
        raise NotSupportedError("USING SAMPLE … ROWS over a join (sample a table: FROM t TABLESAMPLE …)")
    values = []
    for item in items:
        names = _columns(item, columns_of)
        qualifier = item.alias_or_name
        values += [exp.column(exp.to_identifier(c, quoted=True), table=exp.to_identifier(qualifier, quoted=True))
                   for c in names]
    select.where(_kept(_row_hash(sample, values), size), copy=False)


def _table_sample(table: exp.Table, columns_of) -> None:
    sample = table.args["sample"]
    if not isinstance(table.this, exp.Identifier):
        raise NotSupportedError("TABLESAMPLE of a table function")
    names = _columns(table, columns_of)
    size, percent = _size(sample)
    bare = exp.Table(this=table.this.copy(), db=table.args.get("db"), catalog=table.args.get("catalog"))
    row_hash = _row_hash(sample, [exp.column(exp.to_identifier(c, quoted=True)) for c in names])
    inner = exp.select("*").from_(bare)
    method = sample.args.get("method")
    if percent and (method is None or method.name.upper() != "RESERVOIR"):
        inner = inner.where(_kept(row_hash, size))
    else:
        # A reservoir: exactly that many rows (or that share of them), the smallest hashes.
        limit = exp.Limit(expression=exp.Literal.number(size))
        if percent:
            limit = exp.Limit(expression=exp.Literal.number(size),
                              limit_options=exp.LimitOptions(percent=True))
        inner = inner.order_by(exp.Ordered(this=row_hash))
        inner.set("limit", limit)
    alias = table.args.get("alias")
    if alias is None:
        alias = exp.TableAlias(this=exp.to_identifier(table.name, quoted=True))
    table.replace(exp.Subquery(this=inner, alias=alias.copy()))


def _columns(table: exp.Table, columns_of) -> list[str]:
    names = columns_of(table.name)
    if not names:
        raise NotSupportedError(f"a sample of {table.name}, which is not a table of the catalog (a CTE or view "
                                "defined in the statement)")
    return names


def _size(sample: exp.TableSample) -> tuple[float, bool]:
    """(the sample's size, whether it is a percentage)."""
    for key, percent in (("percent", True), ("size", False), ("rows", False)):
        value = sample.args.get(key)
        if value is not None:
            break
    else:
        raise NotSupportedError(f"this sample clause: {sample.sql('duckdb')}")
    if not isinstance(value, exp.Literal) or value.is_string:
        raise NotSupportedError("a sample size that is not a number")
    size = float(value.this)
    if percent and not 0 <= size <= 100:
        raise NotSupportedError(f"sample percentage {value.this}: it must be between 0 and 100")
    if not percent and (size < 0 or size != int(size)):
        raise NotSupportedError(f"sample size {value.this}: a number of rows is a whole number")
    return (size if percent else int(size)), percent


def _row_hash(sample: exp.TableSample, values: list[exp.Expression]) -> exp.Expression:
    seed = sample.args.get("seed")
    if seed is None:
        seed = exp.Literal.number(random.getrandbits(31))
    elif not isinstance(seed, exp.Literal) or seed.is_string:
        raise NotSupportedError("a REPEATABLE seed that is not a number")
    return exp.Anonymous(this="hash", expressions=[seed.copy()] + values)


def _kept(row_hash: exp.Expression, percent: float) -> exp.Expression:
    """The condition that keeps a row with probability percent / 100."""
    if percent >= 100:
        return exp.true()
    bound = int(HASH_RANGE * percent / 100)
    return exp.LT(this=row_hash, expression=exp.Cast(this=exp.Literal.string(str(bound)),
                                                     to=exp.DataType.build("UBIGINT", dialect="duckdb")))
