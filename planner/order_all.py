"""ORDER BY ALL [DESC]: DuckDB's shorthand for every output column, left to right.

Expanded into positions wherever an ORDER BY is read: by the builder (planner/build.py), and by
planner/rules/qualify_clause.py, which moves a QUALIFY / DISTINCT ON query's ORDER BY into a window
before the builder sees it.

    >>> expand_order_all(parse_one("SELECT a, b FROM t ORDER BY ALL DESC").args["order"], 2)
    Order(ORDER BY 1 DESC, 2 DESC)
"""
from __future__ import annotations

from sqlglot import exp

from engine.errors import NotSupportedError


def expand_order_all(order: exp.Order | None, ncols: int) -> exp.Order | None:
    """`order` with ALL [DESC] replaced by every position 1..ncols in that direction; else `order`."""
    if order is None or not any(is_all(o.this) for o in order.expressions):
        return order
    if len(order.expressions) != 1:
        raise NotSupportedError("ORDER BY ALL beside other sort keys")
    key = order.expressions[0]
    keys = []
    for i in range(ncols):
        k = key.copy()
        k.set("this", exp.Literal.number(i + 1))
        keys.append(k)
    return exp.Order(expressions=keys)


def is_all(e: exp.Expression) -> bool:
    return isinstance(e, exp.Var) and e.name.upper() == "ALL"


def select_items(sel: exp.Select) -> list[tuple[exp.Expression, str]]:
    """A SELECT's items as (expression, output name)."""
    return [(e.this, e.alias) if isinstance(e, exp.Alias) else (e, e.alias_or_name) for e in sel.expressions]


def order_as_window_keys(sel: exp.Select) -> exp.Order | None:
    """A SELECT's ORDER BY as a window's ORDER BY (a QUALIFY, DISTINCT ON or LIMIT … PERCENT moved
    into a window): positions and select aliases stand for their items' expressions."""
    items = select_items(sel)
    order = expand_order_all(sel.args.get("order"), len(items))
    if order is None:
        return None
    by_alias = {}
    for value, name in items:
        by_alias.setdefault(name, value)
    keys = []
    for o in order.expressions:
        key = o.this
        if isinstance(key, exp.Literal) and not key.is_string:
            key = items[int(key.this) - 1][0]
        elif isinstance(key, exp.Column) and not key.table and key.name in by_alias:
            key = by_alias[key.name]
        keys.append(exp.Ordered(this=key.copy(), desc=o.args.get("desc"), nulls_first=o.args.get("nulls_first")))
    return exp.Order(expressions=keys)
