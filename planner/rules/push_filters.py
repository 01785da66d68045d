"""push_filters: each conjunct of a filter moved down to where it first can be evaluated.

Before:  Filter[yr = 2000] ← Project ← Aggregate[by d_year AS yr …] ← Join ← … date_dim
After:   Project ← Aggregate[by d_year …] ← Join ← … Filter[d_year = 2000] ← date_dim

The binder places a WHERE conjunct on the FROM item it reads; when that item is a derived table or
an inlined CTE (TPC-DS q78's `ss … WHERE ss_sold_year = 2000` over a CTE grouped by year), the
filter stays above the item's aggregate, and every year is joined and grouped before one is kept.
A conjunct goes down through filters, DISTINCT, sorts, projections and group keys that pass its
columns on unchanged (or as a constant), into the side of a join that the join never NULL-extends,
into both inputs of a set operation whose columns there have the same types, and into the body of
a kept CTE; where it cannot go on, it stays as a filter.

Only conjuncts that cannot raise move (comparisons of columns with constants, IN lists, BETWEEN,
IS NULL, and AND/OR/NOT of them): moved down, a conjunct meets rows that a filter above its new
place would have dropped first, and a cast or a division there could fail on them.
"""
from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from planner.comparable import kind_of
from planner.logical import (Aggregate, Distinct, Filter, Join, MaterializedCte, Node, Project, Query, SetOp, Sort,
                             and_all, col, column_ids, conjuncts)

_SAFE = (exp.Column, exp.Identifier, exp.Literal, exp.Boolean, exp.Null, exp.Paren, exp.EQ, exp.NEQ, exp.GT,
         exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ, exp.Between, exp.Is, exp.Not, exp.And, exp.Or)
CONSTANTS = (exp.Literal, exp.Boolean, exp.Null)

# Join kinds and the sides whose rows they never NULL-extend: a filter there drops the same rows
# before the join as after it. (An ASOF join's right side is not one: a filter there changes which
# row is nearest.)
KEPT_SIDES = {"inner": (0, 1), "cross": (0, 1), "left": (0,), "semi": (0,), "anti": (0,), "right": (1,),
              "asof": (0,), "asof_left": (0,)}


def cannot_raise(e: exp.Expression) -> bool:
    """A predicate over columns built only of comparisons with constants (and AND/OR/NOT of them):
    evaluated on any row, it gives a value, never an error."""
    if not column_ids(e):
        return False
    for n in e.walk():
        if isinstance(n, (exp.Add, exp.Sub, exp.Mul, exp.Neg)) and not column_ids(n):
            continue  # arithmetic of constants: folded before any row is read, raising or not
        if isinstance(n, exp.In):
            if n.args.get("query") is not None or n.args.get("unnest") or n.args.get("field"):
                return False
        elif not isinstance(n, _SAFE):
            return False
    return True


def substitute(e: exp.Expression, mapping: dict[str, exp.Expression]) -> exp.Expression:
    """e with its columns named in mapping replaced by their expressions."""
    return e.copy().transform(
        lambda n: mapping[n.name].copy() if isinstance(n, exp.Column) and n.name in mapping else n)


def constant_value(p: exp.Expression) -> bool | None:
    """The value of an equality or inequality of two literals of one kind, else None."""
    while isinstance(p, exp.Paren):
        p = p.this
    if not isinstance(p, (exp.EQ, exp.NEQ)):
        return None
    a, b = p.this, p.expression
    if not (isinstance(a, exp.Literal) and isinstance(b, exp.Literal) and a.is_string == b.is_string):
        return None
    if a.is_string:
        same = a.this == b.this
    else:
        try:
            same = float(a.this) == float(b.this)
        except ValueError:
            return None
    return same if isinstance(p, exp.EQ) else not same


def same_type(a, b) -> bool:
    """Whether a filter on a set operation's column means the same on an input's column: both
    types known, both numbers or the same type (a constant compared with them is cast alike)."""
    ka, kb = kind_of(a), kind_of(b)
    return ka is not None and ka == kb and (ka == "number" or a == b)


def passed_columns(node: Node) -> dict[str, exp.Expression]:
    """The columns a projection or a grouping passes on unchanged (or, a projection, as a constant:
    a UNION branch's tag), each with what it is below."""
    if isinstance(node, Project):
        return {c: e for c, e in node.exprs if isinstance(e, (exp.Column, *CONSTANTS))}
    if isinstance(node, Aggregate) and node.groups:
        return {c: e for c, e in node.groups if isinstance(e, exp.Column)}
    return {}


def setop_input_columns(node: SetOp, side: int, types: dict) -> dict[str, exp.Expression]:
    """The set operation's columns that a filter may read on input `side`, as that input's columns."""
    kid = node.children[side]
    return {o: col(c) for o, c in zip(node.ids, kid.columns) if same_type(types.get(o), types.get(c))}


class Mover:
    def __init__(self, types: dict):
        self.types = types

    def place(self, node: Node, c: exp.Expression) -> Node:
        """node with conjunct c applied as deep as it can go."""
        value = constant_value(c)
        if value is not None:  # a UNION branch's tag compared: the branch is all or nothing
            return node if value else Filter(node, exp.false())
        cols = column_ids(c)
        if isinstance(node, (Filter, Distinct, Sort)):
            return node.with_children(self.place(node.input, c))
        if isinstance(node, MaterializedCte):
            return node.with_children(node.definition, self.place(node.input, c))
        passed = passed_columns(node)
        if passed and cols <= set(passed):
            return node.with_children(self.place(node.input, substitute(c, passed)))
        if isinstance(node, Join):
            for side in KEPT_SIDES.get(node.kind, ()):
                if cols <= set(node.children[side].columns):
                    kids = list(node.children)
                    kids[side] = self.place(kids[side], c)
                    return node.with_children(*kids)
        if isinstance(node, SetOp):
            maps = [setop_input_columns(node, side, self.types) for side in (0, 1)]
            if all(cols <= set(m) for m in maps):
                return node.with_children(*(self.place(kid, substitute(c, m)) for kid, m in zip(node.children, maps)))
        return Filter(node, c)

    def rewrite(self, node: Node) -> Node:
        """Bottom up: a filter's conjuncts move into its input once that input is rewritten, so
        a moved conjunct is never visited again."""
        if not node.children:
            return node
        node = node.with_children(*(self.rewrite(c) for c in node.children))
        if not isinstance(node, Filter):
            return node
        parts = conjuncts(node.predicate)
        movable = [p for p in parts if cannot_raise(p)]
        if not movable:
            return node
        inner = node.input
        for p in movable:
            inner = self.place(inner, p)
        rest = [p for p in parts if not cannot_raise(p)]
        return Filter(inner, and_all(rest)) if rest else inner


def push_filters(query: Query) -> Query:
    return replace(query, root=Mover(query.types).rewrite(query.root))
