"""Rule: PIVOT becomes a GROUP BY with one filtered aggregate per pivoted value.

    PIVOT t ON c USING sum(x) GROUP BY g
    SELECT * FROM t PIVOT (sum(x) FOR c IN (1 AS one, 2))

become, as DuckDB answers them,

    SELECT g, sum(x) FILTER (WHERE CAST(c AS VARCHAR) = '1') AS "1", … FROM t GROUP BY g

one column per value (DuckDB's names: the value as text, `value_alias` with several aggregates),
the values in DuckDB's order (as text). Without IN (…) the values are the ON expression's distinct
non-NULL values, which the Session reads with a query before planning (`values_of`): such a plan
depends on the data and is never cached. Without USING the aggregate is count(*); without GROUP BY
the rows are grouped by every other column (DuckDB's rule).

Several ON expressions (`ON c, d`) make a column per combination of their values, every value of
each with every value of the others (`a_x`, `a_y`, …), as DuckDB makes them; an ON expression may
be any expression (`ON upper(c)`, `ON x > 20`). The standard form's GROUP BY sits inside its
parentheses: `PIVOT (sum(x) FOR c IN (1, 2) GROUP BY g)`. The source may be a table, a view, a CTE,
a derived table or a join chain (planner/rules/pivot_source.py); where its columns are not the
catalog's (a CTE, a derived table), "every other
column" is `* EXCLUDE (…)` with GROUP BY ALL, expanded when the statement is qualified. An IN
list's constants are named by their text, as DuckDB casts them (`-2`, `3.5`, a date).
"""
from __future__ import annotations

import itertools

from sqlglot import exp

from engine.errors import CatalogError, NotSupportedError, PlanError
from planner.rules.pivot_source import pivoted_item
from planner.constants import evaluate, is_constant


def pivots(ast: exp.Expression) -> list[exp.Pivot]:
    return [n for n in ast.walk() if isinstance(n, exp.Pivot) and not n.args.get("unpivot")]


def rewrite_pivot(ast: exp.Expression, columns_of, values_of) -> exp.Expression:
    """`ast` with every PIVOT written as a grouped query. columns_of(table) lists a table's columns
    (None for a name the catalog does not hold); values_of(sql) runs a query of one text column
    and returns its values (the ON expressions' distinct values, in order)."""
    if not pivots(ast):
        return ast
    ast = ast.copy()
    ctes = _ctes(ast)
    if isinstance(ast, exp.Pivot):
        with_ = ast.args.get("with_")
        grouped = _grouped(ast, columns_of, values_of, ctes, statement=True)
        if with_ is not None:
            grouped.set("with_", with_.copy())
        return grouped
    for pivot in pivots(ast):
        if isinstance(pivot.parent, exp.Subquery) and pivot.parent.this is pivot:
            pivot.replace(_grouped(pivot, columns_of, values_of, ctes, statement=True))
            continue
        holder = pivoted_item(pivot, lambda name: None if name.lower() in ctes else columns_of(name))
        if not isinstance(holder, (exp.Table, exp.Subquery)):
            raise NotSupportedError(f"PIVOT of {holder.key}")
        alias = pivot.args.get("alias") or holder.args.get("alias")
        grouped = _grouped(pivot, columns_of, values_of, ctes, statement=False)
        if alias is None:
            alias = exp.TableAlias(this=exp.to_identifier(holder.name if isinstance(holder, exp.Table) else "__pivot"))
        holder.replace(exp.Subquery(this=grouped, alias=alias))
    return ast


def _ctes(ast: exp.Expression) -> dict[str, exp.CTE]:
    """Every CTE the statement defines, by name (a values query needs those its source reads)."""
    return {c.alias_or_name.lower(): c for c in ast.find_all(exp.CTE)}


def _label(value: str) -> str:
    """A pivoted value as DuckDB names its column: the text, or '' for the empty string."""
    return value if value != "" else "''"


def _source(pivot: exp.Pivot) -> exp.Expression:
    """The pivoted table or derived table, without its PIVOT."""
    source = pivot.this if pivot.this is not None else pivot.parent
    if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
        return exp.Table(this=source.this.copy(), db=source.args.get("db"), catalog=source.args.get("catalog"))
    if isinstance(source, exp.Subquery):
        inner = source.this.copy()
        return exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("__pivoted")))
    raise NotSupportedError("PIVOT of a table function")


def _ons(pivot: exp.Pivot) -> list[tuple[exp.Expression, list[exp.Expression] | None]]:
    """The ON expressions, each with its IN list (None without one)."""
    on = pivot.expressions if pivot.this is not None else pivot.args.get("fields") or []
    if not on:
        raise NotSupportedError("PIVOT without ON")
    return [(o.this, list(o.expressions)) if isinstance(o, exp.In) else (o, None) for o in on]


def _constant_text(value: exp.Expression) -> str:
    """An IN list's constant as text, as DuckDB casts it: a literal as written, else DuckDB's own
    cast of the constant (a negative number, a date, a cast), evaluated apart from any data."""
    if isinstance(value, exp.Literal):
        return value.name
    if not is_constant(value):
        raise NotSupportedError("PIVOT IN a list of anything but constants")
    text = evaluate(f"CAST(({value.sql('duckdb')}) AS VARCHAR)", what=f"PIVOT IN {value.sql('duckdb')}")
    if text is None:
        raise NotSupportedError("PIVOT IN NULL")
    return text


def _values_query(source: exp.Expression, on: exp.Expression, ctes: dict[str, exp.CTE]) -> str:
    """The query of the ON expression's distinct non-NULL values as text, in order, with the CTEs
    its source reads."""
    text = exp.Cast(this=on.copy(), to=exp.DataType.build("VARCHAR"))
    query = exp.select(exp.alias_(text, "v")).distinct().from_(source.copy()).where(
        exp.Not(this=exp.Is(this=exp.Paren(this=on.copy()), expression=exp.Null()))).order_by("v")
    needed, names = [], [t.name.lower() for t in source.find_all(exp.Table)]
    while names:
        name = names.pop()
        if name in ctes and ctes[name] not in needed:
            needed.append(ctes[name])
            names += [t.name.lower() for t in ctes[name].this.find_all(exp.Table)]
    if needed:
        order = list(ctes.values())
        query.set("with_", exp.With(expressions=[c.copy() for c in sorted(needed, key=order.index)]))
    return query.sql("duckdb")


def _aggregate_name(aggregate: exp.Expression) -> str:
    """An aggregate without an alias, as DuckDB names it in a pivoted column: its SQL in lower case,
    count(*) as count_star()."""
    if isinstance(aggregate, exp.Count) and isinstance(aggregate.this, exp.Star):
        return "count_star()"
    return aggregate.sql("duckdb").lower()


# DuckDB's default pivot_filter_threshold: above this many pivoted values it builds the columns
# another way, one that refuses identical aggregates under two names.
PIVOT_FILTER_THRESHOLD = 20


def _combinations(value_lists: list[list]) -> int:
    count = 1
    for values in value_lists:
        count *= len(values)
    return count


def _grouped(pivot: exp.Pivot, columns_of, values_of, ctes: dict[str, exp.CTE], statement: bool) -> exp.Expression:
    source = _source(pivot)
    known = None
    if isinstance(source, exp.Table) and source.name.lower() not in ctes:
        known = columns_of(source.name)
        if known is None:
            raise CatalogError(f"unknown table: {source.name}")
    ons = _ons(pivot)
    lowered = {c.lower(): c for c in known or ()}
    for on, _ in ons:
        for c in on.find_all(exp.Column):
            if known is not None and c.name.lower() not in lowered:
                raise CatalogError(f"unknown column: {c.name} (PIVOT of {source.name})")
    value_lists = []
    for on, listed in ons:
        if listed is not None:
            values = []
            for item in listed:
                value, name = (item.this, item.alias) if isinstance(item, exp.PivotAlias) else (item, None)
                text = _constant_text(value)
                values.append((text, name or _label(text)))
        else:
            values = [(v, _label(v)) for v in values_of(_values_query(source, on, ctes))]
        value_lists.append(values)
    aggregates = (pivot.args.get("using") or []) if statement else pivot.expressions
    if not aggregates:
        aggregates = [exp.Count(this=exp.Star())]
    if _combinations(value_lists) > PIVOT_FILTER_THRESHOLD:
        named: dict[str, str] = {}
        for aggregate in aggregates:
            inner = aggregate.this if isinstance(aggregate, exp.Alias) else aggregate
            if named.setdefault(inner.sql("duckdb"), aggregate.alias) != aggregate.alias:
                # DuckDB pivots this many columns another way, which refuses them, in these words.
                raise PlanError("PIVOT: identical aggregates must have the same name - use a single aggregate, "
                                "or make the aggregates differ")
    used = {c.name.lower() for a in aggregates for c in a.find_all(exp.Column)} | {
        c.name.lower() for on, _ in ons for c in on.find_all(exp.Column)}
    group = pivot.args.get("group")
    group_all = False
    if group is not None:
        keys = list(group.expressions)
        items = [k.copy() for k in keys]
    elif known is not None:
        keys = [exp.column(c, quoted=True) for c in known if c.lower() not in used]
        items = [k.copy() for k in keys]
    else:
        # Every other column of a source whose columns the statement itself defines.
        keys, group_all = [], True
        items = [exp.Star(except_=[exp.column(n, quoted=True) for n in sorted(used)])] if used else [exp.Star()]
    # Names taken, in lower case: the grouping columns' (where known), then each pivoted column's.
    labels: dict[str, int] = {k.alias_or_name.lower(): 1 for k in items if not isinstance(k, exp.Star)}
    for combination in itertools.product(*value_lists):
        match = None
        for (on, _), (value, _) in zip(ons, combination):
            equal = exp.EQ(this=exp.Cast(this=exp.Paren(this=on.copy()), to=exp.DataType.build("VARCHAR")),
                           expression=exp.Literal.string(value))
            match = equal if match is None else exp.And(this=match, expression=equal)
        name = "_".join(label for _, label in combination)
        for aggregate in aggregates:
            inner = aggregate.this if isinstance(aggregate, exp.Alias) else aggregate
            # DuckDB's names: the value alone for one aggregate without an alias, else value_alias
            # (value_sql for an aggregate without one).
            label = name if len(aggregates) == 1 and not isinstance(aggregate, exp.Alias) else \
                f"{name}_{aggregate.alias if isinstance(aggregate, exp.Alias) else _aggregate_name(inner)}"
            # A name given twice (two aggregates of one alias, a value named as a grouping column) is
            # told apart as DuckDB does: `_1`, `_2`.
            repeats = labels.get(label.lower(), 0)
            labels[label.lower()] = repeats + 1
            label = f"{label}_{repeats}" if repeats else label
            filtered = exp.Filter(this=inner.copy(), expression=exp.Where(this=match.copy()))
            items.append(exp.alias_(filtered, label, quoted=True))
    select = exp.select(*items).from_(source)
    if keys:
        select = select.group_by(*[k.copy() for k in keys])
    elif group_all:
        select = select.group_by("ALL")
    return select
