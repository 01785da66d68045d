"""EXPLAIN for people and for programs (planner/explain.py), on real plans: TPC-H q3 at 2 ranks in one
job (text, VERBOSE, FORMAT JSON, FORMAT DOT, ANALYZE), at 1 rank in process, a skewed GROUP BY at 2
ranks (in q3's job), and EXPLAIN through a real 2-rank Flight SQL server. Assertions name patterns, stages and
column names, never costs or times."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.batch import QueryList, run_queries, run_query_lists
from engine.errors import NotSupportedError
from planner.explain import ExplainOptions, parse_options
from planner.patterns import NAMES

REPO = Path(__file__).resolve().parents[1]
Q3 = (REPO / "tpch" / "queries" / "q03.sql").read_text().strip().rstrip(";")
# An internal column id: a name with the binder's `_<n>` or the physical planner's `__p<n>`.
INTERNAL_ID = re.compile(r"\b[a-z]+(?:_[a-z]+)*_\d+\b|__p\d+")
EXCHANGE = re.compile(r"^\s*Exchange #(?P<id>\d+) (?P<kind>\w+)")
FORMS = {
    "text": "EXPLAIN " + Q3,
    "verbose": "EXPLAIN (VERBOSE) " + Q3,
    "json": "EXPLAIN (FORMAT JSON) " + Q3,
    "dot": "EXPLAIN (FORMAT DOT) " + Q3,
    "analyze": "EXPLAIN ANALYZE " + Q3,
    "analyze_json": "EXPLAIN (ANALYZE, FORMAT JSON) " + Q3,
}


def test_options_are_read_as_postgres_spells_them():
    assert parse_options("SELECT 1") == (ExplainOptions(), "SELECT 1")
    assert parse_options("ANALYZE SELECT 1") == (ExplainOptions(analyze=True), "SELECT 1")
    assert parse_options("analyze verbose SELECT 1") == (ExplainOptions(True, True), "SELECT 1")
    assert parse_options("(ANALYZE, FORMAT JSON) SELECT 1") == (ExplainOptions(True, False, "json"), "SELECT 1")
    assert parse_options("(verbose true, format dot)\nSELECT 1") == (ExplainOptions(False, True, "dot"), "SELECT 1")
    assert parse_options("(FORMAT GRAPHVIZ) SELECT 1")[0].format == "dot"
    assert parse_options("(ANALYZE off) SELECT 1")[0].analyze is False
    # A parenthesised query is the statement, not options.
    assert parse_options("(SELECT 1) UNION (SELECT 2)") == (ExplainOptions(), "(SELECT 1) UNION (SELECT 2)")
    with pytest.raises(NotSupportedError, match="choose TEXT, JSON or DOT"):
        parse_options("(FORMAT YAML) SELECT 1")
    with pytest.raises(NotSupportedError, match="COSTS"):
        parse_options("(ANALYZE, COSTS) SELECT 1")


# Operators inside fragments (test_operator_rows_inside_fragments_match_duckdb), at 2 ranks in q3's
# job and at 3 in a job of their own.
Q3_WHERE = ("c_mktsegment = 'BUILDING' AND c_custkey = o_custkey AND l_orderkey = o_orderkey"
            " AND o_orderdate < date '1995-03-15' AND l_shipdate > date '1995-03-15'")
FILTERED = "l_shipdate <= date '1998-09-02'"
OPERATOR_QUERIES = {
    "q3": "EXPLAIN (ANALYZE, FORMAT JSON) " + Q3,
    "q3_text": "EXPLAIN ANALYZE " + Q3,
    "filtered": f"EXPLAIN (ANALYZE, FORMAT JSON) SELECT l_returnflag, count(*) FROM lineitem WHERE {FILTERED} GROUP BY 1",
}

# 90% of the rows share one key (test_analyze_flags_a_skewed_shuffle).
SKEWED_SQL = "SELECT k, count(*) AS n, sum(v) AS s FROM skewed GROUP BY k"


@pytest.fixture(scope="module")
def two_rank_explains(tpch_sf001, tmp_path_factory):
    """This file's EXPLAINs at 2 ranks, run in one job: (every form of q3's results, the skewed
    GROUP BY's EXPLAIN ANALYZE with a raw-row shuffle forced)."""
    skewed = tmp_path_factory.mktemp("skewed")
    keys = [0] * 9000 + list(range(1, 1001))
    pq.write_table(pa.table({"k": keys, "v": list(range(len(keys)))}), skewed / "skewed.parquet",
                   row_group_size=1000)
    q3, [skew], operators = run_query_lists([
        (str(tpch_sf001), list(FORMS.values())),
        QueryList(str(skewed), ["EXPLAIN ANALYZE " + SKEWED_SQL], forced_patterns={"Aggregate": "shuffle-compute"}),
        (str(tpch_sf001), list(OPERATOR_QUERIES.values())),
    ], 2, timeout_s=300)
    return q3, skew, operators


@pytest.fixture(scope="module")
def q3(two_rank_explains) -> dict[str, str]:
    """Every form of EXPLAIN of TPC-H q3 at 2 ranks."""
    results = two_rank_explains[0]
    out = {}
    for name, res in zip(FORMS, results):
        assert res.error is None, f"{name}: {res.error_type}: {res.error}"
        assert res.table.column_names == ["explain"]
        out[name] = "\n".join(res.table.column("explain").to_pylist())
    return out


def plan_lines(text: str) -> list[str]:
    return text.splitlines()[1:]


def beaten(line: str) -> list[str]:
    """The patterns an operator line says it beat."""
    if "; beat " not in line:
        return []
    tail = line.split("; beat ", 1)[1]
    return re.findall(r"(?:^|, )([a-z]+(?:-[a-z]+)+) ", tail)


def walk(node: dict):
    yield node
    for c in node["children"]:
        yield from walk(c)


@pytest.mark.timeout(300)
def test_text_uses_the_query_s_column_names(q3):
    text = q3["text"]
    assert text.splitlines()[0].startswith("Distributed plan on 2 ranks")
    assert not INTERNAL_ID.findall(text), INTERNAL_ID.findall(text)
    assert re.search(r"HashJoin inner on l_orderkey = o_orderkey .*\[(broadcast|shuffle)-compute\]", text), text
    assert re.search(r"Aggregate group by \[l_orderkey, o_orderdate, o_shippriority\] .*\[combine-shuffle-reduce\]",
                     text), text
    assert re.search(r"^\s*Sort revenue DESC, o_orderdate$", text, re.M), text
    # The combine's own columns are named for the group keys they carry.
    assert re.search(r"Exchange #\d+ shuffle \[l_orderkey, o_orderdate, o_shippriority\]", text), text


@pytest.mark.timeout(300)
def test_verbose_shows_the_internal_ids_and_every_variant(q3):
    verbose, text = q3["verbose"], q3["text"]
    assert re.search(r'"l_orderkey_\d+"', verbose), verbose
    assert re.search(r'"part_group__p\d+"', verbose), verbose
    # The same plan: the same operators and patterns, line by line.
    strip = lambda t: [re.sub(r"\s+.*?\[", "[", line.split("  [")[0].split()[0]) for line in plan_lines(t)]  # noqa: E731
    assert strip(verbose) == strip(text)
    # Verbose lists the alternatives with their notes; the plain text keeps each pattern once.
    assert sum(len(beaten(line)) for line in plan_lines(verbose)) >= sum(len(beaten(line)) for line in plan_lines(text))


@pytest.mark.timeout(300)
def test_each_alternative_is_listed_once_and_never_the_winner(q3):
    checked = 0
    for line in plan_lines(q3["text"]):
        m = re.search(r"\[(?P<pattern>[a-z-]+)\] est rows=", line)
        alts = beaten(line)
        if m and alts:
            checked += 1
            assert len(alts) == len(set(alts)), line
            assert m["pattern"] not in alts, line
            assert set(alts) <= set(NAMES), line
    assert checked >= 3, q3["text"]


@pytest.mark.timeout(300)
def test_exchanges_that_do_not_run_say_so(q3):
    for form in ("text", "analyze"):
        exchanges = [line for line in plan_lines(q3[form]) if EXCHANGE.match(line)]
        assert exchanges, q3[form]
        assert not any("rows in=0 out=0 moved=0B" in line for line in exchanges), q3[form]
        # q3 at 2 ranks broadcasts the filtered customer ⋈ orders, which each rank computes from the files.
        idle = [line for line in exchanges if "(not run: " in line]
        assert any(EXCHANGE.match(line)["kind"] == "broadcast" for line in idle), q3[form]
        if form == "analyze":
            for line in exchanges:
                assert ("(not run: " in line) != ("actual: " in line), line


@pytest.mark.timeout(300)
def test_analyze_gives_min_median_max_over_ranks_per_stage(q3):
    text = q3["analyze"]
    shuffle = [line for line in plan_lines(text) if EXCHANGE.match(line) and EXCHANGE.match(line)["kind"] == "shuffle"]
    assert shuffle, text
    for line in shuffle:
        assert "per rank min/median/max: rows out " in line and "slowest rank " in line, line
        lo, mid, hi = map(float, re.search(r"rows out ([\d.]+)/([\d.]+)/([\d.]+)", line).groups())
        assert lo <= mid <= hi
        assert re.search(r" wait [\d.]+m?s/[\d.]+m?s/[\d.]+m?s; slowest rank", line), line
    assert re.search(r"^Total: .*, 10 rows$", text, re.M), text
    assert re.search(r"^Peak memory \(process RSS\) per rank: rank 0 [\d.]+[kMG]B, rank 1 [\d.]+[kMG]B$", text, re.M), text

    doc = json.loads(q3["analyze_json"])
    assert doc["ranks"] == 2 and doc["analyze"]["rows"] == 10
    ran = [n for n in walk(doc["plan"]) if n.get("exchange") and n["exchange"]["runs"]]
    assert ran
    for n in ran:
        actual = n["actual"]
        assert [r["rank"] for r in actual["per_rank"]] == [0, 1]
        assert actual["rows_out"] == sum(r["rows_out"] for r in actual["per_rank"])
        assert {"compute_seconds", "comm_seconds", "wait_seconds"} <= actual["spread"].keys()
        for key, sp in actual["spread"].items():
            values = [r[key] for r in actual["per_rank"]]
            assert sp["min"] == min(values) and sp["max"] == max(values), key
        for r in actual["per_rank"]:
            assert min(r["compute_seconds"], r["comm_seconds"], r["wait_seconds"]) >= 0, r
    analyzed = doc["analyze"]
    assert len(analyzed["final_wait_seconds"]) == 2 and min(analyzed["final_wait_seconds"]) >= 0
    # Each rank's peak is at least what any process of ours holds once DuckDB and Arrow are loaded.
    assert len(analyzed["peak_memory_bytes"]) == 2 and min(analyzed["peak_memory_bytes"]) > 10 << 20
    # The operator each exchange reads from carries the rows its fragment produced: the exchange's rows in.
    for n in ran:
        below = n["children"][0]
        if not below.get("exchange"):
            assert below["actual_rows"] == n["actual"]["rows_in"], below
    assert any(f"  actual rows={n['actual_rows']}" in text for n in walk(doc["plan"])
               if n.get("actual_rows") is not None and n["actual_rows"] < 1000), text
    gather = [n for n in ran if n["exchange"]["kind"] == "gather"]
    assert gather and gather[0]["actual"]["per_rank"][0]["rows_out"] == gather[0]["actual"]["rows_in"]


@pytest.mark.timeout(300)
def test_json_is_the_same_tree_for_programs(q3):
    doc = json.loads(q3["json"])
    assert doc["ranks"] == 2 and "analyze" not in doc
    nodes = list(walk(doc["plan"]))
    text_lines = plan_lines(q3["text"])
    assert len(nodes) == len(text_lines)
    for n, line in zip(nodes, text_lines):
        assert line.strip().startswith(n["text"][:40]), (n["text"], line)
    planned = [n for n in nodes if "pattern" in n]
    assert {n["pattern"] for n in planned} <= set(NAMES)
    for n in planned:
        assert set(n["estimate"]) == {"rows", "bytes", "cost_seconds"}
        assert all(a["pattern"] != n["pattern"] for a in n["alternatives"])
    exchanges = [n for n in nodes if "exchange" in n]
    assert [n["exchange"]["id"] for n in exchanges] and all("actual" not in n for n in exchanges)
    assert any(not n["exchange"]["runs"] and n["exchange"]["why_not"] for n in exchanges)
    assert not INTERNAL_ID.findall(q3["json"])


@pytest.mark.timeout(300)
def test_dot_draws_stages_and_exchanges(q3):
    dot, doc = q3["dot"], json.loads(q3["json"])
    assert dot.startswith("digraph plan {") and dot.rstrip().endswith("}")
    nodes = list(walk(doc["plan"]))
    declared = re.findall(r"^\s*(n\d+) \[label=", dot, re.M)
    edges = re.findall(r"^\s*(n\d+) -> (n\d+)", dot, re.M)
    assert len(declared) == len(nodes) and len(edges) == len(nodes) - 1
    exchanges = [n for n in nodes if "exchange" in n]
    assert dot.count("shape=ellipse") == len(exchanges)
    assert dot.count("style=dashed") == sum(1 for n in exchanges if not n["exchange"]["runs"])
    assert "[combine-shuffle-reduce]" in dot


@pytest.mark.timeout(120)
def test_one_rank_marks_fused_exchanges(tpch_sf001):
    from engine.session import Session
    from executors.comm import LocalComm
    with Session(str(tpch_sf001), comm=LocalComm()) as s:
        text = s.explain(Q3, analyze=True)
        shuffles = [line for line in plan_lines(text) if EXCHANGE.match(line) and "shuffle" in line]
        assert shuffles and all("(not run: one rank" in line for line in shuffles), text
        assert not any("rows in=0" in line for line in text.splitlines()), text
        verbose = s.explain(Q3, verbose=True, fmt="json")
        assert re.search(r"l_orderkey_\d+", verbose)


@pytest.mark.timeout(300)
def test_analyze_flags_a_skewed_shuffle(two_rank_explains):
    """90% of the rows share one key; grouping them with a raw-row shuffle (forced) sends them all
    to one rank, and EXPLAIN ANALYZE says which."""
    res = two_rank_explains[1]
    assert res.error is None, res.error
    text = "\n".join(res.table.column("explain").to_pylist())
    shuffle = [line for line in plan_lines(text) if EXCHANGE.match(line) and "shuffle" in line]
    assert len(shuffle) == 1 and re.search(r"SKEW: rank [01] receives [\d.]+x the rows of the other ranks' median", shuffle[0]), text


@pytest.mark.timeout(300)
def test_explain_options_through_flight_sql(tmp_path):
    from tests.server_fixtures import copy_data, start_server, stop_server
    server = start_server("engine", copy_data(tmp_path / "data"), tmp_path / "server.log", ranks=2)
    try:
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute("EXPLAIN (FORMAT JSON) " + Q3)
            doc = json.loads(cur.fetch_arrow_table().column("explain")[0].as_py())
            assert doc["ranks"] == 2 and doc["plan"]["children"]
            cur.execute("EXPLAIN ANALYZE " + Q3)
            text = cur.fetch_arrow_table().column("explain")[0].as_py()
            assert "per rank min/median/max" in text and not INTERNAL_ID.findall(text), text
            cur.execute("EXPLAIN (VERBOSE) " + Q3)
            assert "__p" in cur.fetch_arrow_table().column("explain")[0].as_py()
    finally:
        stop_server(server)


@pytest.mark.timeout(300)
def test_asof_join_partitions_on_its_keys_or_replicates_its_right_side(tmp_path):
    """A key's right rows must all meet its left rows on one rank: with equality keys both sides
    are shuffled on them (forced here: a small right side is broadcast, also correct); without,
    only replicating the right side is correct, whatever is forced."""
    n = 20_000
    pq.write_table(pa.table({"sym": [i % 7 for i in range(n)], "ts": list(range(n))}), tmp_path / "quotes.parquet",
                   row_group_size=1000)
    pq.write_table(pa.table({"sym": [i % 5 for i in range(n)], "ts": [i * 3 for i in range(n)]}),
                   tmp_path / "trades.parquet", row_group_size=1000)
    keyed = "SELECT t.ts, q.ts FROM trades t ASOF JOIN quotes q ON t.sym = q.sym AND t.ts >= q.ts"
    unkeyed = "SELECT t.ts, q.ts FROM trades t ASOF LEFT JOIN quotes q ON t.ts >= q.ts"
    results = run_queries(str(tmp_path), ["EXPLAIN " + keyed, "EXPLAIN " + unkeyed], 2, timeout_s=240,
                          forced_patterns={"Join": "shuffle-compute"})
    texts = []
    for res in results:
        assert res.error is None, res.error
        texts.append("\n".join(res.table.column("explain").to_pylist()))
    keyed_text, unkeyed_text = texts
    assert re.search(r"AsofJoin inner .*\[shuffle-compute\]", keyed_text), keyed_text
    assert len([line for line in plan_lines(keyed_text) if EXCHANGE.match(line) and "shuffle" in line]) == 2, keyed_text
    assert re.search(r"AsofJoin left .*\[broadcast-compute\]", unkeyed_text), unkeyed_text


@pytest.fixture(scope="module")
def three_rank_operators(tpch_sf001) -> list:
    return run_queries(str(tpch_sf001), list(OPERATOR_QUERIES.values()), 3, timeout_s=300)


@pytest.fixture(scope="module", params=[2, 3], ids=["2ranks", "3ranks"])
def operator_explains(request) -> tuple[int, dict[str, str]]:
    """(ranks, OPERATOR_QUERIES' answers) at 2 ranks (from q3's job) and at 3."""
    ranks = request.param
    results = request.getfixturevalue("two_rank_explains")[2] if ranks == 2 \
        else request.getfixturevalue("three_rank_operators")
    out = {}
    for name, res in zip(OPERATOR_QUERIES, results):
        assert res.error is None, f"{name}: {res.error_type}: {res.error}"
        out[name] = "\n".join(res.table.column("explain").to_pylist())
    return ranks, out


def fragments(node: dict, top: dict | None = None, out: list | None = None) -> list[tuple[dict, list[dict]]]:
    """(top node, its operators) of each fragment: what lies between exchanges that ran (an
    exchange that moves nothing is part of the fragment that reads it)."""
    out = [] if out is None else out
    if top is None:
        top = node
        out.append((top, []))
    runs = node.get("exchange") and node["exchange"]["runs"]
    if not node.get("exchange"):
        next(ops for t, ops in out if t is top).append(node)
    for c in node["children"]:
        if runs:
            fragments(c, None, out)
        else:
            fragments(c, top, out)
    return out


def node_with(doc: dict, prefix: str, pattern: str | None = None) -> dict:
    found = [n for n in walk(doc["plan"]) if n["text"].startswith(prefix)
             and (pattern is None or n.get("pattern") == pattern)]
    assert len(found) == 1, (prefix, [n["text"] for n in walk(doc["plan"])])
    return found[0]


@pytest.mark.timeout(300)
def test_operator_rows_inside_fragments_match_duckdb(operator_explains, tpch_sf001):
    """EXPLAIN ANALYZE gives the operators inside a fragment the rows DuckDB counted for them,
    summed over ranks (one rank's for an input every rank computes whole), and they are DuckDB's
    answer on the whole data: a join's rows its count, a filter's the rows it keeps, an
    aggregate's its groups. Where DuckDB's operators could not all be matched to the plan's, the
    fragment lists DuckDB's own with their counts instead."""
    from tests.conftest import duckdb_oracle
    ranks, answers = operator_explains
    oracle = duckdb_oracle(tpch_sf001)

    def count(sql: str) -> int:
        return oracle.sql(f"SELECT count(*) FROM ({sql})").fetchall()[0][0]

    q3 = json.loads(answers["q3"])
    lineitem_orders = node_with(q3, "HashJoin inner on l_orderkey = o_orderkey")
    assert lineitem_orders["actual_rows"] == count(f"SELECT 1 FROM customer, orders, lineitem WHERE {Q3_WHERE}")
    assert [r["rank"] for r in lineitem_orders["actual_rows_detail"]["per_rank"]] == list(range(ranks))
    orders_customer = node_with(q3, "HashJoin inner on o_custkey = c_custkey")
    assert orders_customer["actual_rows"] == count(
        "SELECT 1 FROM customer, orders WHERE c_mktsegment = 'BUILDING' AND c_custkey = o_custkey"
        " AND o_orderdate < date '1995-03-15'")
    assert node_with(q3, "Aggregate group by", "combine-shuffle-reduce")["actual_rows"] == count(
        f"SELECT l_orderkey, o_orderdate, o_shippriority FROM customer, orders, lineitem WHERE {Q3_WHERE} GROUP BY ALL")
    assert node_with(q3, "Filter l_shipdate > ")["actual_rows"] == count(
        "SELECT 1 FROM lineitem WHERE l_shipdate > date '1995-03-15'")
    assert node_with(q3, "Scan lineitem")["actual_rows"] == count("SELECT 1 FROM lineitem")

    filtered = json.loads(answers["filtered"])
    assert node_with(filtered, "Filter l_shipdate <= ")["actual_rows"] == count(f"SELECT 1 FROM lineitem WHERE {FILTERED}")
    assert node_with(filtered, "Aggregate group by [l_returnflag]", "combine-shuffle-reduce")["actual_rows"] == count(
        f"SELECT DISTINCT l_returnflag FROM lineitem WHERE {FILTERED}")
    shuffle = next(n for n in walk(filtered["plan"]) if n.get("exchange") and n["exchange"]["kind"] == "shuffle")
    # The partial aggregate under the shuffle: DuckDB's count is what the shuffle received from it.
    assert shuffle["children"][0]["actual_rows"] == shuffle["actual"]["rows_in"]

    for doc in (q3, filtered):
        for n in walk(doc["plan"]):
            detail = n.get("actual_rows_detail")
            if detail is None:
                continue
            rows = [r["rows"] for r in detail["per_rank"]]
            assert n["actual_rows"] == (max(rows) if detail["each_rank"] else sum(rows)), n["text"]
            assert detail["spread"]["min"] == min(rows) and detail["spread"]["max"] == max(rows), n["text"]
            if detail["each_rank"]:
                assert len(set(rows)) == 1, n["text"]
        # Every fragment has a count for each of its operators, or shows DuckDB's.
        for top, ops in fragments(doc["plan"]):
            if any(op.get("actual_rows") is None for op in ops):
                listed = top.get("duckdb_operators")
                assert listed and all(g["operators"] for g in listed), (top["text"], [op["text"] for op in ops])
    # q3's customer filter: DuckDB adds a filter of its own on the join key, so its count is not ours.
    assert node_with(q3, "Filter c_mktsegment").get("actual_rows") is None
    listed = [op for n in walk(q3["plan"]) for g in n.get("duckdb_operators", []) for op in g["operators"]]
    assert any(op["name"] == "HASH_JOIN" and op["rows"] == lineitem_orders["actual_rows"] for op in listed), listed

    text = answers["q3_text"]
    assert re.search(r"HashJoin inner on l_orderkey = o_orderkey .* actual rows=\S+ \(per rank min/median/max "
                     r"\S+/\S+/\S+\)$", text, re.M), text
    assert re.search(r"^\s*~ DuckDB's operators of this fragment, not all matched to the plan \(ranks 0, 1", text, re.M), text
    assert re.search(r"^\s*~\s+HASH_JOIN INNER l_orderkey = o_orderkey  rows=", text, re.M), text
    assert not INTERNAL_ID.findall(text), INTERNAL_ID.findall(text)


@pytest.mark.timeout(120)
def test_only_analyze_profiles_fragments(tpch_sf001, capfd):
    """A query runs without DuckDB's profiler; EXPLAIN ANALYZE turns it on for its fragments only,
    prints nothing, and leaves it off."""
    from engine.session import Session
    from executors.comm import LocalComm
    from tests.conftest import duckdb_oracle

    def profiling_settings(s):
        return {c.sql("SELECT current_setting('enable_profiling')").fetchall()[0][0]
                for lane in s.lanes for c in lane.connections()}

    with Session(str(tpch_sf001), comm=LocalComm()) as s:
        assert profiling_settings(s) == {None}
        s.execute(Q3)
        assert s.last_stats[0].fragments == []
        doc = json.loads(s.explain(Q3, analyze=True, fmt="json"))
        assert s.last_stats[0].fragments
        assert profiling_settings(s) == {None}
        s.execute(Q3)
        assert s.last_stats[0].fragments == []
    # One rank: the whole query is one fragment, its joins counted as DuckDB counts them.
    joined = duckdb_oracle(tpch_sf001).sql(f"SELECT count(*) FROM customer, orders, lineitem WHERE {Q3_WHERE}").fetchall()[0][0]
    assert node_with(doc, "HashJoin inner on l_orderkey = o_orderkey")["actual_rows"] == joined
    assert "Total Time" not in capfd.readouterr().out


# A CTE grouped by its join key, self-joined on it (TPC-DS q4's shape).
CTE_SELF_JOIN = ("WITH t AS (SELECT o_custkey, count(*) AS n, sum(o_totalprice) AS s FROM orders GROUP BY o_custkey) "
                 "SELECT a.o_custkey, a.n, b.s FROM t a JOIN t b ON a.o_custkey = b.o_custkey WHERE a.n > 20")


@pytest.mark.timeout(300)
def test_a_cte_read_twice_is_computed_once(tpch_sf001):
    """EXPLAIN shows the kept CTE with its distribution and both references; ANALYZE says each
    rank computed it once. At 2 ranks the self-join on the group key moves nothing: the only
    shuffle is the CTE's own aggregate's. At 1 rank the same, in process."""
    from engine.session import Session
    from executors.comm import LocalComm
    [two] = run_queries(str(tpch_sf001), ["EXPLAIN ANALYZE " + CTE_SELF_JOIN], 2, timeout_s=240)
    assert two.error is None, two.error
    with Session(str(tpch_sf001), comm=LocalComm()) as s:
        one = s.explain(CTE_SELF_JOIN, analyze=True)
    for text in ("\n".join(two.table.column("explain").to_pylist()), one):
        lines = plan_lines(text)
        [kept] = [line for line in lines if line.lstrip().startswith("MaterializedCte t")]
        assert "hash-partitioned on [o_custkey]" in kept and "actual: computed once" in kept, text
        assert sum(line.lstrip().startswith("CteRef t") for line in lines) == 2, text
    lines = plan_lines("\n".join(two.table.column("explain").to_pylist()))
    assert [m["kind"] for line in lines if (m := EXCHANGE.match(line))].count("shuffle") == 1, lines
