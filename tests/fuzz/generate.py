"""Seeded random SQL over a Schema, each query tagged with the area it exercises.

Every query is built so that its answer is fully determined (the comparison with DuckDB is exact
up to float tolerance and row order): LIMIT/OFFSET, ROWS frames, row_number/lag/lead/first_value and
ordered string_agg always sort on a total order (the tables' unique keys or every output column);
no random(), no unordered string_agg/list/any_value (but of a constant). A LIMIT / OFFSET count written
as an expression is a constant or a count over a small table; a scalar subquery used as a group or
sort key is an exact aggregate or the first row of a total order. Expressions that can raise (overflow, `%` and
`//` by zero, casts) appear only where every row is evaluated by any plan: the outermost select list
of a query without LIMIT, or an aggregate's argument ("risky" expressions). Predicates, join keys and
sort keys never raise, so the order in which a plan evaluates them cannot change the outcome.
An ASOF join shows of its right side only what right rows tied on keys and ordering value share (its
pick among them is DuckDB's free choice); a recursive CTE walks a unique key and is bounded by a depth
column or, under UNION, by a few-valued next key.

    >>> gen = QueryGenerator(schema, random.Random(1))
    >>> gen.query()
    FuzzQuery(area='join', dataset='adv', sql='SELECT a1.id AS c0, ... FROM t3 AS a1 FULL JOIN ...')
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from tests.fuzz.dataset import Column, Schema, Table

AREAS = ("join", "aggregate", "window", "setop", "subquery", "cte", "order", "expr", "grouping", "asof", "recursive",
         "clauses")
NUMERIC = ("int", "float", "dec")

# A join whose estimated result is larger than this is not generated (the fuzzer checks answers,
# it does not load-test): the estimate is |L|·|R| / max(distinct), or the product of the two most
# frequent values' counts when that is larger (skew).
MAX_JOIN_ROWS = 60_000
# Non-aggregated TPC-H results larger than this get a total ORDER BY and a LIMIT.
MAX_PLAIN_ROWS = 3_000

_LITERALS = {
    "int": ["0", "1", "-1", "2", "3", "7", "50", "2147483647", "-2147483648", "9223372036854775807"],
    "float": ["0.5", "-0.0::DOUBLE", "'NaN'::DOUBLE", "'inf'::DOUBLE", "'-inf'::DOUBLE", "1.25::DOUBLE", "-3.5::DOUBLE"],
    "dec": ["1.125::DECIMAL(18,3)", "0.001::DECIMAL(18,3)", "-2.5::DECIMAL(9,2)", "0::DECIMAL(18,3)"],
    "text": ["''", "'s1'", "'a'", "'1'", "'Ünï ✓'", "'zz'", "'R'", "'N'", "'1996-01-01'"],
    "date": ["DATE '2000-03-01'", "DATE '0001-01-01'", "DATE '9999-12-31'", "DATE '1995-06-17'"],
    "ts": ["TIMESTAMP '2024-02-29 13:00:00'", "TIMESTAMP '1970-01-01 00:00:00'", "TIMESTAMP '0001-01-01 00:00:00'"],
    "bool": ["TRUE", "FALSE", "NULL::BOOLEAN"],
}


@dataclass(frozen=True, slots=True)
class FuzzQuery:
    area: str
    dataset: str
    sql: str


@dataclass(frozen=True, slots=True)
class Ref:
    """A column visible in a scope: its qualified SQL, kind and statistics."""

    sql: str
    name: str
    kind: str
    distinct: int
    top: int
    numeric: bool = False  # text whose every value reads as an integer (Column.numeric)


@dataclass(frozen=True, slots=True)
class Source:
    """Something a FROM clause can name: a base table, a CTE, or a derived table `(SELECT ...)`."""

    sql: str  # what follows FROM (before AS alias)
    table: Table
    base: bool = True


@dataclass
class Scope:
    refs: list[Ref] = field(default_factory=list)
    # Columns that together identify a row of the FROM clause, or None when some input has no key.
    keys: list[str] | None = field(default_factory=list)
    rows: float = 1.0
    tables: list[tuple[str, Source]] = field(default_factory=list)  # (alias, source)

    def of(self, kinds) -> list[Ref]:
        return [r for r in self.refs if r.kind in kinds]


class QueryGenerator:
    def __init__(self, schema: Schema, rng: random.Random):
        self.schema = schema
        self.rng = rng
        self._alias = 0
        self.sources = [Source(t.name, t) for t in schema.tables.values()]

    # ------------------------------------------------------------------ entry point
    def query(self, area: str | None = None) -> FuzzQuery:
        """One query of `area` (a random area when None)."""
        area = area or self.rng.choice(AREAS)
        self._alias = 0
        build = getattr(self, f"_{area}")
        return FuzzQuery(area, self.schema.name, build())

    # ------------------------------------------------------------------ small helpers
    def _chance(self, p: float) -> bool:
        return self.rng.random() < p

    def _new_alias(self) -> str:
        self._alias += 1
        return f"a{self._alias}"

    def _source(self, max_rows: float | None = None, min_rows: int = 0) -> Source:
        fits = [s for s in self.sources if (max_rows is None or s.table.rows <= max_rows) and s.table.rows >= min_rows]
        return self.rng.choice(fits or sorted(self.sources, key=lambda s: s.table.rows)[:1])

    def _scope_for(self, alias: str, source: Source) -> Scope:
        t = source.table
        refs = [Ref(f"{alias}.{c.name}", c.name, c.kind, c.distinct, c.top, c.numeric) for c in t.columns]
        keys = [f"{alias}.{c}" for c in t.unique] if t.unique else None
        return Scope(refs, keys, float(max(t.rows, 1)), [(alias, source)])

    def _lit(self, kind: str) -> str:
        return self.rng.choice(_LITERALS[kind])

    # ------------------------------------------------------------------ expressions
    def expr(self, scope: Scope, kind: str, depth: int = 0, risky: bool = False) -> str:
        """An expression of `kind` over `scope`. Only `risky` ones may raise."""
        cols = scope.of((kind,))
        if depth >= 2 or self._chance(0.45):
            if cols and not self._chance(0.15):
                return self.rng.choice(cols).sql
            return self._lit(kind)
        d = depth + 1
        e = lambda k=kind: self.expr(scope, k, d, risky)  # noqa: E731
        num = lambda: self.expr(scope, self.rng.choice(NUMERIC), d, risky)  # noqa: E731
        common = [lambda: f"coalesce({e()}, {e()})", lambda: f"CASE WHEN {self.pred(scope, d)} THEN {e()} ELSE {e()} END",
                  lambda: f"nullif({e()}, {e()})"]
        if kind in ("int", "float", "dec", "text", "date"):
            common += [lambda: f"greatest({e()}, {e()})", lambda: f"least({e()}, {e()})"]
        choices = list(common)
        if kind == "int":
            choices += [lambda: f"length({self.expr(scope, 'text', d, risky)})", lambda: f"sign({num()})",
                        lambda: f"CAST({self.pred(scope, d)} AS INTEGER)", lambda: f"year({self.expr(scope, 'date', d)})"]
            if risky:
                choices += [lambda: f"({e()} + {e()})", lambda: f"({e()} - {e()})", lambda: f"({e()} * {e()})",
                            lambda: f"({e()} // {e()})", lambda: f"({e()} % {e()})", lambda: f"abs({e()})",
                            lambda: f"(- {e()})", lambda: f"CAST({num()} AS INTEGER)", lambda: f"CAST({num()} AS BIGINT)"]
        elif kind == "float":
            choices += [lambda: f"({num()} / {num()})", lambda: f"(CAST({num()} AS DOUBLE) + {num()})",
                        lambda: f"(CAST({num()} AS DOUBLE) * {num()})", lambda: f"round(CAST({num()} AS DOUBLE), 2)"]
            if risky:
                choices += [lambda: f"sqrt({e()})", lambda: f"ln({e()})", lambda: f"({e()} % {e()})"]
        elif kind == "dec":
            choices += [lambda: f"({e()} + {self._lit('dec')})", lambda: f"round({e()}, 1)"]
            if risky:
                choices += [lambda: f"CAST({num()} AS DECIMAL(18,3))", lambda: f"({e()} * {e()})"]
        elif kind == "text":
            any_kind = lambda: self.expr(scope, self.rng.choice(("int", "float", "dec", "date", "bool")), d)  # noqa: E731
            choices += [lambda: f"upper({e()})", lambda: f"({e()} || {self._lit('text')})", lambda: f"substr({e()}, 1, 3)",
                        lambda: f"CAST({any_kind()} AS VARCHAR)", lambda: f"left({e()}, 2)", lambda: f"lower({e()})"]
        elif kind == "date":
            choices += [lambda: f"CAST({self.expr(scope, 'ts', d)} AS DATE)"]
            if risky:
                choices += [lambda: f"({e()} + {self.rng.choice(['1', '-1', '400'])})"]
        elif kind == "ts":
            choices += [lambda: f"CAST({self.expr(scope, 'date', d)} AS TIMESTAMP)"]
            if risky:
                choices += [lambda: f"({e()} + INTERVAL 1 DAY)"]
        elif kind == "bool":
            return self.pred(scope, d)
        return self.rng.choice(choices)()

    def _comparable_kind(self, scope: Scope) -> str:
        kinds = sorted({r.kind for r in scope.refs}) or ["int"]
        return self.rng.choice(kinds)

    def pred(self, scope: Scope, depth: int = 0, sub: bool = False) -> str:
        """A boolean expression that never raises; with `sub`, it may hold subqueries."""
        d = depth + 1
        if depth < 2 and self._chance(0.3):
            form = self.rng.choice(("and", "or", "not"))
            if form == "not":
                return f"(NOT {self.pred(scope, d, sub)})"
            op = " AND " if form == "and" else " OR "
            return f"({self.pred(scope, d, sub)}{op}{self.pred(scope, d, sub)})"
        if sub and self._chance(0.35):
            return self.subquery_pred(scope)
        kind = self._comparable_kind(scope)
        a = self.expr(scope, kind, d)
        form = self.rng.random()
        if kind == "bool" and form < 0.3:
            return a
        if form < 0.55:
            b = self.expr(scope, kind if kind not in NUMERIC else self.rng.choice(NUMERIC), d)
            return f"({a} {self.rng.choice(['=', '<>', '<', '<=', '>', '>='])} {b})"
        if form < 0.68:
            return f"({a} IS {self.rng.choice(['', 'NOT '])}NULL)"
        if form < 0.78:
            return f"({a} IS {self.rng.choice(['', 'NOT '])}DISTINCT FROM {self.expr(scope, kind, d)})"
        if form < 0.86 and kind != "bool":
            lo, hi = self._lit(kind), self._lit(kind)
            return f"({a} BETWEEN {lo} AND {hi})"
        if form < 0.94:
            items = ", ".join(self._lit(kind) for _ in range(self.rng.randint(1, 3)))
            if self._chance(0.2):
                items += ", NULL"
            return f"({a} {self.rng.choice(['', 'NOT '])}IN ({items}))"
        if kind == "text":
            return f"({a} LIKE '{self.rng.choice(['s%', '%1', '', '%', 'l_ng%'])}')"
        return f"({a} IS NOT NULL)"

    # ------------------------------------------------------------------ FROM clauses and joins
    def _key_pairs(self, scope: Scope, alias: str, source: Source) -> list[tuple[Ref, Ref, bool]]:
        """(left ref, right ref, known-to-match) pairs the join could use as keys."""
        right = self._scope_for(alias, source).refs
        pairs = []
        for lref in scope.refs:
            for rref in right:
                edge = any({(lt, lc), (rt, rc)} == {(self._table_of(scope, lref), lref.name), (source.table.name, rref.name)}
                           for lt, lc, rt, rc in self.schema.edges)
                same_name = self.schema.same_name_keys and lref.name == rref.name
                if edge or same_name:
                    pairs.append((lref, rref, True))
                elif lref.kind == rref.kind and lref.kind in ("int", "text", "date") and not self.schema.edges:
                    pairs.append((lref, rref, False))
        return pairs

    @staticmethod
    def _table_of(scope: Scope, ref: Ref) -> str:
        alias = ref.sql.split(".", 1)[0]
        for a, s in scope.tables:
            if a == alias:
                return s.table.name
        return ""

    @staticmethod
    def _pair_rows(left_rows: float, right_rows: float, lref: Ref, rref: Ref) -> float:
        per_value = left_rows * right_rows / max(lref.distinct, rref.distinct, 1)
        return max(per_value, min(lref.top * rref.top, left_rows * right_rows))

    def _key_sql(self, lref: Ref, rref: Ref) -> tuple[str, str]:
        """The two sides of an equality on a key pair; keys of different kinds are cast (or not), but
        never so that the comparison can raise: then both become text (see _compares_cleanly)."""
        if lref.kind == rref.kind or self._chance(0.35):
            sides = ((lref.sql, lref.kind, lref.numeric), (rref.sql, rref.kind, rref.numeric))
        else:
            target = self.rng.choice(["VARCHAR", "DOUBLE"] if {lref.kind, rref.kind} <= {"int", "float", "dec", "text"}
                                     else ["VARCHAR"])
            cast = [self._cast_side(r, target) for r in (lref, rref)]
            if self._chance(0.5):
                sides = tuple(cast)
            elif self._chance(0.5):
                sides = ((lref.sql, lref.kind, lref.numeric), cast[1])
            else:
                sides = (cast[0], (rref.sql, rref.kind, rref.numeric))
        if not self._compares_cleanly(*sides):
            sides = (self._cast_side(lref, "VARCHAR"), self._cast_side(rref, "VARCHAR"))
        return sides[0][0], sides[1][0]

    @staticmethod
    def _cast_side(ref: Ref, target: str) -> tuple[str, str | None, bool]:
        """(sql, kind, numeric text) of `CAST(ref AS target)`; kind None: the cast itself can raise."""
        sql = f"CAST({ref.sql} AS {target})"
        if target == "VARCHAR":
            return sql, "text", ref.kind == "int" or ref.numeric
        return sql, "float" if ref.kind != "text" or ref.numeric else None, False

    @staticmethod
    def _compares_cleanly(a: tuple[str, str | None, bool], b: tuple[str, str | None, bool]) -> bool:
        """Whether `a = b` cannot raise for any rows. DuckDB casts text to the other side's type
        (`'1.5' = 1` and `'01' = true` raise) and has no cast between numbers and dates, so
        whether such a key raises depends on which rows reach the join: the plan's choice (a filter
        pushed below it, an empty side skipped), and the fuzzer could not judge it."""
        family = {"int": "num", "dec": "num", "float": "num", "bool": "num", "date": "time", "ts": "time", "text": "text"}
        (_, ka, na), (_, kb, nb) = a, b
        if ka is None or kb is None:
            return False
        if family[ka] == family[kb]:
            return True
        numbers = ("int", "dec", "float")
        return (ka == "text" and na and kb in numbers) or (kb == "text" and nb and ka in numbers)

    def from_clause(self, ntables: int, semi: bool = True, outer: bool = True,
                    sources: list[Source] | None = None) -> tuple[str, Scope, list[str]]:
        """A FROM clause of `ntables` inputs; returns its SQL, its scope and WHERE conjuncts it needs
        (comma joins put their condition there)."""
        pool = sources or self.sources
        first = self.rng.choice([s for s in pool if s.table.rows <= MAX_JOIN_ROWS] or pool)
        alias = self._new_alias()
        scope = self._scope_for(alias, first)
        sql = f"{first.sql} AS {alias}"
        where: list[str] = []
        for _ in range(ntables - 1):
            step = self._join_step(scope, pool, semi, outer)
            if step is None:
                break
            text, scope, conjunct = step
            sql += text
            if conjunct:
                where.append(conjunct)
        return sql, scope, where

    def _join_step(self, scope: Scope, pool: list[Source], semi: bool, outer: bool):
        for _ in range(8):
            source = self.rng.choice(pool)
            alias = self._new_alias()
            right = self._scope_for(alias, source)
            pairs = self._key_pairs(scope, alias, source)
            kinds = ["inner"] * 3 + (["left", "right", "full"] * 2 if outer else []) + (["semi", "anti"] if semi else [])
            kinds += ["cross", "comma"]
            kind = self.rng.choice(kinds)
            product = scope.rows * right.rows
            if kind == "cross" or not pairs:
                if product > MAX_JOIN_ROWS / 10:
                    continue
                cond, rows = None, product
                if kind != "cross":
                    cond = self._residual(scope, right, both=True)
            else:
                npairs = 2 if len(pairs) > 1 and self._chance(0.25) else 1
                chosen = self.rng.sample(pairs, npairs)
                rows = min(self._pair_rows(scope.rows, right.rows, lref, rref) for lref, rref, _ in chosen)
                parts = []
                for lref, rref, _ in chosen:
                    a, b = self._key_sql(lref, rref)
                    op = self.rng.choice(["="] * 6 + ["IS NOT DISTINCT FROM"] + (["<", "<>"] if product < 5000 else []))
                    if op != "=" and op != "IS NOT DISTINCT FROM":
                        rows = product
                    parts.append(f"{a} {op} {b}")
                if len(parts) == 2 and product < 5000 and self._chance(0.3):
                    cond = f"({parts[0]} OR {parts[1]})"
                    rows = product
                else:
                    cond = " AND ".join(parts)
                if self._chance(0.4):
                    cond = f"{cond} AND {self._residual(scope, right, both=True)}"
            if kind in ("left", "full"):
                rows += scope.rows
            if kind in ("right", "full"):
                rows += right.rows
            if kind in ("semi", "anti"):
                rows = scope.rows
            if rows > MAX_JOIN_ROWS:
                continue
            merged = Scope(scope.refs + ([] if kind in ("semi", "anti") else right.refs),
                           None if scope.keys is None or (right.keys is None and kind not in ("semi", "anti"))
                           else scope.keys + ([] if kind in ("semi", "anti") else right.keys),
                           max(rows, 1.0), scope.tables + [(alias, source)])
            src = f"{source.sql} AS {alias}"
            if kind == "cross":
                return f" CROSS JOIN {src}", merged, None
            if kind == "comma":
                return f", {src}", merged, cond
            word = {"inner": "JOIN", "left": "LEFT JOIN", "right": "RIGHT JOIN", "full": "FULL JOIN",
                    "semi": "SEMI JOIN", "anti": "ANTI JOIN"}[kind]
            return f" {word} {src} ON {cond}", merged, None
        return None

    def _residual(self, left: Scope, right: Scope, both: bool) -> str:
        """A residual predicate: often `(p(left) OR p(right))`, the shape that needs its parentheses."""
        joint = Scope(left.refs + right.refs, None, 1.0)
        if both and self._chance(0.6):
            return f"({self.pred(left, 1)} OR {self.pred(right, 1)})"
        return self.pred(joint, 1)

    # ------------------------------------------------------------------ select lists
    def _outputs(self, scope: Scope, n: int, risky: bool = False) -> list[tuple[str, str]]:
        """`n` (sql, kind) select items: mostly columns, some expressions."""
        out = []
        for _ in range(n):
            if scope.refs and self._chance(0.6):
                r = self.rng.choice(scope.refs)
                out.append((r.sql, r.kind))
            else:
                kind = self._comparable_kind(scope)
                out.append((self.expr(scope, kind, 0, risky), kind))
        return out

    @staticmethod
    def _select_list(items: list[tuple[str, str]], start: int = 0) -> str:
        return ", ".join(f"{sql} AS c{start + i}" for i, (sql, _) in enumerate(items))

    def _total_order(self, n: int) -> str:
        """ORDER BY every output position, directions and NULL placement at random: a total order."""
        keys = []
        for p in self.rng.sample(range(1, n + 1), n):
            keys.append(f"{p}{self.rng.choice(['', ' DESC'])}{self.rng.choice(['', ' NULLS FIRST', ' NULLS LAST'])}")
        return "ORDER BY " + ", ".join(keys)

    def _maybe_limit(self, n_outputs: int, rows: float, force: bool = False) -> str:
        big = self.schema.name == "tpch" and rows > MAX_PLAIN_ROWS
        if force or big or self._chance(0.2):
            tail = f" {self._total_order(n_outputs)} LIMIT {self._count_value([1, 3, 10, 50])}"
            if self._chance(0.3):
                tail += f" OFFSET {self._count_value([1, 2, 7])}"
            return tail
        return ""

    def _count_value(self, choices: list[int]) -> str:
        """A LIMIT / OFFSET count from `choices`; one in five written as a constant expression (DuckDB
        casts it to BIGINT: 2.7 is 3) or as a count over a small table (at most a few hundred rows)."""
        n = self.rng.choice(choices)
        form = self.rng.random()
        if form < 0.8:
            return str(n)
        if form < 0.87:
            d = self.rng.choice([1, 2, 4])
            return self.rng.choice([f"{n - d} + {d}", f"{n + d} - {d}", f"{n} * 1", f"({n} + {d}) - {d}"])
        if form < 0.92:
            return self.rng.choice([f"{n}.4", f"{max(n - 1, 0)}.7", f"CAST({n} AS DOUBLE)", f"{n}.0"])
        src = self._source(max_rows=200)
        alias = self._new_alias()
        where = self._where([self.pred(self._scope_for(alias, src), 1)] if self._chance(0.6) else [])
        value = f"(SELECT count(*) FROM {src.sql} AS {alias}{where})"
        return self.rng.choice([value, value, f"{value} + {n}"])

    @staticmethod
    def _where(conjuncts: list[str]) -> str:
        return f" WHERE {' AND '.join(conjuncts)}" if conjuncts else ""

    # ------------------------------------------------------------------ areas
    def _join(self) -> str:
        if self._chance(0.2):
            built = self._comma_chain()
            if built is not None:
                return built
        sql, scope, where = self.from_clause(self.rng.choice([2, 2, 3]))
        if self._chance(0.4):
            where.append(self.pred(scope))
        items = self._outputs(scope, self.rng.randint(1, 4))
        return (f"SELECT {self._select_list(items)} FROM {sql}{self._where(where)}"
                f"{self._maybe_limit(len(items), scope.rows)}")

    def _chain_on(self, before: Scope, chain: Scope, alias: str, source: Source, read_before: bool) -> str:
        """The ON clause of a join of `source` (as `alias`) in a chain after a comma: a key with the
        chain (or a residual predicate), and, `read_before`, a key with or predicate on a table listed
        before the comma."""
        right = self._scope_for(alias, source)
        parts = []
        pairs = self._key_pairs(chain, alias, source) if chain.refs else []
        if pairs and self._chance(0.85):
            lref, rref, _ = self.rng.choice(pairs)
            a, b = self._key_sql(lref, rref)
            ops = ["=", "=", "=", "IS NOT DISTINCT FROM"] + (["<"] if lref.kind == rref.kind else [])
            parts.append(f"{a} {self.rng.choice(ops)} {b}")
        elif chain.refs:
            parts.append(self._residual(chain, right, both=True))
        if read_before:
            pairs = self._key_pairs(before, alias, source)
            if pairs and self._chance(0.7):
                lref, rref, _ = self.rng.choice(pairs)
                a, b = self._key_sql(lref, rref)
                parts.append(f"{b} = {a}" if self._chance(0.5) else f"{a} = {b}")
            else:
                parts.append(self.rng.choice([self.pred(before, 1), self._residual(before, right, both=True)]))
        if not parts:
            parts.append(self.pred(right, 1))
        self.rng.shuffle(parts)
        if len(parts) == 2 and self._chance(0.15):
            return f"({parts[0]} OR {parts[1]})"
        return " AND ".join(parts)

    def _comma_chain(self) -> str | None:
        """`FROM a, b {RIGHT|FULL} JOIN c ON … a …` and `a, b LEFT JOIN c ON … RIGHT JOIN d ON …`: a join
        chain after a comma whose ON clauses may read a table listed before it. DuckDB evaluates such a
        chain once per row of a (a lateral join), so each row of a keeps the chain's unmatched rows."""
        cap = 30 if self.schema.name == "tpch" else 40
        small = [s for s in self.sources if s.table.rows <= cap] or sorted(self.sources, key=lambda s: s.table.rows)[:3]
        mid = [s for s in self.sources if s.table.rows <= 400] or small
        for _ in range(10):
            self._alias = 0
            n_before = 2 if self._chance(0.15) else 1
            before_srcs = [self.rng.choice(small) for _ in range(n_before)]
            shape = self.rng.choice(["outer", "outer", "left_right", "inner_outer"])
            chain_srcs = [self.rng.choice(mid) for _ in range(2 if shape == "outer" else 3)]
            before = Scope([], [], 1.0)
            from_items = []
            for src in before_srcs:
                alias = self._new_alias()
                sc = self._scope_for(alias, src)
                before = Scope(before.refs + sc.refs, None, before.rows * sc.rows, before.tables + sc.tables)
                from_items.append(f"{src.sql} AS {alias}")
            alias = self._new_alias()
            chain = self._scope_for(alias, chain_srcs[0])
            sql = f"{chain_srcs[0].sql} AS {alias}"
            words = {"outer": [self.rng.choice(["RIGHT JOIN", "FULL JOIN"])],
                     "left_right": ["LEFT JOIN", self.rng.choice(["RIGHT JOIN", "RIGHT JOIN", "FULL JOIN"])],
                     "inner_outer": ["JOIN", self.rng.choice(["RIGHT JOIN", "FULL JOIN"])]}[shape]
            reads = [True] if shape == "outer" else self.rng.choice([[True, False], [False, True], [True, True]])
            rows = chain.rows
            for word, src, read in zip(words, chain_srcs[1:], reads):
                alias = self._new_alias()
                right = self._scope_for(alias, src)
                sql += f" {word} {src.sql} AS {alias} ON {self._chain_on(before, chain, alias, src, read)}"
                rows = rows * right.rows + rows + right.rows  # no key counted: a bound
                chain = Scope(chain.refs + right.refs, None, rows, chain.tables + right.tables)
            total = before.rows * rows
            if total <= MAX_JOIN_ROWS / 4:
                break
        else:
            return None
        scope = Scope(before.refs + chain.refs, None, max(total, 1.0))
        where = [self.pred(scope)] if self._chance(0.3) else []
        items = self._outputs(scope, self.rng.randint(2, 4))
        if self._chance(0.2):
            low = [r for r in scope.refs if r.distinct <= 50] or scope.refs
            g = self.rng.choice(low)
            counts = ", ".join(f"count({r.sql}) AS c{i + 2}" for i, r in enumerate(self.rng.sample(scope.refs, 2)))
            return (f"SELECT {g.sql} AS c0, count(*) AS c1, {counts} FROM {', '.join(from_items)}, {sql}"
                    f"{self._where(where)} GROUP BY {g.sql}")
        return (f"SELECT {self._select_list(items)} FROM {', '.join(from_items)}, {sql}{self._where(where)}"
                f"{self._maybe_limit(len(items), total)}")

    def aggregate_call(self, scope: Scope, risky: bool = False, exact: bool = False) -> tuple[str, str]:
        """One aggregate call over `scope`: (sql, result kind). `exact`: one whose value does not depend
        on the order rows or partial states are added in (no sum or average of floats, no variance):
        DuckDB's threads and our ranks add them in different orders, so such values can differ in the
        last bits, which is within tolerance as a value but not as a sort key."""
        numeric = ("int", "dec") if exact else NUMERIC
        num_refs = scope.of(numeric)
        num = lambda: self.expr(scope, self.rng.choice(numeric), 1, risky) if not num_refs or self._chance(0.3) \
            else self.rng.choice(num_refs).sql  # noqa: E731
        anyk = lambda: self.expr(scope, self._comparable_kind(scope), 1, risky)  # noqa: E731
        text = lambda: self.expr(scope, "text", 1)  # noqa: E731
        forms = [
            lambda: ("count(*)", "int"), lambda: (f"count({anyk()})", "int"), lambda: (f"count(DISTINCT {anyk()})", "int"),
            lambda: (f"sum({num()})", "dec"), lambda: (f"sum(DISTINCT {num()})", "dec"), lambda: (f"avg({num()})", "float"),
            lambda: (f"min({anyk()})", "any"), lambda: (f"max({anyk()})", "any"),
            lambda: (f"string_agg({text()}, ',' ORDER BY 1)", "text"),
            lambda: (f"median({num()})", "float"), lambda: (f"quantile_cont({num()}, 0.25)", "float"),
            lambda: (f"quantile_disc({anyk()}, 0.5)", "any"), lambda: (f"bool_or({self.pred(scope, 1)})", "bool"),
            lambda: (f"bool_and({self.pred(scope, 1)})", "bool"),
        ]
        if not exact:
            forms += [lambda: (f"stddev_samp({num()})", "float"), lambda: (f"var_pop({num()})", "float")]
        sql, kind = self.rng.choice(forms)()
        if sql.startswith("string_agg("):  # ordered by the aggregated value itself: deterministic
            arg = sql[len("string_agg("):-len(", ',' ORDER BY 1)")]
            # DuckDB refuses ORDER BY a constant; a constant's values are all one, in any order.
            order = f" ORDER BY {arg}" if not arg.startswith("'") else ""
            sql = f"string_agg({'DISTINCT ' if self._chance(0.3) else ''}{arg}, ','{order})"
        if self._chance(0.25) and sql != "count(*)" or (sql == "count(*)" and self._chance(0.3)):
            sql = f"{sql} FILTER (WHERE {self.pred(scope, 1)})"
        if self._chance(0.2):
            sql, kind = self.rng.choice([(f"coalesce({sql}, 0)", kind), (f"({sql} IS NULL)", "bool")]) \
                if kind in ("int", "dec", "float") else (f"({sql} IS NULL)", "bool")
        return sql, kind

    def _grouped(self, scope: Scope, ngroups: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]], str]:
        """Group keys, aggregate items and the GROUP BY clause for a grouped query over `scope`."""
        keys = []
        for _ in range(ngroups):
            low = [r for r in scope.refs if r.distinct <= 50] or scope.refs
            if self._chance(0.75):
                r = self.rng.choice(low)
                keys.append((r.sql, r.kind))
            else:
                kind = self._comparable_kind(scope)
                keys.append((self.expr(scope, kind, 1), kind))
        aggs = [self.aggregate_call(scope) for _ in range(self.rng.randint(1, 3))]
        if not keys:
            return keys, aggs, ""
        style = self.rng.random()
        if style < 0.3:
            clause = " GROUP BY " + ", ".join(str(i + 1) for i in range(len(keys)))
        elif style < 0.45:
            clause = " GROUP BY ALL"
        else:
            clause = " GROUP BY " + ", ".join(k for k, _ in keys)
        return keys, aggs, clause

    def _aggregate(self) -> str:
        if self._chance(0.15):
            return self._grouped_outer_join()
        sql, scope, where = self.from_clause(self.rng.choice([1, 1, 2]))
        if self._chance(0.4):
            where.append(self.pred(scope))
        keys, aggs, group = self._grouped(scope, self.rng.choice([0, 1, 1, 2]))
        if self._chance(0.15):  # a subquery in an aggregate's argument or FILTER
            aggs[self.rng.randrange(len(aggs))] = self.subquery_aggregate(scope)
        if keys and self._chance(0.1):
            return self._subquery_group_key(sql, scope, where, keys)
        items = keys + aggs
        having = ""
        if keys and self._chance(0.3):
            agg, kind = self.aggregate_call(scope)
            having = f" HAVING ({agg}) IS NOT NULL" if kind not in ("int", "dec", "float") else \
                f" HAVING ({agg}) {self.rng.choice(['>', '<=', '<>'])} {self.rng.choice(['0', '1', '2.5'])}"
        distinct = "DISTINCT " if self._chance(0.1) else ""
        limit = self._maybe_limit(len(items), 10) if keys else ""
        return f"SELECT {distinct}{self._select_list(items)} FROM {sql}{self._where(where)}{group}{having}{limit}"

    def _grouped_outer_join(self) -> str:
        """An aggregate over `d LEFT JOIN f ON key`, grouped by columns of d (and maybe one of f),
        over bare columns of f: the shape whose f side is summed in part before the join
        (planner/rules/eager_aggregation.py); now and then with an aggregate or key that a
        NULL-extended row counts in (count(*), sum(coalesce(…)), coalesce(f.x, …) as a key), which
        must keep it from being rewritten."""
        for _ in range(8):
            d_src, f_src = self.rng.choice(self.sources), self.rng.choice(self.sources)
            d_alias, f_alias = self._new_alias(), self._new_alias()
            d_scope = self._scope_for(d_alias, d_src)
            f_scope = self._scope_for(f_alias, f_src)
            pairs = [p for p in self._key_pairs(d_scope, f_alias, f_src)
                     if self._pair_rows(d_scope.rows, f_scope.rows, p[0], p[1]) <= MAX_JOIN_ROWS]
            if pairs:
                break
        else:
            return self._aggregate()
        lref, rref, _ = self.rng.choice(pairs)
        left, right = self._key_sql(lref, rref)
        on = f"{left} = {right}" + (f" AND {self.pred(f_scope, 1)}" if self._chance(0.3) else "")
        low = [r for r in d_scope.refs if r.distinct <= 50] or d_scope.refs
        keys = [(r.sql, r.kind) for r in self.rng.sample(low, min(len(low), self.rng.randint(1, 2)))]
        f_low = [r for r in f_scope.refs if r.distinct <= 20]
        if f_low and self._chance(0.3):
            r = self.rng.choice(f_low)
            keys.append((f"coalesce({r.sql}, {self._lit(r.kind)})", r.kind) if self._chance(0.2) else (r.sql, r.kind))
        exact_nums = f_scope.of(("int", "dec"))
        aggs = []
        for _ in range(self.rng.randint(1, 3)):
            r = self.rng.choice(f_scope.refs)
            forms = [(f"count({r.sql})", "int"), (f"min({r.sql})", r.kind), (f"max({r.sql})", r.kind)]
            if exact_nums:
                n = self.rng.choice(exact_nums)
                forms += [(f"sum({n.sql})", "dec"), (f"avg({n.sql})", "float"),
                          (f"sum(coalesce({n.sql}, 0))", "dec")]
            if self._chance(0.15):
                forms.append(("count(*)", "int"))
            sql, kind = self.rng.choice(forms)
            if self._chance(0.2):
                sql += f" FILTER (WHERE {self.pred(f_scope, 1)})"
            aggs.append((sql, kind))
        group = " GROUP BY " + ", ".join(k for k, _ in keys)
        return (f"SELECT {self._select_list(keys + aggs)} FROM {d_src.sql} AS {d_alias} LEFT JOIN {f_src.sql} AS "
                f"{f_alias} ON {on}{group}{self._maybe_limit(len(keys) + len(aggs), 10)}")

    def _subquery_group_key(self, sql: str, scope: Scope, where: list[str], keys: list[tuple[str, str]]) -> str:
        """A grouped query one of whose keys is a scalar subquery (correlated or not), named in GROUP BY
        by its alias, its position, the subquery itself or ALL; exact aggregates, so that the total
        order of a LIMIT is one."""
        i = self.rng.randrange(len(keys))
        keys[i] = self.exact_scalar_subquery(scope)
        aggs = [self.aggregate_call(scope, exact=True) for _ in range(self.rng.randint(1, 2))]
        if self._chance(0.3):
            aggs[0] = self.subquery_aggregate(scope)
        style = self.rng.random()
        if style < 0.15:
            group = " GROUP BY ALL"
        elif style < 0.3:
            group = " GROUP BY " + ", ".join(str(j + 1) for j in range(len(keys)))
        else:
            alias = style < 0.7
            group = " GROUP BY " + ", ".join(f"c{j}" if j == i and alias else k for j, (k, _) in enumerate(keys))
        items = keys + aggs
        rows = scope.rows if self.schema.name == "tpch" else 10
        return (f"SELECT {self._select_list(items)} FROM {sql}{self._where(where)}{group}"
                f"{self._maybe_limit(len(items), rows)}")

    def window_call(self, scope: Scope) -> str:
        """A window function call with its OVER clause; deterministic (see the module doc)."""
        low = [r for r in scope.refs if r.distinct <= 50] or scope.refs
        partition = ""
        if self._chance(0.6):
            partition = "PARTITION BY " + ", ".join(r.sql for r in self.rng.sample(low, min(len(low), self.rng.choice([1, 1, 2]))))
        lead = self.rng.choice(scope.refs)
        direction = lambda: self.rng.choice(["", " DESC"]) + self.rng.choice(["", " NULLS FIRST", " NULLS LAST"])  # noqa: E731
        total = scope.keys is not None
        order_total = f"ORDER BY {lead.sql}{direction()}" + "".join(f", {k}{direction()}" for k in scope.keys or [])
        order_peer = f"ORDER BY {lead.sql}{direction()}"
        num = [r for r in scope.of(NUMERIC)] or scope.refs
        arg = self.rng.choice(num).sql
        anyarg = self.rng.choice(scope.refs).sql
        peers = [f"rank() OVER ({partition} {order_peer})", f"dense_rank() OVER ({partition} {order_peer})",
                 f"percent_rank() OVER ({partition} {order_peer})", f"cume_dist() OVER ({partition} {order_peer})",
                 f"sum({arg}) OVER ({partition} {order_peer})", f"count(*) OVER ({partition})",
                 f"max({anyarg}) OVER ({partition})", f"avg({arg}) OVER ({partition})",
                 f"min({anyarg}) OVER ({partition} {order_peer})"]
        ranged = [r for r in scope.refs if r.kind in ("int", "dec", "date")]
        if ranged:
            r = self.rng.choice(ranged)
            n = self.rng.choice(["1", "3", "0"]) if r.kind != "date" else "INTERVAL 2 DAY"
            frame = self.rng.choice([f"RANGE BETWEEN {n} PRECEDING AND CURRENT ROW",
                                     f"RANGE BETWEEN CURRENT ROW AND {n} FOLLOWING",
                                     f"RANGE BETWEEN {n} PRECEDING AND {n} FOLLOWING",
                                     "RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"])
            peers.append(f"{self.rng.choice(['sum', 'count', 'min', 'max'])}({arg}) OVER ({partition} ORDER BY {r.sql}"
                         f"{direction()} {frame}{self._exclude()})")
        groups = self.rng.choice(["GROUPS BETWEEN 1 PRECEDING AND CURRENT ROW", "GROUPS BETWEEN CURRENT ROW AND 2 FOLLOWING",
                                  "GROUPS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING"])
        peers.append(f"{self.rng.choice(['sum', 'count', 'min', 'max'])}({arg}) OVER ({partition} {order_peer} {groups}"
                     f"{self._exclude()})")
        if not total:
            return self.rng.choice(peers)
        frame = self.rng.choice(["ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING", "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW",
                                 "ROWS BETWEEN 2 PRECEDING AND CURRENT ROW", "ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING",
                                 "ROWS BETWEEN 3 FOLLOWING AND 5 FOLLOWING"])
        ordered = [f"row_number() OVER ({partition} {order_total})", f"lag({anyarg}) OVER ({partition} {order_total})",
                   f"lead({anyarg}, 2) OVER ({partition} {order_total})", f"ntile(3) OVER ({partition} {order_total})",
                   f"first_value({anyarg}) OVER ({partition} {order_total})",
                   f"last_value({anyarg}) OVER ({partition} {order_total} ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)",
                   f"{self.rng.choice(['sum', 'count', 'min', 'max', 'avg'])}({arg}) OVER ({partition} {order_total} {frame}"
                   f"{self._exclude()})",
                   f"nth_value({anyarg}, 2) OVER ({partition} {order_total})"]
        return self.rng.choice(peers + ordered + ordered)

    def _exclude(self) -> str:
        """A frame's EXCLUDE clause, or none: whatever it leaves out, each row's value is its own."""
        return self.rng.choice(["", "", "", " EXCLUDE CURRENT ROW", " EXCLUDE GROUP", " EXCLUDE TIES", " EXCLUDE NO OTHERS"])

    def _window(self) -> str:
        sql, scope, where = self.from_clause(self.rng.choice([1, 1, 1, 2]), semi=False)
        if self._chance(0.3):
            where.append(self.pred(scope))
        if self._chance(0.2):  # a window over an aggregate
            keys, aggs, group = self._grouped(scope, self.rng.choice([1, 1, 2]))
            aggs[0] = self.aggregate_call(scope, exact=True)  # a sort key: see aggregate_call
            w = f"rank() OVER (ORDER BY {aggs[0][0]}{self.rng.choice(['', ' DESC'])})"
            if self._chance(0.4):  # in one item with a scalar subquery
                w = self._grouped_window_with_subquery(scope, keys, aggs[0][0])
                if group == " GROUP BY ALL":  # DuckDB binds no key inside the window then
                    group = ""
            items = keys + aggs
            group = group or " GROUP BY " + ", ".join(k for k, _ in keys)
            return f"SELECT {self._select_list(items)}, {w} AS w FROM {sql}{self._where(where)}{group}"
        items = self._outputs(scope, self.rng.randint(1, 3))
        windows = [self.window_call(scope) for _ in range(self.rng.randint(1, 2))]
        qualify_sub = self._chance(0.1)
        if qualify_sub:  # QUALIFY on a ranking against a scalar subquery
            windows[0] = self.ranking_call(scope)
        body = f"SELECT {self._select_list(items)}, " + ", ".join(f"{w} AS w{i}" for i, w in enumerate(windows))
        body += f" FROM {sql}{self._where(where)}"
        if qualify_sub:
            src, inner = self._inner_source()
            corr = self._correlation(scope, inner) if self._chance(0.3) else None
            filt = [corr] if corr else ([self.pred(inner, 1)] if self._chance(0.6) else [])
            value = self.rng.choice([f"(SELECT count(*) FROM {src}{self._where(filt)})",
                                     f"(SELECT count(*) FROM {src}{self._where(filt)}) - 1", "(SELECT 2)"])
            op = self.rng.choice(["<=", "<", ">", "="])
            left = self.rng.choice(["w0", windows[0]])
            return f"{body} QUALIFY {left} {op} {value}" + self._maybe_limit(len(items) + len(windows), scope.rows)
        if self._chance(0.25):  # filter on the window's result (top-n per group)
            if self._chance(0.5):
                return f"{body} QUALIFY w0 <= 2"
            return f"SELECT * FROM ({body}) AS q WHERE w0 <= 2"
        return body + self._maybe_limit(len(items) + len(windows), scope.rows)

    def _grouped_window_with_subquery(self, scope: Scope, keys: list[tuple[str, str]], agg: str) -> str:
        """A window over grouped rows in one select item with a scalar subquery: `row_number() OVER
        (ORDER BY agg, every key) > (SELECT 1)`, `rank() OVER (ORDER BY agg) + (SELECT count(*) …)`; the
        subquery uncorrelated or reading a key column."""
        order = f"{agg}{self.rng.choice(['', ' DESC'])}"
        total = order + "".join(f", {k}{self.rng.choice(['', ' DESC'])}{self.rng.choice(['', ' NULLS FIRST'])}"
                                for k, _ in keys)
        window = self.rng.choice([f"row_number() OVER (ORDER BY {total})", f"rank() OVER (ORDER BY {order})",
                                  f"dense_rank() OVER (ORDER BY {order})", "count(*) OVER ()",
                                  f"sum(count(*)) OVER (ORDER BY {total} ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)"])
        src, inner = self._inner_source()
        key_refs = [r for r in scope.refs if any(r.sql == k for k, _ in keys)]
        corr = self._correlation(Scope(key_refs), inner) if key_refs and self._chance(0.3) else None
        filt = self._where([corr] if corr else ([self.pred(inner, 1)] if self._chance(0.5) else []))
        sub = self.rng.choice(["(SELECT 1)", f"(SELECT count(*) FROM {src}{filt})", "(SELECT 2)"])
        return self.rng.choice([f"{window} > {sub}", f"{window} + {sub}", f"{window} <= {sub}", f"{sub} * {window}",
                                f"CASE WHEN {window} = {sub} THEN 'top' ELSE 'rest' END"])

    def ranking_call(self, scope: Scope) -> str:
        """An integer window call whose value per row is determined: row_number only in a total order."""
        low = [r for r in scope.refs if r.distinct <= 50] or scope.refs
        partition = ""
        if self._chance(0.6):
            partition = "PARTITION BY " + ", ".join(r.sql for r in self.rng.sample(low, min(len(low), self.rng.choice([1, 2]))))
        lead = self.rng.choice(scope.refs).sql + self.rng.choice(["", " DESC"]) + self.rng.choice(["", " NULLS FIRST"])
        calls = [f"rank() OVER ({partition} ORDER BY {lead})", f"dense_rank() OVER ({partition} ORDER BY {lead})",
                 f"count(*) OVER ({partition})"]
        if scope.keys is not None:
            calls += [f"row_number() OVER ({partition} ORDER BY {', '.join([lead] + scope.keys)})"] * 2
        return self.rng.choice(calls)

    def _setop_side(self, kinds: list[str]) -> str:
        sql, scope, where = self.from_clause(self.rng.choice([1, 1, 2]), semi=False)
        if self._chance(0.5):
            where.append(self.pred(scope))
        items = []
        for kind in kinds:
            if self._chance(0.15):
                kind = self._comparable_kind(scope)  # same position, another type
            cols = scope.of((kind,))
            items.append(self.rng.choice(cols).sql if cols and self._chance(0.7) else self.expr(scope, kind, 1))
        return f"SELECT {', '.join(f'{e} AS c{i}' for i, e in enumerate(items))} FROM {sql}{self._where(where)}"

    def _setop(self) -> str:
        probe = self._scope_for("x", self.rng.choice(self.sources))
        kinds = [self._comparable_kind(probe) for _ in range(self.rng.randint(1, 3))]
        ops = ["UNION", "UNION ALL", "INTERSECT", "INTERSECT ALL", "EXCEPT", "EXCEPT ALL"]
        sql = f"{self._setop_side(kinds)} {self.rng.choice(ops)} {self._setop_side(kinds)}"
        if self._chance(0.3):
            sql = f"({sql}) {self.rng.choice(ops)} {self._setop_side(kinds)}"
        if self._chance(0.3):
            sql += f" {self._total_order(len(kinds))} LIMIT {self.rng.choice([1, 2, 5, 20])}"
        elif self.schema.name == "tpch":
            sql = f"SELECT count(*) AS n, count(DISTINCT c0) AS d FROM ({sql}) AS u"
        return sql

    def _inner_source(self, max_rows: float = MAX_JOIN_ROWS / 4) -> tuple[str, Scope]:
        source = self._source(max_rows=max_rows)
        alias = self._new_alias()
        return f"{source.sql} AS {alias}", self._scope_for(alias, source)

    def _correlation(self, outer: Scope, inner: Scope, force: bool = False) -> str | None:
        """A predicate tying the subquery to the outer query (None: uncorrelated; with `force`, only
        when no column pair fits)."""
        if not outer.refs or (not force and self._chance(0.25)):
            return None
        pairs = [(o, i) for o in outer.refs for i in inner.refs
                 if (o.name == i.name and self.schema.same_name_keys) or
                 any({(lc, rc)} <= {(o.name, i.name), (i.name, o.name)} for _, lc, _, rc in self.schema.edges)]
        if not pairs:
            pairs = [(o, i) for o in outer.refs for i in inner.refs if o.kind == i.kind]
        if not pairs:
            return None
        o, i = self.rng.choice(pairs)
        op = self.rng.choice(["="] * 5 + ["<", ">=", "<>", "IS NOT DISTINCT FROM"])
        lhs, rhs = i.sql, o.sql
        # Same-named columns may differ in type (sk.k text, bk.k boolean): compared as text where
        # DuckDB's cast could raise, which rows it reaches being the plan's choice.
        if not self._compares_cleanly((i.sql, i.kind, i.numeric), (o.sql, o.kind, o.numeric)):
            lhs, rhs = self._cast_side(i, "VARCHAR")[0], self._cast_side(o, "VARCHAR")[0]
        elif op in ("<", ">=") and i.kind != o.kind and {i.kind, o.kind} & {"text", "bool"}:
            op = "="  # DuckDB binds `=` between numeric text (or a boolean) and a number, not always `<`
        cond = f"{lhs} {op} {rhs}"
        if self._chance(0.2):
            cond = f"({cond} OR {self.pred(inner, 1)})"
        elif self._chance(0.3):
            cond = f"{cond} AND {self.pred(inner, 1)}"
        return cond

    def subquery_pred(self, outer: Scope) -> str:
        """EXISTS / IN / NOT IN / ANY / ALL / a comparison with a scalar subquery; now and then a row
        value against an uncorrelated one, (a, b) [NOT] IN (SELECT x, y …)."""
        if self._chance(0.12):
            return self.row_in_pred(outer)
        src, inner = self._inner_source()
        corr = self._correlation(outer, inner)
        where = self._where([corr] if corr else [])
        form = self.rng.choice(["exists", "in", "scalar", "any"])
        if form == "exists":
            return f"({self.rng.choice(['', 'NOT '])}EXISTS (SELECT 1 FROM {src}{where}))"
        kind = self.rng.choice([r.kind for r in inner.refs])
        left = [r for r in outer.refs if r.kind == kind or (r.kind in NUMERIC and kind in NUMERIC)]
        lhs = self.rng.choice(left).sql if left else self._lit(kind)
        col = self.rng.choice(inner.of((kind,))).sql
        if form == "in":
            return f"({lhs} {self.rng.choice(['', 'NOT '])}IN (SELECT {col} FROM {src}{where}))"
        if form == "any":
            op = self.rng.choice(["=", "<>", "<", ">="])
            return f"({lhs} {op} {self.rng.choice(['ANY', 'ALL'])} (SELECT {col} FROM {src}{where}))"
        agg = self.rng.choice(["min", "max", "count", "sum"]) if kind in NUMERIC else self.rng.choice(["min", "max"])
        inner_value = f"{agg}({col})" if agg != "sum" else f"coalesce(sum({col}), 0)"
        if agg == "count":
            lhs = self.rng.choice(outer.of(("int",))).sql if outer.of(("int",)) else "1"
        return f"({lhs} {self.rng.choice(['=', '<', '>='])} (SELECT {inner_value} FROM {src}{where}))"

    def row_in_pred(self, outer: Scope) -> str:
        """`(a, b) [NOT] IN (SELECT x, y FROM … [WHERE p])`, uncorrelated (DuckDB cannot run a correlated
        one). Each pair is of one kind, or both numbers: DuckDB binds no IN between text and a number."""
        src, inner = self._inner_source()
        cols = self.rng.sample(inner.refs, min(len(inner.refs), self.rng.choice([2, 2, 2, 3])))
        lhs = []
        for col in cols:
            fits = [r for r in outer.refs if r.kind == col.kind or (r.kind in NUMERIC and col.kind in NUMERIC)]
            lhs.append(self.rng.choice(fits).sql if fits and self._chance(0.85) else self._lit(col.kind))
        where = self._where([self.pred(inner, 1)] if self._chance(0.5) else [])
        sub = f"SELECT {', '.join(c.sql for c in cols)} FROM {src}{where}"
        return f"(({', '.join(lhs)}) {self.rng.choice(['', 'NOT '])}IN ({sub}))"

    def exact_scalar_subquery(self, outer: Scope, correlated: bool = True) -> tuple[str, str]:
        """A scalar subquery whose value is exact, fit for a sort or group key: an exact aggregate (see
        aggregate_call), or the first row of a total order; (sql, kind)."""
        src, inner = self._inner_source()
        corr = self._correlation(outer, inner) if correlated else None
        where = self._where([corr] if corr else [])
        if inner.keys and self._chance(0.25):
            col = self.rng.choice(inner.refs)
            order = ", ".join([col.sql + self.rng.choice(["", " DESC"])] + inner.keys)
            return f"(SELECT {col.sql} FROM {src}{where} ORDER BY {order} LIMIT 1)", col.kind
        agg, kind = self.aggregate_call(inner, exact=True)
        return f"(SELECT {agg} FROM {src}{where})", kind

    def subquery_aggregate(self, scope: Scope) -> tuple[str, str]:
        """An aggregate with a subquery in its argument or FILTER: each row's own value, correlated or
        not; (sql, kind). Exact (see aggregate_call)."""
        form = self.rng.choice(["case", "filter", "filter", "scalar", "bool"])
        if form == "case":
            then, other = self.rng.choice([("1", "0"), ("1", "NULL")])
            fn = self.rng.choice(["sum", "sum", "count", "max"])
            return f"{fn}(CASE WHEN {self.subquery_pred(scope)} THEN {then} ELSE {other} END)", "int"
        if form == "filter":
            call = self.rng.choice(["count(*)", "count(*)"] + [f"{f}({r.sql})" for r in self.rng.sample(scope.refs, 1)
                                                               for f in ("count", "min", "max")])
            return f"{call} FILTER (WHERE {self.subquery_pred(scope)})", "int" if call.startswith("count") else "any"
        if form == "bool":
            return f"{self.rng.choice(['bool_or', 'bool_and'])}({self.subquery_pred(scope)})", "bool"
        value, kind = self.exact_scalar_subquery(scope)
        fn = self.rng.choice(["max", "min", "count", "count(DISTINCT"] + (["sum"] if kind == "int" else []))
        if fn == "count(DISTINCT":
            return f"count(DISTINCT {value})", "int"
        sql = f"{fn}({value})"
        if self._chance(0.3):
            sql += f" FILTER (WHERE {self.pred(scope, 1)})"
        return sql, "int" if fn == "count" else kind

    def scalar_subquery(self, outer: Scope) -> str:
        """A scalar subquery for a select list: an aggregate (maybe wrapped) or an ordered LIMIT 1."""
        src, inner = self._inner_source()
        corr = self._correlation(outer, inner)
        where = self._where([corr] if corr else [])
        if inner.keys and self._chance(0.25):
            col = self.rng.choice(inner.refs).sql
            order = ", ".join([col] + inner.keys)
            return f"(SELECT {col} FROM {src}{where} ORDER BY {order} LIMIT 1)"
        agg, _ = self.aggregate_call(inner)
        return f"(SELECT {agg} FROM {src}{where})"

    def _subquery(self) -> str:
        position = self.rng.choice(["where", "where", "select", "having", "from", "on", "case", "nested", "lateral",
                                    "aggregate"])
        sql, scope, where = self.from_clause(self.rng.choice([1, 1, 2]), semi=False)
        items = self._outputs(scope, self.rng.randint(1, 3))
        if position == "where":
            where.append(self.subquery_pred(scope))
        elif position == "select":
            items.append((self.scalar_subquery(scope), "any"))
        elif position == "case":
            items.append((f"CASE WHEN {self.subquery_pred(scope)} THEN 1 ELSE 0 END", "int"))
        elif position == "nested":
            where.append(self.pred(scope, sub=True))
        elif position == "having":
            keys, aggs, group = self._grouped(scope, 1)
            src, inner = self._inner_source()
            agg, _ = self.aggregate_call(inner)
            having = f" HAVING count(*) {self.rng.choice(['>', '<='])} (SELECT count(*) FROM {src}" \
                     f"{self._where([self.pred(inner, 1)] if self._chance(0.5) else [])})"
            if self._chance(0.3):
                having = f" HAVING {self.subquery_pred(Scope(scope.of(()) or [], None))}"
            return f"SELECT {self._select_list(keys + aggs)} FROM {sql}{self._where(where)}{group}{having}"
        elif position == "from":
            inner_sql, inner_scope, inner_where = self.from_clause(1, semi=False)
            keys, aggs, group = self._grouped(inner_scope, 1)
            derived_items = ", ".join(f"{k} AS g{i}" for i, (k, _) in enumerate(keys)) + ", " + \
                ", ".join(f"{a} AS v{i}" for i, (a, _) in enumerate(aggs))
            dalias = self._new_alias()
            derived = f"(SELECT {derived_items} FROM {inner_sql}{self._where(inner_where)}{group})"
            kind = keys[0][1]
            match = [r for r in scope.refs if r.kind == kind]
            on = f"{dalias}.g0 = {self.rng.choice(match).sql}" if match else "TRUE"
            join = self.rng.choice(["JOIN", "LEFT JOIN", "FULL JOIN"])
            sql = f"{sql} {join} {derived} AS {dalias} ON {on}"
            items.append((f"{dalias}.v0", "any"))
            if match and self._chance(0.5):
                items.append((f"{dalias}.g0", kind))
        elif position == "lateral":
            sql, value = self._lateral(sql, scope)
            items.append((value, "any"))
        elif position == "on":
            sql, scope = self._on_subquery(sql, scope, items)
        elif position == "aggregate":  # a subquery in an aggregate's argument or FILTER, or a group key
            keys, aggs, group = self._grouped(scope, self.rng.choice([0, 1, 1]))
            aggs[0] = self.subquery_aggregate(scope)
            if keys and self._chance(0.35):
                return self._subquery_group_key(sql, scope, where, keys)
            limit = self._maybe_limit(len(keys + aggs), 10) if keys else ""
            return f"SELECT {self._select_list(keys + aggs)} FROM {sql}{self._where(where)}{group}{limit}"
        return (f"SELECT {self._select_list(items)} FROM {sql}{self._where(where)}"
                f"{self._maybe_limit(len(items), scope.rows)}")

    def _on_subquery(self, sql: str, scope: Scope, items: list[tuple[str, str]]) -> tuple[str, Scope]:
        """`sql` joined to one more table on a key AND a subquery: one reading the new table only under
        a LEFT JOIN, or one reading both sides under any join (SEMI, ANTI, RIGHT, FULL, …). Adds the new
        table's column to `items` (not after SEMI / ANTI); returns the FROM clause and its scope."""
        for attempt in range(12):
            # At last the smallest table: the join's size bounds the subquery's work, done per pair.
            src, inner = self._inner_source(max_rows=MAX_JOIN_ROWS / 4 if attempt < 11 else 1)
            alias, name = src.split(" AS ")[1], src.split(" AS ")[0]
            pairs = self._key_pairs(scope, alias, self._source_named(name))
            rows = self._pair_rows(scope.rows, inner.rows, pairs[0][0], pairs[0][1]) if pairs else scope.rows * inner.rows
            if rows + scope.rows + inner.rows <= MAX_JOIN_ROWS / 4:
                break
        on = " AND ".join(f"{a} = {b}" for a, b in [self._key_sql(l, r) for l, r, _ in pairs[:1]]) or "TRUE"
        if self._chance(0.5):
            word = "LEFT JOIN"
            on += f" AND {self.subquery_pred(inner)}"
        else:
            word = self.rng.choice(["SEMI JOIN", "ANTI JOIN", "RIGHT JOIN", "FULL JOIN", "LEFT JOIN", "JOIN"])
            cond = self._two_sided_pred(scope, inner)
            on += f" AND {cond}" if self._chance(0.8) else f" AND ({cond} OR {self.pred(inner, 1)})"
        if word in ("SEMI JOIN", "ANTI JOIN"):
            rows = scope.rows
        else:
            items.append((self.rng.choice(inner.refs).sql, "any"))
            rows += scope.rows if word in ("LEFT JOIN", "FULL JOIN") else 0
            rows += inner.rows if word in ("RIGHT JOIN", "FULL JOIN") else 0
        merged = Scope(scope.refs + inner.refs, None, max(rows, 1.0), scope.tables)
        return f"{sql} {word} {src} ON {on}", merged

    def _two_sided_pred(self, left: Scope, right: Scope) -> str:
        """EXISTS / NOT EXISTS / [NOT] IN / a count of a subquery that reads both sides of a join: tied to
        each by a correlation, or to one while the other gives IN's left operand."""
        src, inner = self._inner_source(max_rows=MAX_JOIN_ROWS / 20)
        corr = {side: self._correlation(scope, inner, force=True) for side, scope in (("l", left), ("r", right))}
        form = self.rng.choice(["exists", "exists", "in", "count"])
        if form == "in":
            kind = self.rng.choice([r.kind for r in inner.refs])
            # The left operand from the side the correlation does not read (if any).
            side = self.rng.choice([s for s in ("l", "r") if corr[s] is None] or ["l", "r"])
            if corr[side] is not None and self._chance(0.5):
                corr[side] = None  # the left operand reads that side already
            refs = (left if side == "l" else right).refs
            fits = [r for r in refs if r.kind == kind or (r.kind in NUMERIC and kind in NUMERIC)]
            lhs = self.rng.choice(fits).sql if fits else self._lit(kind)
            where = self._where([c for c in corr.values() if c])
            col = self.rng.choice(inner.of((kind,))).sql
            return f"({lhs} {self.rng.choice(['', 'NOT '])}IN (SELECT {col} FROM {src}{where}))"
        where = self._where([c for c in corr.values() if c])
        if form == "count":
            return f"((SELECT count(*) FROM {src}{where}) {self.rng.choice(['>', '<=', '='])} {self.rng.choice([0, 1, 2])})"
        return f"({self.rng.choice(['', 'NOT '])}EXISTS (SELECT 1 FROM {src}{where}))"

    def _lateral(self, sql: str, outer: Scope) -> tuple[str, str]:
        """`sql` followed by a LATERAL subquery correlated with it (an aggregate, or a top-k on a
        total order), and the subquery's column for the select list."""
        src, inner = self._inner_source()
        corr = self._correlation(outer, inner)
        where = self._where([corr] if corr else [])
        alias = self._new_alias()
        if inner.keys and self._chance(0.5):
            col = self.rng.choice(inner.refs).sql
            order = ", ".join([col + self.rng.choice(["", " DESC"])] + inner.keys)
            body = f"SELECT {col} AS v0 FROM {src}{where} ORDER BY {order} LIMIT {self.rng.choice([1, 2, 3])}"
        else:
            agg, _ = self.aggregate_call(inner)
            body = f"SELECT {agg} AS v0 FROM {src}{where}"
        join = self.rng.choice([", LATERAL", " CROSS JOIN LATERAL", " LEFT JOIN LATERAL", " JOIN LATERAL"])
        on = " ON TRUE" if join in (" LEFT JOIN LATERAL", " JOIN LATERAL") else ""  # CROSS JOIN takes no ON
        return f"{sql}{join} ({body}) AS {alias}{on}", f"{alias}.v0"

    def _source_named(self, name: str) -> Source:
        return next(s for s in self.sources if s.sql == name)

    def _cte(self) -> str:
        sql, scope, where = self.from_clause(self.rng.choice([1, 1, 2]), semi=False)
        if self._chance(0.4):
            where.append(self.pred(scope))
        if self._chance(0.6):
            keys, aggs, group = self._grouped(scope, self.rng.choice([1, 1, 2]))
            names = [f"g{i}" for i in range(len(keys))] + [f"v{i}" for i in range(len(aggs))]
            body = ", ".join(f"{e} AS {n}" for (e, _), n in zip(keys + aggs, names))
            cte_rows = min(scope.rows, 200.0)
            unique = tuple(names[:len(keys)])
            kinds = [k for _, k in keys] + ["float" if k == "any" else k for _, k in aggs]
            cte = f"SELECT {body} FROM {sql}{self._where(where)}{group}"
        else:
            items = self._outputs(scope, self.rng.randint(1, 3))
            names = [f"g{i}" for i in range(len(items))]
            cte = f"SELECT {', '.join(f'{e} AS {n}' for (e, _), n in zip(items, names))} FROM {sql}{self._where(where)}"
            cte_rows, unique, kinds = scope.rows, (), [k for _, k in items]
        table = Table("c", tuple(Column(n, k, "", 5, max(1, int(cte_rows))) for n, k in zip(names, kinds)),
                      int(cte_rows), unique)
        cte_source = Source("c", table, base=False)
        pool = [cte_source] * 3 + [s for s in self.sources if s.table.rows <= MAX_JOIN_ROWS / max(cte_rows, 1)]
        main_sql, main_scope, main_where = self.from_clause(self.rng.choice([1, 2, 2]), semi=True, sources=pool)
        if "c AS" not in main_sql:
            main_sql += " CROSS JOIN (SELECT count(*) AS n FROM c) AS cn"
            main_scope.refs.append(Ref("cn.n", "n", "int", 1, 1))
        if self._chance(0.3):
            main_where.append(self.pred(main_scope))
        items = self._outputs(main_scope, self.rng.randint(1, 3))
        return (f"WITH c AS ({cte}) SELECT {self._select_list(items)} FROM {main_sql}{self._where(main_where)}"
                f"{self._maybe_limit(len(items), main_scope.rows)}")

    def _order(self) -> str:
        sql, scope, where = self.from_clause(self.rng.choice([1, 1, 2]))
        if self._chance(0.4):
            where.append(self.pred(scope))
        if self._chance(0.12):
            cast = self._order_by_cast_column(sql, scope, where)
            if cast is not None:
                return cast
        items = self._outputs(scope, self.rng.randint(1, 4))
        distinct = self._chance(0.2)
        n = len(items)
        if self._chance(0.1):
            order = "ORDER BY ALL" + self.rng.choice(["", " DESC"])
        else:
            keys = []
            for _ in range(self.rng.randint(1, 2)):
                pick = self.rng.random()
                if pick < 0.4 or distinct:
                    keys.append(str(self.rng.randint(1, n)))
                elif pick < 0.7:
                    keys.append(f"c{self.rng.randrange(n)}")
                else:
                    keys.append(self.expr(scope, self._comparable_kind(scope), 1))
                keys[-1] += self.rng.choice(["", " DESC"]) + self.rng.choice(["", " NULLS FIRST", " NULLS LAST"])
            keys += [str(p) for p in range(1, n + 1)]  # the tie-break that makes the order total
            order = "ORDER BY " + ", ".join(keys)
        tail = ""
        if self._chance(0.7) or (self.schema.name == "tpch" and scope.rows > MAX_PLAIN_ROWS):
            tail = f" LIMIT {self.rng.choice([0, 1, 2, 5, 10, 100])}"
        if self._chance(0.4):
            tail += f" OFFSET {self.rng.choice([0, 1, 3, 1000])}"
        if not distinct and self._chance(0.12):  # the first row of each c0 in the (total) order
            return f"SELECT DISTINCT ON (c0) {self._select_list(items)} FROM {sql}{self._where(where)} {order}{tail}"
        return (f"SELECT {'DISTINCT ' if distinct else ''}{self._select_list(items)} FROM {sql}{self._where(where)} "
                f"{order}{tail}")

    def _order_by_cast_column(self, sql: str, scope: Scope, where: list[str]) -> str | None:
        """An unaliased cast of a column, ordered by the column's bare name: DuckDB names the item
        `CAST(… AS VARCHAR)`, so the name means the column, not the cast's text (sqlglot names the
        item after the column). None where every name is held by two inputs."""
        held = Counter(r.name for r in scope.refs)
        refs = [r for r in scope.refs if held[r.name] == 1]
        if not refs:
            return None
        ref = self.rng.choice(refs)
        others = self._outputs(scope, self.rng.randint(0, 2))
        items = ", ".join([f"CAST({ref.sql} AS VARCHAR)"] + [f"{e} AS c{i}" for i, (e, _) in enumerate(others)])
        keys = [ref.name + self.rng.choice(["", " DESC"]) + self.rng.choice(["", " NULLS FIRST", " NULLS LAST"])]
        keys += [str(p) for p in range(1, len(others) + 2)]
        limit = f" LIMIT {self.rng.choice([1, 2, 5, 10])}" if self._chance(0.8) or scope.rows > MAX_PLAIN_ROWS else ""
        return f"SELECT {items} FROM {sql}{self._where(where)} ORDER BY {', '.join(keys)}{limit}"

    def _expr(self) -> str:
        sql, scope, where = self.from_clause(self.rng.choice([1, 1, 2]), semi=False)
        if self._chance(0.4):
            where.append(self.pred(scope))
        if self._chance(0.3):
            aggs = [self.aggregate_call(scope, risky=True) for _ in range(self.rng.randint(1, 3))]
            return f"SELECT {self._select_list(aggs)} FROM {sql}{self._where(where)}"
        items = []
        for _ in range(self.rng.randint(1, 4)):
            kind = self.rng.choice(["int", "int", "float", "dec", "date", "ts", "text"])
            items.append((self.expr(scope, kind, 0, risky=True), kind))
        body = f"SELECT {self._select_list(items)} FROM {sql}{self._where(where)}"
        if self.schema.name == "tpch" and scope.rows > MAX_PLAIN_ROWS:  # every row evaluated, few returned
            return "SELECT count(*) AS n, " + ", ".join(f"max(c{i}) AS m{i}" for i in range(len(items))) + f" FROM ({body}) AS e"
        return body


    def _grouping(self) -> str:
        """GROUP BY ROLLUP / CUBE / GROUPING SETS (or a plain key beside one) over low-cardinality
        keys, with GROUPING()/GROUPING_ID() and HAVING on them."""
        sql, scope, where = self.from_clause(self.rng.choice([1, 1, 2]))
        if self._chance(0.4):
            where.append(self.pred(scope))
        low = [r for r in scope.refs if r.distinct <= 50] or scope.refs
        keys = []
        for r in self.rng.sample(low, min(len(low), self.rng.randint(1, 3))):
            keys.append((r.sql, r.kind) if self._chance(0.8) else (self.expr(Scope(low), r.kind, 1), r.kind))
        names = [k for k, _ in keys]
        form = self.rng.choice(["rollup", "cube", "sets", "mixed"])
        if form == "sets":
            sets = [names] + [[n for n in names if self._chance(0.5)] for _ in range(self.rng.randint(0, 3))]
            self.rng.shuffle(sets)
            clause = "GROUPING SETS (" + ", ".join(f"({', '.join(s)})" for s in sets) + ")"
        elif form == "mixed" and len(names) > 1:
            clause = f"{names[0]}, {self.rng.choice(['ROLLUP', 'CUBE'])} ({', '.join(names[1:])})"
        else:
            parts = list(names)
            if len(parts) > 2 and self._chance(0.3):  # a composite element: rolled up together
                parts = [f"({parts[0]}, {parts[1]})"] + parts[2:]
            clause = f"{'CUBE' if form == 'cube' else 'ROLLUP'} ({', '.join(parts)})"
        items = keys + [self.aggregate_call(scope) for _ in range(self.rng.randint(1, 2))]
        if self._chance(0.6):
            args = self.rng.sample(names, self.rng.randint(1, len(names)))
            items.append((f"{self.rng.choice(['grouping', 'grouping_id'])}({', '.join(args)})", "int"))
        having = ""
        if self._chance(0.25):
            having = " HAVING " + self.rng.choice([f"grouping({self.rng.choice(names)}) = {self.rng.choice([0, 1])}",
                                                   f"count(*) {self.rng.choice(['>', '<='])} 1"])
        return (f"SELECT {self._select_list(items)} FROM {sql}{self._where(where)} GROUP BY {clause}{having}"
                f"{self._maybe_limit(len(items), scope.rows)}")

    def _asof(self) -> str:
        """ASOF [LEFT] JOIN on 0-2 equality keys and one inequality. Right rows tied on the keys and
        the ordering value are DuckDB's free pick, so the right side shows only what ties share: its
        keys and ordering value, or it is a derived table with one row per (keys, value)."""
        for _ in range(8):
            ls, rs = self._source(max_rows=MAX_JOIN_ROWS / 4), self._source(max_rows=MAX_JOIN_ROWS / 4)
            la, rb = self._new_alias(), self._new_alias()
            left, right = self._scope_for(la, ls), self._scope_for(rb, rs)
            ordered = [(lr, rr) for lr in left.refs for rr in right.refs
                       if lr.kind == rr.kind and lr.kind in ("int", "dec", "date", "ts")]
            if ordered:
                break
        else:
            return self._join()
        lo, ro = self.rng.choice(ordered)
        eq = [(lr, rr) for lr, rr, _ in self._key_pairs(left, rb, rs)
              if lr.kind == rr.kind and lr.kind in ("int", "text", "date", "bool") and rr.name != ro.name]
        eq = self.rng.sample(eq, min(len(eq), self.rng.choice([0, 1, 1, 1, 2])))
        ra = self._new_alias()
        right_cols = [rr.name for _, rr in eq] + [ro.name]
        cols = ", ".join(f"{rb}.{c} AS {n}" for c, n in zip(right_cols, [f"e{i}" for i in range(len(eq))] + ["t"]))
        filt = self._where([self.pred(right, 1)] if self._chance(0.3) else [])
        safe = [f"{ra}.e{i}" for i in range(len(eq))] + [f"{ra}.t"]
        if self._chance(0.5):
            extra = self.rng.choice(right.refs).sql
            right_sql = f"(SELECT {cols}, min({extra}) AS m, count(*) AS n FROM {rs.sql} AS {rb}{filt} GROUP BY ALL)"
            safe += [f"{ra}.m", f"{ra}.n"]
        else:
            right_sql = f"(SELECT {cols} FROM {rs.sql} AS {rb}{filt})"
        flip = {">=": "<=", ">": "<", "<=": ">=", "<": ">"}
        op = self.rng.choice(list(flip))
        ineq = f"{lo.sql} {op} {ra}.t" if self._chance(0.7) else f"{ra}.t {flip[op]} {lo.sql}"
        conds = [f"{lr.sql} = {ra}.e{i}" for i, (lr, _) in enumerate(eq)] + [ineq]
        self.rng.shuffle(conds)
        join = self.rng.choice(["ASOF JOIN", "ASOF LEFT JOIN"])
        items = [(r.sql, r.kind) for r in self.rng.sample(left.refs, self.rng.randint(1, min(3, len(left.refs))))]
        items += [(s, "any") for s in self.rng.sample(safe, self.rng.randint(1, len(safe)))]
        where = [self.pred(left, 1)] if self._chance(0.3) else []
        if self._chance(0.15):
            where.append(f"{ra}.t IS {self.rng.choice(['', 'NOT '])}NULL")
        sql = f"{ls.sql} AS {la} {join} {right_sql} AS {ra} ON {' AND '.join(conds)}{self._where(where)}"
        if self._chance(0.25):
            return f"SELECT count(*) AS n, count({ra}.t) AS nt, min({ra}.t) AS lo, max({ra}.t) AS hi FROM {sql}"
        return f"SELECT {self._select_list(items)} FROM {sql}{self._maybe_limit(len(items), left.rows)}"

    def _recursive(self) -> str:
        """WITH RECURSIVE: a walk over a table's unique integer key (each row leads to at most one
        row, so a walk of depth d has at most d+1 times the anchor's rows), bounded by a depth column
        or, under UNION, by a few-valued next-key column (a fixpoint within a few iterations)."""
        limit = 2500 if self.schema.name == "tpch" else MAX_JOIN_ROWS
        cands = [s for s in self.sources if len(s.table.unique) == 1 and s.table.rows <= limit and
                 next(c for c in s.table.columns if c.name == s.table.unique[0]).kind == "int"]
        if not cands:
            return self._cte()
        src = self.rng.choice(cands)
        key = src.table.unique[0]
        a, b = self._new_alias(), self._new_alias()
        sa = self._scope_for(a, src)
        few = [c.name for c in src.table.columns if c.kind == "int" and c.distinct <= 10 and c.name != key]
        fixpoint = bool(few) and self._chance(0.35)
        if fixpoint:
            nxt = f"{a}.{self.rng.choice(few)}"
        else:
            ints = [c.name for c in src.table.columns if c.kind == "int"]
            nxt = self.rng.choice([f"{a}.{c}" for c in ints] + [f"{a}.{key} + 1", f"{a}.{key} * 2", f"{a}.{key} // 2"])
        vkind = self._comparable_kind(sa)
        v = self.expr(sa, vkind, 1)
        step_v = v.replace(f"{a}.", f"{b}.")
        depth = not fixpoint
        if depth and vkind == "text" and self._chance(0.4):  # a path, grown by every step
            step_v = f"r.v || '/' || CAST({b}.{key} AS VARCHAR)"
        anchor_where = self._where([self.pred(sa, 1)] if self._chance(0.5) else [])
        cols = "id, nxt, v" + (", depth" if depth else "")
        anchor = f"SELECT {a}.{key}, {nxt}, {v}{', 0' if depth else ''} FROM {src.sql} AS {a}{anchor_where}"
        on = f"{b}.{key} = r.nxt"
        step_preds = [self.pred(self._scope_for(b, src), 1)] if self._chance(0.3) else []
        if depth:
            step_preds.append(f"r.depth < {self.rng.choice([1, 2, 3, 4])}")
        step_nxt = nxt.replace(f"{a}.", f"{b}.")
        if self._chance(0.3):
            step_from = f"r, {src.sql} AS {b}"
            step_preds.insert(0, on)
        else:
            step_from = f"r JOIN {src.sql} AS {b} ON {on}"
        step = (f"SELECT {b}.{key}, {step_nxt}, {step_v}{', r.depth + 1' if depth else ''} FROM {step_from}"
                f"{self._where(step_preds)}")
        union = "UNION" if fixpoint or self._chance(0.4) else "UNION ALL"
        with_ = f"WITH RECURSIVE r({cols}) AS ({anchor} {union} {step}) "
        rows = src.table.rows * 5
        shape = self.rng.random()
        if shape < 0.3:
            group = "depth" if depth else "nxt"
            return (with_ + f"SELECT {group} AS c0, count(*) AS c1, count(DISTINCT id) AS c2, min(v) AS c3, max(v) AS c4 "
                    f"FROM r GROUP BY {group}")
        if shape < 0.5:
            c = self._new_alias()
            sc = self._scope_for(c, src)
            items = [("r.id", "int"), ("r.v", vkind)] + self._outputs(sc, 1)
            return (with_ + f"SELECT {self._select_list(items)} FROM r {self.rng.choice(['JOIN', 'LEFT JOIN'])} "
                    f"{src.sql} AS {c} ON {c}.{key} = r.nxt{self._maybe_limit(len(items), rows)}")
        n = 4 if depth else 3
        return with_ + f"SELECT * FROM r{self._maybe_limit(n, rows)}"

    # ------------------------------------------------------------------ clauses
    def _clauses(self) -> str:
        """Clauses beside a SELECT's core that are easy to drop without a word (sqlglot keeps several
        beside the node they change): LIMIT ALL, FETCH FIRST … ONLY, named WINDOW clauses with QUALIFY,
        DISTINCT ON, ORDER BY ALL, PIVOT / UNPIVOT, UNION BY NAME, EXISTS / IN / ANY / ALL as values,
        table functions reading the FROM item before them, POSITIONAL JOIN; and, one query in twelve,
        a clause whose answer is easy to get wrong (TABLESAMPLE, LIMIT … PERCENT, COLUMNS(…), WITH
        ORDINALITY: all refused by name before they were built), written so that DuckDB's answer is determined
        all the same."""
        forms = [(self._limit_all, 2), (self._fetch_first, 1), (self._named_window, 2), (self._distinct_on, 2),
                 (self._order_by_all, 2), (self._pivot, 2), (self._unpivot, 2), (self._by_name, 2),
                 (self._subquery_values, 2), (self._lateral_function, 3), (self._positional, 2), (self._refused, 2),
                 (self._percent, 1)]
        build = self.rng.choices([f for f, _ in forms], weights=[w for _, w in forms])[0]
        return build()

    def _plain(self, semi: bool = True) -> tuple[str, Scope, list[str], list[tuple[str, str]]]:
        """A FROM clause of 1-2 inputs, WHERE conjuncts (maybe a predicate) and 1-3 select items."""
        sql, scope, where = self.from_clause(self.rng.choice([1, 1, 2]), semi=semi)
        if self._chance(0.4):
            where.append(self.pred(scope))
        return sql, scope, where, self._outputs(scope, self.rng.randint(1, 3))

    def _big(self, rows: float) -> bool:
        return self.schema.name == "tpch" and rows > MAX_PLAIN_ROWS

    def _limit_all(self) -> str:
        sql, scope, where, items = self._plain()
        tail = f" {self._total_order(len(items))} LIMIT ALL"
        if self._chance(0.5):
            tail += f" OFFSET {self.rng.choice([1, 3, 50])}"
        body = f"SELECT {self._select_list(items)} FROM {sql}{self._where(where)}{tail}"
        if self._big(scope.rows):
            return f"SELECT * FROM ({body}) AS q {self._total_order(len(items))} LIMIT 20"
        return body

    def _fetch_first(self) -> str:
        sql, scope, where, items = self._plain()
        tail = f" {self._total_order(len(items))}"
        if self._chance(0.4):
            tail += f" OFFSET {self.rng.choice([1, 2, 7])} ROWS"
        n = self.rng.choice(["", "1 ", "3 ", "10 "])
        tail += f" FETCH {self.rng.choice(['FIRST', 'NEXT'])} {n}{'ROW' if n in ('', '1 ') else 'ROWS'} ONLY"
        return f"SELECT {self._select_list(items)} FROM {sql}{self._where(where)}{tail}"

    def _named_window(self) -> str:
        """WINDOW w AS (…), read as `OVER w` or extended `OVER (w ORDER BY …)` / `OVER (w ROWS …)`,
        often filtered by QUALIFY on a ranking."""
        sql, scope, where = self.from_clause(self.rng.choice([1, 1, 2]), semi=False)
        if self._chance(0.3):
            where.append(self.pred(scope))
        items = self._outputs(scope, self.rng.randint(1, 2))
        low = [r for r in scope.refs if r.distinct <= 50] or scope.refs
        partition = ""
        if self._chance(0.7):
            partition = "PARTITION BY " + ", ".join(r.sql for r in self.rng.sample(low, min(len(low), self.rng.choice([1, 2]))))
        lead = self.rng.choice(scope.refs).sql + self.rng.choice(["", " DESC"]) + self.rng.choice(["", " NULLS FIRST"])
        num = self.rng.choice(scope.of(NUMERIC) or scope.refs).sql
        anyarg = self.rng.choice(scope.refs).sql
        if scope.keys is not None:
            order = f"ORDER BY {', '.join([lead] + scope.keys)}"
            ordered_calls = ["row_number() OVER w", f"lag({anyarg}) OVER w", f"first_value({anyarg}) OVER w",
                             f"sum({num}) OVER (w ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)",
                             f"count({anyarg}) OVER (w ROWS BETWEEN CURRENT ROW AND 2 FOLLOWING)"]
        else:
            order = f"ORDER BY {lead}"
            ordered_calls = []
        if self._chance(0.3):  # the named window partitions only; the call adds the order
            window = f"WINDOW w AS ({partition})"
            calls = [f"rank() OVER (w {order})", f"dense_rank() OVER (w {order})", "count(*) OVER w",
                     f"max({anyarg}) OVER w"]
            ranking = calls[:3]
        else:
            window = f"WINDOW w AS ({partition} {order})"
            calls = ["rank() OVER w", "dense_rank() OVER w", f"min({anyarg}) OVER w", "count(*) OVER w"] + ordered_calls
            ranking = ["rank() OVER w", "dense_rank() OVER w", "count(*) OVER w"] + ordered_calls[:1]
        windows = [self.rng.choice(calls) for _ in range(self.rng.randint(1, 2))]
        if self._chance(0.5):
            windows[0] = self.rng.choice(ranking)
            qualify = self.rng.choice([" QUALIFY w0 <= 2", f" QUALIFY {windows[0]} = 1", " QUALIFY w0 > 1"])
        else:
            qualify = ""
        body = (f"SELECT {self._select_list(items)}, " + ", ".join(f"{w} AS w{i}" for i, w in enumerate(windows)) +
                f" FROM {sql}{self._where(where)} {window}{qualify}")
        return body + self._maybe_limit(len(items) + len(windows), scope.rows)

    def _distinct_on(self) -> str:
        """DISTINCT ON (keys): the first row of each key in a total order (ORDER BY the keys, then
        every output), the keys outputs, positions or expressions."""
        sql, scope, where, items = self._plain()
        n = len(items)
        keys = []
        for _ in range(self.rng.randint(1, 2)):
            pick = self.rng.random()
            if pick < 0.4:
                keys.append(f"c{self.rng.randrange(n)}")
            elif pick < 0.7:
                keys.append(self.rng.choice(items)[0])
            else:
                keys.append(self.expr(scope, self._comparable_kind(scope), 1))
            if not any(r.sql in keys[-1] for r in scope.refs):  # a constant: DuckDB refuses it
                keys[-1] = self.rng.choice(scope.refs).sql
        if self._chance(0.2):
            order = "ORDER BY ALL" + self.rng.choice(["", " DESC"])
        else:
            lead = [k + self.rng.choice(["", " DESC"]) for k in keys if self._chance(0.7)]
            order = "ORDER BY " + ", ".join(lead + [str(p) for p in range(1, n + 1)])
        tail = ""
        if self._chance(0.4) or self._big(scope.rows):
            tail = f" LIMIT {self.rng.choice([1, 3, 20])}"
        return f"SELECT DISTINCT ON ({', '.join(keys)}) {self._select_list(items)} FROM {sql}{self._where(where)} {order}{tail}"

    def _order_by_all(self) -> str:
        form = self.rng.choice(["grouped", "plain", "setop"])
        if form == "setop":
            probe = self._scope_for("x", self.rng.choice(self.sources))
            kinds = [self._comparable_kind(probe) for _ in range(self.rng.randint(1, 2))]
            op = self.rng.choice(["UNION", "UNION ALL", "INTERSECT", "EXCEPT"])
            return (f"{self._setop_side(kinds)} {op} {self._setop_side(kinds)} ORDER BY ALL{self.rng.choice(['', ' DESC'])}"
                    f" LIMIT {self.rng.choice([1, 5, 20])}")
        sql, scope, where, items = self._plain()
        group = ""
        if form == "grouped":
            low = [r for r in scope.refs if r.distinct <= 50] or scope.refs
            items = [(r.sql, r.kind) for r in self.rng.sample(low, min(len(low), self.rng.randint(1, 2)))]
            items += [self.aggregate_call(scope, exact=True) for _ in range(self.rng.randint(1, 2))]
            group = " GROUP BY ALL"
        tail = f" ORDER BY ALL{self.rng.choice(['', ' DESC'])}"
        if self._chance(0.5) or self._big(scope.rows):
            tail += f" LIMIT {self.rng.choice([1, 3, 20])}"
        return f"SELECT {self._select_list(items)} FROM {sql}{self._where(where)}{group}{tail}"

    def _pivot_aggregate(self, table: Table) -> str:
        ints = [c.name for c in table.columns if c.kind in ("int", "dec")]
        cols = [c.name for c in table.columns if c.kind != "float"]
        forms = ["count(*)"] + [f"count({c})" for c in cols[:3]]
        if ints:
            forms += [f"sum({self.rng.choice(ints)})", f"min({self.rng.choice(ints)})"]
        forms.append(f"max({self.rng.choice(cols)})")
        return self.rng.choice(forms)

    def _pivot_source(self, t: Table, needed: list[str], groups: list[str]) -> tuple[str, str, str, list[str]]:
        """Where a PIVOT / UNPIVOT reads `t` from: the table, a CTE or a derived table projecting the
        `needed` columns (and maybe some of `groups`), maybe filtered. Returns (WITH prefix, the source
        for the statement form, the source for the standard form, the source's columns)."""
        form = self.rng.choices(["table", "cte", "derived"], weights=[6, 2, 2])[0]
        if form == "table":
            return "", t.name, t.name, [c.name for c in t.columns]
        cols = list(dict.fromkeys(needed + [g for g in groups if g not in needed and self._chance(0.3)]))
        alias = self._new_alias()
        where = self._where([self.pred(self._scope_for(alias, Source(t.name, t)), 1)] if self._chance(0.5) else [])
        body = f"SELECT {', '.join(cols)} FROM {t.name} AS {alias}{where}"
        if form == "cte":
            return f"WITH w AS ({body}) ", "w", "w", cols
        return "", f"({body})", f"({body}){self.rng.choice(['', ' AS d'])}", cols

    def _pivot_on(self, t: Table, few: list[Column]) -> tuple[str, list[str], bool]:
        """What a PIVOT is ON: a few-valued column, two of them, or an expression of few values
        (`ON x > 4`, `ON (x > 4)`, `ON c IS NULL`); (sql, columns read, one plain column)."""
        form = self.rng.choices(["one", "two", "expr"], weights=[7, 2, 2])[0]
        on = self.rng.choice(few)
        if form == "two" and len(few) > 1:
            other = self.rng.choice([c for c in few if c.name != on.name])
            return f"{on.name}, {other.name}", [on.name, other.name], False
        if form == "expr":
            ordered = [c for c in t.columns if c.kind in ("int", "dec", "date", "float")]
            text = [c for c in few if c.kind == "text"]
            ints = [c for c in few if c.kind == "int"]
            forms = [(f"({c.name} IS NULL)", c) for c in [self.rng.choice(t.columns)]]
            if ordered:
                c = self.rng.choice(ordered)
                forms.append((f"({c.name} > {self._lit(c.kind)})", c))
            if text:
                c = self.rng.choice(text)
                forms.append((f"{self.rng.choice(['upper', 'lower'])}({c.name})", c))
            if ints:
                c = self.rng.choice(ints)
                forms += [(f"({c.name} % 3)", c), (f"coalesce({c.name}, 0)", c)]
            sql, c = self.rng.choice(forms)
            if sql.startswith("(") and self._chance(0.5):
                sql = sql[1:-1]  # DuckDB reads a bare `ON x > 4` too (planner/pivot_syntax.py)
            return sql, [c.name], False
        return on.name, [on.name], True

    def _pivot(self) -> str:
        """PIVOT of a table, a CTE or a derived table on a few-valued column (two of them, or an
        expression of few values): DuckDB's form (with or without IN, with GROUP BY) and the standard
        form (IN, every other column a group)."""
        cands = [s for s in self.sources if any(c.distinct <= 8 and c.kind in ("int", "text", "bool", "date")
                                                for c in s.table.columns)]
        if not cands:
            return self._aggregate()
        t = self.rng.choice(cands).table
        few = [c for c in t.columns if c.distinct <= 8 and c.kind in ("int", "text", "bool", "date")]
        on_sql, on_cols, plain = self._pivot_on(t, few)
        on = next(c for c in t.columns if c.name == on_cols[0])
        values = ""
        if self._chance(0.5) and on.kind != "bool" and on.name == on_sql.split(",")[0]:
            # Plain constants (a date as its text): `-1`, `DATE '…'` are refused (planner/rules/pivot.py).
            lits = [self._lit(on.kind).replace("DATE ", "") for _ in range(self.rng.randint(1, 3))]
            lits = list(dict.fromkeys(v for v in lits if not v.startswith("-")))
            values = f" IN ({', '.join(lits)})" if lits else ""
        if values and not plain:
            on_sql = f"{on.name}{values}{on_sql[len(on.name):]}"
        aggs = [self._pivot_aggregate(t) for _ in range(self.rng.choice([1, 1, 2]))]
        if len(aggs) == 2 or self._chance(0.2):
            aggs = [f"{a} AS x{i}" for i, a in enumerate(aggs)]
        read = [c.name for c in t.columns if any(f"({c.name})" in a for a in aggs)]
        groups = [c.name for c in t.columns if c.distinct <= 20 and c.name not in on_cols]
        standard = plain and values and self._chance(0.3)
        group_cols = []
        if groups and not standard and (self._chance(0.8) or t.rows > MAX_PLAIN_ROWS):
            group_cols = self.rng.sample(groups, min(len(groups), self.rng.choice([1, 1, 2])))
        with_, stmt_src, std_src, _ = self._pivot_source(t, on_cols + read + group_cols, groups)
        derived = stmt_src != t.name
        if standard and (t.rows <= MAX_PLAIN_ROWS or derived):
            # The standard form's own GROUP BY, written inside its parentheses.
            inner_group = f" GROUP BY {self.rng.choice(groups)}" if groups and self._chance(0.4) else ""
            return f"{with_}SELECT * FROM {std_src} PIVOT ({aggs[0]} FOR {on.name}{values}{inner_group})"
        group = f" GROUP BY {', '.join(group_cols)}" if group_cols else ""
        sql = f"PIVOT {stmt_src} ON {on_sql}{'' if not plain else values} USING {', '.join(aggs)}{group}"
        if not group and t.rows > MAX_PLAIN_ROWS and not derived:  # a group per row
            return f"{with_}SELECT count(*) AS n FROM ({sql}) AS p"
        return with_ + sql

    def _unpivot(self) -> str:
        """UNPIVOT of the columns of one kind of a table, a CTE or a derived table into (name, value)
        rows: DuckDB's form and the standard one, aggregated per name where a table is large."""
        t = self.rng.choice(self.sources).table
        by_kind: dict[str, list[str]] = {}
        for c in t.columns:
            by_kind.setdefault(c.kind, []).append(c.name)
        kinds = [k for k, cs in by_kind.items() if len(cs) >= 2] or list(by_kind)
        pairs = [k for k in kinds if len(by_kind[k]) >= 2]
        fours = [k for k in kinds if len(by_kind[k]) >= 4]
        if (len(pairs) >= 2 or fours) and self._chance(0.3):
            # Two value columns: entries `(a, b) AS e0` of two columns of one kind each, of two
            # kinds where the table has them.
            first, second = self.rng.sample(pairs, 2) if len(pairs) >= 2 and (not fours or self._chance(0.5)) \
                else (self.rng.choice(fours),) * 2
            picked = self.rng.sample(by_kind[first], 4) if first == second else \
                self.rng.sample(by_kind[first], 2) + self.rng.sample(by_kind[second], 2)
            entries = [(picked[0], picked[2]), (picked[1], picked[3])]
            on = [c for e in entries for c in e]
            labels = [f"({a}, {b}){self.rng.choice(['', f' AS e{i}'])}" for i, (a, b) in enumerate(entries)]
            values, std_values = "v, w", "(v, w)"
        else:
            cols = by_kind[self.rng.choice(kinds)]
            on = self.rng.sample(cols, min(len(cols), self.rng.randint(2, 3)))
            labels, values, std_values = on, "v", "v"
        keep = [c.name for c in t.columns if c.name not in on]
        with_, stmt_src, std_src, source_cols = self._pivot_source(t, list(on), keep)
        keep = [c for c in keep if c in source_cols]
        if self._chance(0.5):
            sql = f"UNPIVOT {stmt_src} ON {', '.join(labels)} INTO NAME n VALUE {values}"
        else:
            nulls = self.rng.choice(["", " INCLUDE NULLS"])
            sql = f"SELECT * FROM {std_src} UNPIVOT{nulls} ({std_values} FOR n IN ({', '.join(labels)}))"
        if t.rows * len(on) > MAX_PLAIN_ROWS / 2 or self._chance(0.3):
            return (f"{with_}SELECT n, count(*) AS c0, count(v) AS c1, min(v) AS c2, max(v) AS c3 FROM ({sql}) AS u "
                    f"GROUP BY n")
        if keep and self._chance(0.5):
            pick = self.rng.sample(keep, min(len(keep), 2))
            return f"{with_}SELECT {', '.join(pick)}, n, v FROM ({sql}) AS u WHERE v IS NOT NULL"
        return with_ + sql

    def _by_name(self) -> str:
        """UNION [ALL] BY NAME of sides naming some of x, y, z in any order (one type per name)."""
        probe = self._scope_for("x", self.rng.choice(self.sources))
        kinds = {n: self._comparable_kind(probe) for n in ("x", "y", "z")}
        used: set[str] = set()

        def side() -> str:
            sql, scope, where = self.from_clause(self.rng.choice([1, 1, 2]), semi=False)
            if self._chance(0.5):
                where.append(self.pred(scope))
            names = self.rng.sample(list(kinds), self.rng.randint(1, 3))
            used.update(names)
            items = []
            for n in names:
                cols = scope.of((kinds[n],))
                items.append(f"{self.rng.choice(cols).sql if cols and self._chance(0.7) else self.expr(scope, kinds[n], 1)} AS {n}")
            return f"SELECT {', '.join(items)} FROM {sql}{self._where(where)}"

        sql = f"{side()} {self.rng.choice(['UNION', 'UNION ALL'])} BY NAME {side()}"
        if self._chance(0.25):
            sql += f" {self.rng.choice(['UNION', 'UNION ALL'])} BY NAME {side()}"
        if self.schema.name == "tpch":
            counts = ", ".join(f"count(DISTINCT {n}) AS d{n}, count({n}) AS n{n}" for n in sorted(used))
            return f"SELECT count(*) AS n, {counts} FROM ({sql}) AS u"
        return sql

    def _subquery_values(self) -> str:
        """EXISTS, IN, NOT IN, ANY / ALL and scalar comparisons as values of the select list (NULL
        where SQL says unknown), correlated or not."""
        sql, scope, where = self.from_clause(self.rng.choice([1, 1, 2]), semi=False)
        if self._chance(0.3):
            where.append(self.pred(scope))
        items = self._outputs(scope, self.rng.randint(1, 2))
        for _ in range(self.rng.randint(1, 2)):
            value = self.subquery_pred(scope)
            value = self.rng.choice([value, value, f"(NOT {value})", f"coalesce({value}, FALSE)",
                                     f"CASE WHEN {value} IS NULL THEN 'unknown' WHEN {value} THEN 'yes' ELSE 'no' END"])
            items.append((value, "any"))
        return f"SELECT {self._select_list(items)} FROM {sql}{self._where(where)}{self._maybe_limit(len(items), scope.rows)}"

    def _bounded(self, scope: Scope, lo: int, hi: int) -> str:
        """An integer expression of `scope` clamped to [lo, hi] (a table function's argument)."""
        ints = scope.of(("int",))
        x = self.rng.choice(ints).sql if ints and self._chance(0.8) else self._lit("int")
        return f"least(greatest({x}, {lo}), {hi})"

    def _lateral_function(self) -> str:
        """unnest([…]) / range(…) / generate_series(…) over the columns of the FROM item before it:
        the rows it makes for each outer row, under every join form and naming of its column."""
        src = self._source(max_rows=MAX_JOIN_ROWS / 5)
        a = self._new_alias()
        scope = self._scope_for(a, src)
        fn = self.rng.choice(["unnest", "unnest", "range", "generate_series"])
        kind = "int"
        if fn == "unnest":
            kind = self._comparable_kind(scope)
            cols = scope.of((kind,))
            elems = [self.rng.choice(cols).sql if cols and self._chance(0.7) else self._lit(kind)
                     for _ in range(self.rng.randint(1, 3))]
            if self._chance(0.3):
                elems.append("NULL")
            call, rows = f"unnest([{', '.join(elems)}])", len(elems)
        elif fn == "range":
            args = [self._bounded(scope, -1, 4)]
            if self._chance(0.4):
                args = [self._bounded(scope, -2, 2)] + args + ([self.rng.choice(["1", "2", "-1"])] if self._chance(0.3) else [])
            call, rows = f"range({', '.join(args)})", 6
        else:
            call, rows = f"generate_series({self._bounded(scope, -2, 3)}, {self._bounded(scope, 0, 4)})", 7
        b = self._new_alias()
        naming = self.rng.choice(["column", "table", "table", "none"])
        if naming == "column":
            item, ref = f"{call} AS {b}(x)", f"{b}.x"
        elif naming == "table":
            item, ref = f"{call} AS {b}", self.rng.choice([f"{b}.{b}", f"{b}.{fn}", b])
        else:
            item, ref = call, self.rng.choice([f"{fn}.{fn}", fn])
        join = self.rng.choice([", ", " CROSS JOIN ", " JOIN ", " LEFT JOIN "])
        on = ""
        if join in (" JOIN ", " LEFT JOIN "):
            same = scope.of((kind,))
            other = self.rng.choice(same).sql if same else self._lit(kind)
            on = " ON TRUE" if self._chance(0.4) else f" ON {ref} IS DISTINCT FROM {other}"
            if fn != "unnest" and self._chance(0.5):
                # `{bound} > ref`: sqlglot reads a bare `range <` as the start of a type `RANGE<…>`.
                on = f" ON {self._bounded(scope, 0, 3)} > {ref}"
        sql = f"{src.sql} AS {a}{join}{item}{on}"
        where = [self.pred(scope, 1)] if self._chance(0.3) else []
        if self._chance(0.2):
            where.append(f"{ref} IS NOT NULL")
        if scope.rows * rows > MAX_PLAIN_ROWS / 2 or self._chance(0.25):
            low = [r for r in scope.refs if r.distinct <= 50]
            g = self.rng.choice(low).sql if low else "0"
            return (f"SELECT {g} AS c0, count(*) AS c1, count({ref}) AS c2, min({ref}) AS c3, max({ref}) AS c4 "
                    f"FROM {sql}{self._where(where)}{' GROUP BY ' + g if low else ''}")
        items = self._outputs(scope, self.rng.randint(1, 2)) + [(ref, "any")]
        return f"SELECT {self._select_list(items)} FROM {sql}{self._where(where)}{self._maybe_limit(len(items), scope.rows * rows)}"

    def _positional(self) -> str:
        """POSITIONAL JOIN of tables (or their filtered projections) in their files' order."""
        def side() -> tuple[str, Scope]:
            src = self._source()
            alias = self._new_alias()
            scope = self._scope_for(alias, src)
            if self._chance(0.35):  # a filtered projection
                inner = self._scope_for("p", src)
                cols = self.rng.sample(src.table.columns, min(len(src.table.columns), self.rng.randint(1, 3)))
                body = f"(SELECT {', '.join('p.' + c.name for c in cols)} FROM {src.sql} AS p WHERE {self.pred(inner, 1)})"
                scope = Scope([r for r in scope.refs if r.name in {c.name for c in cols}], None, scope.rows)
                return f"{body} AS {alias}", scope
            return f"{src.sql} AS {alias}", scope
        (ls, left), (rs, right) = side(), side()
        sql = f"{ls} POSITIONAL JOIN {rs}"
        refs = left.refs + right.refs
        if self._chance(0.15):
            s3, third = side()
            sql += f" POSITIONAL JOIN {s3}"
            refs += third.refs
            right.rows = max(right.rows, third.rows)
        joint = Scope(refs, None, max(left.rows, right.rows))
        where = self._where([self.pred(joint, 1)] if self._chance(0.3) else [])
        if joint.rows > MAX_PLAIN_ROWS / 2 or self._chance(0.2):
            l, r = self.rng.choice(left.refs).sql, self.rng.choice(right.refs).sql
            return (f"SELECT count(*) AS n, count({l}) AS c0, count({r}) AS c1, min({l}) AS c2, max({r}) AS c3, "
                    f"count(*) FILTER (WHERE {self.pred(joint, 1)}) AS c4 FROM {sql}{where}")
        items = [(r.sql, r.kind) for r in self.rng.sample(refs, min(len(refs), self.rng.randint(2, 4)))]
        return f"SELECT {self._select_list(items)} FROM {sql}{where}"

    def _percent(self) -> str:
        """LIMIT p PERCENT [OFFSET n] after SELECT DISTINCT, DISTINCT ON or QUALIFY, in a total order of
        the outputs: p % of the rows they leave."""
        pool = [s for s in self.sources if s.table.rows <= MAX_PLAIN_ROWS] or self.sources
        sql, scope, where = self.from_clause(self.rng.choice([1, 1, 2]), semi=False, sources=pool)
        if self._chance(0.4):
            where.append(self.pred(scope))
        items = self._outputs(scope, self.rng.randint(1, 3))
        n = len(items)
        pct = self.rng.choice(["1", "2", "5"] if self._big(scope.rows) else ["10", "25", "50", "33.3", "100", "1", "0"])
        tail = f" LIMIT {pct} PERCENT"
        if self._chance(0.25):
            tail += f" OFFSET {self.rng.choice([1, 2, 5])}"
        form = self.rng.choice(["distinct", "distinct", "distinct_on", "qualify", "qualify"])
        if form == "distinct":
            return f"SELECT DISTINCT {self._select_list(items)} FROM {sql}{self._where(where)} {self._total_order(n)}{tail}"
        if form == "distinct_on":
            order = self._total_order(n).replace("ORDER BY ", "ORDER BY 1, ", 1)
            return f"SELECT DISTINCT ON (c0) {self._select_list(items)} FROM {sql}{self._where(where)} {order}{tail}"
        qualify = self.rng.choice([f"c{n} <= 2", f"c{n} = 1", f"c{n} > 1"])
        return (f"SELECT {self._select_list(items)}, {self.ranking_call(scope)} AS c{n} FROM {sql}{self._where(where)} "
                f"QUALIFY {qualify} {self._total_order(n + 1)}{tail}")

    def _refused(self) -> str:
        """A clause FlockSQL built late or refuses, in a query whose answer DuckDB determines: a sample of
        a fixed number of rows (counted), LIMIT … PERCENT in a total order, COLUMNS(…) in an
        aggregate, WITH ORDINALITY."""
        src = self._source()
        a = self._new_alias()
        scope = self._scope_for(a, src)
        form = self.rng.choice(["sample", "percent", "columns", "ordinality"])
        if form == "sample":
            n = self.rng.choice([0, 1, 5])
            sample = self.rng.choice([f"USING SAMPLE {n} ROWS", f"TABLESAMPLE reservoir({n} ROWS)"])
            if sample.startswith("USING"):
                return f"SELECT count(*) AS n FROM {src.sql} AS {a} {sample}"
            return f"SELECT count(*) AS n FROM {src.sql} AS {a} {sample}"
        if form == "percent":
            src = self._source(max_rows=MAX_PLAIN_ROWS)
            scope = self._scope_for(a, src)
            items = self._outputs(scope, self.rng.randint(1, 2))
            return (f"SELECT {self._select_list(items)} FROM {src.sql} AS {a} {self._total_order(len(items))} "
                    f"LIMIT {self.rng.choice([1, 10, 40])} PERCENT")
        if form == "columns":
            col = self.rng.choice(src.table.columns).name
            pattern = self.rng.choice(["*", f"'^{col}$'", f"'{col[:1]}'"])
            return f"SELECT {self.rng.choice(['count', 'max', 'min'])}(COLUMNS({pattern})) FROM {src.sql}"
        if self._chance(0.5):
            return f"SELECT * FROM range({self.rng.randint(0, 4)}) WITH ORDINALITY"
        ints = scope.of(("int",))
        elems = ", ".join([self.rng.choice(ints).sql if ints else "1", "2"])
        return f"SELECT count(*) AS n, sum(u.o) AS s FROM {src.sql} AS {a}, unnest([{elems}]) WITH ORDINALITY AS u(x, o)"


def generate(schema: Schema, seed: int, count: int, areas: tuple[str, ...] = AREAS) -> list[FuzzQuery]:
    """`count` queries from `seed`, cycling through `areas` so every area gets its share."""
    gen = QueryGenerator(schema, random.Random(f"{schema.name}:{seed}"))
    return [gen.query(areas[i % len(areas)]) for i in range(count)]
