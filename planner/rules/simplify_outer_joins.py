"""simplify_outer_joins: a filter that rejects the NULLs an outer join adds makes the join stricter.

Before:  Filter[x.s <> 't'] ← Join(full, x.s = y.n) ← x, y
After:   Join(left, x.s = y.n) ← Filter[x.s <> 't'] ← x, y

`x.s <> 't'` is NULL when x's columns are NULL-extended, so the rows a FULL join adds for
unmatched y rows never pass: the join is a LEFT join, and the filter on its preserved side runs
before it (fewer rows shuffled; and DuckDB's answer, which evaluates a join key's cast only on rows
that pass the filter). The same makes LEFT/RIGHT joins inner. A conjunct is taken as rejecting
NULLs only when that is certain: a comparison, LIKE, IN list, BETWEEN or IS NOT NULL whose operand
is built from the side's columns by casts and arithmetic alone (each NULL in, NULL out).
"""
from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from planner.logical import Filter, Join, Node, Query, column_ids

_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike)
_STRICT = (exp.Column, exp.Literal, exp.Cast, exp.TryCast, exp.Paren, exp.Neg, exp.Add, exp.Sub, exp.Mul,
           exp.Div, exp.Identifier, exp.DataType, exp.DataTypeParam)


def _conjuncts(e: exp.Expression) -> list[exp.Expression]:
    while isinstance(e, exp.Paren):
        e = e.this
    if isinstance(e, exp.And):
        return _conjuncts(e.left) + _conjuncts(e.right)
    return [e]


def _and_all(parts: list[exp.Expression]) -> exp.Expression:
    parts = [exp.Paren(this=p) if isinstance(p, exp.Connector) and not isinstance(p, exp.And) else p for p in parts]
    out = parts[0]
    for p in parts[1:]:
        out = exp.And(this=out, expression=p)
    return out


def _strict_on(e: exp.Expression, side: set[str]) -> bool:
    """e is NULL whenever the side's columns are NULL: it reads one of them, through strict nodes only."""
    return bool(column_ids(e) & side) and all(isinstance(n, _STRICT) for n in e.walk())


def rejects_nulls(c: exp.Expression, side: set[str]) -> bool:
    while isinstance(c, exp.Paren):
        c = c.this
    if isinstance(c, _COMPARISONS):
        return _strict_on(c.this, side) or _strict_on(c.expression, side)
    if isinstance(c, exp.Between):
        return _strict_on(c.this, side)
    if isinstance(c, exp.In) and c.args.get("query") is None and not c.args.get("unnest"):
        return _strict_on(c.this, side)
    if isinstance(c, exp.Not) and isinstance(c.this, exp.Is) and isinstance(c.this.expression, exp.Null):
        return _strict_on(c.this.this, side)
    return False


def _simplify(node: Node) -> Node:
    node = node.with_children(*(_simplify(c) for c in node.children))
    if not (isinstance(node, Filter) and isinstance(node.input, Join)):
        return node
    join = node.input
    if join.kind not in ("left", "right", "full"):
        return node
    parts = _conjuncts(node.predicate)
    left, right = set(join.left.columns), set(join.right.columns)
    # A side is NULL-extended when the join keeps the other side's unmatched rows; a filter
    # rejecting its NULLs removes those rows.
    null_left = join.kind in ("right", "full") and not any(rejects_nulls(c, left) for c in parts)
    null_right = join.kind in ("left", "full") and not any(rejects_nulls(c, right) for c in parts)
    kind = {(False, False): "inner", (False, True): "left", (True, False): "right", (True, True): "full"}[
        (null_left, null_right)]
    if kind == join.kind:
        return node
    push_left = kind in ("inner", "left")  # a side whose rows are never NULL-extended
    push_right = kind in ("inner", "right")
    to_left, to_right, rest = [], [], []
    for c in parts:
        refs = column_ids(c)
        if refs and refs <= left and push_left:
            to_left.append(c)
        elif refs and refs <= right and push_right:
            to_right.append(c)
        else:
            rest.append(c)
    new_left = Filter(join.left, _and_all(to_left)) if to_left else join.left
    new_right = Filter(join.right, _and_all(to_right)) if to_right else join.right
    out: Node = Join(new_left, new_right, kind, join.left_keys, join.right_keys, join.residual)
    return Filter(out, _and_all(rest)) if rest else out


def simplify_outer_joins(query: Query) -> Query:
    return replace(query, root=_simplify(query.root))
