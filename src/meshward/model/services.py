"""Services: which pods a Service selects and what protocol each of its ports speaks.

Called by `meshward.model.mesh.build`. Kubernetes semantics: a Service selects the workloads
in its own namespace whose labels include its selector; an empty selector selects nothing
(Kubernetes manages no endpoints for it). Endpoints use `targetPort` whether or not the
workload declares that port (as Kubernetes does), with a warning when it does not.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence

from meshward.config import resources as cfg
from meshward.diagnostics import Diagnostic
from meshward.model import ir, protocol
from meshward.model.finding import finding
from meshward.model.pods import pod_keys


def selects(service: cfg.Service, workload: cfg.Workload) -> bool:
    """True if `service` selects `workload` (same namespace, non-empty selector, labels match)."""
    return (
        bool(service.selector)
        and service.meta.namespace == workload.meta.namespace
        and cfg.selector_matches(service.selector, workload.labels)
    )


class _Candidates:
    """Workloads indexed by (namespace, one label): a service only looks at the workloads that
    carry its selector's first label, not at every workload of the mesh (O(services x
    workloads) was a measurable part of a build at 1000 workloads). Input order is kept."""

    def __init__(self, workloads: Iterable[cfg.Workload]) -> None:
        self._by_label: dict[tuple[str, str, str], list[cfg.Workload]] = {}
        for workload in workloads:
            for key, value in workload.labels:
                self._by_label.setdefault((workload.meta.namespace, key, value), []).append(
                    workload
                )

    def of(self, service: cfg.Service) -> Sequence[cfg.Workload]:
        """A superset of the workloads `service` selects, in input order (empty selector:
        none, as `selects` says)."""
        if not service.selector:
            return ()
        key, value = service.selector[0]
        return self._by_label.get((service.meta.namespace, key, value), ())


def _service(
    service: cfg.Service, workloads: Iterable[cfg.Workload], placed: Container[ir.PodKey]
) -> ir.Service:
    pods = sorted(
        key for w in workloads if selects(service, w) for key in pod_keys(w) if key in placed
    )
    ports = sorted(
        (
            ir.ServicePort(
                name=p.name,
                port=p.port,
                target_port=p.target_port,
                protocol=protocol.infer(p.name, p.app_protocol),
            )
            for p in service.ports
        ),
        key=lambda p: p.port,
    )
    return ir.Service(
        namespace=service.meta.namespace,
        name=service.meta.name,
        ports=tuple(ports),
        pods=tuple(pods),
    )


def _diagnose(service: cfg.Service, workloads: Iterable[cfg.Workload]) -> list[Diagnostic]:
    selected = [w for w in workloads if selects(service, w)]
    if not selected:
        return [
            finding(
                "MW0201",
                service.meta,
                "spec.selector",
                f"selector {dict(service.selector)} matches no workload in namespace "
                f"{service.meta.namespace}; the service has no endpoints",
            )
        ]
    found: list[Diagnostic] = []
    for workload in selected:
        if workload.gateway:
            continue  # its ports are its Gateways' servers (model/gateway.py, MW0274)
        declared = {p.port for p in workload.ports}
        for port in service.ports:
            if port.target_port not in declared:
                found.append(
                    finding(
                        "MW0202",
                        workload.meta,
                        "spec.ports",
                        f"selected by {service.meta.ref} port {port.port} with targetPort "
                        f"{port.target_port}, which this workload does not declare",
                    )
                )
    return found


def build(
    services: Iterable[cfg.Service],
    workloads: Iterable[cfg.Workload],
    placed: Container[ir.PodKey],
) -> tuple[tuple[ir.Service, ...], tuple[Diagnostic, ...]]:
    """IR services sorted by (namespace, name), and MW0201/MW0202 findings.

    A service's pods are only those in `placed` (the pods that have an address).
    """
    candidates = _Candidates(workloads)
    ordered = sorted(services, key=lambda s: (s.meta.namespace, s.meta.name))
    found = [d for s in ordered for d in _diagnose(s, candidates.of(s))]
    return tuple(_service(s, candidates.of(s), placed) for s in ordered), tuple(found)
