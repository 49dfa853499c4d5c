"""ProxyModel → Snapshot: everything one sidecar needs, as consistency-checked Envoy protos.

Called by the control plane (once per proxy per model change) and by tests. Pure and
deterministic: the same ProxyModel always gives byte-identical resources, so snapshot versions
(content hashes) change only when the configuration does. Best-effort per resource (DESIGN.md):
a listener or cluster that cannot coexist with an earlier one drops itself with a Diagnostic,
and the rest of the snapshot still goes out.

Every sidecar sees every mesh service, so most of a snapshot (outbound clusters, the
`outbound_http` routes) is the same for many proxies. `SharedResources` translates each of
those once and hands the same encoded resource (`snapshot.Encoded`) to every snapshot that
needs it; the control plane keeps one across reloads. Resources are never mutated once built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from envoy.config.listener.v3 import listener_pb2

from meshward.diagnostics import Diagnostic, Level, Location
from meshward.model import ir
from meshward.xds import cluster, gateway, listener, route, snapshot

_LISTENER_CONFLICT = "MW0302"
_DUPLICATE_SERVICE = "MW0303"


@dataclass(frozen=True, slots=True)
class Translation:
    """A proxy's snapshot and what was dropped on the way (MW03xx diagnostics)."""

    snapshot: snapshot.Snapshot
    diagnostics: tuple[Diagnostic, ...]


T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Memo(Generic[T, K, V]):
    """Results of a pure translator for equal inputs.

    By identity first: the model shares equal IR objects between proxies
    (model/upstream_tls.Upstreams), so most lookups cost no hashing of a deep frozen value.
    Then by value, `key(item)`: a reload builds new but equal IR objects and gets the same
    encoded resource back. `sweep` keeps only what was used since the previous sweep, so the
    memo holds what the current model uses, not every model ever translated.
    """

    def __init__(self, make: Callable[[K], V], key: Callable[[T], K]) -> None:
        self._make = make
        self._key = key
        self._by_id: dict[int, tuple[T, V]] = {}  # the item is held, so its id stays unique
        self._by_value: dict[K, V] = {}
        self._used: dict[K, V] = {}

    def __call__(self, item: T) -> V:
        hit = self._by_id.get(id(item))
        if hit is not None and hit[0] is item:
            return hit[1]
        key = self._key(item)
        value = self._used.get(key)
        if value is None:
            value = self._by_value.get(key)
            if value is None:
                value = self._make(key)
            self._used[key] = value
        self._by_id[id(item)] = (item, value)
        return value

    def sweep(self) -> None:
        self._by_value, self._used, self._by_id = self._used, {}, {}


_Routes = tuple[snapshot.Encoded, tuple[Diagnostic, ...]]


def _cluster_input(service: ir.OutboundService) -> ir.OutboundService:
    # An outbound cluster is made from the upstream side only (cluster.outbound_cluster reads
    # neither the Host names, the local TCP bind, nor the routes, which say how the app
    # reaches it), so callers that differ only there share one cluster.
    if (
        service.http_domains
        or service.tcp_bind is not None
        or service.vip
        or service.vs_routes is not None
    ):
        return dataclasses.replace(
            service, http_domains=(), tcp_bind=None, vip="", vs_routes=None, route_jwt_rules=()
        )
    return service


def _encoded_cluster(service: ir.OutboundService) -> snapshot.Encoded:
    return snapshot.encode(cluster.outbound_cluster(service))


_Http = tuple[ir.OutboundService, ...]


def _http_services(outbound: Sequence[ir.OutboundService]) -> _Http:
    return tuple(s for s in outbound if ir.is_http(s.protocol))


_RoutesMemo = _Memo[Sequence[ir.OutboundService], _Http, _Routes]


def _routes_memo(policy: ir.OutboundPolicy) -> _RoutesMemo:
    """The `outbound_http` route configs under `policy`, by the HTTP services they route."""

    def make(http: _Http) -> _Routes:
        config, diagnostics = route.outbound_http_routes(http, policy)
        return snapshot.encode(config), diagnostics

    return _Memo(make, _http_services)


class SharedResources:
    """The resources many proxies share, each translated and encoded once.

    Created by the control plane and kept across reloads (call `sweep` after each reload to
    drop what the new model no longer uses); `translate` without one uses a private one.
    Keys are the frozen IR values the resources are made from: an outbound cluster by its
    `OutboundService` (upstream side), the `outbound_http` route config by the HTTP services
    it routes.
    """

    def __init__(self) -> None:
        self.cluster: _Memo[ir.OutboundService, ir.OutboundService, snapshot.Encoded]
        self.cluster = _Memo(_encoded_cluster, _cluster_input)
        # One memo per outbound policy: proxies with different policies (a Sidecar's) may
        # share one outbound tuple, and the memo's first lookup is by the tuple's identity.
        self.routes: dict[ir.OutboundPolicy, _RoutesMemo] = {
            policy: _routes_memo(policy) for policy in ("ALLOW_ANY", "REGISTRY_ONLY")
        }
        self._unique: dict[int, tuple[Sequence[ir.OutboundService], bool]] = {}
        self._clusters: dict[int, tuple[Sequence[ir.OutboundService], list[snapshot.Encoded]]]
        self._clusters = {}

    def clusters(self, outbound: Sequence[ir.OutboundService]) -> list[snapshot.Encoded]:
        """The outbound clusters of `outbound`, in order (listed once per shared tuple)."""
        hit = self._clusters.get(id(outbound))
        if hit is None or hit[0] is not outbound:
            hit = self._clusters[id(outbound)] = (outbound, [self.cluster(s) for s in outbound])
        return hit[1]

    def unique(self, outbound: Sequence[ir.OutboundService]) -> bool:
        """Whether no cluster name repeats in `outbound` (checked once per shared tuple)."""
        hit = self._unique.get(id(outbound))
        if hit is None or hit[0] is not outbound:
            names = {s.cluster_name for s in outbound}
            hit = self._unique[id(outbound)] = (outbound, len(names) == len(outbound))
        return hit[1]

    def sweep(self) -> None:
        """Keep only the resources used since the previous sweep."""
        self.cluster.sweep()
        for memo in self.routes.values():
            memo.sweep()
        self._unique = {}
        self._clusters = {}


def proxy_snapshot(proxy: ir.ProxyModel) -> snapshot.Snapshot:
    """The snapshot of one sidecar (diagnostics discarded; see `translate`)."""
    return translate(proxy).snapshot


def translate(proxy: ir.ProxyModel, shared: SharedResources | None = None) -> Translation:
    """Translate one sidecar; raises SnapshotError only on a translator bug.

    `shared` reuses the resources other proxies share (same output, computed once).
    """
    shared = SharedResources() if shared is None else shared
    diagnostics: list[Diagnostic] = []
    workload = f"Workload {proxy.pod.key.namespace}/{proxy.pod.key.workload}"

    outbound: Sequence[ir.OutboundService] = proxy.outbound
    if not shared.unique(proxy.outbound):
        outbound = _unique(proxy, diagnostics)

    if proxy.capture:
        return _captured(proxy, outbound, shared, diagnostics)

    # Listeners in a fixed order (inbound, HTTP proxy port, TCP ports); on an address clash
    # the earlier one wins, because Envoy would reject the later bind for the whole LDS push.
    candidates: list[tuple[str, int, listener_pb2.Listener]] = [
        (
            workload,
            port.port,
            listener.inbound_listener(port, proxy.pod, proxy.trust_domain, proxy.jwt_rules),
        )
        for port in proxy.inbound
    ]
    if proxy.gateway is not None:
        # A gateway pod: its Gateway listeners instead of app ports (it has none), plus the
        # outbound side of a sidecar, so it reaches services with Istio mTLS as itself.
        made, dropped = gateway.gateway_listeners(proxy)
        diagnostics.extend(dropped)
        candidates.extend((workload, m.address.socket_address.port_value, m) for m in made)
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

    clusters: list[snapshot.Encoded] = [
        snapshot.encode(cluster.inbound_cluster(port, proxy.pod)) for port in proxy.inbound
    ]
    clusters.extend(shared.clusters(outbound))
    routes, route_diagnostics = shared.routes[proxy.outbound_policy](outbound)
    diagnostics.extend(route_diagnostics)
    return Translation(
        snapshot=snapshot.make_snapshot(listeners=listeners, clusters=clusters, routes=[routes]),
        diagnostics=tuple(diagnostics),
    )


def _captured(
    proxy: ir.ProxyModel,
    outbound: Sequence[ir.OutboundService],
    shared: SharedResources,
    diagnostics: list[Diagnostic],
) -> Translation:
    """netns mode: the two virtual listeners; the outbound clusters are the same as in
    loopback mode, plus PassthroughCluster and BlackHoleCluster for unknown destinations."""
    listeners = [
        listener.virtual_inbound_listener(proxy),
        listener.virtual_outbound_listener(proxy, outbound),
    ]
    clusters: list[snapshot.Encoded] = [
        snapshot.encode(cluster.inbound_cluster(port, proxy.pod, listener.INBOUND_BIND))
        for port in proxy.inbound
    ]
    clusters.extend(shared.clusters(outbound))
    clusters.append(snapshot.encode(cluster.passthrough_cluster(listener.PASSTHROUGH_CLUSTER)))
    clusters.append(snapshot.encode(cluster.blackhole_cluster(listener.BLACKHOLE_CLUSTER)))
    return Translation(
        snapshot=snapshot.make_snapshot(listeners=listeners, clusters=clusters, routes=[]),
        diagnostics=tuple(diagnostics),
    )


def _unique(proxy: ir.ProxyModel, diagnostics: list[Diagnostic]) -> list[ir.OutboundService]:
    # The model never repeats a service port; a repeat is refused here (MW0303), first wins.
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
    return outbound


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
