"""A one-node Slurm cluster in a temporary folder, for tests/test_slurm.py (or by hand:
`python tests/slurm_cluster.py DIR` starts one and prints the SLURM_CONF to export; Ctrl-C stops it).

slurmctld and slurmd run in the foreground (-D) as our own child processes, root-owned, with every
file (state, spool, pid, logs) under the folder and ports picked free, so nothing of the machine's
own Slurm (if any) is read or touched. What it takes to run without a site's setup, found with
Debian 12's slurm-wlm 22.05:
  AuthType=auth/none, CredType=cred/none   no munge daemon and no key
  ProctrackType=proctrack/linuxproc        no cgroups (a container has none to give)
  TaskPlugin=task/none                     no CPU binding
  MpiDefault=pmi2                          the `mpich` wheel's MPICH speaks PMI-2 to srun's pmi2
                                           plugin; with `--mpi=none` each task would be an MPI job
                                           of one rank (engine/session.py refuses to start then)
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

START_WITHIN_S = 30.0
STOP_WITHIN_S = 10.0


def slurm_missing() -> str | None:
    """Why a cluster cannot be made here, or None."""
    missing = [c for c in ("slurmctld", "slurmd", "srun", "sinfo", "scancel") if not shutil.which(c)]
    return f"slurm-wlm not installed (no {', '.join(missing)})" if missing else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurm_conf(folder: Path, host: str, cpus: int) -> str:
    return "\n".join([
        "ClusterName=flocksqltest", f"SlurmctldHost={host}",
        f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
        "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/none", "CredType=cred/none",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "MpiDefault=pmi2",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU", "SchedulerType=sched/builtin",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        "ReturnToService=2",
        # scancel's SIGTERM to KILL: room for rank 0's graceful stop (server/serve.py).
        "KillWait=30",
        f"StateSaveLocation={folder / 'state'}", f"SlurmdSpoolDir={folder / 'spool'}",
        f"SlurmctldPidFile={folder / 'slurmctld.pid'}", f"SlurmdPidFile={folder / 'slurmd.pid'}",
        f"SlurmctldLogFile={folder / 'slurmctld.log'}", f"SlurmdLogFile={folder / 'slurmd.log'}",
        f"NodeName={host} CPUs={cpus} State=UNKNOWN",
        f"PartitionName=flock Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES",
        ""])


class SlurmCluster:
    """slurmctld + slurmd for this host alone. `env` is what srun/scancel/sinfo need (SLURM_CONF)."""

    def __init__(self, folder: Path, cpus: int = 2):
        self.folder = Path(folder)
        for sub in ("state", "spool"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.folder / "slurm.conf"
        self.conf.write_text(slurm_conf(self.folder, self.host, cpus))
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self.daemons: list[subprocess.Popen] = []

    def start(self) -> "SlurmCluster":
        for argv in (["slurmctld", "-D", "-i"], ["slurmd", "-D"]):
            with open(self.folder / f"{argv[0]}.out", "wb") as out:
                self.daemons.append(subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                                     stdin=subprocess.DEVNULL, start_new_session=True))
        deadline = time.monotonic() + START_WITHIN_S
        while self.node_state() != "idle":
            if time.monotonic() > deadline or any(d.poll() is not None for d in self.daemons):
                self.stop()
                raise RuntimeError(f"Slurm did not start (node {self.node_state()!r}):\n{self.logs()}")
            time.sleep(0.2)
        return self

    def node_state(self) -> str:
        done = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env, capture_output=True, text=True)
        return done.stdout.strip()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.folder.glob("slurm*.log")) + sorted(self.folder.glob("*.out")))

    def stop(self) -> None:
        """Ends the daemons (and with slurmd, any step still running: its slurmstepd goes too)."""
        subprocess.run(["scancel", "--full", "-u", "root"], env=self.env, capture_output=True)
        for d in reversed(self.daemons):
            if d.poll() is None:
                d.send_signal(signal.SIGTERM)
        for d in self.daemons:
            try:
                d.wait(STOP_WITHIN_S)
            except subprocess.TimeoutExpired:
                os.killpg(d.pid, signal.SIGKILL)
                d.wait()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops the daemons too
    cluster = SlurmCluster(Path(sys.argv[1])).start()
    print(f"export SLURM_CONF={cluster.conf}", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
