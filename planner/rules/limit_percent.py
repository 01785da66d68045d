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
a SELECT * over it (`wrap_set_operations`, before qualify, which expands that star), and so is a
SELECT DISTINCT's or a QUALIFY's, whose rows are counted after DISTINCT / QUALIFY: the ORDER BY keys
go into the inner select as hidden items, which the outer one sorts by and leaves out:

    SELECT DISTINCT a FROM t ORDER BY a DESC LIMIT 10 PERCENT
      → SELECT * EXCLUDE (__pk1) FROM (SELECT DISTINCT a, a AS __pk1 FROM t) AS __p
        ORDER BY __pk1 DESC LIMIT 10 PERCENT

(a DISTINCT query's ORDER BY keys are items of its select list, so the hidden copies do not change
which rows are distinct; a DISTINCT ON keeps its ORDER BY inside too, where it picks each group's row).
"""
from __future__ import annotations

from sqlglot import exp

from engine.errors import CatalogError, NotSupportedError
from planner.constants import evaluate, is_constant
from planner.order_all import order_as_window_keys


def _percent_limit(node: exp.Expression) -> bool:
    limit = node.args.get("limit")
    options = limit.args.get("limit_options") if isinstance(limit, exp.Limit) else None
    return bool(options is not None and options.args.get("percent"))


def _no_limit(e: exp.Expression) -> bool:
    """LIMIT NULL and LIMIT ALL."""
    return isinstance(e, exp.Null) or (isinstance(e, exp.Var) and e.name.upper() == "ALL")


def _counted(x: exp.Expression | None) -> bool:
    """Whether a LIMIT / OFFSET's count is known only when the query runs (a subquery)."""
    e = x.expression if isinstance(x, (exp.Limit, exp.Offset)) else None
    return e is not None and not isinstance(e, exp.Literal) and not _no_limit(e)


def _window_limit(node: exp.Expression) -> bool:
    """A LIMIT that is a filter on row numbers: a percentage, or a count from a subquery."""
    return _percent_limit(node) or _counted(node.args.get("limit")) or _counted(node.args.get("offset"))


def fold_limits(ast: exp.Expression) -> exp.Expression:
    """Each LIMIT / OFFSET written as a constant expression (`1 + 1`, `2.7`, `'3'`) replaced by its
    value as DuckDB casts it to BIGINT (2.7 is 3); NULL is no limit; a negative one is DuckDB's
    error. A count that reads a subquery stays, for rewrite_limit_percent."""
    def foldable(x):
        e = x.expression
        return e is not None and is_constant(e) and not _position(e) and not _no_limit(e) \
            and not isinstance(x.parent, exp.Fetch) and not (x is x.parent.args.get("limit") and _percent_limit(x.parent))
    targets = [x for x in ast.find_all(exp.Limit, exp.Offset) if foldable(x)]
    if not targets:
        return ast
    ast = ast.copy()
    for x in [x for x in ast.find_all(exp.Limit, exp.Offset) if foldable(x)]:
        value = evaluate(f"CAST(({x.expression.sql('duckdb')}) AS BIGINT)", what="LIMIT/OFFSET")
        if value is not None and value < 0:
            raise CatalogError("LIMIT/OFFSET cannot be negative")
        x.set("expression", exp.null() if value is None else exp.Literal.number(value))
    return ast


def wrap_set_operations(ast: exp.Expression) -> exp.Expression:
    """Each UNION / INTERSECT / EXCEPT with LIMIT … PERCENT becomes SELECT * FROM (it) with its
    ORDER BY, LIMIT and OFFSET (an ORDER BY names output columns, so it reads the same there); each
    SELECT DISTINCT or QUALIFY with one, as the module docstring shows."""
    unions = [u for u in ast.find_all(exp.SetOperation) if _window_limit(u)]
    if not unions and not any(_counted_after_filter(s) for s in ast.find_all(exp.Select)):
        return ast
    ast = ast.copy()
    for select in [s for s in ast.find_all(exp.Select) if _counted_after_filter(s)]:
        wrapper = _wrapped_select(select)
        if select is ast:
            ast = wrapper
        else:
            select.replace(wrapper)
    for union in [u for u in ast.find_all(exp.SetOperation) if _window_limit(u)]:
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


def _counted_after_filter(select: exp.Select) -> bool:
    return _window_limit(select) and (select.args.get("distinct") is not None
                                       or select.args.get("qualify") is not None or _orders_by_window(select))


def _orders_by_window(select: exp.Select) -> bool:
    """Whether an ORDER BY key is a window function, written there or named by an item's alias or
    position: the row numbers of a counted LIMIT cannot order by it in the same SELECT (DuckDB
    refuses a window inside a window's ORDER BY), so the select is wrapped and the key hidden."""
    order = select.args.get("order")
    return order is not None and any(
        (_named_item(o.this, select.expressions) or o.this).find(exp.Window) is not None for o in order.expressions)


def _position(e: exp.Expression) -> bool:
    return isinstance(e, exp.Literal) and not e.is_string and e.this.isdigit()


def _named_item(key: exp.Expression, items: list[exp.Expression]) -> exp.Expression | None:
    """The select item an ORDER BY key names, by its position or its alias (its expression); None
    for any other key, or a position past the list."""
    if _position(key):
        if 1 <= int(key.this) <= len(items):
            item = items[int(key.this) - 1]
            return item.this if isinstance(item, exp.Alias) else item
        return None
    if isinstance(key, exp.Column) and not key.table:
        for item in items:
            if isinstance(item, exp.Alias) and item.alias.lower() == key.name.lower():
                return item.this
    return None


HIDDEN_KEY = "__pk"


def _wrapped_select(select: exp.Select) -> exp.Select:
    """SELECT * EXCLUDE (hidden keys) FROM (select with its ORDER BY keys as hidden items) AS __p,
    ordered by those keys, with select's LIMIT … PERCENT and OFFSET."""
    inner = select.copy()
    limit, offset, order = inner.args.get("limit"), inner.args.get("offset"), inner.args.get("order")
    for key in ("limit", "offset"):
        inner.set(key, None)
    distinct = inner.args.get("distinct")
    if order is not None and not (distinct is not None and distinct.args.get("on") is not None):
        inner.set("order", None)
    items = list(inner.expressions)
    starred = any(isinstance(i, exp.Star) or isinstance(getattr(i, "this", None), exp.Star) for i in items)
    keys = list(order.expressions) if order is not None else []
    if len(keys) == 1 and isinstance(keys[0].this, exp.Var) and keys[0].this.name.upper() == "ALL" and not starred:
        # ORDER BY ALL: every item, in the one direction given.
        keys = [keys[0].copy() for _ in items]
        for position, ordered in enumerate(keys, 1):
            ordered.set("this", exp.Literal.number(position))
    hidden, outer_order = [], []
    for at, ordered in enumerate(keys, 1):
        key = ordered.this
        if _position(key) and (starred or _named_item(key, items) is None):
            raise NotSupportedError("LIMIT … PERCENT with DISTINCT or QUALIFY ordered by a position past a * "
                                    "or the select list (name the column)")
        if isinstance(key, exp.Var) and key.name.upper() == "ALL":
            raise NotSupportedError("LIMIT … PERCENT with DISTINCT or QUALIFY, ORDER BY ALL and a * (name the "
                                    "columns)")
        key = _named_item(key, items) or key
        name = f"{HIDDEN_KEY}{at}"
        hidden.append(exp.alias_(key.copy(), name, quoted=True))
        outer_ordered = ordered.copy()
        outer_ordered.set("this", exp.column(exp.to_identifier(name, quoted=True)))
        outer_order.append(outer_ordered)
    inner.set("expressions", items + hidden)
    star = exp.Star(except_=[exp.column(exp.to_identifier(h.alias, quoted=True)) for h in hidden]) if hidden \
        else exp.Star()
    wrapper = exp.select(star).from_(exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("__p"))))
    if outer_order:
        wrapper.set("order", exp.Order(expressions=outer_order))
    if limit is not None:
        wrapper.set("limit", limit.copy())
    if offset is not None:
        wrapper.set("offset", offset.copy())
    return wrapper


def _count(e: exp.Expression) -> exp.Expression:
    """A LIMIT / OFFSET count as BIGINT (a subquery's value, cast as DuckDB casts it), with DuckDB's
    error for a negative one. A count that reads the query's own columns is an error, as in DuckDB."""
    if any(isinstance(c, exp.Column) and c.find_ancestor(exp.Query) is e.find_ancestor(exp.Query)
           for c in e.find_all(exp.Column)):
        raise CatalogError("LIMIT/OFFSET cannot read the query's columns (a constant or a subquery)")
    value = exp.Cast(this=exp.Paren(this=e.copy()), to=exp.DataType.build("BIGINT"))
    negative = exp.LT(this=value.copy(), expression=exp.Literal.number(0))
    return exp.Case(ifs=[exp.If(this=negative, true=exp.Anonymous(this="error", expressions=[
        exp.Literal.string("LIMIT/OFFSET cannot be negative")]))], default=value)


def rewrite_limit_percent(ast: exp.Expression) -> exp.Expression:
    """Run on the qualified statement, before rewrite_qualify."""
    for sel in [s for s in ast.find_all(exp.Select) if _window_limit(s)]:
        if sel.args.get("qualify") is not None or sel.args.get("distinct") is not None:
            raise NotSupportedError("LIMIT … PERCENT with DISTINCT or QUALIFY (write SELECT * FROM (…) LIMIT … PERCENT)")
        offset = sel.args.get("offset")
        skipped = _count(offset.expression) if offset is not None else exp.Literal.number(0)
        number = exp.Window(this=exp.RowNumber())
        order = order_as_window_keys(sel)
        if order is not None:
            number.set("order", order)
        limit = sel.args.get("limit")
        if _percent_limit(sel):
            percent = limit.expression
            if not isinstance(percent, exp.Literal) or percent.is_string:
                raise NotSupportedError("LIMIT … PERCENT of an expression (write a number)")
            if not 0 <= float(percent.this) <= 100:
                raise NotSupportedError(f"LIMIT {percent.this} PERCENT: the percentage must be between 0 and 100")
            count = exp.Window(this=exp.Count(this=exp.Star()))
            share = exp.Mul(this=exp.Paren(this=exp.Div(this=exp.Cast(this=percent.copy(), to=exp.DataType.build("DOUBLE")),
                                                        expression=exp.Literal.number("100.0"))),
                            expression=count)
            kept = exp.Cast(this=exp.Anonymous(this="trunc", expressions=[share]), to=exp.DataType.build("BIGINT"))
        elif limit is not None and not isinstance(limit.expression, exp.Null):
            kept = _count(limit.expression)
        else:
            kept = None
        keep = exp.GT(this=number, expression=skipped)
        if kept is not None:
            # (A NULL count, LIMIT (SELECT NULL), is no limit.)
            last = exp.Add(this=skipped.copy(), expression=kept)
            keep = exp.And(this=keep, expression=exp.Paren(this=exp.Or(
                this=exp.LTE(this=number.copy(), expression=last),
                expression=exp.Is(this=kept.copy(), expression=exp.Null()))))
        sel.set("limit", None)
        sel.set("offset", None)
        sel.set("qualify", exp.Qualify(this=keep))
    return ast

