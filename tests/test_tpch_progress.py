"""Progress of `flocksql tpch gen|bench|micro` where stderr is not a terminal (one line per step),
and a missing matplotlib named with the command that adds it. Real commands, as subprocesses."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tpch import TABLES

REPO = Path(__file__).resolve().parents[1]


def flocksql(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import cli; cli.main()", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def steps(stderr: str, label: str) -> list[tuple[int, int, str]]:
    """(step, total, what) of each progress line of `label`."""
    pattern = re.compile(rf"^{re.escape(label)} \[(\d+)(?:-\d+)?/(\d+)\] (.+)$")
    return [(int(m[1]), int(m[2]), m[3]) for m in map(pattern.match, stderr.splitlines()) if m]


@pytest.fixture
def no_matplotlib(tmp_path) -> dict:
    """An environment in which `import matplotlib` fails as it does where it is not installed."""
    shadow = tmp_path / "shadow" / "matplotlib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'matplotlib'\", name='matplotlib')\n")
    return {"PYTHONPATH": os.pathsep.join([str(shadow.parent), str(REPO), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.timeout(300)
def test_gen_prints_one_line_per_table(tmp_path):
    out = tmp_path / "sf"
    p = flocksql("tpch", "gen", "--sf", "0.01", "--out", str(out))
    assert p.returncode == 0, p.stderr
    got = steps(p.stderr, f"TPC-H SF0.01 -> {out}")
    assert [(i, n) for i, n, _ in got] == [(i, len(TABLES)) for i in range(1, len(TABLES) + 1)], p.stderr
    assert sorted(what for _, _, what in got) == sorted(TABLES)
    assert re.search(rf"^TPC-H SF0.01 -> {re.escape(str(out))}: {len(TABLES)} steps in [\d.]+ s$", p.stderr, re.M)
    assert "\r" not in p.stderr and "\x1b[" not in p.stderr  # no bar drawn into a file
    assert f"TPC-H SF0.01 ready in {out}" in p.stdout
    again = flocksql("tpch", "gen", "--sf", "0.01", "--out", str(out))  # every table there: no step
    assert again.returncode == 0 and steps(again.stderr, f"TPC-H SF0.01 -> {out}") == [], again.stderr


@pytest.mark.timeout(300)
def test_bench_prints_each_query_and_engine_and_names_missing_matplotlib(tpch_sf001, tmp_path, no_matplotlib):
    out = tmp_path / "results"
    p = flocksql("tpch", "bench", "--data", str(tpch_sf001), "--queries", "1,6", "--ranks", "1",
                 "--engines", "flocksql,duckdb", "--repeat", "1", "--out", str(out), env=no_matplotlib)
    assert p.returncode == 0, p.stderr
    got = steps(p.stderr, "benchmark")
    assert [i for i, _, _ in got] == [1, 2, 3, 4] and {n for _, n, _ in got} == {4}, p.stderr
    assert [what.split()[0] for _, _, what in got] == ["Q1", "Q1", "Q6", "Q6"], p.stderr
    assert {what.split()[1] for _, _, what in got} == {"duckdb", "flocksql@1"}, p.stderr
    assert re.search(r"^benchmark: 4 steps in [\d.]+ s$", p.stderr, re.M), p.stderr
    assert "no charts: matplotlib is not installed; add it with: pip install matplotlib" in p.stderr, p.stderr
    assert (out / "results.md").exists() and not list(out.glob("*.png"))


@pytest.mark.timeout(300)
def test_micro_prints_its_data_and_its_runs(tmp_path, no_matplotlib):
    p = flocksql("tpch", "micro", "--rows", "20000", "--ops", "groupby", "--ranks", "1", "--engines",
                 "flocksql,duckdb", "--repeat", "1", "--data", str(tmp_path / "micro"), "--out",
                 str(tmp_path / "results"), env=no_matplotlib)
    assert p.returncode == 0, p.stderr
    data = [line for line in p.stderr.splitlines() if line.startswith("micro data 20,000 rows")]
    assert len(data) == 3 and "[1/2] lhs.parquet" in data[0] and "[2/2] rhs.parquet" in data[1], p.stderr
    assert [i for i, _, _ in steps(p.stderr, "benchmark")] == [1, 2], p.stderr
    assert "pip install matplotlib" in p.stderr
