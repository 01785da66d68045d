"""`python -m tpch.netns_bench`: `flocksql tpch bench` with its ranks spread over three hosts emulated
on this machine by Linux network namespaces (tests/netns_hosts.py: own network, hostname and IPC
namespace each, one veth each to a bridge), so the ranks exchange over TCP as on a cluster.

Run from a checkout, as root with iproute2:

    python -m tpch.netns_bench --data data/sf1 --ranks 3,6 --out bench-results/netns

The benchmark runs on the first host; Hydra places the ranks round-robin over the three hosts (rank i
on host i mod 3: one per host at 3 ranks, two at 6), reaching them through a `-launcher-exec` script
that enters the host's namespaces instead of ssh. Whatever options follow `--` go to `flocksql tpch
bench` as they are. The bytes each host sent through its veth are printed at the end, and the
namespaces are removed whatever happens.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False), required=True,
              help="TPC-H Parquet folder.")
@click.option("--ranks", default="3,6", show_default=True, help="Rank counts, spread over the three hosts.")
@click.option("--repeat", default=3, show_default=True, help="Timed runs per query after one warm-up.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="bench-results/netns", show_default=True)
@click.argument("bench_args", nargs=-1, type=click.UNPROCESSED)
def main(data_dir, ranks, repeat, out_dir, bench_args):
    sys.path.insert(0, str(REPO))
    from tests.netns_hosts import HOST_ADDRESSES, Hosts, netns_problem

    problem = netns_problem()
    if problem:
        raise click.ClickException(problem)
    hosts = Hosts().build()
    try:
        with tempfile.TemporaryDirectory(prefix="flocksql-netns-") as tmp:
            hostfile = Path(tmp) / "hostfile"
            hostfile.write_text("".join(f"{h}\n" for h in HOST_ADDRESSES))
            launcher = hosts.launcher_script(Path(tmp) / "enter-host")
            env = dict(os.environ, HYDRA_HOST_FILE=str(hostfile), HYDRA_LAUNCHER="ssh",
                       HYDRA_LAUNCHER_EXEC=str(launcher), PYTHONUNBUFFERED="1",
                       PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
            first = next(iter(HOST_ADDRESSES))
            argv = [sys.executable, "-P", "-m", "cli", "tpch", "bench", "--data", str(Path(data_dir).resolve()),
                    "--ranks", ranks, "--repeat", str(repeat), "--batch", "--rank-threads", "1",
                    "--out", str(Path(out_dir).resolve()), *bench_args]
            before = {h: hosts.bytes(h) for h in HOST_ADDRESSES}
            status = subprocess.call(hosts.on(first, argv), env=env, cwd=tmp)
            after = {h: hosts.bytes(h) for h in HOST_ADDRESSES}
            for h in HOST_ADDRESSES:
                # The bridge receives what the host sends (rx) and sends it what the host receives.
                click.echo(f"{h}: sent {(after[h][0] - before[h][0]) / 1e6:.1f} MB, "
                           f"received {(after[h][1] - before[h][1]) / 1e6:.1f} MB through its veth")
    finally:
        problems = hosts.close()
        if problems:
            click.echo(f"clean-up: {problems}", err=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
