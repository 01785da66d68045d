"""The differential fuzzer: seeded random queries, FlockSQL at N ranks against DuckDB on the same files.

    python -m tests.fuzz.run --dataset adv --seed 1 --count 500 --ranks 1,2,3
    python -m tests.fuzz.run --dataset tpch --data .test-data/tpch-sf0.01 --count 2000 --ranks 2

Each query gets one verdict:
  agree          same answer (multisets; in order under the query's total ORDER BY; floats with a
                 relative tolerance), or both raised an error;
  not_supported  FlockSQL refused it with `not supported: ...` (counted apart, not a failure);
  wrong          both answered and the answers differ — the bug that must never happen;
  engine_error   DuckDB answered, FlockSQL raised another error;
  extra_answer   DuckDB raised an error, FlockSQL answered (a wrong answer in disguise, e.g. an
                 overflow not reported).
A run prints the counts per area and each failure with its SQL, so that it can become a test in
tests/sql/regressions.test.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import duckdb

from engine.batch import run_queries
from engine.leftovers import TEMP_MARK
from executors.scan import read_parquet_nan_aware
from planner.filtered_ranges import BALANCED_MIN_ROWS_ENV
from planner.single_rank import ALONE_MAX_COST_ENV
from tests.fuzz.dataset import schema_of, write_adversarial
from tests.fuzz.generate import AREAS, FuzzQuery, generate
from tpch.compare import compare_tables, ordering_of

FAILURES = ("wrong", "engine_error", "extra_answer")
# A query that runs longer than this is reported as an engine error (the generator keeps results
# small, so a slow query is a runaway plan, itself a bug).
QUERY_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Verdict:
    query: FuzzQuery
    ranks: int
    outcome: str  # agree | not_supported | wrong | engine_error | extra_answer
    detail: str = ""


def oracle(data_dir: Path) -> duckdb.DuckDBPyConnection:
    """DuckDB with one view per table of the folder (a file `x.parquet` or a folder `x/`)."""
    con = duckdb.connect()
    read_parquet_nan_aware(con)  # as the engine reads Parquet: NaN beyond a column's min/max
    for entry in sorted(Path(data_dir).iterdir()):
        if TEMP_MARK in entry.name:
            continue  # a flock's temporary table, not the data set's (the engine hides it too)
        if entry.suffix == ".parquet":
            con.execute(f"CREATE VIEW \"{entry.stem}\" AS SELECT * FROM read_parquet('{entry}')")
        elif entry.is_dir() and not entry.name.startswith((".", "_")):
            con.execute(f"CREATE VIEW \"{entry.name}\" AS SELECT * FROM read_parquet('{entry}/**/*.parquet')")
    return con


# Whether DuckDB raises for an overflow or a failed cast can depend on how the rows are laid out
# and on what its statistics say: a file whose column is all NULL folds `NULL + (-i)` to NULL before
# `-i` overflows; a join whose side the statistics show empty is skipped with the casts of its keys.
# FlockSQL's ranks each read some of the files, so they may raise where DuckDB (reading all of
# them) does not, or the other way round. Where the two disagree only on raising, DuckDB is asked
# again, first with statistics propagation off, then over the same rows loaded into its own
# tables; if either gives FlockSQL's outcome, it is an outcome DuckDB itself produces.
PLAN_DEPENDENT = "SET disabled_optimizers = 'statistics_propagation'"


# DuckDB binds a comparison or a set operation between types it has no cast for (DOUBLE and DATE,
# INTEGER and TIMESTAMP) and fails only when a non-NULL value reaches the cast: "Unimplemented type
# for cast", whatever the value. Whether one does is the plan's choice: a hash join with an empty
# build side never reads its probe side, a constant-false filter prunes its subtree (DuckDB raises
# for the same query with `empty_result_pullup` disabled), an EXCEPT over an empty left side skips
# its right. A rank plans its own fragment over its share of the rows (a replicated side beside a
# share of the other, a set operation over exchanged Arrow without statistics), so it may reach a
# value that DuckDB's plan never read, or the other way round. Where one side raised this error
# and the other answered no rows, both are outcomes of some plan of DuckDB's; where the answer has
# rows, the error stays a failure.
UNCASTABLE = "Unimplemented type for cast"


# FlockSQL's refusals (NotSupportedError) start with "not supported:", on any rank. Any other
# error that mentions it (pyarrow's "Extracting byte ranges not supported for type string_view",
# DuckDB's "Not implemented Error: ...") is a failure to answer, not a refusal.
REFUSAL = re.compile(r"(rank \d+: )?not supported:")


def _uncastable_or_empty(want, got) -> bool:
    """One side raised UNCASTABLE and the other answered no rows (see UNCASTABLE)."""
    if got.error is not None:
        return UNCASTABLE in got.error and not isinstance(want, str) and want.num_rows == 0
    return isinstance(want, str) and UNCASTABLE in want and got.table is not None and got.table.num_rows == 0


def answer(con: duckdb.DuckDBPyConnection, sql: str):
    try:
        return con.sql(sql).to_arrow_table()
    except duckdb.Error as e:
        return f"{type(e).__name__}: {e}"


def statistics_free(data_dir: Path):
    """(closer, recheck) for judge(): recheck(sql) gives DuckDB's answers without statistics over
    the files, and over the same rows held in its own tables."""
    files = oracle(data_dir)
    files.execute(PLAN_DEPENDENT)
    tables = duckdb.connect()
    for (name,) in files.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall():
        tables.register("_src", files.sql(f'SELECT * FROM "{name}"').to_arrow_table())
        tables.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _src')
        tables.unregister("_src")

    def recheck(sql: str):
        return [answer(files, sql), answer(tables, sql)]

    class Both:
        def close(self):
            files.close()
            tables.close()

    return Both(), recheck


def oracle_answers(con: duckdb.DuckDBPyConnection, queries: list[FuzzQuery]) -> list:
    return [answer(con, q.sql) for q in queries]


def judge(query: FuzzQuery, ranks: int, want, got, recheck=None) -> Verdict:
    """The verdict on one result; `recheck(sql)` gives DuckDB's answers in other layouts (see
    PLAN_DEPENDENT), asked only when FlockSQL and DuckDB disagree on raising an error."""
    verdict = _judge(query, ranks, want, got)
    if verdict.outcome in ("engine_error", "extra_answer") and _uncastable_or_empty(want, got):
        return Verdict(query, ranks, "agree", "plan-dependent cast error: " + verdict.detail)
    if verdict.outcome in ("engine_error", "extra_answer") and recheck is not None:
        if any(_judge(query, ranks, alt, got).outcome == "agree" for alt in recheck(query.sql)):
            return Verdict(query, ranks, "agree", "plan-dependent error: " + verdict.detail)
    if verdict.outcome == "wrong" and recheck is not None:
        # DuckDB over Parquet skips row groups by min/max statistics, which Parquet writers compute
        # without NaN: `WHERE 7 <= k` loses a NaN row (NaN is greater than every number in DuckDB)
        # that DuckDB over the same rows in its own tables keeps. A rank that reads its share of a
        # file into Arrow keeps it too. That answer is DuckDB's own, on the same data.
        if _judge(query, ranks, recheck(query.sql)[1], got).outcome == "agree":
            return Verdict(query, ranks, "agree", "DuckDB's answer over its own tables: " + verdict.detail)
    return verdict


def _judge(query: FuzzQuery, ranks: int, want, got) -> Verdict:
    if got.error is not None:
        if REFUSAL.match(got.error):
            return Verdict(query, ranks, "not_supported", got.error.splitlines()[0][:200])
        if isinstance(want, str):
            return Verdict(query, ranks, "agree")
        return Verdict(query, ranks, "engine_error", f"{got.error_type}: {got.error[:600]}")
    if isinstance(want, str):
        rows = got.table.num_rows if got.table is not None else 0
        return Verdict(query, ranks, "extra_answer", f"DuckDB: {want[:300]}; FlockSQL answered {rows} rows")
    order = ordering_of(query.sql)
    diff = compare_tables(got.table, want, ordered=order.ordered, order_keys=order.keys, limited=order.limited, check_names=True)
    if diff is None:
        return Verdict(query, ranks, "agree")
    return Verdict(query, ranks, "wrong", diff[:600])


def fuzz(data_dir: Path, dataset: str, seed: int, count: int, ranks_list: list[int],
         areas: tuple[str, ...] = AREAS, timeout_s: float = 1800) -> list[Verdict]:
    """Generate `count` queries from `seed` over the data folder and judge them at each rank count."""
    con = oracle(data_dir)
    try:
        queries = generate(schema_of(dataset, con), seed, count, areas)
        want = oracle_answers(con, queries)
    finally:
        con.close()
    verdicts = []
    second, recheck = statistics_free(data_dir)
    try:
        for ranks in ranks_list:
            got = run_queries(str(data_dir), [q.sql for q in queries], ranks, timeout_s=timeout_s,
                              query_timeout_s=QUERY_TIMEOUT_S)
            verdicts.extend(judge(q, ranks, w, g, recheck) for q, w, g in zip(queries, want, got, strict=True))
    finally:
        second.close()
    return verdicts


def summary(verdicts: list[Verdict]) -> str:
    """A table of outcome counts per (ranks, area), then every failure with its SQL."""
    counts: dict[tuple[int, str], Counter] = defaultdict(Counter)
    for v in verdicts:
        counts[(v.ranks, v.query.area)][v.outcome] += 1
    outcomes = ("agree", "not_supported") + FAILURES
    lines = [f"{'ranks':>5} {'area':<10} " + " ".join(f"{o:>13}" for o in outcomes)]
    for (ranks, area), c in sorted(counts.items()):
        lines.append(f"{ranks:>5} {area:<10} " + " ".join(f"{c[o]:>13}" for o in outcomes))
    refusals = Counter(re.sub(r"^rank \d+: ", "", v.detail) for v in verdicts if v.outcome == "not_supported")
    if refusals:
        lines.append("\nrefusals (checks):")
        lines += [f"  {n:>5}  {message}" for message, n in refusals.most_common()]
    for v in verdicts:
        if v.outcome in FAILURES:
            lines.append(f"\n[{v.outcome}] {v.query.dataset} {v.query.area} at {v.ranks} rank(s):\n  "
                         f"{v.query.sql}\n  -> {v.detail}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=("adv", "tpch"), default="adv")
    p.add_argument("--data", type=Path, help="data folder (adv: written there if missing; tpch: required)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--ranks", default="1,2,3")
    p.add_argument("--areas", default=",".join(AREAS))
    p.add_argument("--alone", action="store_true",
                   help="let rank 0 answer small queries alone (planner/single_rank.py), as a server does; by "
                        "default off, so that queries over the small fuzz tables go through the exchanges")
    args = p.parse_args(argv)
    if not args.alone:
        os.environ[ALONE_MAX_COST_ENV] = "0"  # before any flock starts: the ranks inherit it
        os.environ[BALANCED_MIN_ROWS_ENV] = "0"  # small tables read by filtered ranges too
    if args.dataset == "adv":
        data = write_adversarial(args.data or Path(".test-data/fuzz-adv"))
    elif args.data is None:
        p.error("--data is required for --dataset tpch")
    else:
        data = args.data
    started = time.monotonic()
    verdicts = fuzz(data, args.dataset, args.seed, args.count, [int(r) for r in args.ranks.split(",")],
                    tuple(args.areas.split(",")))
    return report(verdicts, summary(verdicts), "checks", started)


def report(verdicts, text: str, unit: str, started: float) -> int:
    """Prints a run's summary and its counts; the exit status: 1 if anything failed."""
    print(text)
    failed = sum(v.outcome in FAILURES for v in verdicts)
    print(f"\n{len(verdicts)} {unit}, {failed} failures, {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
