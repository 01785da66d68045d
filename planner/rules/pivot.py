"""Rule: PIVOT becomes a GROUP BY with one filtered aggregate per pivoted value.

    PIVOT t ON c USING sum(x) GROUP BY g
    SELECT * FROM t PIVOT (sum(x) FOR c IN (1 AS one, 2))

become, as DuckDB answers them,

    SELECT g, sum(x) FILTER (WHERE CAST(c AS VARCHAR) = '1') AS "1", … FROM t GROUP BY g

one column per value (DuckDB's names: the value as text, `value_alias` with several aggregates),
the values in DuckDB's order (as text). Without IN (…) the values are the column's distinct
non-NULL values, which the Session reads with a query before planning (`values_of`): such a plan
depends on the data and is never cached. Without USING the aggregate is count(*); without GROUP BY
the rows are grouped by every other column (DuckDB's rule). Several ON columns are refused.
"""
from __future__ import annotations

from sqlglot import exp

from engine.errors import CatalogError, NotSupportedError


def pivots(ast: exp.Expression) -> list[exp.Pivot]:
    return [n for n in ast.walk() if isinstance(n, exp.Pivot) and not n.args.get("unpivot")]


def needs_values(pivot: exp.Pivot) -> tuple[str, str] | None:
    """(table, column) whose distinct values a PIVOT without an IN list needs, else None."""
    on = _on(pivot)
    if isinstance(on, exp.In):
        return None
    return _source(pivot).name, on.name


def rewrite_pivot(ast: exp.Expression, columns_of, values_of) -> exp.Expression:
    """`ast` with every PIVOT written as a grouped query. columns_of(table) lists a table's columns;
    values_of(table, column) the pivoted column's values as text, in order."""
    if not pivots(ast):
        return ast
    ast = ast.copy()
    if isinstance(ast, exp.Pivot):
        return _grouped(ast, columns_of, values_of, statement=True)
    for pivot in pivots(ast):
        if isinstance(pivot.parent, exp.Subquery) and pivot.parent.this is pivot:
            pivot.replace(_grouped(pivot, columns_of, values_of, statement=True))
            continue
        table = pivot.parent
        if not isinstance(table, exp.Table):
            raise NotSupportedError("PIVOT of a derived table or a join")
        alias = pivot.args.get("alias") or table.args.get("alias")
        grouped = _grouped(pivot, columns_of, values_of, statement=False)
        table.replace(exp.Subquery(this=grouped, alias=alias or exp.TableAlias(this=exp.to_identifier(table.name))))
    return ast


def _label(value: str) -> str:
    """A pivoted value as DuckDB names its column: the text, or '' for the empty string."""
    return value if value != "" else "''"


def _source(pivot: exp.Pivot) -> exp.Table:
    source = pivot.this if pivot.this is not None else pivot.parent
    if not isinstance(source, exp.Table) or not isinstance(source.this, exp.Identifier):
        raise NotSupportedError("PIVOT of anything but a table or view")
    return source


def _on(pivot: exp.Pivot) -> exp.Expression:
    on = pivot.expressions if pivot.this is not None else pivot.args.get("fields") or []
    if len(on) != 1 or not isinstance(on[0], (exp.Column, exp.In)):
        raise NotSupportedError("PIVOT ON several columns or an expression")
    if isinstance(on[0], exp.In) and not isinstance(on[0].this, exp.Column):
        raise NotSupportedError("PIVOT ON an expression")
    return on[0]


def _grouped(pivot: exp.Pivot, columns_of, values_of, statement: bool) -> exp.Expression:
    source = _source(pivot)
    columns = columns_of(source.name)
    if columns is None:
        raise CatalogError(f"unknown table: {source.name}")
    on = _on(pivot)
    column = on.this.name if isinstance(on, exp.In) else on.name
    lowered = {c.lower(): c for c in columns}
    if column.lower() not in lowered:
        raise CatalogError(f"unknown column: {column} (PIVOT of {source.name})")
    column = lowered[column.lower()]
    if isinstance(on, exp.In):
        values = []
        for item in on.expressions:
            value, name = (item.this, item.alias) if isinstance(item, exp.PivotAlias) else (item, None)
            if not isinstance(value, exp.Literal):
                raise NotSupportedError("PIVOT IN a list of anything but constants")
            values.append((value.name, name or _label(value.name)))
    else:
        values = [(v, _label(v)) for v in values_of(source.name, column)]
    aggregates = (pivot.args.get("using") or []) if statement else pivot.expressions
    if not aggregates:
        aggregates = [exp.Count(this=exp.Star())]
    used = {c.name.lower() for a in aggregates for c in a.find_all(exp.Column)}
    group = pivot.args.get("group")
    if group is not None and statement:
        keys = list(group.expressions)
    else:
        keys = [exp.column(c, quoted=True) for c in columns if c.lower() != column.lower() and c.lower() not in used]
    items = [k.copy() for k in keys]
    for value, name in values:
        match = exp.EQ(this=exp.Cast(this=exp.column(column, quoted=True), to=exp.DataType.build("VARCHAR")),
                       expression=exp.Literal.string(value))
        for aggregate in aggregates:
            inner = aggregate.this if isinstance(aggregate, exp.Alias) else aggregate
            # DuckDB's names: the value alone for one aggregate without an alias, else value_alias
            # (value_sql for an aggregate without one).
            label = name if len(aggregates) == 1 and not isinstance(aggregate, exp.Alias) else \
                f"{name}_{aggregate.alias if isinstance(aggregate, exp.Alias) else inner.sql('duckdb').lower()}"
            filtered = exp.Filter(this=inner.copy(), expression=exp.Where(this=match.copy()))
            items.append(exp.alias_(filtered, label, quoted=True))
    select = exp.select(*items).from_(exp.Table(this=source.this.copy()))
    if keys:
        select = select.group_by(*[k.copy() for k in keys])
    return select
