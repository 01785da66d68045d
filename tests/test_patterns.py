"""Each of the eight canonical patterns, forced where the planner would not pick it on its own, on
the SF 0.01 TPC-H sample at 1, 2 and 3 ranks: EXPLAIN must name the pattern on the operator's line
(and the exchange stage it implies), and the answer must equal DuckDB's.

Alternatives are forced both ways (Join: shuffle-compute vs broadcast-compute, Aggregate:
combine-shuffle-reduce vs shuffle-compute, Sort: sample-shuffle-compute vs globally-reduce,
Window: halo-exchange vs globally-reduce): both must give the oracle's answer.

One MPI job per rank count runs every query and its EXPLAIN under each forcing (a Session per
forcing).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from engine.batch import QueryList, run_query_lists
from tests.conftest import duckdb_oracle
from tpch.compare import compare_tables, ordering_of

EP = "embarrassingly-parallel"
SHUFFLE = "shuffle-compute"
SAMPLE = "sample-shuffle-compute"
CSR = "combine-shuffle-reduce"
BROADCAST = "broadcast-compute"
GLOBAL = "globally-reduce"
HALO = "halo-exchange"
PIO = "partitioned-io"

# Forcings: "a" and "b" force the two alternatives of each operator kind.
FORCINGS = {
    "natural": {},
    "a": {"Join": SHUFFLE, "Aggregate": CSR, "Sort": SAMPLE, "Window": HALO, "Limit": SAMPLE},
    "b": {"Join": BROADCAST, "Aggregate": SHUFFLE, "Sort": GLOBAL, "Window": GLOBAL, "Limit": GLOBAL},
}
RANKS = (1, 2, 3)


@dataclass(frozen=True)
class Case:
    id: str
    sql: str
    forcing: str
    expect: tuple[tuple[str, str], ...]   # (operator word at the start of an EXPLAIN line, pattern)
    stages: tuple[str, ...] = ()           # exchange kinds that must appear at 2+ ranks


SQL = {
    "scan": "SELECT l_orderkey, l_linenumber, l_comment FROM lineitem",
    "filter": ("SELECT l_orderkey, l_linenumber, l_quantity * 2 AS q2, upper(l_shipmode) AS mode "
               "FROM lineitem WHERE l_quantity > 45 AND l_shipmode LIKE 'A%'"),
    "global_agg": ("SELECT sum(l_extendedprice) AS s, avg(l_discount) AS a, min(l_shipdate) AS lo, "
                   "max(l_comment) AS mx, count(*) AS n, count(l_orderkey) AS c FROM lineitem"),
    "top_k": ("SELECT l_orderkey, l_linenumber, l_extendedprice FROM lineitem "
              "ORDER BY l_extendedprice DESC, l_orderkey, l_linenumber LIMIT 17"),
    # A window of the sorted rows that straddles the ranks' ranges (lineitem has 60k rows at SF 0.01).
    "sorted_window": ("SELECT l_orderkey, l_linenumber, l_quantity FROM lineitem "
                      "ORDER BY l_quantity DESC, l_orderkey, l_linenumber LIMIT 45 OFFSET 29980"),
    "offset_only": "SELECT c_name, c_custkey FROM customer ORDER BY c_name OFFSET 1391",
    "join_inner": ("SELECT o_orderpriority, count(*) AS n, sum(l_quantity) AS q FROM lineitem "
                   "JOIN orders ON l_orderkey = o_orderkey GROUP BY o_orderpriority"),
    "join_small": ("SELECT n_name, count(*) AS n FROM supplier JOIN nation ON s_nationkey = n_nationkey "
                   "GROUP BY n_name"),
    "join_left": ("SELECT c_custkey, count(o_orderkey) AS n, sum(o_totalprice) AS t FROM customer "
                  "LEFT JOIN orders ON c_custkey = o_custkey GROUP BY c_custkey"),
    "join_semi": ("SELECT o_orderkey, o_totalprice FROM orders WHERE o_orderkey IN "
                  "(SELECT l_orderkey FROM lineitem WHERE l_quantity > 49)"),
    "join_anti": ("SELECT c_custkey FROM customer WHERE NOT EXISTS "
                  "(SELECT 1 FROM orders WHERE o_custkey = c_custkey)"),
    "group_few": ("SELECT l_returnflag, l_linestatus, sum(l_quantity) AS q, avg(l_discount) AS d, "
                  "min(l_shipdate) AS lo, max(l_receiptdate) AS hi, count(*) AS n "
                  "FROM lineitem GROUP BY l_returnflag, l_linestatus"),
    "group_many": ("SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS rev, count(*) AS n, "
                   "avg(l_quantity) AS q FROM lineitem GROUP BY l_orderkey"),
    "group_filtered_agg": ("SELECT l_shipmode, count(*) FILTER (WHERE l_quantity > 25) AS big, "
                           "sum(l_quantity) FILTER (WHERE l_returnflag = 'R') AS r FROM lineitem GROUP BY l_shipmode"),
    "big_sort": "SELECT l_orderkey, l_linenumber, l_quantity FROM lineitem ORDER BY l_quantity DESC, l_orderkey, l_linenumber",
    "sort_nulls": ("SELECT l_orderkey, l_linenumber, nullif(l_quantity, 10) AS q FROM lineitem "
                   "ORDER BY q DESC, l_orderkey, l_linenumber"),
    "sort_strings": "SELECT c_name, c_custkey FROM customer ORDER BY c_name",
    "window_halo": ("SELECT l_orderkey, l_linenumber, "
                    "lag(l_quantity) OVER (ORDER BY l_orderkey, l_linenumber) AS prev, "
                    "lead(l_quantity, 2) OVER (ORDER BY l_orderkey, l_linenumber) AS next2, "
                    "sum(l_quantity) OVER (ORDER BY l_orderkey, l_linenumber ROWS BETWEEN 3 PRECEDING AND 1 FOLLOWING) AS s "
                    "FROM lineitem"),
    "window_rows_short": ("SELECT o_orderkey, sum(o_totalprice) OVER (ORDER BY o_orderkey ROWS 2 PRECEDING) AS s "
                          "FROM orders"),
    # 25 rows over 3 ranks: a halo wider than a rank's share reaches past the next rank.
    "window_wide_halo": ("SELECT n_nationkey, lag(n_name, 10) OVER (ORDER BY n_nationkey) AS l10, "
                         "sum(n_regionkey) OVER (ORDER BY n_nationkey ROWS BETWEEN 12 PRECEDING AND 12 FOLLOWING) AS s "
                         "FROM nation"),
    "window_partitioned": ("SELECT o_custkey, o_orderkey, row_number() OVER (PARTITION BY o_custkey ORDER BY o_orderkey) AS rn, "
                           "sum(o_totalprice) OVER (PARTITION BY o_custkey) AS t FROM orders"),
}

CASES = [
    # The eight canonical patterns.
    Case("partitioned-io", SQL["scan"], "natural", (("Scan", PIO),)),
    Case("embarrassingly-parallel", SQL["filter"], "natural", (("Filter", EP), ("Project", EP), ("Scan", PIO))),
    Case("globally-reduce-aggregate", SQL["global_agg"], "natural", (("Aggregate", GLOBAL),), ("broadcast",)),
    Case("globally-reduce-top-k", SQL["top_k"], "natural", (("TopK", GLOBAL),), ("gather",)),
    Case("shuffle-compute-join", SQL["join_inner"], "a", (("HashJoin", SHUFFLE),), ("shuffle",)),
    Case("broadcast-compute-join", SQL["join_small"], "b", (("HashJoin", BROADCAST),), ("broadcast",)),
    Case("combine-shuffle-reduce", SQL["group_few"], "a", (("Aggregate", CSR),), ("shuffle",)),
    Case("sample-shuffle-compute", SQL["big_sort"], "a", (("Sort", SAMPLE),), ("range",)),
    Case("halo-exchange", SQL["window_halo"], "a", (("Window", HALO),), ("range", "halo")),
    Case("shuffle-compute-window", SQL["window_partitioned"], "natural", (("Window", SHUFFLE),), ("shuffle",)),
    # Joins both ways.
    Case("join-inner-shuffle", SQL["join_inner"], "a", (("HashJoin", SHUFFLE),)),
    Case("join-inner-broadcast", SQL["join_inner"], "b", (("HashJoin", BROADCAST),), ("broadcast",)),
    Case("join-small-shuffle", SQL["join_small"], "a", (("HashJoin", SHUFFLE),), ("shuffle",)),
    Case("join-left-shuffle", SQL["join_left"], "a", (("HashJoin", SHUFFLE),), ("shuffle",)),
    Case("join-left-broadcast", SQL["join_left"], "b", (("HashJoin", BROADCAST),), ("broadcast",)),
    Case("join-semi-shuffle", SQL["join_semi"], "a", (("HashJoin", SHUFFLE),), ("shuffle",)),
    Case("join-semi-broadcast", SQL["join_semi"], "b", (("HashJoin", BROADCAST),), ("broadcast",)),
    Case("join-anti-shuffle", SQL["join_anti"], "a", (("HashJoin", SHUFFLE),), ("shuffle",)),
    Case("join-anti-broadcast", SQL["join_anti"], "b", (("HashJoin", BROADCAST),), ("broadcast",)),
    # Aggregates both ways.
    Case("group-few-combine", SQL["group_few"], "a", (("Aggregate", CSR),)),
    Case("group-few-shuffle", SQL["group_few"], "b", (("Aggregate", SHUFFLE),), ("shuffle",)),
    Case("group-many-combine", SQL["group_many"], "a", (("Aggregate", CSR),), ("shuffle",)),
    Case("group-many-shuffle", SQL["group_many"], "b", (("Aggregate", SHUFFLE),), ("shuffle",)),
    Case("group-filtered-combine", SQL["group_filtered_agg"], "a", (("Aggregate", CSR),), ("shuffle",)),
    Case("group-filtered-shuffle", SQL["group_filtered_agg"], "b", (("Aggregate", SHUFFLE),), ("shuffle",)),
    # Sorts both ways.
    Case("sort-big-sample", SQL["big_sort"], "a", (("Sort", SAMPLE),), ("range",)),
    Case("sort-big-gather", SQL["big_sort"], "b", (("Sort", GLOBAL),), ("gather",)),
    Case("sort-nulls-sample", SQL["sort_nulls"], "a", (("Sort", SAMPLE),), ("range",)),
    Case("sort-nulls-gather", SQL["sort_nulls"], "b", (("Sort", GLOBAL),)),
    Case("sort-strings-sample", SQL["sort_strings"], "a", (("Sort", SAMPLE),), ("range",)),
    Case("sort-strings-gather", SQL["sort_strings"], "b", (("Sort", GLOBAL),)),
    # LIMIT/OFFSET of a sort both ways: the ranks' windows of a sample sort, or top-k gathered.
    Case("sorted-window-slice", SQL["sorted_window"], "a", (("TopK", SAMPLE),), ("range", "slice")),
    Case("sorted-window-top-k", SQL["sorted_window"], "b", (("TopK", GLOBAL),), ("gather",)),
    Case("offset-only-slice", SQL["offset_only"], "a", (("Sort", SAMPLE), ("Limit", SAMPLE)), ("range", "slice")),
    Case("offset-only-gather", SQL["offset_only"], "b", (("Sort", GLOBAL), ("Limit", GLOBAL))),
    # Windows both ways.
    Case("window-halo", SQL["window_halo"], "a", (("Window", HALO),), ("halo",)),
    Case("window-gather", SQL["window_halo"], "b", (("Window", GLOBAL),), ("gather",)),
    Case("window-rows-preceding-halo", SQL["window_rows_short"], "a", (("Window", HALO),), ("halo",)),
    Case("window-rows-preceding-gather", SQL["window_rows_short"], "b", (("Window", GLOBAL),)),
    Case("window-wide-halo", SQL["window_wide_halo"], "a", (("Window", HALO),), ("halo",)),
    Case("window-wide-gather", SQL["window_wide_halo"], "b", (("Window", GLOBAL),)),
]

LINE = re.compile(r"^\s*(?P<op>\w+).*\[(?P<pattern>[a-z-]+)\] est rows=")
STAGE = re.compile(r"^\s*Exchange #\d+ (?P<kind>\w+)")


def operator_patterns(explain: str) -> list[tuple[str, str]]:
    """(first word of the operator, pattern) for every planned operator line of an EXPLAIN."""
    out = []
    for line in explain.splitlines():
        m = LINE.match(line)
        if m:
            out.append((m["op"], m["pattern"]))
    return out


def stage_kinds(explain: str) -> set[str]:
    return {m["kind"] for m in map(STAGE.match, explain.splitlines()) if m}


class Batches:
    """Runs every query of every forcing (and its EXPLAIN) in one job per rank count, on demand."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self._done: dict = {}

    def get(self, ranks: int, forcing: str, sql: str):
        if ranks not in self._done:
            lists = {}
            for name in FORCINGS:
                sqls = sorted({c.sql for c in CASES if c.forcing == name})
                lists[name] = QueryList(str(self.data_dir), [q for s in sqls for q in (s, "EXPLAIN " + s)],
                                        forced_patterns=FORCINGS[name])
            results = run_query_lists(list(lists.values()), ranks, timeout_s=500)
            self._done[ranks] = {name: dict(zip(ql.queries, got)) for (name, ql), got in zip(lists.items(), results)}
        got = self._done[ranks][forcing]
        return got[sql], got["EXPLAIN " + sql]


@pytest.fixture(scope="module")
def batches(tpch_sf001):
    return Batches(tpch_sf001)


@pytest.fixture(scope="module")
def oracle(tpch_sf001):
    con = duckdb_oracle(tpch_sf001)
    cache: dict = {}

    def answer(sql):
        if sql not in cache:
            cache[sql] = con.sql(sql).to_arrow_table()
        return cache[sql]
    return answer


def check_explain(case: Case, ranks: int, text: str):
    ops = operator_patterns(text)
    assert ops, f"no operator lines in EXPLAIN:\n{text}"
    for op, pattern in case.expect:
        mine = [p for o, p in ops if o == op]
        assert mine, f"{case.id} at {ranks} ranks: no {op} in EXPLAIN:\n{text}"
        assert all(p == pattern for p in mine), (
            f"{case.id} at {ranks} ranks: every {op} should be {pattern}, got {mine}:\n{text}")
    assert f"on {ranks} rank" in text.splitlines()[0]
    if ranks > 1:
        missing = set(case.stages) - stage_kinds(text)
        assert not missing, f"{case.id} at {ranks} ranks: no {sorted(missing)} exchange in EXPLAIN:\n{text}"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("ranks", RANKS)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_forced_pattern_matches_oracle(batches, oracle, case: Case, ranks: int):
    result, explain = batches.get(ranks, case.forcing, case.sql)
    assert explain.error is None, f"EXPLAIN failed: {explain.error_type}: {explain.error}"
    assert explain.table.column_names == ["explain"]
    text = "\n".join(explain.table.column("explain").to_pylist())
    check_explain(case, ranks, text)
    assert result.error is None, f"{case.id} at {ranks} ranks: {result.error_type}: {result.error}\n{text}"
    o = ordering_of(case.sql)
    diff = compare_tables(result.table, oracle(case.sql), ordered=o.ordered, order_keys=o.keys)
    assert diff is None, f"{case.id} at {ranks} ranks differs from DuckDB: {diff}\n{text}"


def test_every_canonical_pattern_is_covered():
    from planner.patterns import NAMES
    covered = {p for c in CASES for _, p in c.expect}
    assert set(NAMES) <= covered, set(NAMES) - covered


def test_explain_parsing_helpers():
    text = ("Distributed plan on 2 ranks (planned in 1.0ms)\n"
            "Exchange #2 gather\n"
            "  HashJoin inner on \"a\" = \"b\"  [broadcast-compute] est rows=10 bytes=1B cost=0.1ms; beat shuffle-compute 2ms\n"
            "    Exchange #1 broadcast\n"
            "      Scan nation [n_name]  [partitioned-io] est rows=25 bytes=1B cost=0.0ms\n")
    assert operator_patterns(text) == [("HashJoin", BROADCAST), ("Scan", PIO)]
    assert stage_kinds(text) == {"gather", "broadcast"}
