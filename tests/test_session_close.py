"""Session.close frees what the Session took from MPI: a communicator per lane and one for control.

MPICH gives a process about 2046 communicators, and a job may open many Sessions one after
another (engine/batch.py runs a Session per query list). This file is also the MPI program: under
mpiexec each rank opens and closes a Session and prints whether its communicators were freed.
"""
from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.launch import mpi_command


def _freed_after_close(data_dir: str) -> bool:
    from mpi4py import MPI

    from engine.session import Session

    session = Session(data_dir, lanes=3)
    comms = [lane.comm.comm for lane in session.lanes] + [session._control.comm]
    assert all(c != MPI.COMM_NULL for c in comms)
    if session.rank == 0:
        session.close()  # tells the workers to stop
    else:
        session.worker_loop()
        session.close()
    # mpi4py sets a freed communicator's handle to MPI.COMM_NULL.
    return all(c == MPI.COMM_NULL for c in comms)


@pytest.mark.timeout(120)
def test_a_closed_session_has_freed_its_communicators(tmp_path):
    pq.write_table(pa.table({"a": [1, 2, 3]}), tmp_path / "t.parquet")
    out = subprocess.run(mpi_command(2, [__file__, str(tmp_path)]), capture_output=True, text=True, timeout=110)
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(out.stdout.split()) == ["rank0:freed", "rank1:freed"], out.stdout + out.stderr[-2000:]


if __name__ == "__main__":
    from mpi4py import MPI
    freed = _freed_after_close(sys.argv[1])
    print(f"rank{MPI.COMM_WORLD.rank}:{'freed' if freed else 'kept'}", flush=True)
