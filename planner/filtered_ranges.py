"""Balanced reads of a table written in a column's order, filtered to a range of that column.

Row groups are dealt out to the ranks in runs (executors/scan.py), so that each rank's share spans
the whole table. A table written in date order (TPC-DS inventory, a log by time) filtered to a
few weeks keeps rows in a few consecutive row groups, which then sit in one rank's run: that rank
computes the query alone. Here the scan instead reads a range of the column per rank, with
splitters that divide the rows the filter can keep (those of the row groups whose statistics
meet its range, interpolated within a group) evenly; DuckDB skips the other row groups by their
statistics. The scan is then range-partitioned on the column, as a co-partitioned one is
(planner/copartition.py).

The range comes from the filter over the scan (comparisons, BETWEEN and IN lists of the column
with constants), or from an inner or semi join of the column with a filtered small table (a date
dimension filtered to a year): the small table's key range under its filter is read when the query
is planned (`key_range_of`, given by the engine). The big table's scan is then also filtered to
that range, which no row outside it can join (DuckDB's own join filter did not skip the row
groups below a rank's range); a plan is made again whenever a table changes.

A row whose column is NULL is read by no rank: the filter or the join above drops it (the column
reaches them unchanged, through filters, projections and joins).
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import replace

from sqlglot import exp

from planner.logical import Filter, Join, Node, Project, Query, Scan, col, column_origin, conjuncts, replace_scans, walk

# Below this share of the table's rows kept by the filter's range, the scan is read by ranges.
KEPT_MAX_SHARE = 0.75
# Tables smaller than this are read as they are (a rank's share stays in memory between queries).
BALANCED_MIN_ROWS = 1_000_000
# Sets BALANCED_MIN_ROWS (the tests set 0, so that their small tables are read by ranges too).
BALANCED_MIN_ROWS_ENV = "FLOCKSQL_BALANCED_MIN_ROWS"
# A joined table whose key range is read at planning time holds at most this many rows.
PROBED_MAX_ROWS = 1_000_000


def balance_filtered_scans(query: Query, catalog, nranks: int, key_range_of=None) -> Query:
    """key_range_of(table, column, predicate SQL over the table's columns) -> (lowest, highest)
    or None: reads a small table's key range under a filter (None: join-derived ranges are off)."""
    if nranks <= 1:
        return query
    min_rows = int(os.environ.get(BALANCED_MIN_ROWS_ENV, BALANCED_MIN_ROWS))
    bounds: dict[int, dict[str, list]] = {}  # id(scan) -> column -> [lowest, highest]
    joined: set[tuple[int, str]] = set()  # (id(scan), column) bounded by a join, not a filter

    def bound(scan: Scan, column: str, lo, hi, by_join: bool = False) -> None:
        if by_join:
            joined.add((id(scan), column))
        have = bounds.setdefault(id(scan), {}).setdefault(column, [None, None])
        if lo is not None:
            have[0] = lo if have[0] is None else max(have[0], lo)
        if hi is not None:
            have[1] = hi if have[1] is None else min(have[1], hi)

    for n in walk(query.root):
        if isinstance(n, Filter) and isinstance(n.input, Scan):
            names = dict(n.input.fields)
            for conjunct in conjuncts(n.predicate):
                found = _bound(conjunct)
                if found is not None and found[0] in names:
                    bound(n.input, names[found[0]], found[1], found[2])
        if isinstance(n, Join) and n.kind in ("inner", "semi") and key_range_of is not None:
            for a, b in zip(n.left_keys, n.right_keys):
                for big_side, key, small_side, small_key in ((n.left, a, n.right, b), (n.right, b, n.left, a)):
                    found = _joined_range(big_side, key, small_side, small_key, catalog, key_range_of, min_rows)
                    if found is not None:
                        bound(*found, by_join=True)

    def ranged(n: Scan) -> Node:
        if id(n) in bounds and n.key_range is None:
            table = catalog.table(n.table)
            if table.row_count < min_rows:
                return n
            for column, (lo, hi) in sorted(bounds[id(n)].items()):
                if column in table.ordered:
                    splitters = _splitters(table.ordered[column], lo, hi, nranks)
                    if splitters is None:
                        continue
                    read = replace(n, key_range=(column, splitters))
                    if (id(n), column) not in joined:
                        return read
                    cid = next(c for c, name in n.fields if name == column)
                    return Filter(read, exp.Between(this=col(cid), low=_sql_constant(lo),
                                                      high=_sql_constant(hi)))
        return n
    return replace(query, root=replace_scans(query.root, ranged))


def _joined_range(big_side: Node, key, small_side: Node, small_key, catalog, key_range_of, min_rows: int):
    """(scan, column, lowest, highest) for a big table's ordered column joined to a small
    table filtered on its own (Filters, and Projects of its columns, over its Scan)."""
    if not (isinstance(key, exp.Column) and isinstance(small_key, exp.Column)):
        return None
    leaf = column_origin(big_side, key.name)
    if leaf is None or not isinstance(leaf[0], Scan):
        return None
    big = (leaf[0], dict(leaf[0].fields)[leaf[1]])
    if big[1] not in catalog.table(big[0].table).ordered or \
            catalog.table(big[0].table).row_count < min_rows:
        return None
    predicates, node, cid = [], small_side, small_key.name
    while not isinstance(node, Scan):
        if isinstance(node, Filter):
            predicates.append(node.predicate)
            node = node.input
        elif isinstance(node, Project) and isinstance(dict(node.exprs).get(cid), exp.Column):
            cid, node = dict(node.exprs)[cid].name, node.input
        else:
            return None
    table = catalog.table(node.table)
    names = dict(node.fields)
    if not predicates or cid not in names or table.row_count > PROBED_MAX_ROWS or table.format != "parquet":
        return None
    texts = []
    for predicate in predicates:
        if predicate.find(exp.Select, exp.Subquery) is not None:
            return None
        named = predicate.copy()
        for c in list(named.find_all(exp.Column)):
            if c.name not in names:
                return None
            c.replace(exp.column(names[c.name], quoted=True))
        texts.append(f"({named.sql('duckdb')})")
    found = key_range_of(node.table, names[cid], " AND ".join(texts))
    if found is None:
        return None
    return big[0], big[1], found[0], found[1]


def _constant(e: exp.Expression):
    """An integer or a date that `e` is, else None."""
    if isinstance(e, exp.Paren):
        return _constant(e.this)
    if isinstance(e, exp.Literal) and not e.is_string:
        try:
            return int(e.this)
        except ValueError:
            return None
    if isinstance(e, exp.Neg):
        value = _constant(e.this)
        return -value if isinstance(value, int) else None
    if isinstance(e, (exp.Cast, exp.TryCast)) and e.to.this in (exp.DataType.Type.DATE,) and \
            isinstance(e.this, exp.Literal) and e.this.is_string:
        try:
            return dt.date.fromisoformat(e.this.this)
        except ValueError:
            return None
    return None


def _sql_constant(v) -> exp.Expression:
    if isinstance(v, dt.date):
        return exp.cast(exp.Literal.string(v.isoformat()), exp.DataType.Type.DATE)
    return exp.Literal.number(v)


def _bound(e: exp.Expression):
    """(column id, lowest, highest) that `e` lets the column hold (None: open), or None."""
    if isinstance(e, exp.Between) and isinstance(e.this, exp.Column):
        lo, hi = _constant(e.args["low"]), _constant(e.args["high"])
        return (e.this.name, lo, hi) if lo is not None and hi is not None else None
    if isinstance(e, exp.In) and isinstance(e.this, exp.Column) and e.expressions and not e.args.get("query"):
        values = [_constant(v) for v in e.expressions]
        if any(v is None for v in values) or len({type(v) for v in values}) > 1:
            return None
        return e.this.name, min(values), max(values)
    flip = {exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.LTE: exp.GTE, exp.EQ: exp.EQ}
    if type(e) not in flip:
        return None
    column, value, kind = e.this, e.expression, type(e)
    if not isinstance(column, exp.Column):
        column, value, kind = e.expression, e.this, flip[type(e)]
    value = _constant(value)
    if not isinstance(column, exp.Column) or value is None:
        return None
    if kind is exp.EQ:
        return column.name, value, value
    return (column.name, value, None) if kind in (exp.GT, exp.GTE) else (column.name, None, value)


def _splitters(ranges, lo, hi, nranks: int) -> tuple | None:
    """Splitters that divide the rows of `ranges` ((min, max, rows) per row group, ascending and
    disjoint) within [lo, hi] evenly over the ranks (a value range's rows taken as spread evenly
    over it), or None where that range keeps most of the rows or none."""
    if not ranges or (lo is not None and hi is not None and lo > hi):
        return None
    kind = type(ranges[0][0])
    if (lo is not None and not isinstance(lo, kind)) or (hi is not None and not isinstance(hi, kind)) or \
            kind not in (int, dt.date):
        return None
    ordinal = (lambda v: v) if kind is int else (lambda v: v.toordinal())
    value = (lambda o: o) if kind is int else dt.date.fromordinal
    total = sum(r[2] for r in ranges)
    kept = []  # (first, last, rows) of each group's part within [lo, hi], as ordinals
    for g_lo, g_hi, rows in ranges:
        a, b = ordinal(g_lo), ordinal(g_hi)
        c = max(a, ordinal(lo)) if lo is not None else a
        d = min(b, ordinal(hi)) if hi is not None else b
        if c <= d and rows:
            kept.append((c, d, rows * (d - c + 1) / (b - a + 1)))
    rows_kept = sum(r[2] for r in kept)
    if not kept or rows_kept >= total * KEPT_MAX_SHARE:
        return None
    out, acc, i = [], 0.0, 0
    for r in range(1, nranks):
        target = rows_kept * r / nranks
        while i < len(kept) - 1 and acc + kept[i][2] < target:
            acc += kept[i][2]
            i += 1
        first, last, rows = kept[i]
        at = first + (target - acc) / rows * (last - first + 1)
        out.append(value(max(first, min(last, round(at)))))
    return tuple(out)
