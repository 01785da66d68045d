"""columns_expression: DuckDB's COLUMNS(…) in a select list, expanded into the columns it names.

    SELECT min(COLUMNS(*)) FROM t                   → SELECT min(t.a) AS a, min(t.b) AS b FROM t
    SELECT COLUMNS('^l_.*price$') + 1 FROM lineitem → SELECT lineitem.l_extendedprice + 1 AS l_extendedprice …
    SELECT hash(*COLUMNS(* EXCLUDE (b))) FROM t     → SELECT hash(t.a, t.c) FROM t

The columns are those a `*` in the same place would give (sqlglot's qualify expands stars from the
FROM clause, CTEs and derived tables included), so a copy of the statement whose SELECT lists a
star instead is qualified first; the star's columns are matched against the pattern (a regular
expression found anywhere in the name, as DuckDB's is; or `*` with its EXCLUDE / REPLACE) and put
into the item: one item per column, named after it, or for `*COLUMNS(…)` inside a call, one
argument per column. The statement is then qualified as written, so that ORDER BY 2 and GROUP BY
ALL see the expanded list, as in DuckDB.

A lambda as the pattern (`COLUMNS(c -> c LIKE 'l_%')`) keeps the names for which it holds, as DuckDB's
list_filter over the names decides.

In WHERE, the whole condition is repeated once per column, each copy with one column, and the
copies ANDed (`WHERE COLUMNS(*) > 1` holds where every column is over 1), as DuckDB expands it; in
ORDER BY, an item becomes one item per column, in order. (Left to the fragments, DuckDB expanded
COLUMNS over a fragment's own columns: internal names, and only those the plan kept.)

Refused: COLUMNS in other clauses (DuckDB refuses GROUP BY and HAVING too), two COLUMNS in one item,
and a select item that reads other columns beside its COLUMNS (those would stay unqualified).
"""
from __future__ import annotations

import re

from sqlglot import exp

from engine.errors import CatalogError, NotSupportedError
from planner.constants import evaluate
from planner.table_functions import inside

PROBE = "__flocksql_columns_probe"
# Functions a COLUMNS lambda may not call: those that reach outside the catalog (planner/build.py
# refuses them in any statement; the lambda runs here, before that check).
FORBIDDEN_IN_LAMBDA = {"getenv", "current_setting", "system", "query", "query_table", "read_text", "read_blob"}


def expand_columns(ast: exp.Expression, qualify) -> exp.Expression:
    """ast with every COLUMNS(…) item expanded; qualify(statement) is sqlglot's qualify with the
    catalog's schema, run on a copy whose SELECT lists a star instead, to learn that star's columns."""
    if not any(ast.find_all(exp.Columns)):
        return ast
    ast = ast.copy()
    while True:
        selects = [s for s in ast.find_all(exp.Select) if any(_items_with_columns(s)) or _clauses_with_columns(s)]
        if not selects:
            _refuse_elsewhere(ast)
            return ast
        select = selects[-1]  # the innermost last: its columns do not depend on the others'
        star_items = _star_of(ast, select, qualify)
        _expand_where_and_order(select, star_items)
        out = []
        for item in select.expressions:
            if item.find(exp.Columns) is None:
                out.append(item)
                continue
            _check(item)
            out += _expanded(item, star_items)
        select.set("expressions", out)


def _items_with_columns(select: exp.Select):
    return (i for i in select.expressions if i.find(exp.Columns) is not None)


def _own(node: exp.Expression | None, select: exp.Select) -> bool:
    """Whether `node` holds a COLUMNS(…) of `select` itself (not of a subquery in it)."""
    return node is not None and any(c.find_ancestor(exp.Select) is select for c in node.find_all(exp.Columns))


def _clauses_with_columns(select: exp.Select) -> bool:
    order = select.args.get("order")
    return _own(select.args.get("where"), select) or (order is not None and _own(order, select))


def _expand_where_and_order(select: exp.Select, star_items: list[exp.Expression]) -> None:
    for clause in (select.args.get("where"), select.args.get("order")):
        for node in (clause.find_all(exp.Columns) if _own(clause, select) else ()):
            if node.args.get("unpack"):
                raise NotSupportedError("*COLUMNS(…) outside the select list")
            _check_pattern(node)
    where = select.args.get("where")
    if _own(where, select):
        copies = [c.this for c in _expanded(where.this, star_items)]
        select.set("where", exp.Where(this=exp.and_(*(exp.Paren(this=c) for c in copies))))
    order = select.args.get("order")
    if order is not None and _own(order, select):
        items = []
        for item in order.expressions:
            items += [c.this for c in _expanded(item, star_items)] if _own(item, select) else [item]
        order.set("expressions", items)


def _refuse_elsewhere(ast: exp.Expression) -> None:
    if ast.find(exp.Columns) is not None:
        raise NotSupportedError("COLUMNS(…) outside the select list, WHERE and ORDER BY")


def _star_of(ast: exp.Expression, select: exp.Select, qualify) -> list[exp.Expression]:
    """What `SELECT *` gives in select's place: its qualified items."""
    marker = exp.alias_(exp.Literal.string(PROBE), PROBE)
    original = select.args["expressions"]
    # The select's other named items stay (a COLUMNS item as a NULL of its name), so that a query
    # around it that reads them by name still qualifies.
    named = [item if item.find(exp.Columns) is None else exp.alias_(exp.null(), item.alias, quoted=True)
             for item in original if item.alias]
    select.set("expressions", [exp.Star(), marker] + named)
    try:
        probe = qualify(ast.copy())
    finally:
        select.set("expressions", original)
    for s in probe.find_all(exp.Select):
        # The marker itself (a query around this one that selects * reads it as a column).
        at = [i for i, item in enumerate(s.expressions)
              if isinstance(item, exp.Alias) and item.alias == PROBE and isinstance(item.this, exp.Literal)]
        if at:
            return s.expressions[:at[0]]
    raise NotSupportedError("COLUMNS(…) here")


def _check(item: exp.Expression) -> None:
    found = list(item.find_all(exp.Columns))
    if len(found) > 1:
        raise NotSupportedError("two COLUMNS(…) in one select item")
    node = found[0]
    _check_pattern(node)
    if any(not inside(c, node) for c in item.find_all(exp.Column)):
        raise NotSupportedError("a COLUMNS(…) item that also reads other columns")
    if isinstance(item, exp.Alias) and not node.args.get("unpack"):
        raise NotSupportedError("an alias on a COLUMNS(…) item (each column keeps its name)")
    if node.args.get("unpack") and not isinstance(node.parent, exp.Func):
        raise NotSupportedError("*COLUMNS(…) outside a call's arguments")


def _check_pattern(node: exp.Columns) -> None:
    if isinstance(node.this, exp.Lambda):
        reached = {f.name.lower() for f in node.this.find_all(exp.Anonymous)} | {
            type(f).__name__.lower() for f in node.this.find_all(exp.Func)}
        if node.this.find(exp.Query) is not None or reached & FORBIDDEN_IN_LAMBDA:
            raise NotSupportedError("COLUMNS(…) with a lambda that runs a query or reads outside the catalog")


def _lambda_keeps(lam: exp.Lambda, star_items: list[exp.Expression]) -> set[str]:
    """The column names for which `COLUMNS(c -> predicate)` holds: DuckDB's list_filter over the
    names, evaluated by a DuckDB of its own that reads no files (the lambda sees only the names)."""
    names = [item.alias if isinstance(item, exp.Alias) else item.alias_or_name for item in star_items]
    kept = evaluate(f"list_filter(?::VARCHAR[], {lam.sql('duckdb')})", [names],
                    what="COLUMNS(…): its lambda fails on the column names")
    return set(kept or ())


def _expanded(template: exp.Expression, star_items: list[exp.Expression]) -> list[exp.Expression]:
    node = next(template.find_all(exp.Columns))
    columns = []
    star = node.this if isinstance(node.this, exp.Star) else None
    excluded = {c.name.lower() for c in (star.args.get("except_") or star.args.get("except") or [])} if star is not None else set()
    replaced = {r.alias.lower(): r.this for r in (star.args.get("replace") or [])} if star is not None else {}
    kept = _lambda_keeps(node.this, star_items) if isinstance(node.this, exp.Lambda) else None
    for item in star_items:
        value, name = (item.this, item.alias) if isinstance(item, exp.Alias) else (item, item.alias_or_name)
        if kept is not None and name not in kept:
            continue
        if name.lower() in excluded:
            continue
        if name.lower() in replaced:
            if replaced[name.lower()].find(exp.Column) is not None:
                raise NotSupportedError("COLUMNS(* REPLACE (…)) with an expression that reads columns")
            value = replaced[name.lower()]
        if isinstance(node.this, exp.Literal):
            try:
                if not re.search(node.this.this, name):
                    continue
            except re.error as e:
                raise CatalogError(f"COLUMNS: invalid regular expression {node.this.this!r}: {e}") from None
        columns.append((value, name))
    if not columns:
        raise CatalogError(f"COLUMNS(…) matches no column: {node.sql('duckdb')}")
    if node.args.get("unpack"):
        made = template.copy()
        target = next(made.find_all(exp.Columns))
        holder, key = target.parent, target.arg_key
        if not isinstance(holder.args.get(key), list):
            raise NotSupportedError("*COLUMNS(…) outside a call's list of arguments")
        arguments = []
        for argument in holder.args[key]:
            arguments += [value.copy() for value, _ in columns] if argument is target else [argument]
        holder.set(key, arguments)
        return [made]
    out = []
    for value, name in columns:
        made = template.copy()
        target = next(made.find_all(exp.Columns))
        if target is made:
            made = value.copy()
        else:
            target.replace(value.copy())
        out.append(exp.alias_(made, name, quoted=True))
    return out
