"""The write fuzzer's fixed-seed run: random scripts of DDL and DML at 1, 2 and 3 ranks, each
statement and the tables after it against DuckDB (tests/fuzz/writes.py).

A failure prints the script up to the statement that differed: shorten it and add it to
tests/test_catalog_sql.py's WRITE_FUZZ_FINDINGS. Longer runs: `python -m tests.fuzz.writes --help`.
"""
from __future__ import annotations

import pytest

from tests.fuzz.run import FAILURES
from tests.fuzz.writes import BOTH_FAILED, fuzz_writes, generate_scripts, summary

# Scripts in CI (seed, count). Fixed so that a failure reproduces; change them only together with a
# full run of the new seed at 1, 2 and 3 ranks.
SEED, SCRIPTS = 14, 8


@pytest.fixture(scope="module")
def scripts():
    return generate_scripts(SEED, SCRIPTS)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("ranks", (1, 2, 3))
def test_write_fuzzer_finds_no_difference_from_duckdb(scripts, ranks):
    verdicts = fuzz_writes(scripts, [ranks], timeout_s=500)
    failed = [v for v in verdicts if v.outcome in FAILURES]
    assert not failed, summary(verdicts)
    # Every script was judged to its end, and every kind of write was answered alike somewhere.
    assert len(verdicts) == sum(len(s.statements) for s in scripts), summary(verdicts)
    answered = {v.sql.split()[0] for v in verdicts if v.outcome == "agree" and not v.detail.startswith(BOTH_FAILED)}
    assert {"CREATE", "INSERT", "UPDATE", "DELETE", "MERGE", "SELECT"} <= answered, summary(verdicts)


def test_write_scripts_are_deterministic_and_cover_the_write_statements(scripts):
    assert generate_scripts(SEED, SCRIPTS) == scripts
    text = "\n".join(s for script in scripts for s in script.statements)
    for piece in ("PRIMARY KEY", "UNIQUE", "DEFAULT", "CHECK", " AS (", "ON CONFLICT", "DO UPDATE SET", "DO NOTHING",
                  "INSERT OR", "BY NAME", "RETURNING", "UPDATE t SET", "FROM (SELECT", "DELETE FROM t USING",
                  "MERGE INTO", "WHEN NOT MATCHED BY SOURCE", "excluded.", "FROM range(", "WITH ", "EXISTS (",
                  "(SELECT max(src.v)"):
        assert piece in text, piece
