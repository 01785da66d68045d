"""rewrite_lateral_table_functions: a table function in FROM whose arguments read a column of the
FROM items before it (or of an enclosing query) becomes a LATERAL subquery of the same function in
its list form, which the LATERAL machinery plans (planner/rules/flatten_dependent_joins.py).

DuckDB makes the rows of `unnest(l)`, `range(…)` and `generate_series(…)` in FROM one outer row at
a time, and each of them is also a scalar function (`unnest` in the select list; `range` and
`generate_series` give the list of their values), so for every outer row

    FROM t, unnest(t.l) AS u(x)             = FROM t, LATERAL (SELECT unnest(t.l) AS x) AS u
    FROM t, range(t.n) AS r                 = FROM t, LATERAL (SELECT unnest(range(t.n)) AS r) AS r
    FROM t LEFT JOIN unnest(t.l) u(x) ON c  = FROM t LEFT JOIN LATERAL (SELECT unnest(t.l) AS x) AS u ON c

with the column named as DuckDB names it: the alias's column, else the table alias, else the
function's name. An outer row whose list is empty or NULL makes no row (a LEFT JOIN keeps it with
NULL), in both forms. A call that is its SELECT's first FROM item reads an enclosing query only, so
it becomes a plain derived table (a correlated subquery's FROM).

Calls with constant arguments stay table functions (planner/table_functions.py makes each rank's
slice of them); `unnest` of several lists, or with named arguments, stays refused. WITH ORDINALITY
was written as a derived table before (planner/rules/ordinality.py).
"""
from __future__ import annotations

from sqlglot import exp

from planner import table_functions


def rewrite_lateral_table_functions(ast: exp.Expression) -> exp.Expression:
    """ast, or a rewritten copy when it has a table function in FROM whose arguments read a column."""
    if not any(_reads_a_column(item) for item in ast.walk()):
        return ast
    ast = ast.copy()
    for item in [n for n in ast.walk() if _reads_a_column(n)]:
        _rewrite(item)
    return ast


def _reads_a_column(node: exp.Expression) -> bool:
    call = table_functions.call_of(node)
    if call is None or not isinstance(node.parent, (exp.From, exp.Join)) or table_functions.with_ordinality(node):
        return False  # WITH ORDINALITY: planner/rules/ordinality.py rewrote it (what is left is refused)
    return any(isinstance(n, exp.Column) for n in call.walk()) and _list_form(call) is not None


def _list_form(call: exp.Expression) -> exp.Expression | None:
    """The scalar expression whose unnest makes the call's rows; None where there is none here."""
    name = table_functions.function_name(call)
    if name == "unnest":
        args = call.expressions if isinstance(call, (exp.Unnest, exp.Anonymous)) else [call.this]
        if len(args) != 1 or isinstance(args[0], (exp.Kwarg, exp.PropertyEQ, exp.EQ)):
            return None
        return args[0].copy()
    if name in ("range", "generate_series"):
        if isinstance(call, exp.GenerateSeries):
            args = [a for a in (call.args.get("start"), call.args.get("end"), call.args.get("step")) if a is not None]
        else:
            args = list(call.expressions)
        return exp.Anonymous(this=name, expressions=[a.copy() for a in args])
    return None


def _rewrite(item: exp.Expression) -> None:
    call = table_functions.call_of(item)
    name = table_functions.function_name(call)
    alias = call.args.get("alias") if isinstance(call, exp.Unnest) else item.args.get("alias")
    table_alias = alias.name if alias is not None and alias.name else name
    columns = list(alias.columns) if alias is not None else []
    column = columns[0].name if columns else table_alias
    # An Alias node, not exp.alias_: that would give the Unnest a table alias of its own.
    values = exp.Alias(this=exp.Unnest(expressions=[_list_form(call)]), alias=exp.to_identifier(column, quoted=True))
    select = exp.select(values)
    join = item.parent
    first = isinstance(join, exp.From)
    subquery = exp.Subquery(this=select, alias=exp.TableAlias(this=exp.to_identifier(table_alias)))
    item.replace(subquery if first else exp.Lateral(this=exp.Subquery(this=select), view=False, outer=False,
                                                    alias=exp.TableAlias(this=exp.to_identifier(table_alias))))
