"""Emulated hosts for the multi-host tests: Linux network namespaces joined by a bridge.

Layout (every name carries a per-run id, so runs side by side do not meet):

    namespace <p>-net:  bridge br0, one veth end per host (h1, h2, h3, c)
    namespace <p>-h1 … <p>-h3: eth0 at 10.251.17.11 … 13, hostname flock-h1 … flock-h3
    namespace <p>-c:    eth0 at 10.251.17.20, hostname flock-client (where the client runs)

The /24 exists only inside these namespaces: none of them has a default route, and the root
namespace gets no link, address or route at all (the bridge lives in a namespace of its own).
Each host resolves the others' names through /etc/netns/<ns>/hosts, which `ip netns exec` mounts
over /etc/hosts. A process is "on" a host when it runs under `ip netns exec <ns>` plus `unshare
--uts --ipc` with the host's name: MPICH then sees different hostnames and no shared IPC, so the
ranks talk over TCP through the veths.

Hydra starts remote proxies with `<launcher-exec> -x <host> <command…>` (what it would hand to
ssh); `launcher_script` writes a script that enters the host's namespace instead.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "10.251.17"
HOST_ADDRESSES = {f"flock-h{i}": f"{SUBNET}.{10 + i}" for i in (1, 2, 3)}
CLIENT_NAME, CLIENT_ADDRESS = "flock-client", f"{SUBNET}.20"
ETC_NETNS = Path("/etc/netns")


def netns_problem() -> str | None:
    """Why network namespaces cannot be built here (None when they can)."""
    if os.geteuid() != 0:
        return "the multi-host tests need root (ip netns add)"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"the multi-host tests need '{tool}' (apt-get install -y iproute2 util-linux)"
    probe = f"fqprobe{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Hosts:
    """Three hosts and a client namespace on one bridge; `close()` removes all of it."""

    prefix: str = field(default_factory=lambda: f"fq{uuid.uuid4().hex[:6]}")
    made: list[str] = field(default_factory=list)

    @property
    def net(self) -> str:
        return f"{self.prefix}-net"

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host.removeprefix('flock-')}"

    @staticmethod
    def veth(host: str) -> str:
        """The bridge-side end of `host`'s link (in the bridge's namespace)."""
        return host.removeprefix("flock-")

    def build(self) -> "Hosts":
        hosts_file = "127.0.0.1 localhost\n" + "".join(
            f"{addr} {name}\n" for name, addr in {**HOST_ADDRESSES, CLIENT_NAME: CLIENT_ADDRESS}.items())
        self._add_ns(self.net)
        _ip("-n", self.net, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.net, "link", "set", "br0", "up")
        _ip("-n", self.net, "link", "set", "lo", "up")
        for name, addr in {**HOST_ADDRESSES, CLIENT_NAME: CLIENT_ADDRESS}.items():
            ns = self.ns(name)
            self._add_ns(ns)
            etc = ETC_NETNS / ns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(hosts_file)
            # Made inside the bridge's namespace with its peer straight in the host's: the root
            # namespace never holds either end.
            _ip("-n", self.net, "link", "add", self.veth(name), "type", "veth", "peer", "name", "eth0",
                "netns", ns)
            _ip("-n", self.net, "link", "set", self.veth(name), "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        return self

    def _add_ns(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self.made.append(ns)

    def on(self, host: str, argv: list[str]) -> list[str]:
        """`argv` run on `host`: its network namespace, its own hostname and IPC namespace."""
        return ["ip", "netns", "exec", self.ns(host), "unshare", "--uts", "--ipc", "sh", "-c",
                'hostname "$0" && exec "$@"', host, *argv]

    def launcher_script(self, path: Path) -> Path:
        """Hydra's -launcher-exec: `script -x HOST COMMAND…` runs COMMAND (a shell line, as ssh
        would pass it) on HOST."""
        cases = "".join(f'  {name}) ns={self.ns(name)} ;;\n' for name in HOST_ADDRESSES)
        path.write_text(
            "#!/bin/sh\n"
            "# Hydra's ssh launcher, without ssh: enter the emulated host's namespaces instead.\n"
            '[ "$1" = "-x" ] && shift\n'
            'host=$1; shift\n'
            'case "$host" in\n'
            f"{cases}"
            '  *) echo "no such emulated host: $host" >&2; exit 255 ;;\n'
            "esac\n"
            'exec ip netns exec "$ns" unshare --uts --ipc sh -c "hostname $host && exec $*"\n')
        path.chmod(0o755)
        return path

    def link(self, host: str, up: bool) -> None:
        """Takes `host`'s link down or up (its veth end on the bridge)."""
        _ip("-n", self.net, "link", "set", self.veth(host), "up" if up else "down")

    def bytes(self, host: str) -> tuple[int, int]:
        """(rx, tx) bytes so far of `host`'s veth end on the bridge, from sysfs in that namespace."""
        stats = f"/sys/class/net/{self.veth(host)}/statistics"
        out = subprocess.run(["ip", "netns", "exec", self.net, "cat", f"{stats}/rx_bytes", f"{stats}/tx_bytes"],
                             capture_output=True, text=True, timeout=30, check=True).stdout.split()
        return int(out[0]), int(out[1])

    def pids(self) -> set[int]:
        """Processes still inside any of these namespaces."""
        found: set[int] = set()
        for ns in self.made:
            done = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30)
            found |= {int(p) for p in done.stdout.split()}
        return found

    def close(self) -> list[str]:
        """Kills what still runs inside, deletes the namespaces (their veths and bridge go with
        them) and the /etc/netns files. Returns what it could not remove."""
        problems = []
        for pid in self.pids():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        for ns in reversed(self.made):
            done = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True, timeout=30)
            if done.returncode != 0:
                problems.append(f"ip netns del {ns}: {done.stderr.strip()}")
            shutil.rmtree(ETC_NETNS / ns, ignore_errors=True)
        self.made.clear()
        return problems
