"""The test data every module shares, made once per machine under the repository's ignored
.test-data/ folder. Tests run in several processes at once (pytest-xdist), so whoever makes a folder
holds a lock on it; the others wait and then find it made."""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

TEST_DATA = Path(__file__).resolve().parents[1] / ".test-data"


@contextmanager
def made_once(folder: Path):
    """Holds an exclusive lock beside `folder` (its name + .lock) while the caller makes it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def tpch_sample() -> Path:
    """TPC-H SF 0.01: $FLOCKSQL_TEST_DATA if it holds one, else generated once into .test-data/
    (tpchgen-cli, a few seconds)."""
    given = os.environ.get("FLOCKSQL_TEST_DATA")
    if given and Path(given, "lineitem.parquet").exists():
        return Path(given)
    from tpch.generate import ensure_sample
    with made_once(TEST_DATA / "tpch-sf0.01") as folder:
        return Path(ensure_sample(folder, sf=0.01))
