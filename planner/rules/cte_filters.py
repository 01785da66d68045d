"""cte_filters: the filters every reader of a kept CTE applies, ORed, pushed into its definition.

Before:  MaterializedCte inv ← Aggregate[by d_moy …] ← …date_dim…
         ├ Filter[d_moy = 1] ← CteRef inv
         └ Filter[d_moy = 2] ← CteRef inv
After:   MaterializedCte inv ← Aggregate[by d_moy …] ← …Filter[d_moy = 1 OR d_moy = 2] ← date_dim…
         (the readers keep their own filters)

A CTE is kept (computed once) when it is read more than once and ends in an aggregate (see
planner/cte_materialization.py); computed whole, it holds the rows no reader wants (TPC-DS q39:
twelve months of inventory grouped, two read). Rows that pass no reader's filter can be dropped
before the CTE is computed, as DuckDB does (its filter pushdown into materialized CTEs). The
disjunction is applied over the kept rows, and goes deeper through filters, DISTINCT, sorts,
projections and group keys that pass a column on unchanged (or a constant: a UNION branch's tag),
into the sides of a join that the join never NULL-extends, and into each input of a set operation
whose column there has the same type; a conjunct that reads a column computed on the way (an aggregate's value)
stays behind, which leaves a weaker filter, still implied by the readers', to go on.

Only conjuncts that cannot raise are pushed (planner/rules/push_filters.py's cannot_raise): pushed
down, a conjunct meets rows that a filter of the definition would have dropped first, and a cast
or a division there could fail on them.
"""
from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from planner.logical import (CteRef, Distinct, Filter, Join, MaterializedCte, Node, Query, SetOp, Sort, and_all, col,
                             column_ids, conjuncts, walk)
from planner.rules.push_filters import (KEPT_SIDES, cannot_raise, constant_value, passed_columns, setop_input_columns,
                                        substitute)


def _rename(e: exp.Expression, mapping: dict[str, str]) -> exp.Expression:
    return substitute(e, {k: col(v) for k, v in mapping.items()})


def _readers(node: Node, name: str, out: list):
    """Appends, for each reference to CTE `name` under node, the conjuncts of the filters right
    above it (an empty list for a reference read unfiltered)."""
    if isinstance(node, Filter):
        preds, n = [], node
        while isinstance(n, Filter):
            preds += conjuncts(n.predicate)
            n = n.input
        if isinstance(n, CteRef) and n.name == name:
            out.append((n, preds))
            return
    elif isinstance(node, CteRef) and node.name == name:
        out.append((node, []))
        return
    for c in node.children:
        _readers(c, name, out)


def _reader_terms(body: Node, name: str) -> list[list[exp.Expression]] | None:
    """Each reader's pushable conjuncts over the definition's columns (the filter is the OR of
    the terms, each the AND of its conjuncts), or None when some reader keeps rows no filter of
    its own can tell apart."""
    readers: list = []
    _readers(body, name, readers)
    if not readers:
        return None
    terms, seen = [], set()
    for ref, preds in readers:
        mapping = dict(zip(ref.ids, ref.sources))
        safe = [_rename(p, mapping) for p in preds if cannot_raise(p) and column_ids(p) <= set(mapping)]
        if not safe:
            return None
        key = tuple(p.sql("duckdb") for p in safe)
        if key not in seen:
            seen.add(key)
            terms.append(safe)
    return terms


def _predicate(terms: list[list[exp.Expression]]) -> exp.Expression:
    ors = [and_all(t) for t in terms]
    out = ors[0]
    for t in ors[1:]:
        out = exp.Or(this=exp.Paren(this=out), expression=exp.Paren(this=t))
    return out


def _weaken(terms, allowed: set[str]):
    """The terms with the conjuncts that read other columns than `allowed` dropped: a filter the
    original implies. None when a term loses every conjunct (it would keep every row)."""
    out = []
    for t in terms:
        kept = [p for p in t if column_ids(p) <= allowed]
        if not kept and t:
            return None
        out.append(kept)
    return out


def _filtered(node: Node, terms) -> Node:
    if any(not t for t in terms):
        return node
    return Filter(node, _predicate(terms) if terms else exp.false())


def _renamed(terms, mapping: dict[str, exp.Expression]):
    """The terms over new columns, constant conjuncts decided: a term with a false one dropped
    (`'c' = 's'`: no reader wants this UNION branch's rows), true ones left out. An empty list is
    a filter no row passes; a term left with no conjunct, one every row passes."""
    out, seen = [], set()
    for t in terms:
        kept, dead = [], False
        for p in t:
            p = substitute(p, mapping)
            value = constant_value(p)
            if value is False:
                dead = True
                break
            if value is None:
                kept.append(p)
        key = tuple(p.sql("duckdb") for p in kept)
        if not dead and key not in seen:
            seen.add(key)
            out.append(kept)
    return out


class _Pusher:
    def __init__(self, types: dict):
        self.types = types

    def push(self, node: Node, terms) -> Node:
        """node with the OR of the terms applied as deep as it stays a filter: where a column
        cannot go deeper (an aggregate's value, a computed projection), the conjuncts reading it
        stay behind and the rest go on."""
        if any(not t for t in terms):
            return node  # a term every row passes
        if isinstance(node, (Filter, Distinct, Sort)):
            return node.with_children(self.push(node.input, terms))
        passed = passed_columns(node)
        if passed:
            weaker = _weaken(terms, set(passed))
            if weaker is None:
                return node
            return node.with_children(self.push(node.input, _renamed(weaker, passed)))
        if isinstance(node, Join):
            kids = list(node.children)
            for side in KEPT_SIDES.get(node.kind, ()):
                weaker = _weaken(terms, set(kids[side].columns))
                if weaker is not None:
                    kids[side] = self.push(kids[side], weaker)
            return node.with_children(*kids)
        if isinstance(node, SetOp):
            # A row passes the filter after the set operation as it does before it, on each input.
            kids = list(node.children)
            for side, kid in enumerate(kids):
                mapping = setop_input_columns(node, side, self.types)
                weaker = _weaken(terms, set(mapping))
                if weaker is not None:
                    kids[side] = self.push(kid, _renamed(weaker, mapping))
            return node.with_children(*kids)
        return _filtered(node, terms)


def _rewrite(node: Node, pusher: _Pusher) -> Node:
    node = node.with_children(*(_rewrite(c, pusher) for c in node.children)) if node.children else node
    if not isinstance(node, MaterializedCte):
        return node
    terms = _reader_terms(node.input, node.name)
    if terms is None:
        return node
    # The whole filter over the kept rows, and as much of it as goes deeper below.
    definition = _filtered(pusher.push(node.definition, terms), terms)
    return node.with_children(definition, node.input)


def push_reader_filters_into_ctes(query: Query) -> Query:
    if not any(isinstance(n, MaterializedCte) for n in walk(query.root)):
        return query
    return replace(query, root=_rewrite(query.root, _Pusher(query.types)))
