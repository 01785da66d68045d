"""ordinality: a table function's `WITH ORDINALITY`, written as a range of positions into its list.

Run on the statement before qualify and before the table functions are bound:

    FROM range(1, 9, 2) WITH ORDINALITY AS t(a, b)
      → FROM (SELECT list_extract(range(1, 9, 2), __ord.__o) AS a, __ord.__o AS b
              FROM range(1, len(range(1, 9, 2)) + 1) AS __ord(__o)) AS t
    FROM items i, unnest(i.l) WITH ORDINALITY AS u(x, o)
      → FROM items i, (SELECT list_extract(i.l, __ord.__o) AS x, __ord.__o AS o
                       FROM range(1, len(i.l) + 1) AS __ord(__o)) AS u

range and generate_series called as scalars make the same values as a list, and unnest's argument
is one; the n-th row of the function is the list's n-th element, so numbering the positions numbers
the rows. The positions are an integer range, which each rank makes a slice of (or, when the list
reads the FROM items before it, a LATERAL range per row: planner/rules/lateral_table_functions.py).
The columns are named as DuckDB names them: the alias's columns, else the table alias (or the
function's name) and `ordinality`. The list is built whole, so this suits lists of a size a value
may have, not a range of billions.
"""
from __future__ import annotations

from sqlglot import exp

from engine.errors import NotSupportedError
from planner.table_functions import call_of, function_name, with_ordinality

POSITIONS = "__ord"
POSITION = "__o"


def rewrite_ordinality(ast: exp.Expression) -> exp.Expression:
    if not any(with_ordinality(n) for n in ast.walk() if call_of(n) is not None):
        return ast
    ast = ast.copy()
    for item in [n for n in ast.walk() if call_of(n) is not None and with_ordinality(n)]:
        if not isinstance(item.parent, (exp.From, exp.Join)):
            continue
        item.replace(_numbered(item))
    return ast


def _numbered(item: exp.Expression) -> exp.Subquery:
    call = call_of(item)
    name = function_name(call)
    if isinstance(call, exp.Unnest):
        if len(call.expressions) != 1 or any(isinstance(e, exp.PropertyEQ) for e in call.expressions):
            raise NotSupportedError("unnest() of several lists, or with named arguments, WITH ORDINALITY (DuckDB refuses it "
                                    "too)")
        values = call.expressions[0].copy()
        alias = call.args.get("alias")
        columns = [c.name for c in alias.columns] if alias is not None else []
        offset = call.args.get("offset")
        if isinstance(offset, exp.Identifier):
            columns = (columns or [alias.name if alias is not None and alias.name else name])[:1] + [offset.name]
    else:
        values = call.copy()
        alias = item.args.get("alias")
        columns = [c.name for c in alias.columns] if alias is not None else []
    table = alias.name if alias is not None and alias.name else None
    value_name = columns[0] if columns else (table or name)
    ordinal_name = columns[1] if len(columns) > 1 else "ordinality"
    if len(columns) > 2:
        raise NotSupportedError(f"{len(columns)} column names for {name}() WITH ORDINALITY (it makes 2)")
    position = exp.column(POSITION, table=POSITIONS)
    # list_extract, 1-based as DuckDB's: sqlglot's Bracket would shift a column index by one.
    element = exp.Anonymous(this="list_extract", expressions=[values.copy(), position.copy()])
    count = exp.Add(this=exp.Anonymous(this="len", expressions=[values]), expression=exp.Literal.number(1))
    positions = exp.Table(this=exp.Anonymous(this="range", expressions=[exp.Literal.number(1), count]),
                          alias=exp.TableAlias(this=exp.to_identifier(POSITIONS),
                                               columns=[exp.to_identifier(POSITION)]))
    inner = exp.select(exp.alias_(element, value_name, quoted=True),
                       exp.alias_(position, ordinal_name, quoted=True)).from_(positions)
    return exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier(table or name, quoted=True)))
