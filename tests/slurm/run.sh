#!/usr/bin/env bash
# FlockSQL under Slurm on this machine (tests/test_slurm.py): installs slurm-wlm if missing (root,
# Debian/Ubuntu), then starts a one-node Slurm of its own in a temporary folder, runs the flock
# under `srun --mpi=pmi2` and stops everything. About a minute. Extra arguments go to pytest;
# PYTHON picks the interpreter (default: .venv/bin/python, else python3).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v slurmd || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y slurm-wlm)
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec "$PYTHON" -m pytest -q -s --durations=5 -p no:cacheprovider tests/test_slurm.py "$@"
