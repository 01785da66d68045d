"""TPC-DS: the 99 queries (103 statements) at SF 0.1 at 1, 2 and 3 ranks, DuckDB as the oracle.

The data is generated once per test session with tpcgen-cli (a few seconds at SF 0.1); each rank
count runs every statement in one MPI job. A statement fails when its answer differs from DuckDB's
on the same files, or when FlockSQL raises where DuckDB answers.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.batch import run_queries
from tests.fuzz.run import answer, oracle
from tests.sample_data import made_once
from tpch.compare import compare_tables, ordering_of
from tpch.tpcds import STATEMENTS, query_text
from tpch.tpcds.generate import generate

REPO = Path(__file__).resolve().parents[1]
SF = 0.1
# Seconds one statement may take (the slowest takes a few at SF 0.1): past it, a runaway plan.
QUERY_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def tpcds():
    cached = os.environ.get("FLOCKSQL_TPCDS_DATA")
    data = Path(cached) if cached else REPO / ".test-data" / f"tpcds-sf{SF:g}"
    # Small row groups, so that even the small tables are split over the ranks.
    with made_once(data):
        generate(SF, data, row_group_bytes="1MB", threads=2)
    con = oracle(data)
    try:
        texts = [query_text(s) for s in STATEMENTS]
        return data, texts, [answer(con, t) for t in texts]
    finally:
        con.close()


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("ranks", (1, 2, 3))
def test_every_tpcds_statement_gives_duckdbs_answer(ranks, tpcds):
    data, texts, want = tpcds
    got = run_queries(str(data), texts, ranks, timeout_s=1100, query_timeout_s=QUERY_TIMEOUT_S)
    failures = []
    for name, text, w, g in zip(STATEMENTS, texts, want, got, strict=True):
        assert not isinstance(w, str), f"DuckDB fails on TPC-DS {name}: {w}"
        if g.error is not None:
            failures.append(f"q{name}: {g.error_type}: {g.error.splitlines()[0][:300]}")
            continue
        order = ordering_of(text)
        diff = compare_tables(g.table, w, ordered=order.ordered, order_keys=order.keys, limited=order.limited)
        if diff is not None:
            failures.append(f"q{name}: {diff}")
    assert not failures, f"{len(failures)} of {len(STATEMENTS)} TPC-DS statements differ at {ranks} rank(s):\n" + \
        "\n".join(failures)


def test_the_sample_is_not_trivial(tpcds):
    # Most statements must return rows at this scale factor, or the comparison says little.
    _, _, want = tpcds
    answered = sum(1 for w in want if w.num_rows > 0)
    assert answered >= 85, f"only {answered} of {len(want)} TPC-DS statements return rows at SF {SF}"
