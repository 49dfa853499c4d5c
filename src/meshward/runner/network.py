"""Network modes of the runner (DESIGN.md): how pods get addresses and how traffic is caught.

`NetworkMode` is the seam; `Loopback` is the default (no root, any Linux): every pod gets its
own 127/8 addresses, apps reach the mesh through their sidecar by convention (proxy env vars
and local ports), so an app *could* bypass its sidecar — `limitations` says so, and the
verifier and `status` print it.

`Netns` (Linux, root): every pod is a network namespace on a bridge with capture rules
(meshward.netns), so nothing bypasses the sidecar. The runner calls `prepare` before
anything starts (it also removes what a killed run of this mesh left), `place` after every
plan (pods added, removed, hosts files and rules rewritten) and `teardown` last.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from meshward.errors import StateError
from meshward.model.ir import DNS_SUFFIX, MeshModel, PodKey
from meshward.netns import capture, enter
from meshward.netns.fabric import Fabric
from meshward.netns.naming import MeshNet, hosts_file, mesh_prefix, subnet_index

log = logging.getLogger("meshward.runner")

DEFAULT_POOL = "127.77.0.0/16"


class NetworkMode(Protocol):
    name: str
    pool: str

    def check(self) -> None:
        """Raise StateError if this machine cannot run the mode."""

    def limitations(self) -> tuple[str, ...]:
        """What this mode does not enforce, in one line each (shown to the user)."""

    def prepare(self) -> None:
        """Before anything starts: make the network (and clear a crashed run's leftovers)."""

    def place(self, model: MeshModel) -> dict[str, str]:
        """Make the network match `model`'s pods; → pod (`ns/pod`) → its namespace name."""

    def place_outside(self, keys: Sequence[PodKey]) -> dict[PodKey, tuple[str, str]]:
        """Hosts for the `outside: true` replicas `keys` → (namespace name or "", address)."""

    def app_argv(self, netns: str, argv: Sequence[str]) -> tuple[str, ...]:
        """How an app's command line runs in its pod."""

    def record(self) -> dict[str, Any]:
        """What runner.json keeps about the network (read by the agent, CLI, verifier)."""

    def teardown(self) -> None:
        """After everything stopped: remove what `prepare` and `place` made."""


class Loopback:
    name = "loopback"

    def __init__(self, pool: str = DEFAULT_POOL) -> None:
        network = ipaddress.IPv4Network(pool)
        if network.prefixlen != 16 or not network.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
            raise StateError(f"address pool {pool} must be a /16 inside 127.0.0.0/8")
        if network.network_address.packed[1] >= 254:
            raise StateError(f"address pool {pool}: second octet must be below 254")
        self.pool = pool

    def check(self) -> None:
        # Linux routes all of 127/8 to lo; macOS needs aliases per address. Try one bind.
        probe = str(ipaddress.IPv4Network(self.pool).network_address + 2)
        with socket.socket() as sock:
            try:
                sock.bind((probe, 0))
            except OSError as error:
                raise StateError(
                    f"cannot bind {probe}: loopback mode needs the whole 127.0.0.0/8 on lo "
                    f"(on macOS add aliases: ifconfig lo0 alias {probe})"
                ) from error

    def limitations(self) -> tuple[str, ...]:
        return (
            "loopback mode: apps reach the mesh through their sidecar by convention; an app "
            "could connect to another pod's app address directly and bypass mTLS "
            "(use --network netns for enforced capture)",
        )

    def prepare(self) -> None:
        return None

    def place(self, model: MeshModel) -> dict[str, str]:
        return {}

    def place_outside(self, keys: Sequence[PodKey]) -> dict[PodKey, tuple[str, str]]:
        # No outside network on loopback: outside hosts get addresses of their own in a
        # corner of the pool the pod allocator never reaches (127.N.250.x).
        second = int(ipaddress.IPv4Network(self.pool).network_address.packed[1])
        return {key: ("", f"127.{second}.250.{i + 2}") for i, key in enumerate(sorted(keys))}

    def app_argv(self, netns: str, argv: Sequence[str]) -> tuple[str, ...]:
        return tuple(argv)

    def record(self) -> dict[str, Any]:
        return {}

    def teardown(self) -> None:
        return None


class Netns:
    """Pods as network namespaces with transparent capture (meshward.netns)."""

    name = "netns"

    def __init__(self, pool: str, state_root: Path) -> None:
        self.net = MeshNet(prefix=mesh_prefix(state_root), index=subnet_index(pool))
        self.pool = self.net.pod_subnet
        self.fabric = Fabric(self.net)
        self._placed: dict[str, str] = {}  # netns name → pod IP
        self._outside: dict[PodKey, tuple[str, str]] = {}  # outside replica → (netns, ip)

    def check(self) -> None:
        if not sys.platform.startswith("linux"):
            raise StateError("MW0430 netns network mode needs Linux (use --network loopback)")
        if os.geteuid() != 0:
            raise StateError("MW0430 netns network mode needs root (use --network loopback)")
        missing = [tool for tool in ("ip", "iptables-restore", "setpriv") if not shutil.which(tool)]
        if missing:
            raise StateError(
                f"MW0430 netns network mode needs {', '.join(missing)} "
                "(scripts/setup.sh installs iproute2 and iptables)"
            )

    def limitations(self) -> tuple[str, ...]:
        return ()

    def prepare(self) -> None:
        removed = self.fabric.destroy()
        if removed:
            log.warning("MW0431 removed leftovers of an earlier run: %s", " ".join(removed))
        self.fabric.create()

    def place(self, model: MeshModel) -> dict[str, str]:
        wanted: dict[str, tuple[str, str]] = {}  # netns → (pod ip, key)
        for pod in model.pods:
            netns = self.net.pod_netns(pod.key.namespace, pod.key.pod_name)
            wanted[netns] = (pod.address.pod_ip, str(pod.key))
        for netns in sorted(set(self._placed) - set(wanted)):
            self.fabric.remove_pod(netns)
            del self._placed[netns]
        for pod in model.pods:
            netns = self.net.pod_netns(pod.key.namespace, pod.key.pod_name)
            hosts = hosts_file(
                _names(model, pod.key.namespace), pod.address.pod_ip, pod.key.pod_name
            )
            # A gateway pod is reached directly, like Istio's gateways (no capture).
            sidecar = pod.has_sidecar and not pod.gateway
            rules = capture.sidecar_rules() if sidecar else _legacy_rules(model)
            if self._placed.get(netns) == pod.address.pod_ip:
                # Already there: refresh names and rules (services or endpoints may change).
                self.fabric.write_hosts(netns, hosts)
                self.fabric.restore_rules(netns, rules)
                continue
            if netns in self._placed:
                self.fabric.remove_pod(netns)
            self.fabric.add_pod(netns, pod.address.pod_ip, hosts=hosts, rules=rules)
            self._placed[netns] = pod.address.pod_ip
        return {key: netns for netns, (_, key) in wanted.items()}

    def place_outside(self, keys: Sequence[PodKey]) -> dict[PodKey, tuple[str, str]]:
        """Outside hosts `198.19.N.2..199`, kept while they exist (200-249 are left to tests
        and tools, 250 is the verifier's)."""
        for key in sorted(set(self._outside) - set(keys)):
            netns, ip = self._outside.pop(key)
            self.fabric.remove_pod(netns)
            self.fabric.remove_link(self.net.outside_link(ip))
        used = {MeshNet.host_part(ip) for _, ip in self._outside.values()}
        free = (part for part in range(2, 200) if part not in used)
        for key in sorted(keys):
            if key in self._outside:
                continue
            part = next(free, None)
            if part is None:
                raise StateError("the outside network is full (198 hosts)")
            self._outside[key] = self.fabric.add_outside_host(
                f"{key.namespace}.{key.pod_name}", part
            )
        return dict(self._outside)

    def app_argv(self, netns: str, argv: Sequence[str]) -> tuple[str, ...]:
        return enter.argv(netns, argv, confined=True)

    def record(self) -> dict[str, Any]:
        return {
            "xds_host": self.net.host_ip,
            "netns": {"prefix": self.net.prefix, "index": self.net.index},
        }

    def teardown(self) -> None:
        self.fabric.destroy()
        self._placed.clear()
        self._outside.clear()


def _names(model: MeshModel, namespace: str) -> dict[str, tuple[str, ...]]:
    """VIP → the names a pod in `namespace` resolves to it (kube-dns: the short name only
    from the service's own namespace, as the pod's search path would give it)."""
    entries: dict[str, tuple[str, ...]] = {}
    for service in model.services:
        if not service.vip:
            continue
        base = f"{service.name}.{service.namespace}"
        names = [f"{base}.{DNS_SUFFIX}", f"{base}.svc", base]
        if service.namespace == namespace:
            names.append(service.name)
        entries[service.vip] = tuple(names)
    for host in model.external_hosts:  # ServiceEntry hosts (model/service_entries.py)
        if host.visible_from(namespace):
            entries[host.vip] = (*entries.get(host.vip, ()), host.host)
    return entries


def _legacy_rules(model: MeshModel) -> str:
    """kube-proxy's part for a pod without sidecar: each VIP:port to its first endpoint."""
    pods = {p.key: p for p in model.pods}
    translations = [
        (service.vip, port.port, pods[service.pods[0]].address.pod_ip, port.target_port)
        for service in model.services
        if service.vip and service.pods
        for port in service.ports
    ]
    return capture.legacy_rules(translations)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def unused_pool(second_octets: Sequence[int], *, first: int = 0) -> str:
    """A loopback /16 `127.<n>.0.0/16` among `second_octets` where no mesh is running: none
    of its first pod addresses has Envoy's admin port (15000) bound. Tests and benchmarks
    that several checkouts run at once use it so their meshes never share addresses; the
    search starts at index `first` (e.g. derived from the checkout) to spread them."""
    count = len(second_octets)
    for i in range(count):
        second = second_octets[(first + i) % count]
        try:
            for host in range(2, 8):
                with socket.socket() as probe:
                    # A mesh that just stopped leaves its admin connections in TIME_WAIT for
                    # a minute; SO_REUSEADDR binds past them, never past a listening socket.
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind((f"127.{second}.0.{host}", 15000))
        except OSError:
            continue  # another mesh lives there
        return f"127.{second}.0.0/16"
    raise StateError(f"every pool 127.{{{','.join(map(str, second_octets))}}}.0.0/16 is in use")
