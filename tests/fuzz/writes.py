"""The differential fuzzer for writes: seeded random scripts of DDL and DML, FlockSQL at N ranks
against DuckDB, statement by statement.

    python -m tests.fuzz.writes --seed 1 --count 20 --ranks 1,2,3

A script creates a table `t` with a random choice of what DuckDB's CREATE TABLE holds (a PRIMARY
KEY of one or two columns, UNIQUE, NOT NULL, DEFAULT, CHECK, a generated column) and a table `src`
without constraints, then writes both with INSERT (VALUES, a query, BY NAME, DEFAULT, OR IGNORE, OR
REPLACE, ON CONFLICT DO NOTHING / DO UPDATE), UPDATE (… FROM), DELETE (… USING) and MERGE, some
with RETURNING, reading the table back after each write. Keys come from a small domain, so that
keys collide, constraints fail and ON CONFLICT finds conflicts.

FlockSQL runs each script in a fresh folder (each rank count in one MPI job); DuckDB then replays
it in memory, each statement in a transaction of its own that it rolls back where FlockSQL's
statement failed, so that both hold the same tables for the next statement. Each statement gets
the verdicts of tests/fuzz/run.py: agree (same rows, RETURNING rows and read-backs as multisets, a
write's count; or both failed), not_supported, wrong, engine_error, extra_answer. After a script's
first failure its tables may differ, so the rest of that script is not judged.

Where DuckDB's own answer depends on the order it meets rows (which of several source rows updates
a target row), the generator does not go: sources that meet a target row by its key are grouped by
that key first.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from engine.batch import BatchResult, run_query_lists
from planner.filtered_ranges import BALANCED_MIN_ROWS_ENV
from planner.single_rank import ALONE_MAX_COST_ENV
from tests.fuzz.run import FAILURES, QUERY_TIMEOUT_S, REFUSAL, report
from tpch.compare import compare_tables

# Values the scripts write: small domains, so that keys meet.
KEYS = range(0, 10)
TAGS = ("a", "b", "c")
UNIQUES = tuple(f"u{i}" for i in range(6))
STRINGS = ("", "a", "bb", "q'x", "zz top")
DOUBLES = ("1.5", "-0.0", "2.25", "1e10", "-3.75")
DATES = ("DATE '2001-02-03'", "DATE '1999-12-31'", "DATE '0001-01-01'", "DATE '9999-12-31'")

SRC_COLUMNS = (("k", "INTEGER"), ("c", "VARCHAR"), ("u", "VARCHAR"), ("v", "INTEGER"), ("x", "DOUBLE"),
               ("s", "VARCHAR"), ("d", "DATE"))


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str
    default: str | None = None
    generated: str | None = None  # the expression of a generated column


@dataclass(frozen=True, slots=True)
class Target:
    """The table `t` of a script: its columns and keys."""
    columns: tuple[Column, ...]
    keys: tuple[tuple[str, ...], ...]  # PRIMARY KEY first, then UNIQUE ones
    ddl: str
    first_key: tuple[str, ...] = ()  # the key written first (DuckDB's first index)

    @property
    def settable(self) -> list[Column]:
        return [c for c in self.columns if c.generated is None]

    def has(self, name: str) -> bool:
        return any(c.name == name for c in self.columns)


@dataclass(frozen=True, slots=True)
class Script:
    seed: int
    statements: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WriteVerdict:
    script: Script
    index: int  # the statement judged
    ranks: int
    outcome: str
    detail: str = ""

    @property
    def sql(self) -> str:
        return self.script.statements[self.index]


class _Generator:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, options):
        return self.rng.choice(list(options))

    # --- the tables -------------------------------------------------------------------------

    def target(self) -> Target:
        key = self.pick(("primary", "primary", "composite", "unique", "none"))
        columns = [Column("k", "INTEGER")]
        parts = ["k INTEGER" + {"primary": " PRIMARY KEY", "unique": " UNIQUE"}.get(key, "")]
        keys: list[tuple[str, ...]] = [("k",)] if key in ("primary", "unique") else []
        if key == "composite" or self.chance(0.3):
            columns.append(Column("c", "VARCHAR"))
            parts.append("c VARCHAR" + (" NOT NULL" if key != "composite" and self.chance(0.3) else ""))
            if key == "composite":
                keys.append(("k", "c"))
        if self.chance(0.35):
            columns.append(Column("u", "VARCHAR"))
            parts.append("u VARCHAR UNIQUE")
            keys.append(("u",))
        default = str(self.rng.randint(-5, 5)) if self.chance(0.5) else None
        columns.append(Column("v", "INTEGER", default))
        parts.append("v INTEGER" + (" NOT NULL" if self.chance(0.15) else "")
                     + (f" DEFAULT {default}" if default is not None else ""))
        if self.chance(0.6):
            columns.append(Column("x", "DOUBLE"))
            parts.append("x DOUBLE")
        default = self.pick(("'dflt'", "''")) if self.chance(0.4) else None
        columns.append(Column("s", "VARCHAR", default))
        parts.append("s VARCHAR" + (f" DEFAULT {default}" if default is not None else ""))
        if self.chance(0.3):
            columns.append(Column("d", "DATE"))
            parts.append("d DATE")
        if self.chance(0.35):
            expression = self.pick(("v * 2 + k", "coalesce(s, '?') || '/' || k", "k % 3"))
            columns.append(Column("g", "", generated=expression))
            parts.append(f"g AS ({expression})")
        if key == "composite":
            parts.append("PRIMARY KEY (k, c)")
        if self.chance(0.25):
            parts.append(self.pick(("CHECK (v IS NULL OR v > -40)", "CHECK (k < 60)", "CHECK (length(s) < 6)")))
        written = [(part.split()[0],) for part in parts if part.endswith((" PRIMARY KEY", " UNIQUE"))]
        first = (written or [("k", "c")] if key == "composite" else written or [()])[0]
        return Target(tuple(columns), tuple(keys), f"CREATE TABLE t ({', '.join(parts)})", first)

    def value(self, column: str, nulls: float = 0.12) -> str:
        if self.chance(nulls):
            return "NULL"
        return {
            "k": lambda: str(self.pick(KEYS)),
            "c": lambda: f"'{self.pick(TAGS)}'",
            "u": lambda: f"'{self.pick(UNIQUES)}'",
            "v": lambda: str(self.rng.randint(-50, 50)),
            "x": lambda: self.pick(DOUBLES),
            "s": lambda: "'" + self.pick(STRINGS).replace("'", "''") + "'",
            "d": lambda: self.pick(DATES),
        }[column]()

    def src_rows(self, n: int) -> str:
        return ", ".join("(" + ", ".join(self.value(name) for name, _ in SRC_COLUMNS) + ")" for _ in range(n))

    # --- pieces of statements -----------------------------------------------------------------

    def condition(self, t: Target, alias: str = "t") -> str:
        """A predicate over `alias`: t, src, or m (a MERGE's source: k, c, v, s)."""
        has = {"t": t.has, "src": lambda name: name in dict(SRC_COLUMNS),
               "m": lambda name: name in ("k", "v", "s") or (name == "c" and ("k", "c") in t.keys)}[alias]
        options = [f"{alias}.k > {self.pick(KEYS)}", f"{alias}.v IS NULL", f"{alias}.v % 3 = 0",
                   f"{alias}.k IN (1, 3, 5)", f"coalesce({alias}.v, 0) < {self.rng.randint(-20, 20)}",
                   f"NOT ({alias}.k = 2)", f"({alias}.k < 4 OR {alias}.v > 10)", f"{alias}.s LIKE 'a%'"]
        for name, condition in (("x", f"{alias}.x > 0"), ("d", f"{alias}.d > DATE '2000-01-01'"),
                                ("c", f"{alias}.c = 'a'"), ("g", f"{alias}.g IS NOT NULL")):
            if has(name):
                options.append(condition)
        return self.pick(options)

    def returning(self, t: Target, merge: bool = False) -> str:
        if not self.chance(0.35):
            return ""
        options = ["*", "k, v", "k + 1 AS k1, upper(s) AS us, v IS NULL AS no_v"]
        if t.has("g"):
            options.append("k, g")
        if merge:
            options.append("merge_action, k, v")
        return " RETURNING " + self.pick(options)

    def conflict(self, t: Target, target: tuple[str, ...] | None = None) -> str:
        """An ON CONFLICT clause; `target`: the key new rows of a query are unique on (DuckDB's
        choice among new rows that share the key it updates would be the order it meets them)."""
        if not t.keys:
            return ""
        target = target or self.pick(t.keys)
        if self.chance(0.35):
            return " ON CONFLICT DO NOTHING" if self.chance(0.5) else f" ON CONFLICT ({', '.join(target)}) DO NOTHING"
        settable = [c.name for c in t.settable if c.name not in target]
        if not settable:
            return f" ON CONFLICT ({', '.join(target)}) DO NOTHING"
        sets = []
        for name in self.rng.sample(settable, self.rng.randint(1, min(2, len(settable)))):
            sets.append(self.pick({
                "v": ("v = excluded.v", "v = excluded.v + coalesce(t.v, 0)", "v = t.v - 1"),
                "s": ("s = excluded.s", "s = coalesce(t.s, '') || 'u'"),
                "x": ("x = excluded.x * 2",), "d": ("d = excluded.d",), "c": ("c = excluded.c",),
                "u": ("u = excluded.u",), "k": ("k = excluded.k",),
            }[name]))
        where = f" WHERE {self.pick(('t.v < excluded.v', 'excluded.k % 2 = 0', 't.v IS NOT NULL'))}" \
            if self.chance(0.3) else ""
        return f" ON CONFLICT ({', '.join(target)}) DO UPDATE SET {', '.join(sets)}{where}"

    # --- statements ---------------------------------------------------------------------------

    def insert_values(self, t: Target) -> str:
        settable = [c.name for c in t.settable]
        named = self.chance(0.6)
        if named:
            required = [k for key in t.keys[:1] for k in key] or ["k"]
            columns = required + [c for c in settable if c not in required and self.chance(0.6)]
            self.rng.shuffle(columns)
        else:
            columns = settable
        defaults = {c.name for c in t.columns if c.default is not None}
        rows = []
        for _ in range(self.rng.randint(1, 4)):
            rows.append("(" + ", ".join("DEFAULT" if c in defaults and self.chance(0.2) else self.value(c, 0.08)
                                        for c in columns) + ")")
        verb = "INSERT"
        conflict = ""
        if t.keys and self.chance(0.5):
            if self.chance(0.3):
                verb = self.pick(("INSERT OR IGNORE", "INSERT OR REPLACE"))
            else:
                conflict = self.conflict(t)
        column_list = f" ({', '.join(columns)})" if named else ""
        return f"{verb} INTO t{column_list} VALUES {', '.join(rows)}{conflict}{self.returning(t)}"

    def insert_query(self, t: Target) -> str:
        settable = [c.name for c in t.settable if c.name in dict(SRC_COLUMNS)]
        columns = ["k"] + [c for c in settable if c != "k" and (c == "c" and t.has("c") and ("k", "c") in t.keys
                                                                or self.chance(0.6))]
        where = f" WHERE {self.condition(t, 'src')}" if self.chance(0.6) else ""
        if t.keys and self.chance(0.6):
            # One row per key of the source (its choice among several would be DuckDB's order).
            # On a table of several keys, one row per value of the first written: which of the rows
            # sharing one DuckDB keeps would be the order it meets them.
            key = t.first_key if len(t.keys) > 1 else self.pick(t.keys)
            grouped = [c for c in columns if c in key] + [c for c in key if c not in columns]
            columns = grouped + [c for c in columns if c not in grouped]
            select = ", ".join(c if c in key else f"max({c}) AS {c}" for c in columns)
            not_null = " AND ".join(f"{c} IS NOT NULL" for c in key)
            where = f"{where} AND {not_null}" if where else f" WHERE {not_null}"
            conflict = self.conflict(t, key) if self.chance(0.7) else ""
            return (f"INSERT INTO t ({', '.join(columns)}) SELECT {select} FROM src{where} "
                    f"GROUP BY {', '.join(key)}{conflict}{self.returning(t)}")
        if self.chance(0.3):
            return f"INSERT INTO t BY NAME SELECT {', '.join(reversed(columns))} FROM src{where}{self.returning(t)}"
        if self.chance(0.3):
            return (f"WITH q AS (SELECT * FROM src{where}) INSERT INTO t ({', '.join(columns)}) "
                    f"SELECT {', '.join(columns)} FROM q{self.returning(t)}")
        return f"INSERT INTO t ({', '.join(columns)}) SELECT {', '.join(columns)} FROM src{where}{self.returning(t)}"

    def insert_many(self, t: Target) -> str:
        """Rows enough that every rank writes and reads some: keys from a range past KEYS (a second
        such INSERT collides with the first where their ranges meet)."""
        start, n = 100 + 10 * self.rng.randint(0, 5), self.rng.randint(20, 150)
        items = {"k": f"range + {start}", "c": "'abc'[range % 3 + 1]", "u": "'m' || (range + {start})",
                 "v": "CAST(range % 7 AS INTEGER) - 3", "x": "range / 4", "s": "'r' || (range % 5)",
                 "d": "DATE '2000-01-01' + CAST(range AS INTEGER)"}
        columns = [c.name for c in t.settable if c.name == "k" or self.chance(0.7)]
        select = ", ".join(items[c].format(start=start) for c in columns)
        conflict = self.conflict(t, self.pick(t.keys)) if t.keys and self.chance(0.4) else ""
        query = f"SELECT {select} FROM range({n})"
        if (start + n) % 4 == 0:  # (decided by what was drawn: the other statements stay as they were)
            # The same rows from a recursive CTE (a write of a recursive query: engine/recursive.py).
            query = ("WITH RECURSIVE digits(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM digits WHERE i < 9), "
                     "numbers AS (SELECT a.i * 100 + b.i * 10 + c.i AS range FROM digits a, digits b, digits c "
                     f"WHERE a.i * 100 + b.i * 10 + c.i < {n}) SELECT {select} FROM numbers")
        return f"INSERT INTO t ({', '.join(columns)}) {query}{conflict}{self.returning(t)}"

    def update(self, t: Target) -> str:
        sets = []
        options = {"v": ("v = v + 1", "v = -v", "v = NULL", "v = DEFAULT", "v = k * 3"),
                   "s": ("s = s || '!'", "s = upper(s)", "s = DEFAULT"), "x": ("x = x * 2", "x = NULL"),
                   "d": ("d = d + 1",), "c": ("c = 'b'",), "u": ("u = NULL", "u = 'u1'"),
                   "k": ("k = k + 20", "k = k + 1", "k = NULL")}
        for c in t.settable:
            if self.chance(0.35):
                sets.append(self.pick(options[c.name]))
        sets = sets or ["v = v + 1"]
        if self.chance(0.3):
            source = "(SELECT k, max(v) AS v, max(s) AS s FROM src WHERE k IS NOT NULL GROUP BY k) AS m"
            sets = [s.replace("v + 1", "m.v").replace("upper(s)", "m.s") for s in sets]
            return f"UPDATE t SET {', '.join(sets)} FROM {source} WHERE t.k = m.k{self.returning(t)}"
        if self.chance(0.2):  # a value from a correlated subquery (NULL where src has no row)
            sets.append(self.pick(("v = (SELECT max(src.v) FROM src WHERE src.k = t.k)",
                                   "v = coalesce((SELECT sum(src.v) FROM src WHERE src.k >= t.k), -1)")))
        where = f" WHERE {self.condition(t)}" if self.chance(0.8) else ""
        if self.chance(0.2):
            where = f" WHERE {self.subquery_condition(t)}"
        return f"UPDATE t SET {', '.join(dict.fromkeys(sets))}{where}{self.returning(t)}"

    def subquery_condition(self, t: Target) -> str:
        """A WHERE on t that reads src: IN, NOT IN, EXISTS, NOT EXISTS or a scalar subquery."""
        return self.pick((f"t.k IN (SELECT k FROM src WHERE {self.condition(t, 'src')})",
                          "t.k NOT IN (SELECT k FROM src WHERE k IS NOT NULL)",
                          f"EXISTS (SELECT 1 FROM src WHERE src.k = t.k AND {self.condition(t, 'src')})",
                          "NOT EXISTS (SELECT 1 FROM src WHERE src.v = t.v)",
                          "t.v > (SELECT avg(v) FROM src)"))

    def delete(self, t: Target) -> str:
        if self.chance(0.3):
            return (f"DELETE FROM t USING src WHERE t.k = src.k AND {self.condition(t, 'src')}"
                    f"{self.returning(t)}")
        if self.chance(0.3):
            return f"DELETE FROM t WHERE {self.subquery_condition(t)}{self.returning(t)}"
        return f"DELETE FROM t WHERE {self.condition(t)}{self.returning(t)}"

    def merge(self, t: Target) -> str:
        on = "t.k = m.k" + (" AND t.c = m.c" if ("k", "c") in t.keys else "")
        group = "k, c" if ("k", "c") in t.keys else "k"
        source = (f"(SELECT {group}, max(v) AS v, max(s) AS s FROM src WHERE k IS NOT NULL GROUP BY {group}) AS m")
        clauses = []
        if self.chance(0.5):
            clauses.append(f"WHEN MATCHED AND {self.condition(t, 'm')} THEN DELETE")
        if self.chance(0.7):
            clauses.append("WHEN MATCHED THEN UPDATE SET " + self.pick(("v = m.v", "s = m.s, v = t.v + 1", "v = DEFAULT")))
        if self.chance(0.7):
            names = "k, c, v" if ("k", "c") in t.keys else "k, v"
            values = "m.k, m.c, m.v" if ("k", "c") in t.keys else "m.k, m.v"
            clauses.append(f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})")
        if self.chance(0.3):
            clauses.append(self.pick(("WHEN NOT MATCHED BY SOURCE AND t.v < 0 THEN DELETE",
                                      "WHEN NOT MATCHED BY SOURCE THEN UPDATE SET s = 'gone'")))
        clauses = clauses or ["WHEN MATCHED THEN DELETE"]
        if self.chance(0.3):  # the source as a CTE
            return (f"WITH m AS {source[:-len(' AS m')]} MERGE INTO t USING m ON {on} {' '.join(clauses)}"
                    f"{self.returning(t, merge=True)}")
        return f"MERGE INTO t USING {source} ON {on} {' '.join(clauses)}{self.returning(t, merge=True)}"

    def script(self, seed: int, writes: int) -> Script:
        t = self.target()
        statements = [t.ddl, "CREATE TABLE src (" + ", ".join(f"{n} {ty}" for n, ty in SRC_COLUMNS) + ")",
                      f"INSERT INTO src VALUES {self.src_rows(self.rng.randint(3, 8))}"]
        kinds = (self.insert_values, self.insert_values, self.insert_query, self.insert_many, self.update, self.delete,
                 self.merge)
        for _ in range(writes):
            if self.chance(0.08):
                statements += [f"INSERT INTO src VALUES {self.src_rows(self.rng.randint(1, 3))}", "SELECT * FROM src"]
                continue
            statements += [self.pick(kinds)(t), "SELECT * FROM t"]
        return Script(seed, tuple(statements))


def generate_scripts(seed: int, count: int, writes: int = 12) -> list[Script]:
    """`count` scripts of `writes` writes each; script i comes from seed `seed * 10_000 + i`."""
    return [_Generator(seed * 10_000 + i).script(seed * 10_000 + i, writes) for i in range(count)]


# --- judging ---------------------------------------------------------------------------------------

BOTH_FAILED = "both failed: "
_COUNTS = re.compile(r"^(INSERT|UPDATE|DELETE|MERGE)\b(?!.*\bRETURNING\b)", re.S)


def _duck_answer(duck: duckdb.DuckDBPyConnection, sql: str):
    """DuckDB's rows for `sql`, an error message, or None for a statement that answers nothing."""
    try:
        if sql.startswith("CREATE"):
            duck.execute(sql)
            return None
        return duck.sql(sql).to_arrow_table()
    except duckdb.Error as e:
        return f"{type(e).__name__}: {e}"


def judge_script(script: Script, ranks: int, got: list[BatchResult]) -> list[WriteVerdict]:
    """Replays `script` in DuckDB beside FlockSQL's results; a verdict per statement up to the first
    failure (the tables may differ after it)."""
    duck = duckdb.connect()
    verdicts = []
    try:
        for i, (sql, result) in enumerate(zip(script.statements, got, strict=True)):
            duck.execute("BEGIN TRANSACTION")
            want = _duck_answer(duck, sql)
            outcome, detail = _outcome(sql, want, result)
            if result.error is None and not isinstance(want, str):
                try:
                    duck.execute("COMMIT")
                except duckdb.Error as e:
                    outcome, detail = "extra_answer", f"DuckDB's COMMIT failed: {e}"
            else:
                duck.execute("ROLLBACK")
            verdicts.append(WriteVerdict(script, i, ranks, outcome, detail))
            if outcome in FAILURES:
                break
    finally:
        duck.close()
    return verdicts


def _outcome(sql: str, want, got: BatchResult) -> tuple[str, str]:
    if got.error is not None:
        if REFUSAL.match(got.error):
            return ("agree" if isinstance(want, str) else "not_supported"), got.error.splitlines()[0][:200]
        if isinstance(want, str):
            return "agree", BOTH_FAILED + want[:200]
        return "engine_error", f"{got.error_type}: {got.error[:600]}"
    if isinstance(want, str):
        return "extra_answer", f"DuckDB: {want[:300]}"
    if want is None:
        return "agree", ""
    if _COUNTS.match(sql):  # a write's count of rows: FlockSQL names its column as DuckDB does not
        have = got.table.column(0)[0].as_py() if got.table is not None and got.table.num_rows else None
        expected = want.column(0)[0].as_py() if want.num_rows else None
        return ("agree", "") if have == expected else ("wrong", f"count {have}, DuckDB {expected}")
    table = got.table if got.table is not None else pa.table({})
    diff = compare_tables(table, want, ordered=False, check_names=True)
    return ("agree", "") if diff is None else ("wrong", diff[:600])


def fuzz_writes(scripts: list[Script], ranks_list: list[int], timeout_s: float = 1800) -> list[WriteVerdict]:
    """Runs each script in a fresh folder at each rank count (one MPI job per rank count)."""
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="flocksql-fuzz-writes-") as root:
        for ranks in ranks_list:
            folders = []
            for script in scripts:
                folder = Path(root) / f"r{ranks}-s{script.seed}"
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                folders.append(str(folder))
            results = run_query_lists([(f, list(s.statements)) for f, s in zip(folders, scripts)], ranks,
                                      timeout_s=timeout_s, query_timeout_s=QUERY_TIMEOUT_S)
            for script, got in zip(scripts, results, strict=True):
                verdicts.extend(judge_script(script, ranks, got))
    return verdicts


def summary(verdicts: list[WriteVerdict]) -> str:
    """Counts per rank count and statement kind, the refusals, then each failure with its script
    up to the failing statement (what a regression test needs)."""
    counts: dict[tuple[int, str], Counter] = {}
    for v in verdicts:
        kind = v.sql.split()[0].upper()
        counts.setdefault((v.ranks, kind), Counter())[v.outcome] += 1
    for v in verdicts:
        if v.detail.startswith(BOTH_FAILED):
            counts[(v.ranks, v.sql.split()[0].upper())]["(both failed)"] += 1
    outcomes = ("agree", "(both failed)", "not_supported") + FAILURES
    lines = [f"{'ranks':>5} {'statement':<10} " + " ".join(f"{o:>13}" for o in outcomes)]
    for (ranks, kind), c in sorted(counts.items()):
        lines.append(f"{ranks:>5} {kind:<10} " + " ".join(f"{c[o]:>13}" for o in outcomes))
    errors = Counter(re.sub(r"\d+", "N", v.detail[len(BOTH_FAILED):])[:90] for v in verdicts
                     if v.detail.startswith(BOTH_FAILED))
    if errors:
        lines.append("\nboth failed (DuckDB's errors):")
        lines += [f"  {n:>5}  {message}" for message, n in errors.most_common(12)]
    refusals = Counter(re.sub(r"^rank \d+: ", "", v.detail) for v in verdicts if v.outcome == "not_supported")
    if refusals:
        lines.append("\nrefusals:")
        lines += [f"  {n:>5}  {message}" for message, n in refusals.most_common()]
    for v in verdicts:
        if v.outcome in FAILURES:
            steps = "\n".join(f"    {s};" for s in v.script.statements[:v.index + 1])
            lines.append(f"\n[{v.outcome}] script {v.script.seed} at {v.ranks} rank(s), statement {v.index}:\n"
                         f"{steps}\n  -> {v.detail}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--count", type=int, default=20, help="scripts")
    p.add_argument("--writes", type=int, default=12, help="writes per script")
    p.add_argument("--ranks", default="1,2,3")
    args = p.parse_args(argv)
    os.environ[ALONE_MAX_COST_ENV] = "0"  # the small tables go through the exchanges (see tests/fuzz/run.py)
    os.environ[BALANCED_MIN_ROWS_ENV] = "0"
    started = time.monotonic()
    verdicts = fuzz_writes(generate_scripts(args.seed, args.count, args.writes),
                           [int(r) for r in args.ranks.split(",")])
    return report(verdicts, summary(verdicts), "statements judged", started)


if __name__ == "__main__":
    sys.exit(main())
