"""combine-shuffle-reduce: GROUP BY and DISTINCT as a local partial aggregate (combine), a shuffle of
the partial states by the group keys, and a final aggregate (reduce).

The combine is worth it when groups are far fewer than rows; when groups ≈ rows the plain
shuffle-compute (shuffle raw rows, aggregate once) is cheaper and wins on cost. An input already
hash-partitioned on (a subset of) the group keys is aggregated in place.
"""
from __future__ import annotations

from sqlglot import exp

from planner.logical import Aggregate, Distinct, Project, col
from planner.patterns.base import COMBINE_SHUFFLE_REDUCE as NAME
from planner.patterns.base import Alternative, Exchange, hash_dist, key_ids

SIMPLE = (exp.Sum, exp.Min, exp.Max, exp.LogicalAnd, exp.LogicalOr)


def split_aggregates(aggs, new_id):
    """Split aggregates into partial and final parts.

    Returns (partial, final, post) or None when some aggregate cannot be split (DISTINCT, ordered,
    statistical). partial and final are (id, aggregate) pairs; post maps each original aggregate id
    to an expression over the final ids.
    """
    partial, final, post = [], [], {}
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
        else:
            return None
    return partial, final, post


def combine(node: Aggregate, child, new_id):
    """Partial aggregate over child: returns (partial node, final-side builder) or None."""
    parts = split_aggregates(node.aggs, new_id)
    if parts is None:
        return None
    partial, final, post = parts
    pgroups = [(new_id("part_group"), g) for _, g in node.groups]
    part_node = Aggregate(child, tuple(pgroups), tuple(partial))

    def reduce(exchanged):
        fin = Aggregate(exchanged, tuple((gid, col(p)) for (gid, _), (p, _) in zip(node.groups, pgroups)), tuple(final))
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

    def lower():
        return reduce(Exchange(part_node, "shuffle", tuple(col(x) for x in pids))), hash_dist(gids)
    return [Alternative(NAME, cost, lower, "partial aggregate, shuffle partial states, final aggregate"
                        if not as_distinct else "local DISTINCT, shuffle, DISTINCT")]
