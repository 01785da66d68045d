#!/usr/bin/env bash
# FlockSQL under Slurm on this machine (tests/test_slurm.py): installs slurm-wlm if missing (root,
# Debian/Ubuntu), then starts a one-node Slurm of its own in a temporary folder, runs the flock
# under `srun --mpi=pmi2` and stops everything. About a minute. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v slurmd || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y slurm-wlm)
PYTHON="${PYTHON:-$(command -v python3)}"
[ -x .venv/bin/python ] && PYTHON=.venv/bin/python
exec "$PYTHON" -m pytest -q -s --durations=5 tests/test_slurm.py "$@"
