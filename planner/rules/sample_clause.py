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

A sample of a derived table, a CTE or a table function hashes the rows it gives, whose columns are
known only once the statement is qualified: the hash is a select item over them,

    FROM (q) AS d TABLESAMPLE 10%  → FROM (SELECT * EXCLUDE (h) FROM (SELECT *, hash(s, *COLUMNS(*)) AS h
                                           FROM (q) AS d) WHERE h < 10% of 2^64) AS d

whose COLUMNS(*) planner/rules/columns_expression.py expands into d's columns.

USING SAMPLE applies to the FROM clause's rows, after its joins and before WHERE; a percentage over
joins of tables hashes the joined row. A row count over a join, and a percentage over a join with a
derived table, a CTE or a table function in it, stay refused.
"""
from __future__ import annotations

import random

from sqlglot import exp

from engine.errors import NotSupportedError

HASH_RANGE = 2 ** 64  # DuckDB's hash() is a UBIGINT
SAMPLE_HASH = "__flocksql_sample_hash"  # the select item that hashes a derived table's rows


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
        if not isinstance(sample.parent, (exp.Table, exp.Select, exp.Subquery)):
            raise NotSupportedError(f"a sample clause here: {sample.parent.sql('duckdb')[:60]}")
    for select in [s for s in ast.find_all(exp.Select) if s.args.get("sample") is not None]:
        _from_clause_sample(select, columns_of)
    for item in [t for t in ast.find_all(exp.Table, exp.Subquery) if t.args.get("sample") is not None]:
        names = columns_of(item.name) if isinstance(item, exp.Table) and isinstance(item.this, exp.Identifier) \
            else None
        if names:
            _table_sample(item, names)
        else:
            _rows_sample(item)
    return ast


def _from_clause_sample(select: exp.Select, columns_of) -> None:
    sample = select.args["sample"]
    select.set("sample", None)
    first = select.args.get("from_")
    joins = select.args.get("joins") or []
    if first is not None and not joins and isinstance(first.this, (exp.Table, exp.Subquery)) \
            and first.this.args.get("sample") is None:
        first.this.set("sample", sample)  # the FROM clause is one item: its sample
        return
    items = ([first.this] if first is not None else []) + [j.this for j in joins]
    if not items or not all(isinstance(i, exp.Table) and isinstance(i.this, exp.Identifier) for i in items):
        raise NotSupportedError("USING SAMPLE over a join with a derived table or a table function in it "
                                "(sample one item: FROM (…) AS d TABLESAMPLE …)")
    size, percent = _size(sample)
    if not percent:
        raise NotSupportedError("USING SAMPLE … ROWS over a join (sample a table: FROM t TABLESAMPLE …)")
    values = []
    for item in items:
        names = columns_of(item.name)
        if not names:
            raise NotSupportedError(f"USING SAMPLE over a join with {item.name} in it, which is not a table of "
                                    "the catalog (sample it alone: FROM {item.name} TABLESAMPLE …)")
        qualifier = item.alias_or_name
        values += [exp.column(exp.to_identifier(c, quoted=True), table=exp.to_identifier(qualifier, quoted=True))
                   for c in names]
    select.where(_kept(_row_hash(sample, values), size), copy=False)


def _table_sample(table: exp.Table, names: list[str]) -> None:
    """A table of the catalog, whose columns are `names`."""
    sample = table.args["sample"]
    bare = exp.Table(this=table.this.copy(), db=table.args.get("db"), catalog=table.args.get("catalog"))
    row_hash = _row_hash(sample, [exp.column(exp.to_identifier(c, quoted=True)) for c in names])
    inner = _sampled(exp.select("*").from_(bare), row_hash, sample)
    alias = table.args.get("alias")
    if alias is None:
        alias = exp.TableAlias(this=exp.to_identifier(table.name, quoted=True))
    table.replace(exp.Subquery(this=inner, alias=alias.copy()))


def _rows_sample(item: exp.Table | exp.Subquery) -> None:
    """A derived table, a CTE or a table function: its rows hashed in a select item (module doc)."""
    sample = item.args["sample"]
    item.set("sample", None)
    alias = item.args.get("alias")
    name = alias.name if alias is not None and alias.name else item.name if isinstance(item, exp.Table) else ""
    if not name:
        # An unaliased derived table: its columns are read unqualified, so any name serves.
        name = "__flocksql_sampled"
        item.set("alias", exp.TableAlias(this=exp.to_identifier(name, quoted=True)))
    row_hash = _row_hash(sample, [exp.Columns(this=exp.Star(), unpack=True)])
    hashed = exp.select(exp.Star(), exp.alias_(row_hash, SAMPLE_HASH, quoted=True)).from_(item.copy())
    kept = _sampled(exp.select(exp.Star(except_=[exp.column(exp.to_identifier(SAMPLE_HASH, quoted=True))]))
                    .from_(hashed.subquery()), exp.column(exp.to_identifier(SAMPLE_HASH, quoted=True)), sample)
    item.replace(exp.Subquery(this=kept, alias=exp.TableAlias(this=exp.to_identifier(name, quoted=True))))


def _sampled(select: exp.Select, row_hash: exp.Expression, sample: exp.TableSample) -> exp.Select:
    """select's rows kept by the sample: a percentage keeps a row whose hash is under its share of
    the range, a reservoir exactly that many rows (or that share of them), the smallest hashes."""
    size, percent = _size(sample)
    method = sample.args.get("method")
    if percent and (method is None or method.name.upper() != "RESERVOIR"):
        return select.where(_kept(row_hash, size))
    limit = exp.Limit(expression=exp.Literal.number(size))
    if percent:
        limit = exp.Limit(expression=exp.Literal.number(size), limit_options=exp.LimitOptions(percent=True))
    select = select.order_by(exp.Ordered(this=row_hash))
    select.set("limit", limit)
    return select


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
