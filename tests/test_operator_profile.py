"""The rows EXPLAIN ANALYZE gives the operators inside a fragment (executors/profile.py), checked
against each operator's own SQL: whatever count DuckDB's profile was matched to a plan node must be
`count(*)` of that node's subtree run alone. At 1 rank (in process) the whole query is one
fragment, so every TPC-H query and some shapes DuckDB rewrites (reordered joins, swapped sides,
filters it infers or pushes) go through the mapping; a wrong guess would show as a wrong count. At
3 ranks, fragment tops' counts are checked against what their exchanges received."""
from __future__ import annotations

import pytest

import engine.session as session_module
from executors.comm import LocalComm
from executors.runner import Runner
from planner.physical import operator_numbers
from tpch import QUERY_NUMBERS, query_text

SHAPES = [
    # DuckDB orders these joins itself (one rank: its optimisers are all on).
    "SELECT count(*) FROM nation, region, supplier WHERE n_regionkey = r_regionkey AND s_nationkey = n_nationkey"
    " AND r_name = 'ASIA'",
    "SELECT c_name, o_orderkey FROM customer LEFT JOIN orders ON c_custkey = o_custkey AND o_totalprice > 400000",
    "SELECT n1.n_name, n2.n_name FROM nation n1, nation n2 WHERE n1.n_regionkey = 1 AND n2.n_regionkey = 2",
    "SELECT p_partkey FROM part WHERE p_size < 5 UNION ALL SELECT s_suppkey FROM supplier WHERE s_acctbal < 0",
    "SELECT o_orderkey FROM orders WHERE EXISTS (SELECT 1 FROM lineitem WHERE l_orderkey = o_orderkey"
    " AND l_quantity > 49) AND o_orderdate < date '1993-01-01'",
    "SELECT o_custkey, o_totalprice, rank() OVER (PARTITION BY o_custkey ORDER BY o_totalprice) FROM orders"
    " WHERE o_custkey < 50",
]


@pytest.mark.timeout(600)
def test_every_matched_count_is_the_operators_own(tpch_sf001, monkeypatch):
    from engine.session import Session
    plans = []
    real_render = session_module.render_explain

    def keep_plan(phys, *args, **kwargs):
        plans.append(phys)
        return real_render(phys, *args, **kwargs)
    monkeypatch.setattr(session_module, "render_explain", keep_plan)

    checked, joins, wrong = 0, 0, []
    queries = [query_text(n) for n in QUERY_NUMBERS] + SHAPES
    with Session(str(tpch_sf001), comm=LocalComm()) as s:
        lane = s.lanes[0]
        for sql in queries:
            s.explain(sql, analyze=True)
            phys = plans[-1]
            by_id = {id(node): node for node in _nodes_by_id(phys.root)}
            nodes = {n: by_id[node_id] for node_id, n in operator_numbers(phys.root).items()}
            runner = Runner(lane.con, LocalComm(), s.catalog, lane.scans)
            for fragment in s.last_stats[0].fragments:
                assert set(fragment.rows) <= set(fragment.ops)
                for n, rows in fragment.rows.items():
                    node = nodes[n]
                    own = lane.con.sql(f"SELECT count(*) FROM ({runner.render(node)})").fetchall()[0][0]
                    checked += 1
                    joins += type(node).__name__ == "Join"
                    if own != rows:
                        wrong.append(f"{sql[:60]}…: {type(node).__name__} counted {rows}, its own SQL gives {own}")
    assert not wrong, "\n".join(wrong)
    # The mapping is of use: most queries' joins get counts.
    assert checked > 100 and joins > 20, (checked, joins)


def _nodes_by_id(root):
    seen, out = set(), []

    def walk(n):
        if id(n) in seen:
            return
        seen.add(id(n))
        out.append(n)
        for c in n.children:
            walk(c)
    walk(root)
    return out


@pytest.mark.timeout(300)
def test_counts_agree_with_what_exchanges_receive_at_three_ranks(tpch_sf001):
    """At 3 ranks (uneven partitions) each fragment is a DuckDB query of its own; where DuckDB's
    count of a fragment's top operator was matched, it is what the exchange above received from
    it, measured apart (the Arrow table's rows), on all 22 TPC-H queries."""
    import json

    from engine.batch import run_queries
    results = run_queries(str(tpch_sf001), ["EXPLAIN (ANALYZE, FORMAT JSON) " + query_text(n) for n in QUERY_NUMBERS],
                          3, timeout_s=280)
    compared, wrong = 0, []
    for n, res in zip(QUERY_NUMBERS, results):
        assert res.error is None, f"Q{n}: {res.error}"
        for x in _walk(json.loads("\n".join(res.table.column("explain").to_pylist()))["plan"]):
            below = x["children"][0] if x.get("actual") else None
            if below is not None and not below.get("exchange") and below.get("actual_rows_detail"):
                compared += 1
                if below["actual_rows"] != x["actual"]["rows_in"]:
                    wrong.append(f"Q{n}: {below['text'][:60]}: {below['actual_rows']} vs {x['actual']['rows_in']}")
    assert not wrong, "\n".join(wrong)
    assert compared > 30, compared


def _walk(node: dict):
    yield node
    for c in node["children"]:
        yield from _walk(c)
