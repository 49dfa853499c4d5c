"""Where a sidecar's calls for an external host meet a gateway pod (Istio's egress gateway).

A `mesh` VirtualService routes a ServiceEntry port at the sidecar (`vs_routes` for HTTP,
`tcp_routes` for TLS/TCP) to the cluster of a Service whose pods are gateway pods; the
gateway's listener on the endpoint's port decides by its filter chains what it takes: mesh
mTLS (the sidecar's DestinationRule ISTIO_MUTUAL, with its `sni`) only where a chain
terminates ISTIO_MUTUAL, plaintext or the app's own TLS elsewhere. Read from the built model
by the verifier (verify/egress_probes.py: which calls to probe, and how) and the analyzer
(analyze/egress_gateway.py: where the gateway's chains cannot take what the sidecar sends).
"""

from __future__ import annotations

from dataclasses import dataclass

from meshward.model.gateway import host_matches
from meshward.model.ir import (
    GatewayChain,
    GatewayListener,
    MeshModel,
    OutboundService,
    ProxyModel,
    UpstreamEndpoint,
)


@dataclass(frozen=True, slots=True)
class GatewayHop:
    """One route of a caller's external service port, to one gateway pod port."""

    to_gateway: OutboundService  # the caller's outbound service of the gateway's Service
    endpoint: UpstreamEndpoint  # the gateway pod port (its `mtls`: does the sidecar wrap?)
    gateway: ProxyModel
    listener: GatewayListener


def routed_clusters(service: OutboundService) -> tuple[str, ...]:
    """The clusters a `mesh` VirtualService sends `service`'s calls to, in route order
    (duplicates kept: several routes to one cluster are still one destination each)."""
    if service.vs_routes:
        return tuple(c for route in service.vs_routes for c, _ in route.clusters)
    return tuple(c for c, _ in service.tcp_routes or ())


def gateway_hops(
    model: MeshModel, caller: ProxyModel, service: OutboundService
) -> tuple[GatewayHop, ...]:
    """Every gateway pod port the routes of `caller`'s `service` lead to, once each, in route
    and endpoint order (() when no route leads to a gateway pod with a listener there)."""
    by_key = {p.pod.key: p for p in model.proxies if p.gateway is not None}
    hops: list[GatewayHop] = []
    for cluster in dict.fromkeys(routed_clusters(service)):
        to_gateway = next((s for s in caller.outbound if s.cluster_name == cluster), None)
        if to_gateway is None:
            continue
        for endpoint in to_gateway.endpoints:
            gateway = by_key.get(endpoint.pod)
            if gateway is None or gateway.gateway is None:
                continue
            listener = next((g for g in gateway.gateway.listeners if g.port == endpoint.port), None)
            if listener is not None:
                hops.append(GatewayHop(to_gateway, endpoint, gateway, listener))
    return tuple(hops)


def takes_mesh_mtls(chain: GatewayChain) -> bool:
    """A chain that terminates the sidecar's mesh mTLS: an ISTIO_MUTUAL server (HTTPS or TLS)."""
    return chain.tls is not None and chain.tls.mode == "ISTIO_MUTUAL"


def matches_sni(chain: GatewayChain, sni: str) -> bool:
    """Envoy's `server_names` match: none matches any SNI; `*.x` matches names under x."""
    return not chain.server_names or any(host_matches(name, sni) for name in chain.server_names)
