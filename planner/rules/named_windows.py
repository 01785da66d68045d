"""named_windows: `WINDOW w AS (…)` definitions written into each `OVER w` that names them.

    SELECT sum(x) OVER w, rank() OVER (w ORDER BY y) FROM t WINDOW w AS (PARTITION BY k)
      → SELECT sum(x) OVER (PARTITION BY k), rank() OVER (PARTITION BY k ORDER BY y) FROM t

Run on the parsed statement, before columns are qualified. A reference may add an ORDER BY or a
frame to a definition that has none (the SQL standard's rule); it may not replace them.
"""
from __future__ import annotations

from sqlglot import exp

from engine.errors import CatalogError


def inline_named_windows(ast: exp.Expression) -> exp.Expression:
    if not any(s.args.get("windows") for s in ast.find_all(exp.Select)):
        return ast
    ast = ast.copy()
    for sel in list(ast.find_all(exp.Select)):
        defs = sel.args.get("windows")
        if not defs:
            continue
        named: dict[str, exp.Window] = {}
        for d in defs:
            name = d.this.name.lower()
            base = d.args.get("alias")  # WINDOW w2 AS (w1 ORDER BY …)
            named[name] = _merged(d, named, base.name.lower() if base is not None else None)
        sel.set("windows", None)
        for w in list(sel.find_all(exp.Window)):
            ref = w.args.get("alias")
            if ref is None or w.find_ancestor(exp.Select) is not sel:
                continue
            name = ref.name.lower()
            if name not in named:
                raise CatalogError(f"unknown window: {ref.name}")
            _apply(w, named[name])
    return ast


def _merged(d: exp.Window, named: dict, base: str | None) -> exp.Window:
    if base is None:
        return d
    if base not in named:
        raise CatalogError(f"unknown window: {base}")
    out = d.copy()
    _apply(out, named[base])
    return out


def _apply(w: exp.Window, definition: exp.Window) -> None:
    """Give w (a reference) the definition's partitioning, order and frame where w has none."""
    w.set("alias", None)
    if definition.args.get("partition_by"):
        if w.args.get("partition_by"):
            raise CatalogError("a window that names another may not PARTITION BY again")
        w.set("partition_by", [p.copy() for p in definition.args["partition_by"]])
    for key in ("order", "spec"):
        if definition.args.get(key) is not None:
            if w.args.get(key) is not None:
                raise CatalogError(f"a window that names another may not set its {'ORDER BY' if key == 'order' else 'frame'} again")
            w.set(key, definition.args[key].copy())
