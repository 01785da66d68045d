"""Rule: UNPIVOT becomes a UNION ALL of one SELECT per unpivoted column.

DuckDB's two spellings, over a table, a view, a CTE or a derived table:

    UNPIVOT t ON c1, c2 INTO NAME n VALUE v
    SELECT … FROM t UNPIVOT (v FOR n IN (c1, c2))

become, as DuckDB answers them (the other columns first, then the name, then the value; rows whose
value is NULL left out, unless INCLUDE NULLS):

    SELECT k, 'c1' AS n, c1 AS v FROM t WHERE c1 IS NOT NULL
    UNION ALL SELECT k, 'c2' AS n, c2 AS v FROM t WHERE c2 IS NOT NULL

so each part is a plain distributed scan and the union needs no exchange. `ON COLUMNS(* EXCLUDE
(…))`, `ON * EXCLUDE (…)` and `ON COLUMNS('regex')` name the columns of the source: a table's or
view's from the catalog, a CTE's or derived table's from the planner's qualification of it. Over a
CTE or a derived table whose unpivoted columns are named, the other columns are `* EXCLUDE (c1,
c2)`, expanded when the statement is qualified. An entry may be an expression of one column
(`ON jan * 2 AS j2`), or a tuple of columns for several value columns (`ON (a, b) AS x, (c, d)
INTO NAME n VALUE v, w`).
"""
from __future__ import annotations

import re

from sqlglot import exp

from engine.errors import CatalogError, NotSupportedError
from planner.rules.pivot_source import pivoted_item


def rewrite_unpivot(ast: exp.Expression, columns_of, query_columns=None) -> exp.Expression:
    """`ast` with every UNPIVOT written as a UNION ALL; columns_of(table name) lists a table's or
    view's columns (None when the name is neither); query_columns(query) a query's output columns
    (None where they cannot be known), for COLUMNS(…) and * over a CTE or a derived table."""
    if not any(isinstance(n, exp.Pivot) and n.args.get("unpivot") for n in ast.walk()):
        return ast
    ast = ast.copy()
    with_ = ast.args.get("with_")

    def source_columns(source: exp.Expression) -> list[str] | None:
        """The columns of a CTE (by name) or a derived table, where query_columns can tell."""
        if query_columns is None:
            return None
        if isinstance(source, exp.Subquery):
            return query_columns(source.this.copy())
        query = exp.select(exp.Star()).from_(exp.to_table(source.name))
        if with_ is not None:
            query.set("with_", with_.copy())
        return query_columns(query)

    ctes = {c.alias_or_name.lower() for c in ast.find_all(exp.CTE)}
    if isinstance(ast, exp.Pivot):  # the statement form
        union = _union(ast.this, ast, columns_of, ctes, statement=True, source_columns=source_columns)
        with_ = ast.args.get("with_")
        if with_ is not None:
            union.set("with_", with_.copy())
        return union
    for pivot in [n for n in ast.find_all(exp.Pivot) if n.args.get("unpivot")]:
        if isinstance(pivot.parent, exp.Subquery) and pivot.parent.this is pivot:  # (UNPIVOT t ON …)
            pivot.replace(_union(pivot.this, pivot, columns_of, ctes, statement=True, source_columns=source_columns))
            continue
        holder = pivoted_item(pivot, lambda name: None if name.lower() in ctes else columns_of(name))
        if not isinstance(holder, (exp.Table, exp.Subquery)):
            raise NotSupportedError(f"UNPIVOT of {holder.key}")
        alias = pivot.args.get("alias") or holder.args.get("alias")
        source = holder.copy()
        source.set("pivots", None)
        source.set("alias", None)
        union = _union(source, pivot, columns_of, ctes, statement=False, source_columns=source_columns)
        if alias is None:
            alias = exp.TableAlias(this=exp.to_identifier(holder.name if isinstance(holder, exp.Table) else "__unpivot"))
        holder.replace(exp.Subquery(this=union, alias=alias))
    return ast


def _parts(item: exp.Expression) -> list[exp.Expression]:
    """An UNPIVOT entry's columns as written: a column, a pattern, or a tuple of them."""
    body = item.this if isinstance(item, (exp.Alias, exp.PivotAlias)) else item
    while isinstance(body, exp.Paren):
        body = body.this
    return list(body.expressions) if isinstance(body, exp.Tuple) else [body]


def _is_pattern(part: exp.Expression) -> bool:
    """COLUMNS(…) or * [EXCLUDE (…)]: names columns by the source's list."""
    return isinstance(part, exp.Columns) or isinstance(part, exp.Star) or \
        (isinstance(part, exp.Column) and isinstance(part.this, exp.Star))


def _entries(items: list[exp.Expression], columns: list[str] | None) -> list[tuple[str, list[tuple[str, exp.Expression | None]]]]:
    """The unpivoted entries, each its label (the NAME column's value) and its values, each the
    column it unpivots and the expression over it (None: the column itself): a column as written
    (`c`, `c AS label`), an expression of one column (`c * 2 AS label`, labelled by its column
    unless given one), a tuple of them (`(c, d) AS label`, unlabelled `c_d` as DuckDB names it);
    COLUMNS(…) and * EXCLUDE matched against the source's columns (a table's, a view's, a CTE's or
    a derived table's)."""
    out = []
    for item in items:
        label = item.alias if isinstance(item, (exp.Alias, exp.PivotAlias)) else None
        parts = _parts(item)
        if not any(_is_pattern(p) for p in parts):
            values = []
            for part in parts:
                if isinstance(part, (exp.Column, exp.Identifier)):
                    values.append((part.name, None))
                    continue
                read = list(dict.fromkeys(c.name for c in part.find_all(exp.Column)))
                if len(read) != 1:
                    raise CatalogError(f'UNPIVOT clause must contain exactly one column - expression '
                                       f'"{part.sql("duckdb")}" contains {len(read)}')
                values.append((read[0], part))
            out.append((label or "_".join(c for c, _ in values), values))
            continue
        body = parts[0]
        pattern = body.this if isinstance(body, exp.Columns) else body
        if columns is None or label is not None or len(parts) > 1:
            raise NotSupportedError("UNPIVOT ON a labelled or paired COLUMNS(…) or *, or one over a query whose "
                                    "columns are not known before it runs: name the columns")
        if isinstance(pattern, (exp.Star, exp.Column)):
            star = pattern.this if isinstance(pattern, exp.Column) else pattern
            excluded = {c.name.lower() for c in star.args.get("except_") or star.args.get("except") or []}
            out += [(c, [(c, None)]) for c in columns if c.lower() not in excluded]
        elif isinstance(pattern, exp.Literal) and pattern.is_string:
            try:
                out += [(c, [(c, None)]) for c in columns if re.search(pattern.this, c)]
            except re.error as e:
                raise CatalogError(f"UNPIVOT ON COLUMNS: invalid regular expression {pattern.this!r}: {e}") from None
        else:
            raise NotSupportedError(f"UNPIVOT ON COLUMNS({pattern.sql('duckdb')}): give a regular expression or *")
    if not out:
        raise CatalogError("UNPIVOT ON names no column")
    return out


def _union(source: exp.Expression, pivot: exp.Pivot, columns_of, ctes: set[str], statement: bool,
           source_columns) -> exp.Expression:
    # Whether an item is a pattern (COLUMNS(…), * EXCLUDE) that needs the source's columns.
    patterned = any(_is_pattern(p) for item in (pivot.expressions if statement else
                                                ((pivot.args.get("fields") or [exp.In()])[0].expressions or []))
                    for p in _parts(item))
    if isinstance(source, exp.Table) and isinstance(source.this, exp.Identifier):
        cte = source.name.lower() in ctes
        columns = (source_columns(source) if patterned else None) if cte else columns_of(source.name)
        if columns is None and not cte:
            raise CatalogError(f"unknown table: {source.name}")
    elif isinstance(source, exp.Subquery):
        columns = source_columns(source) if patterned else None
        source = exp.Subquery(this=source.this.copy(), alias=exp.TableAlias(this=exp.to_identifier("__unpivoted")))
    else:
        raise NotSupportedError("UNPIVOT of a table function")
    if statement:
        into = pivot.args.get("into")
        entries = _entries(list(pivot.expressions), columns)
        name_col = into.this.name if into is not None else "name"
        value_cols = [e.name for e in into.expressions] if into is not None and into.expressions else ["value"]
    else:
        fields = pivot.args.get("fields") or []
        if len(fields) != 1 or not isinstance(fields[0], exp.In) or len(pivot.expressions) != 1:
            raise NotSupportedError("UNPIVOT with several name columns")
        entries = _entries(list(fields[0].expressions), columns)
        values = pivot.expressions[0]
        name_col = fields[0].this.name
        value_cols = [e.name for e in (values.expressions if isinstance(values, exp.Tuple) else [values])]
    for _, unpivoted in entries:
        if len(unpivoted) != len(value_cols):
            # DuckDB's words for either count.
            raise CatalogError(f"UNPIVOT value count mismatch - entry has {len(unpivoted)} values, "
                               f"but expected all entries to have {len(value_cols)} values")
    every = [c for _, unpivoted in entries for c, _ in unpivoted]
    if columns is not None:
        lowered = {c.lower(): c for c in columns}
        missing = [c for c in every if c.lower() not in lowered]
        if missing:
            raise CatalogError(f"unknown column: {missing[0]} (UNPIVOT of {source.name})")
        entries = [(label, [(lowered[c.lower()], e) for c, e in unpivoted]) for label, unpivoted in entries]
        gone = {c.lower() for c in every}
        keep = [exp.column(c, quoted=True) for c in columns if c.lower() not in gone]
    else:
        keep = [exp.Star(except_=[exp.column(c, quoted=True) for c in dict.fromkeys(every)])]
    include_nulls = bool(pivot.args.get("include_nulls"))
    parts = []
    for label, unpivoted in entries:
        values = [e.copy() if e is not None else exp.column(c, quoted=True) for c, e in unpivoted]
        select = exp.select(*[k.copy() for k in keep],
                            exp.alias_(exp.Literal.string(label), name_col, quoted=True),
                            *[exp.alias_(e, v, quoted=True) for e, v in zip(values, value_cols)]).from_(source.copy())
        if not include_nulls:
            # DuckDB leaves out an entry's row where any of its values is NULL.
            select = select.where(exp.and_(*[exp.Paren(this=e.copy()).is_(exp.null()).not_() for e in values]))
        parts.append(select)
    union = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)
    return union
