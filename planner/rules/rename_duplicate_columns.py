"""rename_duplicate_columns: a derived table's or CTE's repeated output names made unique, as DuckDB does.

    SELECT * FROM (SELECT a.id, b.id FROM a JOIN b ON …) AS s
      → SELECT * FROM (SELECT a.id AS id, b.id AS id_1 FROM a JOIN b ON …) AS s

DuckDB binds a subquery's columns under unique names: a name met again (case-insensitively) gets
`_1`, `_2`, … (the first suffix no earlier column holds), so `SELECT *` over it has one column per
projection and `s.id` is the first. sqlglot leaves a star over such a source unexpanded (it would be
ambiguous), and the binder then read `*` as one column: the answer lost all but one column. Run on
the qualified statement (stars inside the derived table already expanded, so their columns have
names); the caller qualifies again when a star was left. Names from an alias list (`AS s(x, y)`)
count but are not renamed.
"""
from __future__ import annotations

from sqlglot import exp


def rename_duplicate_columns(ast: exp.Expression) -> tuple[exp.Expression, bool]:
    """(the statement with unique names in every derived table and CTE, whether any was renamed)."""
    holders = [n for n in ast.find_all(exp.Subquery, exp.CTE)
               if _projections(n.this) is not None and _has_duplicates(n)]
    if not holders:
        return ast, False
    ast = ast.copy()
    for holder in list(ast.find_all(exp.Subquery, exp.CTE)):
        if _projections(holder.this) is not None and _has_duplicates(holder):
            _rename(holder)
    return ast, True


def _projections(query: exp.Expression) -> list[exp.Expression] | None:
    """The select list that names a query's columns (a set operation's leftmost SELECT)."""
    while isinstance(query, (exp.SetOperation, exp.Subquery)):
        query = query.this
    return query.expressions if isinstance(query, exp.Select) else None


def _alias_columns(holder: exp.Expression) -> list[str]:
    alias = holder.args.get("alias")
    return [c.name for c in alias.columns] if isinstance(alias, exp.TableAlias) and alias.columns else []


def _names(holder: exp.Expression) -> list[str]:
    listed = _alias_columns(holder)
    return listed + [p.alias_or_name for p in _projections(holder.this)[len(listed):]]


def _has_duplicates(holder: exp.Expression) -> bool:
    names = [n.lower() for n in _names(holder)]
    return len(names) != len(set(names))


def _rename(holder: exp.Expression) -> None:
    listed = len(_alias_columns(holder))
    projections = _projections(holder.this)
    taken: set[str] = set()
    for i, name in enumerate(_names(holder)):
        unique = name
        suffix = 1
        while unique.lower() in taken:
            unique = f"{name}_{suffix}"
            suffix += 1
        taken.add(unique.lower())
        if unique != name and i >= listed:
            p = projections[i]
            p.replace(exp.alias_((p.this if isinstance(p, exp.Alias) else p).copy(),
                                 exp.to_identifier(unique, quoted=not (unique.isidentifier() and unique.islower()))))
