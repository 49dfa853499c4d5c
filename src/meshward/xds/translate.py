"""ProxyModel → Snapshot: everything one sidecar needs, as consistency-checked Envoy protos.

Called by the control plane (once per proxy per model change) and by tests. Pure and
deterministic: the same ProxyModel always gives byte-identical resources, so snapshot versions
(content hashes) change only when the configuration does. Best-effort per resource (DESIGN.md):
a listener or cluster that cannot coexist with an earlier one drops itself with a Diagnostic,
and the rest of the snapshot still goes out.
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2

from meshward.diagnostics import Diagnostic, Level, Location
from meshward.model import ir
from meshward.xds import cluster, listener, route, snapshot

_LISTENER_CONFLICT = "MW0302"
_DUPLICATE_SERVICE = "MW0303"


@dataclass(frozen=True, slots=True)
class Translation:
    """A proxy's snapshot and what was dropped on the way (MW03xx diagnostics)."""

    snapshot: snapshot.Snapshot
    diagnostics: tuple[Diagnostic, ...]


def proxy_snapshot(proxy: ir.ProxyModel) -> snapshot.Snapshot:
    """The snapshot of one sidecar (diagnostics discarded; see `translate`)."""
    return translate(proxy).snapshot


def translate(proxy: ir.ProxyModel) -> Translation:
    """Translate one sidecar; raises SnapshotError only on a translator bug."""
    diagnostics: list[Diagnostic] = []
    workload = f"Workload {proxy.pod.key.namespace}/{proxy.pod.key.workload}"

    outbound: list[ir.OutboundService] = []
    seen: set[str] = set()
    for service in proxy.outbound:
        if service.cluster_name in seen:
            diagnostics.append(
                _diagnostic(
                    _DUPLICATE_SERVICE,
                    Level.ERROR,
                    _service_ref(service),
                    service.port,
                    f"{service.cluster_name} appears twice for {proxy.node_id}",
                )
            )
            continue
        seen.add(service.cluster_name)
        outbound.append(service)

    # Listeners in a fixed order (inbound, HTTP proxy port, TCP ports); on an address clash
    # the earlier one wins, because Envoy would reject the later bind for the whole LDS push.
    candidates: list[tuple[str, int, listener_pb2.Listener]] = [
        (workload, port.port, listener.inbound_listener(port, proxy.pod, proxy.trust_domain))
        for port in proxy.inbound
    ]
    candidates.append((workload, proxy.outbound_http_port, listener.outbound_http_listener(proxy)))
    for service in outbound:
        if service.tcp_bind is not None and not ir.is_http(service.protocol):
            candidates.append(
                (
                    _service_ref(service),
                    service.port,
                    listener.outbound_tcp_listener(service, service.tcp_bind),
                )
            )
    listeners: list[listener_pb2.Listener] = []
    bound: dict[tuple[str, int], str] = {}
    for ref, port, candidate in candidates:
        socket = candidate.address.socket_address
        key = (socket.address, socket.port_value)
        if key in bound:
            diagnostics.append(
                _diagnostic(
                    _LISTENER_CONFLICT,
                    Level.ERROR,
                    ref,
                    port,
                    f"listener {candidate.name} would bind {key[0]}:{key[1]}, "
                    f"already used by {bound[key]}; dropped",
                )
            )
            continue
        bound[key] = candidate.name
        listeners.append(candidate)

    clusters: list[cluster_pb2.Cluster] = [
        cluster.inbound_cluster(port, proxy.pod) for port in proxy.inbound
    ]
    clusters.extend(cluster.outbound_cluster(service) for service in outbound)
    routes, route_diagnostics = route.outbound_http_routes(outbound)
    diagnostics.extend(route_diagnostics)
    return Translation(
        snapshot=snapshot.make_snapshot(listeners=listeners, clusters=clusters, routes=[routes]),
        diagnostics=tuple(diagnostics),
    )


def _service_ref(service: ir.OutboundService) -> str:
    return f"Service {service.namespace}/{service.name}"


def _diagnostic(code: str, level: Level, resource: str, port: int, message: str) -> Diagnostic:
    return Diagnostic(
        code=code,
        level=level,
        resource=resource,
        location=Location(field=f"port {port}"),
        message=message,
    )
