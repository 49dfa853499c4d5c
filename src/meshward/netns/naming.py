"""Names and addresses of one mesh's network objects: namespaces, links, bridges, subnets.

Called by the runner (when it builds the network), the agent (which namespace a sidecar runs
in), the CLI and the verifier. Pure.

Every name carries the mesh's short prefix (`mw` + 4 hex digits of the state directory's
path), recorded in `runner.json`, so that cleanup after a crash finds exactly this mesh's
leftovers and never anyone else's. Link names stay within the kernel's 15-character
IFNAMSIZ limit: `mw1a2b-br` (pod bridge), `mw1a2b-bo` (outside bridge), `mw1a2b-p23` (host
end of the pod with host part .23), `mw1a2b-o7` (outside host .7), `mw1a2b-rm`/`-ro` (the
router's legs), `mw1a2b-g23` (a gateway pod's second leg, on the outside bridge).

Addresses come from ranges that never leave the machine (RFC 2544 benchmarking, 198.18.0.0/15):
pods on `198.18.N.0/24`, the outside network on `198.19.N.0/24`, where N comes from the
address pool (`127.N.0.0/16` in loopback terms, or `198.18.N.0/24` given directly). Service
VIPs are in `198.18.255.0/24` in every mesh: a VIP is never routed anywhere, it only exists
as a route inside each pod's own namespace to be captured, so meshes cannot collide on it.
`.1` of each subnet is the host (the control plane's address for pods), `.254` the router.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshward.errors import StateError

VIP_RANGE = "198.18.255.0/24"
HOST_PART = 1
ROUTER_PART = 254
_MAX_SECOND = 254  # 198.18.255.0/24 holds the VIPs


def mesh_prefix(state_root: Path) -> str:
    """`mw` + 4 hex digits of the state directory's absolute path."""
    return f"mw{MeshNet.prefix_digest(state_root)}"


def subnet_index(pool: str) -> int:
    """N of a pool given as `127.N.0.0/16` (loopback form) or `198.18.N.0/24`."""
    try:
        network = ipaddress.IPv4Network(pool)
    except ValueError as error:
        raise StateError(f"address pool {pool!r} is not an IPv4 network: {error}") from None
    octets = network.network_address.packed
    if network.prefixlen == 16 and octets[0] == 127:
        index = int(octets[1])
    elif network.prefixlen == 24 and octets[:2] == bytes([198, 18]):
        index = int(octets[2])
    else:
        raise StateError(f"address pool {pool}: netns mode wants 198.18.N.0/24 or 127.N.0.0/16")
    if not 1 <= index <= _MAX_SECOND - 1:
        raise StateError(f"address pool {pool}: N must be within 1..253")
    return index


@dataclass(frozen=True, slots=True)
class MeshNet:
    """One mesh's names and subnets (see the module docstring)."""

    prefix: str
    index: int

    @staticmethod
    def prefix_digest(state_root: Path) -> str:
        """4 hex digits of the state directory's absolute path."""
        return hashlib.sha256(str(state_root.resolve()).encode()).hexdigest()[:4]

    @property
    def pod_subnet(self) -> str:
        return f"198.18.{self.index}.0/24"

    @property
    def outside_subnet(self) -> str:
        return f"198.19.{self.index}.0/24"

    @property
    def host_ip(self) -> str:
        """The host's address on the pod bridge: where pods reach the control plane."""
        return f"198.18.{self.index}.{HOST_PART}"

    @property
    def router_pod_ip(self) -> str:
        return f"198.18.{self.index}.{ROUTER_PART}"

    @property
    def router_outside_ip(self) -> str:
        return f"198.19.{self.index}.{ROUTER_PART}"

    def outside_ip(self, part: int) -> str:
        return f"198.19.{self.index}.{part}"

    @property
    def pod_bridge(self) -> str:
        return f"{self.prefix}-br"

    @property
    def outside_bridge(self) -> str:
        return f"{self.prefix}-bo"

    @property
    def router(self) -> str:
        return f"{self.prefix}.router"

    def pod_netns(self, namespace: str, pod: str) -> str:
        return f"{self.prefix}.{namespace}.{pod}"

    def outside_netns(self, name: str) -> str:
        return f"{self.prefix}.outside.{name}"

    @staticmethod
    def host_part(ip: str) -> int:
        return int(ipaddress.IPv4Address(ip).packed[3])

    def pod_link(self, ip: str) -> str:
        return f"{self.prefix}-p{self.host_part(ip)}"

    def outside_link(self, ip: str) -> str:
        return f"{self.prefix}-o{self.host_part(ip)}"

    def gateway_link(self, pod_ip: str) -> str:
        return f"{self.prefix}-g{self.host_part(pod_ip)}"

    @staticmethod
    def from_runner(runner: Mapping[str, Any]) -> MeshNet | None:
        """The MeshNet a `runner.json` record describes (netns mode), else None."""
        netns = runner.get("netns")
        if runner.get("network") != "netns" or not isinstance(netns, Mapping):
            return None
        return MeshNet(prefix=str(netns["prefix"]), index=int(netns["index"]))

    def owns_netns(self, name: str) -> bool:
        return name.startswith(f"{self.prefix}.")

    def owns_link(self, name: str) -> bool:
        return name.startswith(f"{self.prefix}-")


def hosts_file(entries: dict[str, tuple[str, ...]], pod_ip: str, pod: str) -> str:
    """An /etc/hosts for one pod: localhost, the pod's own name, and every service's names
    at its VIP (`entries`: VIP → names), as kube-dns would answer them."""
    lines = ["127.0.0.1\tlocalhost", f"{pod_ip}\t{pod}"]
    lines += [f"{vip}\t{' '.join(names)}" for vip, names in sorted(entries.items())]
    return "\n".join(lines) + "\n"
