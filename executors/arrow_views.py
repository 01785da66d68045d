"""Arrow tables that one query's SQL reads by name on one DuckDB connection: the rows each
exchange brought.

DuckDB's `register` makes a view in the connection's catalog, and DuckDB 2's costs 0.3 ms to
register and 0.2 ms to unregister on a 2-core VM: a TPC-H query at 2 ranks registers a few such
tables per rank and instance, a TPC-DS query dozens, for tens of milliseconds per query. DuckDB 2's
Python layer also keeps sources outside the catalog, alive while their handle is
(`_register_source`: 15 µs to add, nothing to drop) and read under a name of DuckDB's choosing.
Where a connection has them they are used, and the SQL names its tables as the plan renders them
(the caller's names) until `text` writes DuckDB's names in, just before the fragment runs; other
DuckDB versions register views under the caller's names. Knows nothing about plans.
"""
from __future__ import annotations

import re

import pyarrow as pa


class ArrowViews:
    """The tables registered on `con` for one query, under the caller's names; `names` finds
    those names in SQL text (a compiled pattern whose whole match is a name)."""

    def __init__(self, con, names: re.Pattern, sources: bool | None = None):
        """sources: use DuckDB's sources (None: where the connection has them)."""
        self.con = con
        self._pattern = names
        self._sources = hasattr(con, "_register_source") if sources is None else sources
        self._handles: dict[str, object] = {}  # the caller's name -> DuckDB's source handle
        self._registered: list[str] = []  # views, where sources are not there

    def __contains__(self, name: str) -> bool:
        return name in self._handles or name in self._registered

    def add(self, name: str, table: pa.Table) -> None:
        if self._sources:
            self._handles[name] = self.con._register_source(table, None)
        else:
            self.con.register(name, table)
            self._registered.append(name)

    def text(self, sql: str) -> str:
        """`sql` as the connection reads it: each registered table under DuckDB's name for it."""
        if not self._handles:
            return sql
        handles = self._handles
        return self._pattern.sub(lambda m: handles[m.group(0)].name if m.group(0) in handles else m.group(0), sql)

    def clear(self) -> None:
        """Forgets every table (the query has ended): DuckDB drops a source with its handle."""
        self._handles.clear()
        for name in self._registered:
            try:
                self.con.unregister(name)
            except Exception:  # noqa: BLE001 - the connection is closing, or the view went with it
                pass
        self._registered.clear()
