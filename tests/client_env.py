"""The virtual environment the GizmoSQL-ecosystem clients run in (tests/test_clients.py).

Their pins (DuckDB 1.4 for ibis-gizmosql, adbc-driver-flightsql 1.9 for the SQLAlchemy dialect)
conflict with FlockSQL's own, so they live apart, as a user's client usually does: made once under
.test-data/, made again when the list below changes. uv (a test dependency) builds it: pip needs about
a minute of CPU for these packages, uv a few seconds, and CI's time is CPU-bound. Where uv cannot
(no uv, an index it does not read), pip does.
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
        errors = _install_with_uv(python)
        if errors:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(ENV)], check=True)
            out = subprocess.run([str(python), "-m", "pip", "install", "-q", *CLIENT_PACKAGES],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"cannot install the client packages:\n{errors}\n{out.stderr[-3000:]}")
        marker.write_text(stamp)
        return python


def _install_with_uv(python: Path) -> str:
    """Make the environment with uv; what went wrong, or "" if it is made."""
    try:
        from uv import find_uv_bin
        uv = find_uv_bin()
    except (ImportError, FileNotFoundError) as e:
        return f"uv: {e}"
    venv = subprocess.run([uv, "venv", "-q", "--clear", "--python", sys.executable, str(ENV)],
                          capture_output=True, text=True)
    if venv.returncode != 0:
        return f"uv venv: {venv.stderr[-2000:]}"
    out = subprocess.run([uv, "pip", "install", "-q", "--python", str(python), *CLIENT_PACKAGES],
                         capture_output=True, text=True)
    return "" if out.returncode == 0 else f"uv pip install: {out.stderr[-2000:]}"
