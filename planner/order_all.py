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
