"""Where a sidecar's calls for an external host meet a gateway pod (Istio's egress gateway).

A `mesh` VirtualService routes a ServiceEntry port at the sidecar (`vs_routes` for HTTP,
`tcp_routes` for TLS/TCP) to the cluster of a Service whose pods are gateway pods; the
gateway's listener on the endpoint's port decides by its filter chains what it takes: mesh
mTLS (the sidecar's DestinationRule ISTIO_MUTUAL, with its `sni`) only where a chain
terminates ISTIO_MUTUAL, plaintext or the app's own TLS elsewhere. Read from the built model
by the verifier (verify/egress_probes.py: which calls to probe, and how), the analyzer
(analyze/egress_gateway.py: where the gateway's chains cannot take what the sidecar sends)
and `meshward authz explain` (cli/authz_gateway.py: the gateway's decision for a caller).
"""

from __future__ import annotations

from dataclasses import dataclass

from meshward.model.authz_eval import Request
from meshward.model.gateway import host_matches
from meshward.model.ir import (
    GatewayChain,
    GatewayListener,
    MeshModel,
    OutboundService,
    ProxyModel,
    UpstreamEndpoint,
    is_http,
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


def chain_for(hop: GatewayHop, service: OutboundService) -> GatewayChain | None:
    """The gateway filter chain that takes `service`'s calls on `hop`, or None: matched by
    the SNI that arrives (the sidecar's mesh mTLS SNI, or the app's own TLS with the host as
    SNI), plaintext or not, and for HTTP chains by a virtual host serving the host."""
    mutual = hop.endpoint.mtls
    sni = hop.to_gateway.mesh_sni if mutual else service.name
    tls = mutual or not is_http(service.protocol)
    for chain in hop.listener.chains:
        if tls != (chain.kind not in ("HTTP", "TCP")) or not matches_sni(chain, sni):
            continue
        if chain.kind in ("HTTP", "TERMINATE") and not route_clusters(chain, service.name):
            continue
        return chain
    return None


def route_clusters(chain: GatewayChain, host: str) -> tuple[str, ...]:
    """The clusters of the first route of `chain`'s virtual host serving `host` (() if none)."""
    for vhost in chain.virtual_hosts:
        if host in vhost.domains or "*" in vhost.domains:
            return tuple(c for route in vhost.routes[:1] for c, _ in route.clusters)
    return ()


def gateway_request(
    hop: GatewayHop,
    chain: GatewayChain,
    service: OutboundService,
    caller: ProxyModel,
    *,
    method: str = "GET",
    path: str = "/",
    headers: tuple[tuple[str, str], ...] = (),
    principal: str | None = None,
) -> Request:
    """The request the gateway's AuthorizationPolicies see on `hop` from `caller`'s call to
    `service`: the caller's principal (or `principal`) only over mesh mTLS — plaintext and
    the app's own TLS carry no identity —, the host as Host and the chain's SNI."""
    identity = caller.pod.identity
    known = principal if principal is not None else identity.principal if identity else ""
    return Request(
        source_principal=known if hop.endpoint.mtls else "",
        source_ip=caller.pod.address.pod_ip,
        destination_ip=hop.gateway.pod.address.pod_ip,
        destination_port=hop.listener.port,
        sni=chain.server_names[0] if chain.server_names else "",
        host=service.name,
        method=method,
        path=path,
        headers=headers,
        is_http=is_http(service.protocol),
    )
