"""Sidecar listeners: inbound per app port, the outbound HTTP proxy port, outbound TCP ports
(loopback mode), or the two virtual listeners that captured traffic arrives on (netns mode).

Called by translate.py. Inbound filter chains follow the port's effective mTLS mode (decided
by model/ from PeerAuthentication); the table `_CHAINS` maps mode to chains. The HTTP
connection manager is built in exactly one function, `http_connection_manager`, so that
filters added later (access log, authn, RBAC) are added in one place. AuthorizationPolicies
become RBAC filters (xds/rbac.py): HTTP filters before the router, network filters before
tcp_proxy.

netns mode follows Istio's sidecar: iptables redirects inbound TCP to `virtualInbound`
(0.0.0.0:15006) and outbound TCP to `virtualOutbound` (0.0.0.0:15001); the original_dst
listener filter restores the destination the client dialled, and filter chains match on it.
Inbound: the very chains of the per-port listener (one builder, two modes), each also
matching its destination port; a port with no chain has no match and is closed. Outbound:
one chain per service VIP:port, and one per TLS port of a ServiceEntry host without an
address (a wildcard such as `*.tls.example`: no VIP) matched by port and SNI — Istio's
`server_names` chains; anything else takes the default chain to PassthroughCluster
(ALLOW_ANY) or BlackHoleCluster (REGISTRY_ONLY) — Istio's `outboundTrafficPolicy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from meshward.model import ir
from meshward.model.request_authn import JwtRule
from meshward.xds import access_log, core, jwt_authn, rbac, route, tls

HCM_FILTER = "envoy.filters.network.http_connection_manager"
TCP_PROXY_FILTER = "envoy.filters.network.tcp_proxy"
ROUTER_FILTER = "envoy.filters.http.router"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
ORIGINAL_DST = "envoy.filters.listener.original_dst"
OUTBOUND_HTTP_LISTENER = "outbound_http"
VIRTUAL_INBOUND = "virtualInbound"
VIRTUAL_OUTBOUND = "virtualOutbound"
PASSTHROUGH_CLUSTER = "PassthroughCluster"
# The source of the sidecar's connections to its app in netns mode; must equal
# netns/capture.py INBOUND_PASSTHROUGH_BIND (xds does not import netns: a test pins both).
INBOUND_BIND = "127.0.0.6"
BLACKHOLE_CLUSTER = "BlackHoleCluster"

_HCM = hcm_pb2.HttpConnectionManager


@dataclass(frozen=True, slots=True)
class Edge:
    """HCM settings of a gateway, whose clients are outside the mesh: trust the peer address
    (plus `num_trusted_proxies` X-Forwarded-For hops) and forward the verified client
    certificate's Hash, Subject, URI and DNS SANs in X-Forwarded-Client-Cert."""

    num_trusted_proxies: int = 0


# Which chains each effective mode gets, in order. PERMISSIVE needs both: tls_inspector sets
# the transport protocol to "tls" for a ClientHello and leaves the default "raw_buffer"
# otherwise, and each chain matches one of the two (Istio's permissive listener). STRICT has
# a single unmatched chain, so a plaintext client fails the TLS handshake.
_CHAINS: MappingProxyType[ir.EffectiveMtls, tuple[bool, ...]] = MappingProxyType(
    {"STRICT": (True,), "PERMISSIVE": (True, False), "DISABLE": (False,)}
)


def http_connection_manager(
    *,
    stat_prefix: str,
    routes: route_pb2.RouteConfiguration | str,
    peer_certificate: bool,
    direction: access_log.Direction,
    log_filter: accesslog_pb2.AccessLogFilter | None,
    http_filters: Sequence[hcm_pb2.HttpFilter] = (),
    edge: Edge | None = None,
    local_reply: hcm_pb2.LocalReplyConfig | None = None,
) -> hcm_pb2.HttpConnectionManager:
    """The one place an HCM is built. `routes` is an inline route config or an RDS name
    (fetched over ADS); `log_filter` selects the requests its access log records (None:
    every request).
    `http_filters` run in order before the router (inbound: the port's RBAC filters,
    xds/rbac.py). With `peer_certificate` (an mTLS chain) the app receives
    `X-Forwarded-Client-Cert` carrying the caller's SPIFFE URI; without it, any XFCC a client
    sent is stripped so it cannot be forged (Envoy HCM docs, forward_client_cert_details).
    `edge` (gateways): the downstream is outside the mesh, see `Edge`."""
    manager = _HCM(stat_prefix=stat_prefix, codec_type=_HCM.AUTO)
    # RFC 3986 §6 path normalisation before any filter sees the path, so `/./admin` or
    # `/x/../admin` cannot slip past a path rule in an AuthorizationPolicy (Istio's default
    # pathNormalization BASE does the same; Envoy's own default is off).
    manager.normalize_path.value = True
    if isinstance(routes, str):
        manager.rds.route_config_name = routes
        manager.rds.config_source.CopyFrom(core.ads_source())
    else:
        manager.route_config.CopyFrom(routes)
    if edge is not None:
        # The client address is the peer's, or the N-th from the right of X-Forwarded-For
        # when N proxies in front are trusted (Istio numTrustedProxies); remoteIpBlocks
        # then match the real client, and a client cannot forge its address with XFF.
        manager.use_remote_address.value = True
        manager.xff_num_trusted_hops = edge.num_trusted_proxies
    if peer_certificate:
        manager.forward_client_cert_details = _HCM.SANITIZE_SET
        details = manager.set_current_client_cert_details
        details.uri = True
        if edge is not None:
            # A client certificate from outside the mesh: name it fully (Envoy always adds
            # Hash); inside the mesh the URI SAN alone is the identity.
            details.subject.value = True
            details.dns = True
    else:
        manager.forward_client_cert_details = _HCM.SANITIZE
    manager.access_log.append(access_log.access_log(direction, http=True, log_filter=log_filter))
    manager.http_filters.extend(http_filters)
    if local_reply is not None:
        manager.local_reply_config.CopyFrom(local_reply)
    manager.http_filters.add(name=ROUTER_FILTER, typed_config=core.pack(router_pb2.Router()))
    return manager


def hcm_filter(manager: hcm_pb2.HttpConnectionManager) -> listener_components_pb2.Filter:
    return listener_components_pb2.Filter(name=HCM_FILTER, typed_config=core.pack(manager))


def tcp_proxy_filter(
    cluster: str,
    direction: access_log.Direction,
    weighted: Sequence[tuple[str, int]] = (),
) -> listener_components_pb2.Filter:
    """tcp_proxy to `cluster`, or split over `weighted` (cluster, weight) when given."""
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=cluster)
    if len(weighted) > 1:
        for name, weight in weighted:
            proxy.weighted_clusters.clusters.add(name=name, weight=weight)
    else:
        proxy.cluster = cluster
    proxy.access_log.append(access_log.access_log(direction, http=False))
    return listener_components_pb2.Filter(name=TCP_PROXY_FILTER, typed_config=core.pack(proxy))


def _inbound_chain(
    port: ir.InboundPort,
    trust_domain: str,
    *,
    mtls: bool,
    matched: bool,
    jwt_rules: Sequence[JwtRule] = (),
) -> listener_components_pb2.FilterChain:
    http = ir.is_http(port.protocol)
    chain = listener_components_pb2.FilterChain(
        name=f"inbound|{port.port}|{'mtls' if mtls else 'plaintext'}"
    )
    if matched:
        chain.filter_chain_match.transport_protocol = "tls" if mtls else "raw_buffer"
    if mtls:
        chain.transport_socket.CopyFrom(
            tls.tls_socket(tls.downstream_context(trust_domain, http=http))
        )
    if http:
        manager = http_connection_manager(
            stat_prefix=f"inbound_{port.port}",
            routes=route.inbound_route(port),
            peer_certificate=mtls,
            direction="inbound",
            # Every denial, failure, probe, audit and dry-run denial; successes sampled.
            log_filter=access_log.inbound_filter(
                [rbac.dry_run_stat_prefix(p) for p in port.authz.policies if p.dry_run]
            ),
            # jwt_authn first: RBAC's requestPrincipals read the payload it verified.
            http_filters=[*jwt_authn.http_filters(jwt_rules), *rbac.http_filters(port.authz)],
            local_reply=jwt_authn.local_reply(jwt_rules) if jwt_rules else None,
        )
        chain.filters.append(hcm_filter(manager))
    else:
        # Network RBAC decides on the connection's first bytes, before tcp_proxy forwards them.
        chain.filters.extend(rbac.network_filters(port.authz, stat_prefix=f"inbound_{port.port}"))
        chain.filters.append(tcp_proxy_filter(port.cluster_name, "inbound"))
    return chain


def _inbound_chains(
    port: ir.InboundPort, trust_domain: str, jwt_rules: Sequence[JwtRule]
) -> list[listener_components_pb2.FilterChain]:
    """The chains of one inbound port, by its effective mTLS mode (`_CHAINS`)."""
    chains = _CHAINS[port.mtls]
    matched = len(chains) > 1
    return [
        _inbound_chain(port, trust_domain, mtls=mtls, matched=matched, jwt_rules=jwt_rules)
        for mtls in chains
    ]


def _tls_inspector() -> listener_components_pb2.ListenerFilter:
    return listener_components_pb2.ListenerFilter(
        name=TLS_INSPECTOR, typed_config=core.pack(tls_inspector_pb2.TlsInspector())
    )


def _original_dst() -> listener_components_pb2.ListenerFilter:
    return listener_components_pb2.ListenerFilter(
        name=ORIGINAL_DST, typed_config=core.pack(original_dst_pb2.OriginalDst())
    )


def inbound_listener(
    port: ir.InboundPort, pod: ir.Pod, trust_domain: str, jwt_rules: Sequence[JwtRule] = ()
) -> listener_pb2.Listener:
    """`inbound|<port>` on `pod_ip:<port>`, forwarding to cluster `inbound|<port>||`;
    `jwt_rules` (the pod's RequestAuthentication rules) apply on HTTP ports."""
    listener = listener_pb2.Listener(
        name=f"inbound|{port.port}",
        address=core.socket_address(pod.address.pod_ip, port.port),
        traffic_direction=base_pb2.INBOUND,
    )
    if len(_CHAINS[port.mtls]) > 1:
        listener.listener_filters.append(_tls_inspector())
    listener.filter_chains.extend(_inbound_chains(port, trust_domain, jwt_rules))
    return listener


def virtual_inbound_listener(proxy: ir.ProxyModel) -> listener_pb2.Listener:
    """`virtualInbound` on 0.0.0.0:15006 (netns mode): every inbound port's chains, each
    matching the port the client dialled (restored by original_dst)."""
    listener = listener_pb2.Listener(
        name=VIRTUAL_INBOUND,
        address=core.socket_address("0.0.0.0", ir.VIRTUAL_INBOUND_PORT),
        traffic_direction=base_pb2.INBOUND,
    )
    listener.listener_filters.append(_original_dst())
    if any(len(_CHAINS[port.mtls]) > 1 for port in proxy.inbound):
        listener.listener_filters.append(_tls_inspector())
    for port in proxy.inbound:
        for chain in _inbound_chains(port, proxy.trust_domain, proxy.jwt_rules):
            chain.filter_chain_match.destination_port.value = port.port
            listener.filter_chains.append(chain)
    if not proxy.inbound:
        # A pod that serves nothing (a client only): Envoy rejects a listener with no chains,
        # and an unmatched connection is closed anyway — say so with the black hole.
        listener.default_filter_chain.name = BLACKHOLE_CLUSTER
        listener.default_filter_chain.filters.append(tcp_proxy_filter(BLACKHOLE_CLUSTER, "inbound"))
    return listener


def sni_routed(service: ir.OutboundService) -> bool:
    """A ServiceEntry TLS/HTTPS port without an address to capture (a wildcard host, which
    gets no VIP): captured traffic reaches it by destination port and SNI."""
    return service.external is not None and service.external.tls_port and not service.vip


def _sni_chain(service: ir.OutboundService) -> listener_components_pb2.FilterChain:
    """Any destination address on the entry's port whose ClientHello names the host (Envoy
    matches a `*.suffix` server name by suffix): the app's TLS, untouched, to the entry's
    cluster (ORIGINAL_DST for resolution NONE: the address the app dialled)."""
    chain = listener_components_pb2.FilterChain(name=service.cluster_name)
    match = chain.filter_chain_match
    match.destination_port.value = service.port
    match.transport_protocol = "tls"
    match.server_names.append(service.name)
    chain.filters.append(tcp_proxy_filter(service.cluster_name, "outbound"))
    return chain


def _sni_inspector(ports: Sequence[int]) -> listener_components_pb2.ListenerFilter:
    """tls_inspector on the SNI-routed ports only: elsewhere it would hold a connection
    whose server speaks first (MySQL, SMTP) until the listener filter timeout."""
    inspector = _tls_inspector()
    sni_port = inspector.filter_disabled.not_match
    ranges = [sni_port] if len(ports) == 1 else [sni_port.or_match.rules.add() for _ in ports]
    for predicate, port in zip(ranges, ports, strict=True):
        predicate.destination_port_range.start = port
        predicate.destination_port_range.end = port + 1  # [start, end)
    return inspector


def virtual_outbound_listener(
    proxy: ir.ProxyModel, outbound: Sequence[ir.OutboundService]
) -> listener_pb2.Listener:
    """`virtualOutbound` on 0.0.0.0:15001 (netns mode): one chain per service VIP:port, one
    per SNI-routed entry port (`sni_routed`), and a default chain for every other destination
    by the outbound traffic policy."""
    listener = listener_pb2.Listener(
        name=VIRTUAL_OUTBOUND,
        address=core.socket_address("0.0.0.0", ir.VIRTUAL_OUTBOUND_PORT),
        traffic_direction=base_pb2.OUTBOUND,
    )
    listener.listener_filters.append(_original_dst())
    sni_ports = sorted({s.port for s in outbound if sni_routed(s)})
    if sni_ports:
        listener.listener_filters.append(_sni_inspector(sni_ports))
    for service in outbound:
        if sni_routed(service):
            listener.filter_chains.append(_sni_chain(service))
            continue
        if not service.vip:
            continue
        chain = listener.filter_chains.add(name=service.cluster_name)
        match = chain.filter_chain_match
        # A ServiceEntry's address may be a CIDR block: the whole range is the service.
        address, _, length = service.vip.partition("/")
        match.prefix_ranges.add(address_prefix=address).prefix_len.value = int(length or 32)
        match.destination_port.value = service.port
        if ir.is_http(service.protocol):
            manager = http_connection_manager(
                stat_prefix=service.cluster_name,
                routes=route.service_route(service),
                peer_certificate=False,
                direction="outbound",
                # An external host has no server sidecar to keep the record: log every call.
                log_filter=None if service.external else access_log.failures_only(),
                http_filters=jwt_authn.outbound_filter([service]),
            )
            chain.filters.append(hcm_filter(manager))
        else:
            chain.filters.append(outbound_tcp_proxy(service))
    unknown = PASSTHROUGH_CLUSTER if proxy.outbound_policy == "ALLOW_ANY" else BLACKHOLE_CLUSTER
    listener.default_filter_chain.name = unknown
    listener.default_filter_chain.filters.append(tcp_proxy_filter(unknown, "outbound"))
    return listener


def outbound_http_listener(proxy: ir.ProxyModel) -> listener_pb2.Listener:
    """`outbound_http` on `pod_ip:<outbound_http_port>`: apps use it as their HTTP proxy.

    Absolute-form request URIs (`GET http://svc:8000/ HTTP/1.1`) are accepted by default
    (http_protocol_options.allow_absolute_url) and routed by their host like any Host header.
    """
    listener = listener_pb2.Listener(
        name=OUTBOUND_HTTP_LISTENER,
        address=core.socket_address(proxy.pod.address.pod_ip, proxy.outbound_http_port),
        traffic_direction=base_pb2.OUTBOUND,
    )
    manager = http_connection_manager(
        stat_prefix=OUTBOUND_HTTP_LISTENER,
        routes=route.OUTBOUND_HTTP_ROUTE,
        peer_certificate=False,
        direction="outbound",
        # A successful call is in the server sidecar's log; logging it twice cost ~6 µs.
        log_filter=access_log.failures_only(),
        # Claim-routed services: the caller verifies tokens to route on (never rejects).
        http_filters=jwt_authn.outbound_filter(proxy.outbound),
    )
    listener.filter_chains.add(name=OUTBOUND_HTTP_LISTENER).filters.append(hcm_filter(manager))
    return listener


def outbound_tcp_listener(
    service: ir.OutboundService, bind: tuple[str, int]
) -> listener_pb2.Listener:
    """`outbound|<bind port>|tcp|<fqdn>` on `bind`: a local port tunnelled to the service."""
    ip, port = bind
    name = f"outbound|{port}|tcp|{service.fqdn}"
    listener = listener_pb2.Listener(
        name=name,
        address=core.socket_address(ip, port),
        traffic_direction=base_pb2.OUTBOUND,
    )
    listener.filter_chains.add(name=name).filters.append(outbound_tcp_proxy(service))
    return listener


def outbound_tcp_proxy(service: ir.OutboundService) -> listener_components_pb2.Filter:
    """tcp_proxy to a TCP service port's cluster, or to its VirtualService's destinations."""
    destinations = service.stream_destinations
    return tcp_proxy_filter(destinations[0][0], "outbound", destinations)
