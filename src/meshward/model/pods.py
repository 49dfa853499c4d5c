"""Pods: one IR pod per workload replica, with its identity, address and port protocols.

Called by `meshward.model.mesh.build`, and by the runner (`replicas`) to ask
`meshward.model.addressing.allocate` for addresses before building.
A sidecar pod's identity is Istio's `spiffe://<trust-domain>/ns/<ns>/sa/<serviceAccount>`;
a legacy pod (sidecar: false) has none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from meshward.config import resources as cfg
from meshward.diagnostics import Diagnostic
from meshward.identity import SpiffeId
from meshward.model import ir, protocol
from meshward.model.finding import finding


def pod_keys(workload: cfg.Workload) -> tuple[ir.PodKey, ...]:
    """The pods (replicas) of one workload: `<workload>-0` ... `<workload>-<replicas-1>`."""
    return tuple(
        ir.PodKey(workload.meta.namespace, workload.meta.name, replica)
        for replica in range(workload.replicas)
    )


def replicas(workloads: Iterable[cfg.Workload]) -> tuple[tuple[ir.PodKey, bool], ...]:
    """Every pod of `workloads` with its has-sidecar flag, sorted: the input of `allocate`.
    Outside workloads are not pods (the runner places them on the outside network)."""
    return tuple(
        sorted((key, w.sidecar) for w in workloads if not w.outside for key in pod_keys(w))
    )


def _port_protocol(
    key: ir.PodKey, port: cfg.WorkloadPort, services: tuple[ir.Service, ...]
) -> ir.Protocol:
    # Istio takes an inbound port's protocol from the Service port targeting it; the first
    # service in (namespace, name, port) order decides when several do. A port no service
    # targets is inferred from its own name.
    for service in services:
        if key in service.pods:
            for service_port in service.ports:
                if service_port.target_port == port.port:
                    return service_port.protocol
    return protocol.infer(port.name)


def build(
    workloads: Iterable[cfg.Workload],
    services: tuple[ir.Service, ...],
    trust_domain: str,
    addresses: Mapping[ir.PodKey, ir.PodAddress],
) -> tuple[ir.Pod, ...]:
    """IR pods sorted by key; pods without an address in `addresses` are left out."""
    pods: list[ir.Pod] = []
    for workload in workloads:
        identity = (
            SpiffeId(trust_domain, workload.meta.namespace, workload.service_account)
            if workload.sidecar
            else None
        )
        for key in pod_keys(workload):
            if key not in addresses:
                continue  # not placed yet (MW0211); it joins the model once it has an address
            ports = tuple(
                ir.PodPort(p.name, p.port, _port_protocol(key, p, services))
                for p in sorted(workload.ports, key=lambda p: p.port)
            )
            pods.append(
                ir.Pod(
                    key=key,
                    labels=workload.labels,
                    service_account=workload.service_account,
                    identity=identity,
                    address=addresses[key],
                    ports=ports,
                    gateway=workload.gateway,
                )
            )
    return tuple(sorted(pods, key=lambda p: p.key))


def diagnose(workloads: Iterable[cfg.Workload]) -> tuple[Diagnostic, ...]:
    """MW0210 for sidecar workloads declaring a port the sidecar itself binds."""
    return tuple(
        finding(
            "MW0210",
            w.meta,
            f"spec.ports[{i}].port",
            f"port {p.port} is reserved by the sidecar (reserved: {sorted(ir.RESERVED_PORTS)}); "
            "it gets no inbound listener",
        )
        for w in workloads
        if w.sidecar
        for i, p in enumerate(w.ports)
        if p.port in ir.RESERVED_PORTS
    )


def unplaced(
    workloads: Iterable[cfg.Workload], addresses: Mapping[ir.PodKey, ir.PodAddress]
) -> tuple[Diagnostic, ...]:
    """MW0211 for each workload with replicas that have no address (config newer than the
    addresses: the control plane reloaded before the runner placed the new pods)."""
    found = []
    for workload in workloads:
        missing = [key.pod_name for key in pod_keys(workload) if key not in addresses]
        if missing:
            found.append(
                finding(
                    "MW0211",
                    workload.meta,
                    "spec.replicas",
                    f"pods {missing} have no address yet; left out of the model",
                )
            )
    return tuple(found)
