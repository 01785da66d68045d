"""inner_to_semi_joins: where only which rows exist matters, not how often, an inner join one of
whose sides gives nothing but its join condition becomes a semi join on the other side.

Before:  Join(semi, ws.o = x.o) ← ws, Project[x.o] ← Join(inner, wr.o = ww.o) ← web_returns wr, ws_wh ww
After:   Join(semi, ws.o = x.o) ← ws, Project[x.o] ← Join(semi, wr.o = ww.o) ← web_returns wr, ws_wh ww

Such places: the right side of a SEMI or ANTI join (`IN (SELECT …)`, `EXISTS`), the input of a
DISTINCT, and a kept CTE that is read only from such places. TPC-DS q95's `ws_wh` (web_sales joined
to itself on the order number, 6.6 M rows at SF 1) and its join with web_returns (8.7 M rows) were
built row by row, only to be asked which order numbers they hold; as semi joins they keep one row
per web_sales and web_returns row that has a partner.

Why the answer stays the same: a semi join keeps each row of its side that has at least one
partner, so it keeps the same distinct rows as the inner join, projected to that side's columns;
only their counts differ, which these places do not see.
"""
from __future__ import annotations

from dataclasses import replace

from planner.logical import CteRef, Distinct, Filter, Join, MaterializedCte, Node, Project, Query, column_ids


class _Rewriter:
    def __init__(self):
        # CTE name -> [(read where counts do not matter, the definition's columns it reads)]
        self.reads: dict[str, list[tuple[bool, set[str]]]] = {}

    def rewrite(self, node: Node, free: bool, need: set[str] | None) -> Node:
        """node rewritten; free: its rows' counts do not matter above; need: the columns of node
        read above (None: all)."""
        if isinstance(node, MaterializedCte):
            body = self.rewrite(node.input, free, need)
            reads = self.reads.get(node.name, [])
            every_free = bool(reads) and all(f for f, _ in reads)
            cols = set().union(*(c for _, c in reads)) if every_free else None
            return replace(node, input=body, definition=self.rewrite(node.definition, every_free, cols))
        if isinstance(node, CteRef):
            self.reads.setdefault(node.name, []).append(
                (free, {s for i, s in zip(node.ids, node.sources) if need is None or i in need}))
            return node
        if isinstance(node, Project):
            used = None
            if need is not None:
                used = set().union(*(column_ids(e) for cid, e in node.exprs if cid in need))
            return node.with_children(self.rewrite(node.input, free, used))
        if isinstance(node, Filter):
            used = None if need is None else need | column_ids(node.predicate)
            return node.with_children(self.rewrite(node.input, free, used))
        if isinstance(node, Distinct):
            # Its rows are told apart by every column, unless their counts do not matter above.
            return node.with_children(self.rewrite(node.input, True, need if free else set(node.input.columns)))
        if isinstance(node, Join):
            return self._join(node, free, need)
        return node.with_children(*(self.rewrite(c, False, None) for c in node.children))

    def _join(self, node: Join, free: bool, need: set[str] | None) -> Node:
        cond = set().union(*(column_ids(k) for k in node.left_keys + node.right_keys))
        if node.residual is not None:
            cond |= column_ids(node.residual)
        above = set(node.left.columns) | set(node.right.columns) if need is None else need
        lneed, rneed = (above | cond) & set(node.left.columns), (above | cond) & set(node.right.columns)
        if node.kind in ("semi", "anti"):
            return node.with_children(self.rewrite(node.left, free, lneed), self.rewrite(node.right, True, rneed))
        if node.kind == "inner" and free and need is not None and node.left_keys:
            if not need & set(node.right.columns):
                return Join(self.rewrite(node.left, True, lneed), self.rewrite(node.right, True, rneed), "semi",
                            node.left_keys, node.right_keys, node.residual)
            if not need & set(node.left.columns):
                return Join(self.rewrite(node.right, True, rneed), self.rewrite(node.left, True, lneed), "semi",
                            node.right_keys, node.left_keys, node.residual)
        if node.kind == "inner" and free:
            # A side's duplicates only repeat the join's rows.
            return node.with_children(self.rewrite(node.left, True, lneed), self.rewrite(node.right, True, rneed))
        return node.with_children(self.rewrite(node.left, False, None), self.rewrite(node.right, False, None))


def inner_to_semi_joins(query: Query) -> Query:
    return replace(query, root=_Rewriter().rewrite(query.root, False, None))
