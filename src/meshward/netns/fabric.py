"""Build and tear down one mesh's network: bridges, router, pod and outside namespaces.

Called by the runner (`create`, `add_pod`, `remove_pod`, `add_outside_host`, `destroy`) and
by `meshward down` (`destroy` after a runner that was SIGKILLed). Every command is `ip` or
`iptables-restore`; every object it makes carries the mesh prefix (netns/naming.py), and
`destroy` removes exactly the objects with this prefix, found by listing the kernel's own
state — so it also finds what a crashed run left behind, and never touches anything else.

Topology (no default route anywhere, no NAT to the world, no host sysctl changed):

    root ns: <p>-br 198.18.N.1 ── veth ── pod netns  eth0 198.18.N.x
                  │                                   (gateway pods: eth1 198.19.N.x too)
                  └── veth ── <p>.router  mesh0 198.18.N.254 / out0 198.19.N.254
                                              (ip_forward=1 inside the router only)
             <p>-bo ─────────── veth ── outside netns  eth0 198.19.N.y

Pods route the outside subnet via the router, and the VIP range onto eth0 (it never leaves:
capture rewrites it first); outside hosts route the pod subnet back via the router. The host
has no address on the outside bridge, so nothing outside reaches the control plane.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from meshward.errors import StateError
from meshward.netns.naming import VIP_RANGE, MeshNet

log = logging.getLogger("meshward.netns")

HOSTS_ROOT = Path("/etc/netns")


def run(argv: Sequence[str], *, stdin: str | None = None, check: bool = True) -> str:
    """Run one `ip`/`iptables` command; StateError with its stderr on failure."""
    done = subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, check=False, timeout=30
    )
    if check and done.returncode != 0:
        raise StateError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


def netns_names() -> list[str]:
    """Names in `ip netns list` (first word of each line)."""
    return [line.split()[0] for line in run(("ip", "netns", "list")).splitlines() if line]


def link_names() -> list[str]:
    """Names of the root namespace's links (`ip -o link`, without the `@peer` suffix)."""
    names = []
    for line in run(("ip", "-o", "link", "show")).splitlines():
        parts = line.split(":", 2)
        if len(parts) > 1:
            names.append(parts[1].strip().split("@", 1)[0])
    return names


@dataclass
class Fabric:
    net: MeshNet
    hosts_root: Path = HOSTS_ROOT

    # --- the shared parts ------------------------------------------------------------------

    def create(self) -> None:
        """Bridges and router. Refuses a pod subnet another bridge on this host already has."""
        net = self.net
        used = run(("ip", "-o", "-4", "addr", "show"))
        if f" {net.host_ip}/" in used:
            raise StateError(
                f"MW0432 address {net.host_ip} is already in use on this host (another mesh on the "
                "same address pool?); pick another --address-pool"
            )
        for bridge, address in ((net.pod_bridge, f"{net.host_ip}/24"), (net.outside_bridge, "")):
            run(("ip", "link", "add", bridge, "type", "bridge"))
            if address:
                run(("ip", "addr", "add", address, "dev", bridge))
            run(("ip", "link", "set", bridge, "up"))
        run(("ip", "netns", "add", net.router))
        self._leg(net.router, f"{net.prefix}-rm", net.pod_bridge, "mesh0", net.router_pod_ip)
        self._leg(net.router, f"{net.prefix}-ro", net.outside_bridge, "out0", net.router_outside_ip)
        # Forwarding only inside the router's own namespace: the host's sysctls stay as they are.
        run(("ip", "netns", "exec", net.router, "sysctl", "-qw", "net.ipv4.ip_forward=1"))

    def _leg(self, netns: str, host_end: str, bridge: str, inside: str, ip: str) -> None:
        """A veth from `bridge` into `netns`, named `inside` there, with `ip`/24, up."""
        run(("ip", "link", "add", host_end, "type", "veth", "peer", "name", inside, "netns", netns))
        run(("ip", "link", "set", host_end, "master", bridge, "up"))
        run(("ip", "-n", netns, "addr", "add", f"{ip}/24", "dev", inside))
        run(("ip", "-n", netns, "link", "set", inside, "up"))
        run(("ip", "-n", netns, "link", "set", "lo", "up"))

    # --- pods ------------------------------------------------------------------------------

    def add_pod(self, netns: str, pod_ip: str, *, hosts: str, rules: str) -> None:
        """A pod namespace on the pod bridge with `pod_ip`, its hosts file and nat rules."""
        net = self.net
        self.write_hosts(netns, hosts)
        run(("ip", "netns", "add", netns))
        self._leg(netns, net.pod_link(pod_ip), net.pod_bridge, "eth0", pod_ip)
        run(("ip", "-n", netns, "route", "add", VIP_RANGE, "dev", "eth0"))
        run(("ip", "-n", netns, "route", "add", net.outside_subnet, "via", net.router_pod_ip))
        self.restore_rules(netns, rules)

    def restore_rules(self, netns: str, rules: str) -> None:
        """Replace the pod's nat table with `rules` (atomic: iptables-restore)."""
        run(("ip", "netns", "exec", netns, "iptables-restore"), stdin=rules)

    def write_hosts(self, netns: str, hosts: str) -> None:
        directory = self.hosts_root / netns
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "hosts").write_text(hosts)

    def attach_outside(self, netns: str, pod_ip: str) -> str:
        """Give a pod (a gateway) a second leg, eth1, on the outside network; its address
        there has the same host part as its pod address. Returns that address."""
        ip = self.net.outside_ip(MeshNet.host_part(pod_ip))
        link = self.net.gateway_link(pod_ip)
        self._leg(netns, link, self.net.outside_bridge, "eth1", ip)
        return ip

    def remove_pod(self, netns: str) -> None:
        """Stop what still runs in the pod (by PID), delete its namespace (its veth and its
        iptables rules go with it) and its hosts directory."""
        kill_inside(netns)
        run(("ip", "netns", "delete", netns), check=False)
        shutil.rmtree(self.hosts_root / netns, ignore_errors=True)

    # --- the outside network ---------------------------------------------------------------

    def add_outside_host(self, name: str, part: int) -> tuple[str, str]:
        """An outside host (no sidecar, no capture) `198.19.N.<part>`; → (netns, ip)."""
        net = self.net
        netns, ip = net.outside_netns(name), net.outside_ip(part)
        run(("ip", "netns", "add", netns))
        self._leg(netns, net.outside_link(ip), net.outside_bridge, "eth0", ip)
        run(("ip", "-n", netns, "route", "add", net.pod_subnet, "via", net.router_outside_ip))
        return netns, ip

    def remove_link(self, link: str) -> None:
        run(("ip", "link", "delete", link), check=False)

    # --- teardown --------------------------------------------------------------------------

    def destroy(self) -> list[str]:
        """Remove every namespace, link and hosts directory with this mesh's prefix; → what
        was removed. Safe to call when nothing exists."""
        removed = []
        for netns in netns_names():
            if self.net.owns_netns(netns):
                self.remove_pod(netns)
                removed.append(netns)
        for link in link_names():
            if self.net.owns_link(link):
                run(("ip", "link", "delete", link), check=False)
                removed.append(link)
        if self.hosts_root.is_dir():
            for directory in self.hosts_root.iterdir():
                if self.net.owns_netns(directory.name):
                    shutil.rmtree(directory, ignore_errors=True)
        return removed

    def leftovers(self) -> list[str]:
        """This mesh's namespaces and links that exist now."""
        return [n for n in netns_names() if self.net.owns_netns(n)] + [
            link for link in link_names() if self.net.owns_link(link)
        ]


def kill_inside(netns: str, timeout: float = 5.0) -> None:
    """SIGTERM each process in `netns` by PID (`ip netns pids`), SIGKILL what remains."""
    pids = [int(p) for p in run(("ip", "netns", "pids", netns), check=False).split()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True
