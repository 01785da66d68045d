"""limit_percent: `LIMIT p PERCENT [OFFSET o]`, written as a QUALIFY over two windows.

DuckDB keeps the first trunc(p / 100 × n) rows after the first o, where n counts every row of the
result, in the ORDER BY's order if there is one (rows tied there in any order):

    SELECT a, b FROM t ORDER BY b LIMIT 10 PERCENT OFFSET 3
      → SELECT a, b FROM t
        QUALIFY row_number() OVER (ORDER BY b) > 3
            AND row_number() OVER (ORDER BY b) <= 3 + trunc(10 / 100.0 × count(*) OVER ())
        ORDER BY b

which planner/rules/qualify_clause.py then writes as a filter over a derived table, so the count and
the numbering are distributed like any window. A set operation's LIMIT … PERCENT is first moved onto
a SELECT * over it (`wrap_set_operations`, before qualify, which expands that star).
"""
from __future__ import annotations

from sqlglot import exp

from engine.errors import NotSupportedError
from planner.order_all import order_as_window_keys


def _percent_limit(node: exp.Expression) -> bool:
    limit = node.args.get("limit")
    options = limit.args.get("limit_options") if isinstance(limit, exp.Limit) else None
    return bool(options is not None and options.args.get("percent"))


def wrap_set_operations(ast: exp.Expression) -> exp.Expression:
    """Each UNION / INTERSECT / EXCEPT with LIMIT … PERCENT becomes SELECT * FROM (it) with its
    ORDER BY, LIMIT and OFFSET (an ORDER BY names output columns, so it reads the same there)."""
    unions = [u for u in ast.find_all(exp.SetOperation) if _percent_limit(u)]
    if not unions:
        return ast
    ast = ast.copy()
    for union in [u for u in ast.find_all(exp.SetOperation) if _percent_limit(u)]:
        moved = {key: union.args.get(key) for key in ("order", "limit", "offset")}
        bare = union.copy()
        for key in moved:
            bare.set(key, None)
        wrapper = exp.select("*").from_(exp.Subquery(this=bare, alias=exp.TableAlias(this=exp.to_identifier("__p"))))
        for key, value in moved.items():
            if value is not None:
                wrapper.set(key, value.copy())
        if union is ast:
            ast = wrapper
        else:
            union.replace(wrapper)
    return ast


def rewrite_limit_percent(ast: exp.Expression) -> exp.Expression:
    """Run on the qualified statement, before rewrite_qualify."""
    for sel in [s for s in ast.find_all(exp.Select) if _percent_limit(s)]:
        if sel.args.get("qualify") is not None or sel.args.get("distinct") is not None:
            raise NotSupportedError("LIMIT … PERCENT with DISTINCT or QUALIFY (write SELECT * FROM (…) LIMIT … PERCENT)")
        percent = sel.args["limit"].expression
        if not isinstance(percent, exp.Literal) or percent.is_string:
            raise NotSupportedError("LIMIT … PERCENT of an expression (write a number)")
        if not 0 <= float(percent.this) <= 100:
            raise NotSupportedError(f"LIMIT {percent.this} PERCENT: the percentage must be between 0 and 100")
        offset = sel.args.get("offset")
        skipped = offset.expression.copy() if offset is not None else exp.Literal.number(0)
        number = exp.Window(this=exp.RowNumber())
        order = order_as_window_keys(sel)
        if order is not None:
            number.set("order", order)
        count = exp.Window(this=exp.Count(this=exp.Star()))
        share = exp.Mul(this=exp.Paren(this=exp.Div(this=exp.Cast(this=percent.copy(), to=exp.DataType.build("DOUBLE")),
                                                    expression=exp.Literal.number("100.0"))),
                        expression=count)
        last = exp.Add(this=skipped.copy(), expression=exp.Cast(this=exp.Anonymous(this="trunc", expressions=[share]),
                                                                 to=exp.DataType.build("BIGINT")))
        keep = exp.And(this=exp.GT(this=number, expression=skipped),
                       expression=exp.LTE(this=number.copy(), expression=last))
        sel.set("limit", None)
        sel.set("offset", None)
        sel.set("qualify", exp.Qualify(this=keep))
    return ast

