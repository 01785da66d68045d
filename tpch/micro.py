"""Micro-benchmarks of the distributed patterns, in the spirit of Cylon's scaling figures.

Two generated tables, `lhs` and `rhs`, each `rows` rows of

    k  BIGINT   uniform in [0, rows): joins match about one row per key
    g  BIGINT   k % groups, groups = rows * GROUP_FRACTION
    v  DOUBLE   uniform in [0, 1e6)

are written as Parquet with DuckDB (deterministic: values are hashes of the
row number, so every run measures the same data). Each operation is one SQL
query whose answer is a few numbers, so that the time measured is the
operation and not the gathering of a large result on rank 0.
"""

import os
import re
from pathlib import Path

from tpch.progress import Progress

# Distinct groups per row for `g`: 1% gives a group-by with a large, shuffled result.
GROUP_FRACTION = 0.01

OPERATIONS = ("join", "groupby", "sort", "union", "window")


def micro_queries(rows: int, ops: tuple[str, ...] = OPERATIONS) -> dict[str, str]:
    """SQL per operation name. Sort reads the middle of the sorted table, so nothing short of a full sort answers it."""
    texts = {
        "join": "select count(*) as n, sum(l.v + r.v) as s from lhs l join rhs r on l.k = r.k",
        "groupby": (
            "select count(*) as groups, sum(s) as total, sum(c) as n "
            "from (select g, sum(v) as s, count(*) as c from lhs group by g) t"
        ),
        "sort": f"select k, g, v from lhs order by v, k limit 10 offset {rows // 2}",
        "union": "select count(*) as n from (select k, g from lhs union select k, g from rhs) t",
        "window": (
            "select count(*) as n, sum(rn * v) as s, max(rn) as m "
            "from (select v, row_number() over (partition by g order by v, k) as rn from lhs) t"
        ),
    }
    unknown = [op for op in ops if op not in texts]
    if unknown:
        raise ValueError(f"unknown operation(s) {', '.join(unknown)}; known: {', '.join(OPERATIONS)}")
    return {op: texts[op] for op in ops}


def parse_rows(text: str) -> int:
    """'10M' -> 10_000_000; also '100k', '2.5M', '1G', '1e6', '5000'."""
    match = re.fullmatch(r"\s*([0-9.eE+]+)\s*([kKmMgGbB]?)\s*", text)
    if not match:
        raise ValueError(f"not a row count: {text!r}")
    scale = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9}[match.group(2).lower()]
    rows = int(float(match.group(1)) * scale)
    if rows < 1:
        raise ValueError(f"row count must be positive: {text!r}")
    return rows


def generate_micro_data(rows: int, out_dir: str | os.PathLike, parts: int = 1, progress: bool = True) -> Path:
    """Write `lhs` and `rhs` into `out_dir` (skipping tables already there), `parts` files each.

    Layout as for TPC-H: `<dir>/<t>.parquet`, or `<dir>/<t>/<t>.<i>.parquet` when parts > 1.
    """
    import duckdb

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = max(1, int(rows * GROUP_FRACTION))
    jobs = []
    for seed, table in enumerate(("lhs", "rhs")):
        if parts == 1:
            jobs.append((table, seed, 0, rows, out / f"{table}.parquet"))
        else:
            for i in range(parts):
                lo, hi = rows * i // parts, rows * (i + 1) // parts
                jobs.append((table, seed, lo, hi, out / table / f"{table}.{i + 1}.parquet"))
    jobs = [job for job in jobs if not job[4].exists()]
    con = duckdb.connect()
    with Progress(f"micro data {rows:,} rows -> {out}", len(jobs), enabled=progress) as bar:
        for table, seed, lo, hi, path in jobs:
            bar.step(path.name)
            path.parent.mkdir(parents=True, exist_ok=True)
            scratch = path.with_name(f".{path.name}.tmp")
            con.execute(
                f"""
                COPY (
                    SELECT k, k % {groups} AS g, v FROM (
                        SELECT (hash(i, {2 * seed}) % {rows})::BIGINT AS k,
                               (hash(i, {2 * seed + 1}) % 100000000)::DOUBLE / 100 AS v
                        FROM range({lo}, {hi}) r(i)
                    )
                ) TO '{scratch}' (FORMAT parquet)
                """
            )
            os.replace(scratch, path)
    con.close()
    return out
