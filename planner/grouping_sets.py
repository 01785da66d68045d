"""GROUPING SETS, ROLLUP and CUBE: which key columns each grouping set keeps, and GROUPING().

The binder plans `GROUP BY ROLLUP (a, b)` as one aggregate over expanded rows: every input row is
repeated once per grouping set (a cross join with a VALUES list of set numbers), the keys a set
does not keep are NULL in its copy, and the aggregate groups by (keys, set number). So the three
sets (a, b), (a), () are a single combine-shuffle-reduce, and a duplicated set gives duplicated
rows as the standard (and DuckDB) say.

    >>> expand(parse("GROUP BY a, ROLLUP (b, c)"))
    ([a, b, c], [{0, 1, 2}, {0, 1}, {0}])
"""
from __future__ import annotations

import itertools

from sqlglot import exp

from engine.errors import CatalogError, NotSupportedError

# More sets than this is refused rather than multiplying every row by it (CUBE of 12 keys).
MAX_SETS = 4096


def has_grouping_sets(group: exp.Group | None) -> bool:
    if group is None:
        return False
    if any(group.args.get(k) for k in ("rollup", "cube", "grouping_sets")):
        return True
    return any(isinstance(g, (exp.Rollup, exp.Cube, exp.GroupingSets)) for g in group.expressions)


def expand(group: exp.Group, key_of) -> tuple[list[exp.Expression], list[frozenset[int]]]:
    """(the distinct key expressions, in first-seen order; the grouping sets as sets of their
    indices). key_of(e) gives the text that identifies an expression."""
    keys: list[exp.Expression] = []
    index: dict[str, int] = {}

    def key(e: exp.Expression) -> int:
        k = key_of(e)
        if k not in index:
            index[k] = len(keys)
            keys.append(e)
        return index[k]

    def unit(e: exp.Expression) -> frozenset[int]:
        # A composite unit `(a, b)` of ROLLUP/CUBE, or one expression.
        while isinstance(e, exp.Paren):
            e = e.this
        if isinstance(e, exp.Tuple):
            return frozenset(key(x) for x in e.expressions)
        return frozenset({key(e)})

    def sets_of(e: exp.Expression) -> list[frozenset[int]]:
        if isinstance(e, exp.Rollup):
            units = [unit(x) for x in e.expressions]
            return [frozenset().union(*units[:n]) for n in range(len(units), -1, -1)]
        if isinstance(e, exp.Cube):
            units = [unit(x) for x in e.expressions]
            if len(units) > 12:
                raise NotSupportedError(f"CUBE of {len(units)} keys")
            return [frozenset().union(*(u for u, keep in zip(units, mask) if keep))
                    for mask in itertools.product((True, False), repeat=len(units))]
        if isinstance(e, exp.GroupingSets):
            out = []
            for item in e.expressions:
                if isinstance(item, (exp.Rollup, exp.Cube, exp.GroupingSets)):
                    out += sets_of(item)
                else:
                    out.append(unit(item) if not (isinstance(item, exp.Tuple) and not item.expressions) else frozenset())
            return out
        return [unit(e)]

    elements = list(group.expressions)
    for k in ("rollup", "cube", "grouping_sets"):
        extra = group.args.get(k)
        if extra:
            elements += extra if isinstance(extra, list) else [extra]
    combined = [frozenset()]
    for element in elements:
        options = sets_of(element)
        combined = [a | b for a in combined for b in options]
        if len(combined) > MAX_SETS:
            raise NotSupportedError(f"more than {MAX_SETS} grouping sets")
    return keys, combined


def grouping_masks(call: exp.Expression, keys_index: dict[str, int], sets: list[frozenset[int]], key_of) -> list[int]:
    """GROUPING(a, b, …) for each set: bit 1 for an argument the set does not keep, the first
    argument the most significant bit (GROUPING_ID is the same in DuckDB)."""
    positions = []
    for arg in call.expressions:
        k = key_of(arg)
        if k not in keys_index:
            raise CatalogError(f"GROUPING argument {arg.sql('duckdb')} is not a GROUP BY key")
        positions.append(keys_index[k])
    masks = []
    for s in sets:
        m = 0
        for p in positions:
            m = (m << 1) | (0 if p in s else 1)
        masks.append(m)
    return masks
