"""The virtual environment the GizmoSQL-ecosystem clients run in (tests/test_clients.py).

Their pins (DuckDB 1.4 for ibis-gizmosql, adbc-driver-flightsql 1.9 for the SQLAlchemy dialect)
conflict with FlockSQL's own, so they live apart, as a user's client usually does: made once under
.test-data/, made again when the list below changes.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from pathlib import Path

from tests.sample_data import made_once

REPO = Path(__file__).resolve().parents[1]
CLIENT_PACKAGES = ("ibis-gizmosql", "sqlalchemy-gizmosql-adbc-dialect", "dbt-gizmosql", "sqlframe-gizmosql",
                   "adbc-driver-gizmosql", "pandas")
ENV = REPO / ".test-data" / "clients-venv"
_lock = threading.Lock()


def client_python() -> Path:
    """The client environment's python, made (minutes, once) if missing or stale."""
    stamp = hashlib.sha1(" ".join(CLIENT_PACKAGES).encode()).hexdigest()
    python = ENV / "bin" / "python"
    marker = ENV / ".flocksql-packages"
    with _lock, made_once(ENV):
        if python.exists() and marker.exists() and marker.read_text() == stamp:
            return python
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(ENV)], check=True)
        out = subprocess.run([str(python), "-m", "pip", "install", "-q", *CLIENT_PACKAGES],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"cannot install the client packages:\n{out.stderr[-3000:]}")
        marker.write_text(stamp)
        return python
