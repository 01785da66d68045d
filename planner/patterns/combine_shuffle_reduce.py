"""combine-shuffle-reduce: GROUP BY and DISTINCT as a local partial aggregate (combine), a shuffle of
the partial states by the group keys, and a final aggregate (reduce).

The combine is worth it when groups are far fewer than rows; when groups ≈ rows the plain
shuffle-compute (shuffle raw rows, aggregate once) is cheaper and wins on cost. An input already
hash-partitioned on (a subset of) the group keys is aggregated in place.
"""
from __future__ import annotations

from sqlglot import exp

from planner.logical import Aggregate, Distinct, Project, Window, col
from planner.patterns.base import COMBINE_SHUFFLE_REDUCE as NAME
from planner.patterns.base import Alternative, Exchange, aggregate_hash_positions, hash_dist, key_ids

SIMPLE = (exp.Sum, exp.Min, exp.Max, exp.LogicalAnd, exp.LogicalOr)

# Variance and standard deviation: (sample, square root) per function.
SPREAD = {exp.Variance: (True, False), exp.VariancePop: (False, False), exp.Stddev: (True, True),
          exp.StddevSamp: (True, True), exp.StddevPop: (False, True)}


def _num(v):
    return exp.Literal.number(v)


def _double(e):
    return exp.Cast(this=e, to=exp.DataType.build("DOUBLE"))


def split_aggregates(aggs, new_id, partition_keys=None):
    """Split aggregates into partial and final parts.

    Returns (partial, windows, final, post) or None when some aggregate cannot be split (DISTINCT,
    ordered, statistical without partition_keys). partial and final are (id, aggregate) pairs;
    windows are (id, window) pairs the final aggregate reads, computed over the partial states
    partitioned by partition_keys (the partial group columns; () for one group); post maps each
    original aggregate id to an expression over the final ids.
    """
    partial, windows, final, post = [], [], [], {}
    spreads: dict = {}  # (argument, FILTER) -> the final ids its states were combined into
    for aid, agg in aggs:
        flt = None
        inner = agg
        if isinstance(agg, exp.Filter):
            flt, inner = agg.expression, agg.this
        if any(isinstance(n, exp.Distinct) for n in inner.walk()) or isinstance(inner, exp.AggFunc) is False:
            return None
        if inner.args.get("order") is not None:
            return None

        def part(e):
            return exp.Filter(this=e, expression=flt.copy()) if flt is not None else e

        if isinstance(inner, exp.Count):
            p, f = new_id("part_count"), new_id("count")
            partial.append((p, part(inner.copy())))
            final.append((f, exp.Sum(this=col(p))))
            post[aid] = exp.Cast(this=exp.func("coalesce", col(f), exp.Literal.number(0)), to=exp.DataType.build("BIGINT"))
        elif type(inner) in SIMPLE:
            p, f = new_id(f"part_{inner.key}"), new_id(inner.key)
            partial.append((p, part(inner.copy())))
            final.append((f, inner.__class__(this=col(p))))
            post[aid] = col(f)
        elif isinstance(inner, exp.Avg):
            ps, pc, fs, fc = new_id("part_sum"), new_id("part_count"), new_id("sum"), new_id("count")
            partial += [(ps, part(exp.Sum(this=inner.this.copy()))), (pc, part(exp.Count(this=inner.this.copy())))]
            final += [(fs, exp.Sum(this=col(ps))), (fc, exp.Sum(this=col(pc)))]
            post[aid] = exp.Case(ifs=[exp.If(this=exp.EQ(this=col(fc), expression=exp.Literal.number(0)), true=exp.Null())],
                                 default=exp.Div(this=exp.Cast(this=col(fs), to=exp.DataType.build("DOUBLE")),
                                                 expression=col(fc)))
        elif type(inner) in SPREAD and partition_keys is not None:
            key = (inner.this.sql("duckdb"), flt.sql("duckdb") if flt is not None else None)
            if key not in spreads:
                states, combined, spreads[key] = _spread_states(inner.this, part, partition_keys, new_id)
                partial += states[0]
                windows += states[1]
                final += combined
            post[aid] = _spread_value(inner, *spreads[key])
        else:
            return None
    return partial, windows, final, post


def _spread_states(x, part, partition_keys, new_id):
    """Variance and standard deviation from per-rank states (count n, mean m, sum of squared
    deviations q), combined as DuckDB combines its threads' states: q summed, plus the spread of
    the states' means, Σ n·(m − m̄)². That spread is taken around the group's smallest state mean c
    (Σ n·d² − (Σ n·d)²/Σ n with d = m − c), never around zero: sums of squares of the values or
    means themselves would cancel to noise for values far from zero (integers near their limits),
    and equal means give exactly 0, as in DuckDB.

    Returns ((partial states, windows), final aggregates, their ids)."""
    pn, pm, pq = new_id("part_count"), new_id("part_mean"), new_id("part_m2")
    partial = [(pn, part(exp.Count(this=x.copy()))), (pm, part(exp.Avg(this=x.copy()))),
               (pq, exp.Mul(this=part(exp.VariancePop(this=x.copy())), expression=part(exp.Count(this=x.copy()))))]
    lo = new_id("group_lo_mean")
    windows = [(lo, exp.Window(this=exp.Min(this=col(pm)), partition_by=[col(k) for k in partition_keys]))]
    weighted = lambda e: exp.Mul(this=_double(col(pn)), expression=e)  # noqa: E731
    dev = exp.Paren(this=exp.Sub(this=col(pm), expression=col(lo)))
    ids = (new_id("count"), new_id("m2"), new_id("dev_sum"), new_id("dev_squares"), new_id("not_finite"))
    fn, fq, f1, f2, fbad = ids
    final = [(fn, exp.Sum(this=col(pn))), (fq, exp.Sum(this=col(pq))), (f1, exp.Sum(this=weighted(dev))),
             (f2, exp.Sum(this=weighted(exp.Pow(this=dev, expression=_num(2))))),
             # A NaN or infinite value makes DuckDB's running sums NaN once a group has two rows.
             (fbad, exp.LogicalOr(this=exp.Not(this=exp.func("isfinite", col(pm)))))]
    return (partial, windows), final, ids


def _spread_value(agg, fn, fq, f1, f2, fbad):
    """The aggregate's value from the combined states (DuckDB's NULL and NaN cases included)."""
    sample, root = SPREAD[type(agg)]
    between = exp.Sub(this=col(f2), expression=exp.Div(this=exp.Mul(this=col(f1), expression=col(f1)),
                                                        expression=_double(col(fn))))
    m2 = exp.Add(this=col(fq), expression=exp.func("greatest", between, exp.Literal.number("0.0")))
    value = exp.Div(this=exp.Paren(this=m2), expression=exp.Paren(
        this=exp.Sub(this=col(fn), expression=_num(1))) if sample else col(fn))
    if root:
        value = exp.func("sqrt", value)
    many = exp.GT(this=col(fn), expression=_num(1))
    ifs = [exp.If(this=exp.And(this=many, expression=exp.func("coalesce", col(fbad), exp.false())),
                  true=exp.Cast(this=exp.Literal.string("NaN"), to=exp.DataType.build("DOUBLE"))),
           exp.If(this=many, true=value)]
    if not sample:  # DuckDB's population variance of a single value is 0
        ifs.append(exp.If(this=exp.EQ(this=col(fn), expression=_num(1)), true=exp.Literal.number("0.0")))
    return exp.Case(ifs=ifs, default=exp.Null())


def combine(node: Aggregate, child, new_id):
    """Partial aggregate over child: returns (partial node, final-side builder) or None."""
    pgroups = [(new_id("part_group"), g) for _, g in node.groups]
    parts = split_aggregates(node.aggs, new_id, tuple(p for p, _ in pgroups))
    if parts is None:
        return None
    partial, windows, final, post = parts
    part_node = Aggregate(child, tuple(pgroups), tuple(partial))

    def reduce(exchanged):
        states = Window(exchanged, tuple(windows)) if windows else exchanged
        fin = Aggregate(states, tuple((gid, col(p)) for (gid, _), (p, _) in zip(node.groups, pgroups)), tuple(final))
        proj = tuple((gid, col(gid)) for gid, _ in node.groups) + tuple((aid, post[aid]) for aid, _ in node.aggs)
        return Project(fin, proj)
    return part_node, [p for p, _ in pgroups], reduce


def alternatives(node, kids, ctx) -> list[Alternative]:
    if isinstance(node, Distinct):
        node = Aggregate(node.input, tuple((c, col(c)) for c in node.input.columns), ())
        as_distinct = True
    else:
        as_distinct = False
    if not isinstance(node, Aggregate) or not node.groups:
        return []
    k = kids[0]
    if k.dist.kind == "replicated":
        return []
    p = ctx.params
    gids = [cid for cid, _ in node.groups]
    keys = key_ids([g for _, g in node.groups])

    def relabel(n):
        return n
    if keys is not None and k.dist.hashed_within(keys):
        mapping = {src: {gid} for gid, src in zip(gids, keys)}
        dist = k.dist.rename(mapping)
        return [Alternative(NAME, ctx.rows(node.input) / ctx.nranks * p.agg_row,
                            lambda: (node.with_children(k.node), dist),
                            "input already partitioned on the group keys: no shuffle")]
    split = combine(node, k.node, ctx.new_id)
    if split is None:
        return []
    part_node, pids, reduce = split
    n_in = ctx.rows(node.input)
    groups = ctx.rows(node)
    per_rank = min(n_in / ctx.nranks, groups)
    width = max(ctx.est.estimate(node).width, 8.0)
    cost = n_in / ctx.nranks * p.agg_row + p.shuffle(per_rank * ctx.nranks * width, ctx.nranks, per_rank * ctx.nranks) + per_rank * p.agg_row

    on = aggregate_hash_positions(node, ctx)

    def lower():
        return (reduce(Exchange(part_node, "shuffle", tuple(col(pids[i]) for i in on))),
                hash_dist([gids[i] for i in on]))
    return [Alternative(NAME, cost, lower, "partial aggregate, shuffle partial states, final aggregate"
                        if not as_distinct else "local DISTINCT, shuffle, DISTINCT")]
