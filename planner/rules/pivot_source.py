"""What a PIVOT or UNPIVOT written after a FROM item applies to, for the pivot and unpivot rules.

sqlglot hangs a PIVOT written after a join's ON or USING clause on the join (`FROM a JOIN b ON p
PIVOT (…)`), and one written after a table on the table (`FROM a, b PIVOT (…)`, `JOIN b PIVOT (…)
ON p`). DuckDB's grammar (PostgreSQL's) reads the first as a pivot of the whole join chain back to
the nearest comma, an explicit join binding tighter than a comma, and the second as a pivot of that
table alone. `pivoted_item` turns the first into a derived table `(SELECT * FROM a JOIN b ON p)`
holding the pivot, so both rules see a pivot of one FROM item. A column name that two tables of
the chain hold (not joined by USING) is refused as ambiguous, as DuckDB's binder refuses it, where
the derived table would rename the second.
"""
from __future__ import annotations

from sqlglot import exp

from engine.errors import CatalogError


def _starts_chain(join: exp.Join) -> bool:
    """`FROM a, b`: b's join is a comma, where a new join chain begins."""
    return not any(join.args.get(k) for k in ("side", "kind", "method", "on", "using"))


def pivoted_item(pivot: exp.Pivot, columns_of) -> exp.Expression:
    """The FROM item that holds `pivot` (its parent), after moving a pivot of a join chain onto a
    derived table of the chain that takes the chain's place in the query. columns_of(name) lists a
    table's or view's columns (None for a CTE or an unknown name)."""
    join = pivot.parent
    if not isinstance(join, exp.Join) or pivot not in (join.args.get("pivots") or []):
        return join
    query = join.parent
    joins = query.args["joins"]
    at = next(i for i, j in enumerate(joins) if j is join)
    start = at
    while start >= 0 and not _starts_chain(joins[start]):
        start -= 1
    holder = query.args["from_"] if start < 0 else joins[start]
    first, chain, pivots = holder.this, joins[start + 1:at + 1], join.args["pivots"]
    _refuse_ambiguous([first] + [j.this for j in chain], [j for j in chain], columns_of)
    join.set("pivots", None)
    # The nodes move (no copies), so a pivot still to be rewritten inside the chain stays the
    # one the rule's walk found.
    inner = exp.select(exp.Star()).from_(first, copy=False)
    inner.set("joins", chain)
    item = exp.Subquery(this=inner, pivots=pivots)
    holder.set("this", item)
    query.set("joins", (joins[:start + 1] + joins[at + 1:]) or None)
    return item


def _refuse_ambiguous(items: list[exp.Expression], joins: list[exp.Join], columns_of) -> None:
    """A column name held by two tables of the chain, unless a USING or NATURAL join merges it.
    Only tables of the catalog are looked at: a derived table's columns are known only later."""
    if any(j.args.get("method") for j in joins):
        return
    merged = {u.name.lower() for j in joins for u in j.args.get("using") or []}
    seen: set[str] = set()
    for item in items:
        if not (isinstance(item, exp.Table) and isinstance(item.this, exp.Identifier)):
            continue
        for column in columns_of(item.name) or []:
            name = column.lower()
            if name in seen and name not in merged:
                raise CatalogError(f'Ambiguous reference to column name "{column}" in a PIVOT or UNPIVOT of a join '
                                   "(name the columns in a derived table)")
            seen.add(name)
