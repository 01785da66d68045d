"""expand_using: USING in a SELECT with a parenthesised join, written out as ON, as DuckDB binds it.

sqlglot's qualify cannot resolve USING next to a parenthesised join (it sees the parenthesised join
as a source without a name), so this rule, run before it, does what DuckDB's binder does:
- `L JOIN R USING (k)` joins on `L's k = R's k`, where each side's k is the one column of that name
  the side outputs (a column merged by an earlier USING counts once; two columns of that name are
  ambiguous);
- the result has one column k in L's k's place, R's copy dropped: L's value for an inner or LEFT
  join, R's for a RIGHT join, COALESCE of both for a FULL join;
- `SELECT *` lists those columns, and an unqualified `k` in the SELECT means the merged column.

Before:  SELECT * FROM d FULL JOIN (a JOIN b USING (y)) USING (k)
After:   SELECT COALESCE(d.k, a.k) AS k, d.w AS w, a.x AS x, a.y AS y, b.z AS z
         FROM d FULL JOIN (a JOIN b ON a.y = b.y) ON d.k = a.k

SELECTs without a parenthesised join are left to sqlglot, which does the same.
"""
from __future__ import annotations

from typing import Callable

from sqlglot import exp

from engine.errors import CatalogError, NotSupportedError

Columns = list[tuple[str, exp.Expression]]  # a FROM tree's output columns: (name, value)


def _parenthesised(item: exp.Expression) -> bool:
    return isinstance(item, exp.Subquery) and isinstance(item.this, exp.Table) and bool(item.this.args.get("joins"))


def _items(select: exp.Select) -> list[exp.Expression]:
    frm = select.args.get("from_") or select.args.get("from")
    first = [frm.this] if frm is not None else []
    return first + [j.this for j in select.args.get("joins") or []]


def _needs_rewrite(select: exp.Select) -> bool:
    items = _items(select)
    if not any(_parenthesised(i) for i in items):
        return False
    joins = list(select.args.get("joins") or [])
    stack = [i for i in items if _parenthesised(i)]
    while stack:
        tree = stack.pop().this
        joins += tree.args.get("joins") or []
        stack += [j.this for j in tree.args.get("joins") or [] if _parenthesised(j.this)]
    return any(j.args.get("using") for j in joins)


def expand_using(ast: exp.Expression, columns_of: Callable[[exp.Expression], list[str]]) -> exp.Expression:
    """ast with USING written out in every SELECT that has a parenthesised join; columns_of gives
    the column names of a table, CTE, derived table or table function in FROM."""
    ast = _aliased_joins_as_derived_tables(ast)
    selects = [s for s in ast.find_all(exp.Select) if _needs_rewrite(s)]
    if not selects:
        return ast
    ast = ast.copy()
    for select in [s for s in ast.find_all(exp.Select) if _needs_rewrite(s)]:
        _rewrite(select, columns_of)
    return ast


def _rewrite(select: exp.Select, columns_of) -> None:
    frm = select.args.get("from_") or select.args.get("from")
    merged: dict[str, exp.Expression] = {}
    cols = _tree(frm.this, select.args.get("joins") or [], columns_of, merged)
    _use_merged(select, merged)
    items = []
    for e in select.expressions:
        if isinstance(e, exp.Star):
            if any(e.args.get(k) for k in ("except", "replace", "rename")):
                raise NotSupportedError("* EXCLUDE / REPLACE / RENAME with USING next to a parenthesised join")
            items += [exp.alias_(v.copy(), name) for name, v in cols]
        else:
            items.append(e)
    select.set("expressions", items)


def _aliased_joins_as_derived_tables(ast: exp.Expression) -> exp.Expression:
    """`(a JOIN b USING (k)) AS j` → `(SELECT * FROM a JOIN b USING (k)) AS j`: an aliased join
    hides its tables behind j and gives the columns its `*` gives (k once), as a derived table does."""
    aliased = [s for s in ast.find_all(exp.Subquery) if _parenthesised(s) and s.alias and _has_using(s.this)]
    if not aliased:
        return ast
    ast = ast.copy()
    for sub in [s for s in ast.find_all(exp.Subquery) if _parenthesised(s) and s.alias and _has_using(s.this)]:
        first = sub.this.copy()
        joins = first.args.get("joins")
        first.set("joins", None)
        select = exp.select(exp.Star()).from_(first)
        select.set("joins", joins)
        sub.set("this", select)
    return ast


def _item(item: exp.Expression, columns_of, merged) -> Columns:
    if _parenthesised(item):
        if item.alias:
            return [(n, exp.column(n, table=item.alias)) for n in columns_of(item)]
        first = item.this.copy()
        first.set("joins", None)
        cols = _tree(first, item.this.args["joins"], columns_of, merged)
        return cols
    alias = item.alias_or_name
    return [(n, exp.column(n, table=alias)) for n in columns_of(item)]


def _has_using(tree: exp.Table) -> bool:
    return any(j.args.get("using") for j in tree.find_all(exp.Join))


def _tree(first: exp.Expression, joins, columns_of, merged) -> Columns:
    cols = _item(first, columns_of, merged)
    for j in joins:
        right = _item(j.this, columns_of, merged)
        using = j.args.get("using")
        kind = (j.args.get("kind") or "").upper()
        if (j.args.get("method") or "").upper() in ("NATURAL", "ASOF", "POSITIONAL") and using:
            raise NotSupportedError(f"{j.args['method'].upper()} JOIN … USING next to a parenthesised join: write ON")
        if not using:
            cols = cols if kind in ("SEMI", "ANTI") else cols + right
            continue
        side = (j.args.get("side") or "").upper()
        conds, out = [], list(cols)
        names = [u.name for u in using]
        for name in names:
            li = _only(cols, name, "left")
            ri = _only(right, name, "right")
            lv, rv = cols[li][1], right[ri][1]
            conds.append(exp.EQ(this=lv.copy(), expression=rv.copy()))
            value = {"RIGHT": rv.copy(), "FULL": exp.Coalesce(this=lv.copy(), expressions=[rv.copy()])}.get(side, lv.copy())
            out[li] = (cols[li][0], value)
            merged[name.lower()] = value
        lowered = {n.lower() for n in names}
        if kind not in ("SEMI", "ANTI"):
            out += [(n, v) for n, v in right if n.lower() not in lowered]
        cols = out
        on = conds[0]
        for c in conds[1:]:
            on = exp.And(this=on, expression=c)
        j.set("using", None)
        j.set("on", on)
    return cols


def _only(cols: Columns, name: str, side: str) -> int:
    hits = [i for i, (n, _) in enumerate(cols) if n.lower() == name.lower()]
    if not hits:
        raise CatalogError(f"unknown column in USING: {name} (not on the {side} side of the join)")
    if len(hits) > 1:
        raise CatalogError(f"Ambiguous reference to column name \"{name}\" in USING (on the {side} side twice)")
    return hits[0]


def _use_merged(select: exp.Select, merged: dict[str, exp.Expression]) -> None:
    """Unqualified references to a merged column read its merged value (not inside subqueries, which
    have their own FROM). In ORDER BY a select alias of that name comes first, as in DuckDB."""
    aliases = {e.alias.lower() for e in select.expressions if isinstance(e, exp.Alias)}

    def replace(node: exp.Expression, in_order: bool) -> None:
        stack = [node]
        while stack:
            n = stack.pop()
            if isinstance(n, (exp.Select, exp.Subquery, exp.Union, exp.Intersect, exp.Except)) and n is not node:
                continue
            if isinstance(n, exp.Column) and not n.table and n.name.lower() in merged:
                if in_order and n.name.lower() in aliases:
                    continue
                value = merged[n.name.lower()].copy()
                if n.parent is select:  # a bare select item keeps its name
                    value = exp.alias_(value, n.name)
                n.replace(value)
                continue
            stack.extend(n.iter_expressions())

    for e in list(select.expressions):
        replace(e, False)
    for key in ("where", "group", "having", "qualify"):
        if select.args.get(key) is not None:
            replace(select.args[key], False)
    if select.args.get("order") is not None:
        replace(select.args["order"], True)
    for j in select.find_all(exp.Join):
        if j.args.get("on") is not None and j.find_ancestor(exp.Select) is select:
            replace(j.args["on"], False)
