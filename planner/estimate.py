"""Cardinality and size estimates, flowing up the plan from the catalog's statistics.

Each estimate says whether it is grounded in statistics (`known`) or a guess; the cost model never
broadcasts a side whose size is not known.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace

from sqlglot import exp

from planner.logical import (ASOF_KINDS, Aggregate, CteRef, DependentJoin, Distinct, Filter, Generate, Join, Limit,
                             MaterializedCte, Node, Project, Scan, SetOp, SingleRow, Sort, Values, Window,
                             multiplies_rows)

# Selectivities used when statistics cannot say more (named, not buried in code).
SEL_DEFAULT = 0.5
SEL_RANGE = 1 / 3
SEL_LIKE = 0.1
SEL_EQ_UNKNOWN = 0.05
SEMI_FRACTION = 0.5
DEFAULT_WIDTH = 8.0
# Rows an UNNEST in a select list makes of one row, on a guess (the estimate is then not known).
UNNEST_FANOUT = 4.0


@dataclass(slots=True)
class ColInfo:
    ndv: float
    lo: object = None
    hi: object = None
    width: float = DEFAULT_WIDTH
    null_frac: float = 0.0
    # Distinct values of the column where it came from (its table, before filters and joins):
    # the values a join key is drawn from. None: ndv.
    domain: float | None = None
    # The scan the column was read by and its table's rows: the groups of columns of one table
    # are at most that table's rows, whatever the product of their distinct counts.
    origin: tuple | None = None

    @property
    def dom(self) -> float:
        return self.ndv if self.domain is None else max(self.domain, self.ndv)


@dataclass(slots=True)
class Est:
    rows: float
    cols: dict = field(default_factory=dict)  # column id -> ColInfo
    known: bool = True

    @property
    def width(self) -> float:
        return sum(c.width for c in self.cols.values()) or DEFAULT_WIDTH

    @property
    def bytes(self) -> float:
        return self.rows * self.width


def _literal_value(e: exp.Expression):
    if isinstance(e, exp.Paren):
        return _literal_value(e.this)
    if isinstance(e, (exp.Add, exp.Sub)):
        # `1200 + 11` in a range bound (TPC-DS writes its month windows so).
        a, b = _literal_value(e.this), _literal_value(e.expression)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return a + b if isinstance(e, exp.Add) else a - b
        return None
    if isinstance(e, exp.Literal):
        if e.is_string:
            return e.this
        try:
            return int(e.this)
        except ValueError:
            return float(e.this)
    if isinstance(e, exp.Cast) and isinstance(e.this, exp.Literal) and e.this.is_string:
        t = e.to.this
        try:
            if t == exp.DataType.Type.DATE:
                return dt.date.fromisoformat(e.this.this)
        except ValueError:
            return None
    if isinstance(e, exp.Neg):
        v = _literal_value(e.this)
        return -v if isinstance(v, (int, float)) else None
    return None


def _listed_values(p: exp.Expression) -> dict[str, int]:
    """{column id: n} for the columns a predicate allows at most n constant values of."""
    while isinstance(p, exp.Paren):
        p = p.this
    if isinstance(p, exp.And):
        a, b = _listed_values(p.left), _listed_values(p.right)
        return {c: min(a.get(c, n), b.get(c, n)) for c, n in {**a, **b}.items()}
    if isinstance(p, exp.Or):
        a, b = _listed_values(p.left), _listed_values(p.right)
        return {c: a[c] + b[c] for c in a.keys() & b.keys()}

    def constant(e):
        return not list(e.find_all(exp.Column, exp.Subquery, exp.Select))
    if isinstance(p, exp.EQ):
        for c, other in ((p.this, p.expression), (p.expression, p.this)):
            if isinstance(c, exp.Column) and constant(other):
                return {c.name: 1}
    if isinstance(p, exp.In) and isinstance(p.this, exp.Column) and p.expressions and not p.args.get("query") \
            and all(constant(e) for e in p.expressions):
        return {p.this.name: len(p.expressions)}
    return {}


def _numeric(v):
    if isinstance(v, dt.datetime):
        # Days from the proleptic calendar's start, as for dates: datetime.timestamp() raises for
        # 0001-01-01 (and reads a naive value in the local time zone).
        midnight = v.replace(hour=0, minute=0, second=0, microsecond=0)
        return v.toordinal() + (v - midnight).total_seconds() / 86400
    if isinstance(v, dt.date):
        return v.toordinal()
    if isinstance(v, (int, float)):
        return float(v)
    try:
        from decimal import Decimal
        if isinstance(v, Decimal):
            return float(v)
    except Exception:
        pass
    return None


def _shared_range(a: ColInfo, b: ColInfo) -> tuple[float, float] | None:
    """The share of each column's [lo, hi] range that lies in the other's, where both are known
    numbers or dates."""
    alo, ahi, blo, bhi = (_numeric(v) for v in (a.lo, a.hi, b.lo, b.hi))
    if None in (alo, ahi, blo, bhi) or ahi <= alo or bhi <= blo:
        return None
    common = max(0.0, min(ahi, bhi) - max(alo, blo))
    return common / (ahi - alo), common / (bhi - blo)


class Estimator:
    def __init__(self, catalog):
        self.catalog = catalog
        self._memo: dict[int, tuple[Node, Est]] = {}
        # A materialized CTE's name -> its definition, for estimating the references that read it.
        self._cte_definitions: dict[str, Node] = {}

    def define_cte(self, name: str, definition: Node) -> None:
        """Estimates of CteRef(name) follow this definition's (the latest one given)."""
        self._cte_definitions[name] = definition

    def rows(self, node: Node) -> float:
        return self.estimate(node).rows

    def estimate(self, node: Node) -> Est:
        hit = self._memo.get(id(node))
        if hit is not None and hit[0] is node:
            return hit[1]
        e = self._estimate(node)
        self._memo[id(node)] = (node, e)
        return e

    # ---------------------------------------------------------------- nodes
    def _estimate(self, node: Node) -> Est:
        if isinstance(node, Scan):
            t = self.catalog.table(node.table)
            cols = {}
            for cid, name in node.fields:
                s = t.column(name)
                if s is None:
                    cols[cid] = ColInfo(max(1.0, t.row_count), width=DEFAULT_WIDTH)
                    continue
                ndv = s.distinct if s.distinct is not None else t.row_count
                nf = (s.null_count / t.row_count) if (s.null_count is not None and t.row_count) else 0.0
                cols[cid] = ColInfo(max(1.0, float(ndv)), s.min, s.max, s.avg_width, nf,
                                    origin=(id(node), float(max(t.row_count, 1))))
            return Est(float(t.row_count), cols, True)
        if isinstance(node, Values):
            return Est(float(len(node.rows)), {c: ColInfo(max(1, len(node.rows))) for c in node.ids}, True)
        if isinstance(node, Generate):
            # Exact: the rows were counted when the call was bound; a series has no duplicates.
            return Est(float(node.rows), {node.id: ColInfo(max(1.0, float(node.rows)), node.lo, node.hi)}, True)
        if isinstance(node, MaterializedCte):
            self.define_cte(node.name, node.definition)
            return self.estimate(node.input)
        if isinstance(node, CteRef):
            definition = self._cte_definitions.get(node.name)
            if definition is None:
                return Est(1000.0, {}, False)
            src = self.estimate(definition)
            cols = {cid: src.cols[s] for cid, s in zip(node.ids, node.sources) if s in src.cols}
            return Est(src.rows, cols, src.known)
        if isinstance(node, Filter):
            src = self.estimate(node.input)
            sel = self.selectivity(node.predicate, src)
            out = self._scaled(src, src.rows * sel)
            # A column compared with listed constants keeps at most that many values (`d_year =
            # 2001 OR d_year = 2002`: two years, whatever the rows), so a later GROUP BY it counts
            # its groups right.
            for cid, k in _listed_values(node.predicate).items():
                if cid in out.cols:
                    out.cols[cid] = replace(out.cols[cid], ndv=max(1.0, min(out.cols[cid].ndv, k)))
            return out
        if isinstance(node, Project):
            src = self.estimate(node.input)
            cols = {}
            for cid, e in node.exprs:
                if isinstance(e, exp.Column) and e.name in src.cols:
                    cols[cid] = src.cols[e.name]
                else:
                    refs = [src.cols[c.name].ndv for c in e.find_all(exp.Column) if c.name in src.cols]
                    ndv = min(src.rows, math.prod(refs)) if refs else 1.0
                    cols[cid] = ColInfo(max(1.0, ndv))
            if any(multiplies_rows(e) for _, e in node.exprs):
                return Est(src.rows * UNNEST_FANOUT, cols, False)
            return Est(src.rows, cols, src.known)
        if isinstance(node, Join):
            l, r = self.estimate(node.left), self.estimate(node.right)
            if node.kind in ("semi", "anti"):
                frac = SEMI_FRACTION if node.residual is not None or not node.left_keys else 1.0
                if node.left_keys:
                    # The share of left keys that find a partner: at most ndv(right) / ndv(left).
                    frac = min(frac, self._key_ndv(r, node.right_keys) / self._key_ndv(l, node.left_keys))
                if node.kind == "anti":
                    frac = max(1.0 - frac, 0.1) if node.left_keys else SEMI_FRACTION
                return self._scaled(l, l.rows * frac, l.known and r.known)
            if node.kind in ASOF_KINDS:
                # At most one partner per left row; ASOF LEFT keeps every left row.
                return self._merged(l, r, l.rows)
            pairs = list(zip(node.left_keys, node.right_keys))
            rows = self._join_rows_est(l, r, pairs)
            if node.residual is not None:
                rows *= self.selectivity(node.residual, self._merged(l, r, rows))
            if node.kind == "left":
                rows = max(rows, l.rows)
            elif node.kind == "right":
                rows = max(rows, r.rows)
            elif node.kind == "full":
                rows = max(rows, l.rows + r.rows)
            if node.kind not in ("left", "right", "full") or not node.left_keys:
                return self._merged(l, r, rows)
            # The NULL-extended side's columns are NULL on the rows whose other side found no
            # partner (`LEFT JOIN returns … WHERE returns.key IS NULL`: most sales, not the
            # sales' share of NULL keys).
            nulls = [0.0, 0.0]
            for side, (mine, theirs, mk, tk) in enumerate(((l, r, node.left_keys, node.right_keys),
                                                            (r, l, node.right_keys, node.left_keys))):
                if node.kind in (("left", "full") if side == 0 else ("right", "full")):
                    matched = min(1.0, self._key_ndv(theirs, tk) / self._key_ndv(mine, mk))
                    nulls[1 - side] = min(1.0, mine.rows * (1.0 - matched) / max(rows, 1.0))
            return self._merged(l, r, rows, nulls)
        if isinstance(node, Aggregate):
            src = self.estimate(node.input)
            if not node.groups:
                rows = 1.0
            else:
                ndvs, by_origin = [], {}
                for _, g in node.groups:
                    info = src.cols.get(g.name) if isinstance(g, exp.Column) else None
                    if info is None:
                        ndvs.append(max(1.0, math.sqrt(src.rows)))
                    elif info.origin is None:
                        ndvs.append(info.ndv)
                    else:
                        # Columns of one table: at most its rows together (an item's name, brand,
                        # class and category make at most one group per item).
                        got = by_origin.get(info.origin[0], 1.0) * info.ndv
                        by_origin[info.origin[0]] = min(got, info.origin[1])
                rows = max(1.0, min(src.rows, math.prod(ndvs) * math.prod(by_origin.values())))
            cols = {}
            for cid, g in node.groups:
                info = src.cols.get(g.name) if isinstance(g, exp.Column) else None
                cols[cid] = ColInfo(min(rows, info.ndv) if info else rows, info.lo if info else None,
                                    info.hi if info else None, info.width if info else DEFAULT_WIDTH,
                                    domain=info.dom if info else None, origin=info.origin if info else None)
            for cid, _ in node.aggs:
                cols[cid] = ColInfo(rows, width=16.0)
            return Est(rows, cols, src.known)
        if isinstance(node, Distinct):
            src = self.estimate(node.input)
            rows = max(1.0, min(src.rows, math.prod(c.ndv for c in src.cols.values()) if src.cols else src.rows))
            return self._scaled(src, rows)
        if isinstance(node, Window):
            src = self.estimate(node.input)
            cols = dict(src.cols)
            for cid, _ in node.funcs:
                cols[cid] = ColInfo(src.rows)
            return Est(src.rows, cols, src.known)
        if isinstance(node, DependentJoin):
            # Seen while the binder orders joins, before planner/rules/flatten_dependent_joins.py:
            # a scalar subquery keeps the left rows; EXISTS / IN keep some; otherwise guess one right
            # row per left row.
            l, r = self.estimate(node.left), self.estimate(node.right)
            if node.kind in ("semi", "anti"):
                return self._scaled(l, l.rows * SEMI_FRACTION, False)
            return self._merged(l, r, l.rows if node.scalar or node.kind == "left" else max(l.rows, r.rows))
        if isinstance(node, (Sort, SingleRow)):
            return self.estimate(node.input)
        if isinstance(node, Limit):
            src = self.estimate(node.input)
            rows = src.rows if node.limit is None else min(src.rows, float(node.limit))
            return self._scaled(src, rows)
        if isinstance(node, SetOp):
            l, r = self.estimate(node.left), self.estimate(node.right)
            rows = l.rows + r.rows if node.kind == "union" else (min(l.rows, r.rows) if node.kind == "intersect" else l.rows)
            cols = {}
            for cid, lc, rc in zip(node.ids, node.left.columns, node.right.columns):
                # The distinct values of both inputs: a column of literals ('s', 'c', 'w' in TPC-DS's
                # year_total) has three, not one per row, so `sale_type = 'w'` keeps a third.
                lndv = l.cols[lc].ndv if lc in l.cols else l.rows
                rndv = r.cols[rc].ndv if rc in r.cols else r.rows
                ndv = lndv + rndv if node.kind == "union" else (min(lndv, rndv) if node.kind == "intersect" else lndv)
                cols[cid] = ColInfo(max(1.0, min(rows, ndv)), width=l.cols.get(lc, ColInfo(1)).width)
            return Est(rows, cols, l.known and r.known)
        # Exchanges and other physical wrappers keep their input's size.
        if node.children:
            return self.estimate(node.children[0])
        return Est(1000.0, {}, False)

    def _scaled(self, src: Est, rows: float, known: bool | None = None) -> Est:
        rows = max(rows, 1.0) if src.rows >= 1 else rows
        cols = {k: ColInfo(min(v.ndv, max(rows, 1.0)), v.lo, v.hi, v.width, v.null_frac, v.dom, v.origin)
                for k, v in src.cols.items()}
        return Est(rows, cols, src.known if known is None else known)

    def _merged(self, l: Est, r: Est, rows: float, nulls=(0.0, 0.0)) -> Est:
        """The columns of both sides over `rows` rows; nulls: the share of rows on which each
        side's columns are NULL-extended."""
        cols = {}
        for side, extended in zip((l, r), nulls):
            for k, v in side.cols.items():
                cols[k] = ColInfo(min(v.ndv, max(rows, 1.0)), v.lo, v.hi, v.width,
                                  max(v.null_frac, extended), v.dom, v.origin)
        return Est(max(rows, 1.0), cols, l.known and r.known)

    def key_ndv(self, node: Node, keys) -> float:
        """Distinct values of keys (expressions over node's columns) among node's rows."""
        return self._key_ndv(self.estimate(node), keys)

    def _key_ndv(self, est: Est, keys) -> float:
        ndvs = []
        for k in keys:
            if isinstance(k, exp.Column) and k.name in est.cols:
                ndvs.append(est.cols[k.name].ndv)
            else:
                ndvs.append(est.rows)
        return max(1.0, min(est.rows, math.prod(ndvs)))

    def _join_rows_est(self, l: Est, r: Est, pairs) -> float:
        if not pairs:
            return l.rows * r.rows
        ndv = max(self._key_ndv(l, [a for a, _ in pairs]), self._key_ndv(r, [b for _, b in pairs]))
        if len(pairs) == 1:
            # One key: its values on each side are drawn from the key's domain, the distinct values
            # of the column it came from, whatever filters kept. A dimension filtered to 355 of its
            # 73,049 dates keeps 355/73,049 of the fact rows that join it, not all of them, as the
            # distinct counts left after the filter would say (the fact's 261 dates "contained" in
            # the 355). A key computed by an expression has no domain beyond its ndv.
            (a, b), = pairs
            infos = [side.cols.get(key.name) if isinstance(key, exp.Column) else None for side, key in ((l, a), (r, b))]
            shares = _shared_range(*infos) if None not in infos else None
            for i, info in enumerate(infos):
                if info is not None:
                    # Only the part of a side's domain inside the other side's range can match:
                    # a date dimension's 73,049 keys against sales that span 1,823 of them. A
                    # filter on the dimension is taken to pick dates the facts have (queries ask
                    # about data that is there): a year of dates keeps a fifth of five years' sales.
                    ndv = max(ndv, info.dom * (shares[i] if shares else 1.0))
        return l.rows * r.rows / ndv

    def join_rows(self, a: Node, b: Node, pairs) -> float:
        return self._join_rows_est(self.estimate(a), self.estimate(b), pairs)

    # ---------------------------------------------------------------- predicates
    def selectivity(self, p: exp.Expression, src: Est) -> float:
        s = self._sel(p, src)
        return min(1.0, max(s, 1e-6))

    def _col(self, e, src):
        if isinstance(e, exp.Column) and e.name in src.cols:
            return src.cols[e.name]
        return None

    def _sel(self, p, src: Est) -> float:
        if isinstance(p, exp.Paren):
            return self._sel(p.this, src)
        if isinstance(p, exp.And):
            return self._sel(p.left, src) * self._sel(p.right, src)
        if isinstance(p, exp.Or):
            a, b = self._sel(p.left, src), self._sel(p.right, src)
            return a + b - a * b
        if isinstance(p, exp.Not):
            return 1 - self._sel(p.this, src)
        if isinstance(p, exp.Boolean):
            return 1.0 if p.this else 0.0
        if isinstance(p, exp.EQ):
            a, b = self._col(p.this, src), self._col(p.expression, src)
            if a and b:
                return 1 / max(a.ndv, b.ndv)
            c = a or b
            return 1 / c.ndv if c else SEL_EQ_UNKNOWN
        if isinstance(p, exp.NEQ):
            c = self._col(p.this, src) or self._col(p.expression, src)
            return 1 - (1 / c.ndv if c else SEL_EQ_UNKNOWN)
        if isinstance(p, (exp.LT, exp.LTE, exp.GT, exp.GTE)):
            return self._range(p, src)
        if isinstance(p, exp.Between):
            c = self._col(p.this, src)
            lo, hi = _literal_value(p.args["low"]), _literal_value(p.args["high"])
            if c is not None and lo is not None and hi is not None:
                f = self._fraction(c, lo, hi)
                if f is not None:
                    return f
            return SEL_RANGE / 2
        if isinstance(p, exp.In):
            c = self._col(p.this, src)
            k = len(p.expressions)
            if c is not None and k:
                return min(1.0, k / c.ndv)
            return min(1.0, SEL_EQ_UNKNOWN * max(k, 1))
        if isinstance(p, (exp.Like, exp.ILike)):
            # sqlglot writes `x NOT LIKE p` as a Like with negate set, not inside a Not.
            return 1 - SEL_LIKE if p.args.get("negate") else SEL_LIKE
        if isinstance(p, exp.Is):
            c = self._col(p.this, src)
            return c.null_frac if c is not None else 0.1
        return SEL_DEFAULT

    def _fraction(self, c: ColInfo, lo, hi) -> float | None:
        cmin, cmax = _numeric(c.lo), _numeric(c.hi)
        a, b = _numeric(lo), _numeric(hi)
        if None in (cmin, cmax, a, b) or cmax <= cmin:
            return None
        a, b = max(a, cmin), min(b, cmax)
        return max(0.0, (b - a) / (cmax - cmin))

    def _range(self, p, src) -> float:
        left_col, right_col = self._col(p.this, src), self._col(p.expression, src)
        if left_col is not None and right_col is None:
            c, v, op = left_col, _literal_value(p.expression), type(p)
        elif right_col is not None and left_col is None:
            flip = {exp.LT: exp.GT, exp.LTE: exp.GTE, exp.GT: exp.LT, exp.GTE: exp.LTE}
            c, v, op = right_col, _literal_value(p.this), flip[type(p)]
        else:
            return SEL_RANGE
        if v is None:
            return SEL_RANGE
        if op in (exp.LT, exp.LTE):
            f = self._fraction(c, c.lo, v)
        else:
            f = self._fraction(c, v, c.hi)
        return SEL_RANGE if f is None else f
