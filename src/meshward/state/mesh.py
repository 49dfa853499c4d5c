"""The `mesh.json` record: the runner's published plan of pods and their addresses.

Written by the runner before it signals a reload; read by the control plane (addresses are
an input to the model), the agent (which sidecars to run) and the CLI (status, exec).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshward.model.ir import Network, NetworkModeName, PodAddress, PodKey
from meshward.state.layout import StateDir
from meshward.state.records import read_json, write_json


@dataclass(frozen=True, slots=True)
class PodRecord:
    namespace: str
    workload: str
    replica: int
    pod: str
    sidecar: bool
    node_id: str
    identity: str  # SPIFFE URI, "" for a legacy pod
    pod_ip: str
    app_ip: str
    ports: tuple[int, ...]
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    gateway: str = ""  # "ingress" for a gateway pod: the agent also serves it credentials
    netns: str = ""  # the pod's network namespace (netns mode), "" in loopback mode
    outside: bool = False  # a host on the outside network, not a pod of the mesh
    # secret-store credentials its sidecar originates TLS with (DestinationRule credentialName):
    # the agent serves a non-gateway pod these and no others
    credentials: tuple[str, ...] = ()

    @property
    def key(self) -> PodKey:
        return PodKey(self.namespace, self.workload, self.replica)


@dataclass(frozen=True, slots=True)
class MeshRecord:
    generation: int
    trust_domain: str
    cert_ttl_seconds: int
    pods: tuple[PodRecord, ...]
    network: NetworkModeName = "loopback"
    vips: tuple[tuple[tuple[str, str], str], ...] = ()  # ((namespace, service), vip)

    def model_network(self) -> Network:
        """The `network` input of `meshward.model.build` for this placement."""
        prefix = next((p.netns.split(".", 1)[0] for p in self.pods if p.netns), "")
        outside = tuple(sorted((p.key, p.pod_ip) for p in self.pods if p.outside))
        return Network(mode=self.network, vips=self.vips, netns_prefix=prefix, outside=outside)

    def addresses(self) -> dict[PodKey, PodAddress]:
        return {p.key: PodAddress(p.pod_ip, p.app_ip) for p in self.pods if not p.outside}

    def find(self, workload: str, namespace: str | None) -> list[PodRecord]:
        """Pods of `workload` (or the pod named so), in `namespace` when given."""
        return [
            p
            for p in self.pods
            if workload in (p.workload, p.pod) and (namespace is None or p.namespace == namespace)
        ]


def write_mesh(state: StateDir, record: MeshRecord) -> None:
    write_json(
        state.mesh,
        {
            "generation": record.generation,
            "trust_domain": record.trust_domain,
            "cert_ttl_seconds": record.cert_ttl_seconds,
            "pods": [_pod_json(p) for p in record.pods],
            "network": record.network,
            "vips": [[namespace, name, vip] for (namespace, name), vip in record.vips],
        },
    )


def read_mesh(state: StateDir) -> MeshRecord | None:
    raw = read_json(state.mesh)
    if raw is None:
        return None
    return MeshRecord(
        generation=int(raw["generation"]),
        trust_domain=str(raw["trust_domain"]),
        cert_ttl_seconds=int(raw["cert_ttl_seconds"]),
        pods=tuple(_pod(p) for p in raw["pods"]),
        network="netns" if raw.get("network") == "netns" else "loopback",
        vips=tuple(((str(n), str(s)), str(v)) for n, s, v in raw.get("vips", ())),
    )


def _pod_json(pod: PodRecord) -> dict[str, Any]:
    return {
        "namespace": pod.namespace,
        "workload": pod.workload,
        "replica": pod.replica,
        "pod": pod.pod,
        "sidecar": pod.sidecar,
        "node_id": pod.node_id,
        "identity": pod.identity,
        "pod_ip": pod.pod_ip,
        "app_ip": pod.app_ip,
        "ports": list(pod.ports),
        "argv": list(pod.argv),
        "env": dict(pod.env),
        "gateway": pod.gateway,
        "netns": pod.netns,
        "outside": pod.outside,
        "credentials": list(pod.credentials),
    }


def _pod(raw: Mapping[str, Any]) -> PodRecord:
    env: Mapping[str, str] = raw["env"]
    argv: Sequence[str] = raw["argv"]
    return PodRecord(
        namespace=raw["namespace"],
        workload=raw["workload"],
        replica=int(raw["replica"]),
        pod=raw["pod"],
        sidecar=bool(raw["sidecar"]),
        node_id=raw["node_id"],
        identity=raw["identity"],
        pod_ip=raw["pod_ip"],
        app_ip=raw["app_ip"],
        ports=tuple(int(p) for p in raw["ports"]),
        argv=tuple(argv),
        env=tuple(sorted(env.items())),
        gateway=str(raw.get("gateway", "")),
        netns=str(raw.get("netns", "")),
        outside=bool(raw.get("outside", False)),
        credentials=tuple(str(c) for c in raw.get("credentials", ())),
    )
