"""factor_or: what every branch of an OR says is said once, outside it.

Run on a WHERE (or inner join ON) conjunct, on the SQL tree before binding, so that join ordering
sees the equalities and filters hidden in the branches (TPC-DS q13, q48, q85):

    (a.k = b.k AND a.x = 1 AND b.y = 2) OR (a.k = b.k AND a.x = 3 AND b.y = 4)
      → a.k = b.k                                   -- common to every branch: a join key
        AND (a.x = 1 OR a.x = 3)                    -- implied, reads only a: filters a's scan
        AND (b.y = 2 OR b.y = 4)                    -- implied, reads only b
        AND ((a.x = 1 AND b.y = 2) OR (a.x = 3 AND b.y = 4))   -- the rest, still exact

The implied filters are redundant (each branch implies them), so the answer is unchanged; without
them the plan is a cross join of the two tables filtered afterwards.
"""
from __future__ import annotations

from sqlglot import exp


def _unparen(e: exp.Expression) -> exp.Expression:
    while isinstance(e, exp.Paren):
        e = e.this
    return e


def _flatten(e: exp.Expression, kind) -> list[exp.Expression]:
    e = _unparen(e)
    if isinstance(e, kind):
        return _flatten(e.left, kind) + _flatten(e.right, kind)
    return [e]


def _join(parts: list[exp.Expression], kind) -> exp.Expression:
    out = exp.Paren(this=parts[0].copy()) if len(parts) > 1 else parts[0].copy()
    for p in parts[1:]:
        out = kind(this=out, expression=exp.Paren(this=p.copy()))
    return out


def _tables(e: exp.Expression) -> frozenset[str] | None:
    """The qualifiers of e's columns, or None when e holds a subquery or an unqualified column."""
    if any(isinstance(n, (exp.Subquery, exp.Select, exp.Exists)) for n in e.walk()):
        return None
    names = set()
    for c in e.find_all(exp.Column):
        if not c.table:
            return None
        names.add(c.table)
    return frozenset(names)


def factor_or(conjunct: exp.Expression, key) -> list[exp.Expression]:
    """The conjuncts that replace `conjunct`: itself when it is no OR. key(e) identifies an expression."""
    branches = _flatten(conjunct, exp.Or)
    if len(branches) < 2:
        return [conjunct]
    parts = [_flatten(b, exp.And) for b in branches]
    keyed = [{key(p): p for p in branch} for branch in parts]
    common = [k for k in keyed[0] if all(k in other for other in keyed[1:])]
    out = [keyed[0][k] for k in common]
    rests = [[p for k, p in branch.items() if k not in common] for branch in keyed]
    if any(not rest for rest in rests):
        return out  # a branch is only the common part: the OR adds nothing
    # Filters implied for one table: every branch has conjuncts that read only that table.
    per_table = []
    tables = set()
    for rest in rests:
        for p in rest:
            t = _tables(p)
            if t is not None and len(t) == 1:
                tables |= t
    for table in sorted(tables):
        pieces = [[p for p in rest if _tables(p) == frozenset({table})] for rest in rests]
        if all(pieces):
            per_table.append(_join([_join(piece, exp.And) for piece in pieces], exp.Or))
    remainder = _join([_join(rest, exp.And) for rest in rests], exp.Or)
    # An OR that reads one table only implies itself: kept once (TPC-DS q28 filtered twice).
    per_table = [p for p in per_table if key(p) != key(remainder)]
    if per_table or common:
        return out + per_table + [remainder]
    return [conjunct]
