"""Rule: UNPIVOT becomes a UNION ALL of one SELECT per unpivoted column.

DuckDB's two spellings, over a table or view of the catalog:

    UNPIVOT t ON c1, c2 INTO NAME n VALUE v
    SELECT … FROM t UNPIVOT (v FOR n IN (c1, c2))

become, as DuckDB answers them (the other columns first, then the name, then the value; rows whose
value is NULL left out, unless INCLUDE NULLS):

    SELECT k, 'c1' AS n, c1 AS v FROM t WHERE c1 IS NOT NULL
    UNION ALL SELECT k, 'c2' AS n, c2 AS v FROM t WHERE c2 IS NOT NULL

so each part is a plain distributed scan and the union needs no exchange. PIVOT (which needs the
distinct values of a column before it can be planned) stays refused.
"""
from __future__ import annotations

from sqlglot import exp

from engine.errors import NotSupportedError


def rewrite_unpivot(ast: exp.Expression, columns_of) -> exp.Expression:
    """`ast` with every UNPIVOT written as a UNION ALL; columns_of(table name) lists a table's or
    view's columns (None when the name is neither)."""
    if not any(isinstance(n, exp.Pivot) and n.args.get("unpivot") for n in ast.walk()):
        return ast
    ast = ast.copy()
    if isinstance(ast, exp.Pivot):  # the statement form
        return _union(ast.this, ast, columns_of, statement=True)
    for pivot in [n for n in ast.find_all(exp.Pivot) if n.args.get("unpivot")]:
        if isinstance(pivot.parent, exp.Subquery) and pivot.parent.this is pivot:  # (UNPIVOT t ON …)
            pivot.replace(_union(pivot.this, pivot, columns_of, statement=True))
            continue
        table = pivot.parent
        if not isinstance(table, exp.Table):
            raise NotSupportedError("UNPIVOT of a derived table or a join")
        alias = pivot.args.get("alias") or table.args.get("alias")
        source = table.copy()
        source.set("pivots", None)
        source.set("alias", None)
        union = _union(source, pivot, columns_of, statement=False)
        table.replace(exp.Subquery(this=union, alias=alias or exp.TableAlias(this=exp.to_identifier(table.name))))
    return ast


def _union(source: exp.Expression, pivot: exp.Pivot, columns_of, statement: bool) -> exp.Expression:
    if not isinstance(source, exp.Table) or not isinstance(source.this, exp.Identifier):
        raise NotSupportedError("UNPIVOT of anything but a table or view")
    columns = columns_of(source.name)
    if columns is None:
        from engine.errors import CatalogError
        raise CatalogError(f"unknown table: {source.name}")
    if statement:
        into = pivot.args.get("into")
        unpivoted = [e.name for e in pivot.expressions]
        name_col = into.this.name if into is not None else "name"
        value_col = into.expressions[0].name if into is not None and into.expressions else "value"
    else:
        fields = pivot.args.get("fields") or []
        if len(fields) != 1 or not isinstance(fields[0], exp.In) or len(pivot.expressions) != 1:
            raise NotSupportedError("UNPIVOT with several value columns")
        unpivoted = [e.name for e in fields[0].expressions]
        name_col, value_col = fields[0].this.name, pivot.expressions[0].name
    if any(isinstance(e, exp.Star) or not e for e in unpivoted):
        raise NotSupportedError("UNPIVOT ON COLUMNS(*) or expressions: name the columns")
    lowered = {c.lower(): c for c in columns}
    missing = [c for c in unpivoted if c.lower() not in lowered]
    if missing:
        from engine.errors import CatalogError
        raise CatalogError(f"unknown column: {missing[0]} (UNPIVOT of {source.name})")
    keep = [c for c in columns if c.lower() not in {u.lower() for u in unpivoted}]
    include_nulls = bool(pivot.args.get("include_nulls"))
    parts = []
    for column in unpivoted:
        select = exp.select(*[exp.column(c, quoted=True) for c in keep],
                            exp.alias_(exp.Literal.string(lowered[column.lower()]), name_col, quoted=True),
                            exp.alias_(exp.column(lowered[column.lower()], quoted=True), value_col, quoted=True)
                            ).from_(source.copy())
        if not include_nulls:
            select = select.where(exp.column(lowered[column.lower()], quoted=True).is_(exp.null()).not_())
        parts.append(select)
    union = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)
    return union
