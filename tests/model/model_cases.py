"""Builders for the model/ tests: typed config resources written in one line each.

Tests build ConfigSet values directly (not from YAML) so they depend on model/ alone.
`order` is the Meta.order position; `created` the creationTimestamp part of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from meshward.config import resources as cfg
from meshward.model import allocate, ir, replicas

ROOT = "meshward-system"


def meta(kind: str, name: str, namespace: str, order: int = 0, created: str = "") -> cfg.Meta:
    api = {
        "Service": "v1",
        "Workload": "meshward.io/v1alpha1",
        "MeshConfig": "meshward.io/v1alpha1",
        "PeerAuthentication": "security.istio.io/v1",
        "DestinationRule": "networking.istio.io/v1",
    }[kind]
    return cfg.Meta(api, kind, name, namespace, f"{namespace}.yaml", order + 1, (created, order))


def workload(
    name: str,
    namespace: str = "core",
    labels: Mapping[str, str] | None = None,
    ports: Sequence[tuple[str, int]] = (("http", 8000),),
    *,
    sa: str = "default",
    replicas: int = 1,
    sidecar: bool = True,
    order: int = 0,
) -> cfg.Workload:
    return cfg.Workload(
        meta=meta("Workload", name, namespace, order),
        labels=cfg.labels(labels if labels is not None else {"app": name}),
        service_account=sa,
        ports=tuple(cfg.WorkloadPort(n, p) for n, p in ports),
        command=("app",),
        args=(),
        env=(),
        replicas=replicas,
        sidecar=sidecar,
    )


def service(
    name: str,
    namespace: str = "core",
    selector: Mapping[str, str] | None = None,
    ports: Sequence[tuple[str, int, int] | tuple[str, int, int, str]] = (("http", 80, 8000),),
    *,
    order: int = 0,
) -> cfg.Service:
    return cfg.Service(
        meta=meta("Service", name, namespace, order),
        selector=cfg.labels(selector if selector is not None else {"app": name}),
        ports=tuple(
            cfg.ServicePort(p[0], p[1], p[2], str(p[3]) if len(p) == 4 else "") for p in ports
        ),
    )


def peer(
    name: str,
    namespace: str,
    mode: cfg.MtlsMode | None,
    selector: Mapping[str, str] | None = None,
    port_level: Mapping[int, cfg.MtlsMode] | None = None,
    *,
    order: int = 0,
    created: str = "",
) -> cfg.PeerAuthentication:
    return cfg.PeerAuthentication(
        meta=meta("PeerAuthentication", name, namespace, order, created),
        selector=None if selector is None else cfg.labels(selector),
        mode=mode,
        port_level=tuple(sorted((port_level or {}).items())),
    )


def rule(
    name: str,
    namespace: str,
    host: str,
    tls: cfg.ClientTlsMode | None = None,
    *,
    port_level: Mapping[int, cfg.ClientTlsMode] | None = None,
    selector: Mapping[str, str] | None = None,
    order: int = 0,
) -> cfg.DestinationRule:
    return cfg.DestinationRule(
        meta=meta("DestinationRule", name, namespace, order),
        host=host,
        tls_mode=tls,
        port_level=tuple(sorted((port_level or {}).items())),
        workload_selector=None if selector is None else cfg.labels(selector),
    )


def config_set(
    *resources: cfg.Service | cfg.Workload | cfg.PeerAuthentication | cfg.DestinationRule,
    mesh: cfg.MeshConfig | None = None,
) -> cfg.ConfigSet:
    return cfg.ConfigSet(
        mesh=mesh or cfg.MeshConfig(meta=None, root_namespace=ROOT),
        services=tuple(r for r in resources if isinstance(r, cfg.Service)),
        workloads=tuple(r for r in resources if isinstance(r, cfg.Workload)),
        peer_authentications=tuple(r for r in resources if isinstance(r, cfg.PeerAuthentication)),
        destination_rules=tuple(r for r in resources if isinstance(r, cfg.DestinationRule)),
    )


def addresses(config: cfg.ConfigSet) -> dict[ir.PodKey, ir.PodAddress]:
    return allocate(replicas(config.workloads), {})
