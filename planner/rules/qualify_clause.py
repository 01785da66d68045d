"""qualify_clause: QUALIFY and DISTINCT ON, written as a filter over a derived table.

Run on the qualified statement (stars expanded, QUALIFY's aliases already replaced by their
expressions, columns qualified), before binding:

    SELECT a, b FROM t QUALIFY row_number() OVER (PARTITION BY a ORDER BY c) = 1 ORDER BY b LIMIT 5
      → SELECT __q.__c0 AS a, __q.__c1 AS b
        FROM (SELECT t.a AS __c0, t.b AS __c1, row_number() OVER (…) = 1 AS __qualify FROM t) AS __q
        WHERE __q.__qualify ORDER BY __q.__c1 LIMIT 5

    SELECT DISTINCT ON (a) a, b FROM t ORDER BY a, c DESC
      → … QUALIFY row_number() OVER (PARTITION BY a ORDER BY a, c DESC) = 1 ORDER BY a, c DESC

so the windows run once, distributed like any window, and the filter after them. ORDER BY keys
that are not in the select list become hidden columns of the derived table; ORDER BY ALL is
expanded into positions first (it names no column to hide).
"""
from __future__ import annotations

from sqlglot import exp

from planner.order_all import expand_order_all, order_as_window_keys, select_items


def rewrite_qualify(ast: exp.Expression) -> exp.Expression:
    selects = [s for s in ast.find_all(exp.Select) if s.args.get("qualify") or _distinct_on(s) is not None]
    if not selects:
        return ast
    # Innermost first, so that a rewritten outer SELECT carries rewritten subqueries.
    for number, sel in enumerate(sorted(selects, key=lambda s: -_depth(s))):
        # A name of its own: a rewritten SELECT may hold another in a subquery.
        replacement = _rewritten(sel, f"__q{number}" if number else "__q")
        if sel is ast:
            ast = replacement
        else:
            sel.replace(replacement)
    return ast


def _depth(e: exp.Expression) -> int:
    n = 0
    while e.parent is not None:
        e, n = e.parent, n + 1
    return n


def _distinct_on(sel: exp.Select):
    d = sel.args.get("distinct")
    return d.args.get("on") if isinstance(d, exp.Distinct) else None


def _rewritten(sel: exp.Select, alias: str) -> exp.Select:
    items = select_items(sel)
    by_alias = {}
    for value, name in items:
        by_alias.setdefault(name, value)

    def unaliased(e: exp.Expression) -> exp.Expression:
        # An ORDER BY / DISTINCT ON key naming a select alias means that item's expression.
        if isinstance(e, exp.Column) and not e.table and e.name in by_alias:
            return by_alias[e.name].copy()
        return e.copy()

    order = expand_order_all(sel.args.get("order"), len(items))
    condition = sel.args.get("qualify").this.copy() if sel.args.get("qualify") else None
    on = _distinct_on(sel)
    if on is not None:
        # (With GROUP BY or aggregates the window runs over the groups, as DISTINCT ON does.)
        keys = [unaliased(k) for k in (on.expressions if isinstance(on, exp.Tuple) else [on])]
        window = exp.Window(this=exp.RowNumber(), partition_by=keys)
        if order is not None:
            window.set("order", order_as_window_keys(sel))
        first = exp.EQ(this=window, expression=exp.Literal.number(1))
        condition = first if condition is None else exp.And(this=exp.Paren(this=condition), expression=first)

    inner = sel.copy()
    for key in ("qualify", "order", "limit", "offset", "distinct"):
        inner.set(key, None)
    inner_items = [_named(v.copy(), f"__c{i}") for i, (v, _) in enumerate(items)]
    outer_order = []
    for o in order.expressions if order is not None else []:
        key = o.this
        if _is_position(key):
            outer_order.append(o.copy())
            continue
        if isinstance(key, exp.Column) and not key.table and key.name in by_alias:
            position = [n for _, n in items].index(key.name)
            target = f"__c{position}"
        else:
            target = f"__o{len(outer_order)}"
            inner_items.append(_named(key.copy(), target))
        outer_order.append(exp.Ordered(this=exp.column(target, table=alias), desc=o.args.get("desc"),
                                       nulls_first=o.args.get("nulls_first")))
    inner_items.append(_named(condition, "__qualify"))
    inner.set("expressions", inner_items)

    outer = exp.select(*[exp.alias_(exp.column(f"__c{i}", table=alias), name, quoted=True)
                         for i, (_, name) in enumerate(items)])
    outer = outer.from_(exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier(alias))))
    outer = outer.where(exp.column("__qualify", table=alias))
    if isinstance(sel.args.get("distinct"), exp.Distinct) and on is None:
        outer.set("distinct", exp.Distinct())
    if outer_order:
        outer.set("order", exp.Order(expressions=outer_order))
    for key in ("limit", "offset"):
        if sel.args.get(key) is not None:
            outer.set(key, sel.args[key].copy())
    for key in ("with", "with_"):
        if sel.args.get(key) is not None:  # CTEs stay visible to the whole statement
            outer.set(key, sel.args[key].copy())
            inner.set(key, None)
    return outer


def _named(value: exp.Expression, name: str) -> exp.Alias:
    # Always an Alias: exp.alias_ gives a scalar subquery a table alias of its own instead, which
    # names no column.
    return exp.Alias(this=value, alias=exp.to_identifier(name))


def _is_position(e: exp.Expression) -> bool:
    return isinstance(e, exp.Literal) and not e.is_string
