"""quantified_subqueries: EXISTS, IN, ANY and ALL as values — rewritten into counting subqueries.

A subquery predicate at the top of a WHERE clause becomes a semi or anti join (planner/build.py).
Anywhere else — under OR, inside CASE, in the select list, negated with a correlation — it is a
value with SQL's three-valued logic, and this rule (run on the SQL tree before binding) writes it
with scalar subqueries that count rows, which the binder decorrelates into grouped aggregates joined
back to the outer rows: a mark join, distributed like any aggregate and join.

    EXISTS (SELECT … FROM f WHERE w)
      → (SELECT count(*) FROM f WHERE w) > 0
    x op ANY (SELECT y FROM f WHERE w)          (x IN (…) is x = ANY (…))
      → CASE WHEN (SELECT count(*) FROM f WHERE w AND x op y) > 0 THEN TRUE   -- some y matches
             WHEN (SELECT count(*) FROM f WHERE w) = 0 THEN FALSE             -- no y at all
             WHEN x IS NULL OR (SELECT count(*) FROM f WHERE w AND y IS NULL) > 0 THEN NULL
             ELSE FALSE END
    x op ALL (…)  →  NOT (x op' ANY (…)), op' the complement of op (NOT (a < b) is a >= b, NULLs kept)

A subquery that is not a plain SELECT (grouped, limited, a set operation) is first made a derived
table `(…) AS __q(__v)` so that its rows can be counted the same way. Where such a subquery also
reads the outer query (the binder then flattens it as a dependent join, once per scalar subquery),
the three counts come from one subquery over its rows, which reads x too:

    x op ANY (q)  →  (SELECT CASE WHEN count_if(x op __v) > 0 THEN TRUE WHEN count(*) = 0 THEN FALSE
                              WHEN x IS NULL OR count_if(__v IS NULL) > 0 THEN NULL ELSE FALSE END
                      FROM (q) AS __q(__v))
"""
from __future__ import annotations

from sqlglot import exp

from engine.errors import CatalogError
from planner.comparable import kind_of

_COMPLEMENT = {exp.EQ: exp.NEQ, exp.NEQ: exp.EQ, exp.GT: exp.LTE, exp.GTE: exp.LT, exp.LT: exp.GTE, exp.LTE: exp.GT}
_NESTED = (exp.Subquery, exp.Select, exp.Union, exp.Intersect, exp.Except)


def quantified_targets(e: exp.Expression) -> list[exp.Expression]:
    """The EXISTS / IN-subquery / op ANY|ALL nodes of e, not looking inside nested queries."""
    out, stack = [], [e]
    while stack:
        n = stack.pop()
        if isinstance(n, exp.Exists) or (isinstance(n, exp.In) and n.args.get("query") is not None):
            out.append(n)
            continue
        if type(n) in _COMPLEMENT and isinstance(n.expression, (exp.Any, exp.All)):
            out.append(n)
            continue
        if isinstance(n, _NESTED):
            continue
        stack.extend(n.iter_expressions())
    return out


def rewrite_quantified(e: exp.Expression, correlated=lambda q: False) -> exp.Expression:
    """e with every quantified subquery outside nested queries written as counting subqueries;
    correlated(subquery) says whether a subquery reads the query around it."""
    targets = quantified_targets(e)
    if not targets:
        return e
    holder = exp.Paren(this=e.copy())
    for t in quantified_targets(holder.this):
        t.replace(exp.Paren(this=_rewrite_one(t, correlated)))
    return holder.this


def _rewrite_one(t: exp.Expression, correlated) -> exp.Expression:
    if isinstance(t, exp.Exists):
        return exp.GT(this=_count(_counted(_unwrap(t.this), for_exists=True)[0]), expression=exp.Literal.number(0))
    if isinstance(t, exp.In):
        if isinstance(t.this, exp.Tuple):
            return _any_row(t.this.expressions, _unwrap(t.args["query"]), correlated)
        return _any(t.this, exp.EQ, _unwrap(t.args["query"]), correlated, check_types=True)
    op, quant = type(t), t.expression
    if isinstance(quant, exp.All):
        return exp.Not(this=exp.Paren(this=_any(t.this, _COMPLEMENT[op], _unwrap(quant.this), correlated)))
    return _any(t.this, op, _unwrap(quant.this), correlated)


def _unwrap(q: exp.Expression) -> exp.Expression:
    while isinstance(q, exp.Subquery) and not q.alias:
        q = q.this
    return q


def _simple(q: exp.Expression) -> bool:
    """A SELECT whose rows are those of its FROM and WHERE: no grouping, aggregates, windows, limit."""
    if not isinstance(q, exp.Select) or not (q.args.get("from") or q.args.get("from_")):
        return False
    if any(q.args.get(k) for k in ("group", "having", "qualify", "limit", "offset", "windows")):
        return False
    return not any(isinstance(n, (exp.AggFunc, exp.Window)) for x in q.expressions for n in x.walk())


def _counted(q: exp.Expression, for_exists: bool = False) -> tuple[exp.Select, exp.Expression | None]:
    """(a SELECT over the same rows as q with its WHERE kept, q's first output as an expression over
    them). EXISTS ignores a LIMIT of at least one row and DISTINCT; IN ignores DISTINCT."""
    if isinstance(q, exp.Select):
        q = q.copy()
        limit = q.args.get("limit")
        if for_exists or not (limit or q.args.get("offset")):
            # Which rows a LIMIT keeps depends on the order and on duplicates (not so for EXISTS,
            # which only reads whether the first row is there).
            q.set("distinct", None)
            q.set("order", None)
        if for_exists and limit is not None and not q.args.get("offset"):
            n = limit.expression if isinstance(limit, exp.Limit) else limit
            if isinstance(n, exp.Literal) and not n.is_string and n.this.isdigit() and int(n.this) >= 1:
                q.set("limit", None)
    if _simple(q):
        first = q.expressions[0]
        return q, (first.this if isinstance(first, exp.Alias) else first).copy()
    alias = exp.TableAlias(this=exp.to_identifier("__q"), columns=[exp.to_identifier("__v")])
    if isinstance(q, exp.Select) and len(q.expressions) != 1 and not for_exists:
        raise CatalogError(f"subquery returns {len(q.expressions)} columns, expected 1")
    if for_exists:
        alias = exp.TableAlias(this=exp.to_identifier("__q"))
    wrapped = exp.select(exp.Star()).from_(exp.Subquery(this=q.copy(), alias=alias))
    return wrapped, exp.column("__v", table="__q")


def _count(q: exp.Select, extra: exp.Expression | None = None) -> exp.Subquery:
    q = q.copy()
    q.set("expressions", [exp.Count(this=exp.Star())])
    if extra is not None:
        where = q.args.get("where")
        cond = extra if where is None else exp.And(this=exp.Paren(this=where.this.copy()), expression=exp.Paren(this=extra))
        q.set("where", exp.Where(this=cond))
    return exp.Subquery(this=q)


def _own_sources(q: exp.Select) -> list[exp.Expression]:
    """The tables and derived tables in q's own FROM and JOINs."""
    frm = q.args.get("from") or q.args.get("from_")
    out = [frm.this] if frm is not None else []
    out += [j.this for j in q.args.get("joins") or []]
    return [x for x in out if isinstance(x, (exp.Table, exp.Subquery))]


_fresh = iter(range(1, 1 << 62))


def _rename_shadowing(rows: exp.Select, y: exp.Expression, names: set[str]):
    """rows and y with each of rows' own tables named in `names` renamed: x (an outer expression)
    is moved into rows, where an inner table of the same name would capture its columns."""
    rows, y = rows.copy(), y.copy()
    for source in _own_sources(rows):
        old = source.alias_or_name
        if old not in names:
            continue
        new = f"__s{next(_fresh)}"
        source.set("alias", exp.TableAlias(this=exp.to_identifier(new)))
        for tree in (rows, y):
            for c in list(tree.find_all(exp.Column)):
                if c.table != old:
                    continue
                anc, bound_deeper = c.parent, False
                while anc is not None and anc is not rows:
                    if isinstance(anc, exp.Select) and any(x.alias_or_name == old for x in _own_sources(anc)):
                        bound_deeper = True
                        break
                    anc = anc.parent
                if not bound_deeper:
                    c.set("table", exp.to_identifier(new))
    return rows, y


def _any(x: exp.Expression, op, q: exp.Expression, correlated, check_types: bool = False) -> exp.Expression:
    rows, y = _counted(q)
    shadowed = {c.table for c in x.find_all(exp.Column) if c.table} & {s.alias_or_name for s in _own_sources(rows)}
    if shadowed:
        rows, y = _rename_shadowing(rows, y, shadowed)
    if check_types:
        kx, ky = kind_of(getattr(x, "type", None)), kind_of(getattr(y, "type", None))
        if kx and ky and kx != ky and "other" not in (kx, ky):
            raise CatalogError(f"Cannot compare values of type {x.type.sql('duckdb')} and type "
                               f"{y.type.sql('duckdb')} in IN/ANY/ALL clause - an explicit cast is required")
    zero = exp.Literal.number(0)
    if not _simple(q) and correlated(q):
        return _marked(x, op, rows, y)
    matched = exp.GT(this=_count(rows, op(this=x.copy(), expression=y.copy())), expression=zero)
    empty = exp.EQ(this=_count(rows), expression=zero)
    unknown = exp.Or(this=exp.Is(this=x.copy(), expression=exp.Null()),
                     expression=exp.GT(this=_count(rows, exp.Is(this=y.copy(), expression=exp.Null())), expression=zero))
    return exp.Case(ifs=[exp.If(this=matched, true=exp.true()), exp.If(this=empty, true=exp.false()),
                         exp.If(this=unknown, true=exp.Null())], default=exp.false())


def _any_row(xs: list[exp.Expression], q: exp.Expression, correlated) -> exp.Expression:
    """(x1, …, xn) IN (q): TRUE where some row makes `x1 = y1 AND … AND xn = yn` TRUE, else NULL
    where one makes it NULL, else FALSE (no row at all, too): comparing rows, as DuckDB does."""
    if isinstance(q, exp.Select) and _simple(q):
        rows, ys = q.copy(), [(i.this if isinstance(i, exp.Alias) else i).copy() for i in q.expressions]
        rows.set("distinct", None)
        rows.set("order", None)
    else:
        if isinstance(q, exp.Select) and len(q.expressions) != len(xs):
            raise CatalogError(f"IN subquery returns {len(q.expressions)} columns, expected {len(xs)}")
        names = [f"__v{i}" for i in range(1, len(xs) + 1)]
        alias = exp.TableAlias(this=exp.to_identifier("__q"), columns=[exp.to_identifier(n) for n in names])
        rows = exp.select(exp.Star()).from_(exp.Subquery(this=q.copy(), alias=alias))
        ys = [exp.column(n, table="__q") for n in names]
    if len(ys) != len(xs):
        raise CatalogError(f"IN subquery returns {len(ys)} columns, expected {len(xs)}")
    shadowed = {c.table for x in xs for c in x.find_all(exp.Column) if c.table} & {
        s.alias_or_name for s in _own_sources(rows)}
    if shadowed:
        rows, both = _rename_shadowing(rows, exp.Tuple(expressions=ys), shadowed)
        ys = both.expressions

    def match():
        out = exp.EQ(this=xs[0].copy(), expression=ys[0].copy())
        for x, y in zip(xs[1:], ys[1:]):
            out = exp.And(this=out, expression=exp.EQ(this=x.copy(), expression=y.copy()))
        return exp.Paren(this=out)
    zero = exp.Literal.number(0)
    if not _simple(q) and correlated(q):
        case = exp.Case(ifs=[exp.If(this=exp.GT(this=exp.CountIf(this=match()), expression=zero), true=exp.true()),
                             exp.If(this=exp.GT(this=exp.CountIf(this=exp.Is(this=match(), expression=exp.Null())),
                                                expression=zero), true=exp.Null())],
                        default=exp.false())
        marked = rows.copy()
        marked.set("expressions", [case])
        return exp.Subquery(this=marked)
    matched = exp.GT(this=_count(rows, match()), expression=zero)
    unknown = exp.GT(this=_count(rows, exp.Is(this=match(), expression=exp.Null())), expression=zero)
    return exp.Case(ifs=[exp.If(this=matched, true=exp.true()), exp.If(this=unknown, true=exp.Null())],
                    default=exp.false())


def _marked(x: exp.Expression, op, rows: exp.Select, y: exp.Expression) -> exp.Subquery:
    """x op ANY (rows) as one subquery over rows (y, its value, read from the derived table rows
    holds): its three counts from one evaluation of rows for each outer row."""
    zero = exp.Literal.number(0)

    def count_if(cond):
        return exp.GT(this=exp.CountIf(this=cond), expression=zero)
    case = exp.Case(ifs=[exp.If(this=count_if(op(this=x.copy(), expression=y.copy())), true=exp.true()),
                         exp.If(this=exp.EQ(this=exp.Count(this=exp.Star()), expression=zero), true=exp.false()),
                         exp.If(this=exp.Or(this=exp.Is(this=x.copy(), expression=exp.Null()),
                                            expression=count_if(exp.Is(this=y.copy(), expression=exp.Null()))),
                                true=exp.Null())],
                    default=exp.false())
    q = rows.copy()
    q.set("expressions", [case])
    return exp.Subquery(this=q)
