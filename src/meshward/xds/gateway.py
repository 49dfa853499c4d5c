"""Gateway listeners (ingress and egress) and their routes: GatewayModel → Envoy listeners.

Called by translate.py for a proxy with a GatewayModel. One listener per port on the pod
address (`0.0.0.0_<port>` in Istio; here `gateway|<port>`), with the chains model/gateway.py
decided:

  * HTTP: one plaintext chain, HCM with the virtual hosts of every HTTP server on the port;
  * TERMINATE: `filter_chain_match.server_names` = the server's hosts (SNI), TLS from the
    credential (SDS) or files, then the HCM — built by `listener.http_connection_manager`, the
    sidecar's own, with the port's RBAC filters (xds/rbac.py), so AuthorizationPolicy works
    at the gateway exactly as at a sidecar;
  * TERMINATE_TCP (a TLS server that terminates): TLS as TERMINATE, then network RBAC and
    tcp_proxy — how an egress gateway takes a sidecar's mTLS off an app's own TLS;
  * PASSTHROUGH: SNI chain → tcp_proxy; the client's TLS reaches the service untouched;
  * TCP: tcp_proxy, with network RBAC.
A tls_inspector reads the SNI whenever a chain matches on it. Two chains of one port that
match the same SNI set would make Envoy reject the whole listener; the later is dropped
(MW0320). Routes are inline in each HCM (Envoy HCM `route_config`).
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2

from meshward.config import gateway as gateway_config
from meshward.diagnostics import Diagnostic, Level, Location
from meshward.model import ir
from meshward.xds import access_log, core, jwt_authn, listener, rbac, route, tls

_VERSIONS = {
    "TLS_AUTO": common_pb2.TlsParameters.TLS_AUTO,
    "TLSV1_0": common_pb2.TlsParameters.TLSv1_0,
    "TLSV1_1": common_pb2.TlsParameters.TLSv1_1,
    "TLSV1_2": common_pb2.TlsParameters.TLSv1_2,
    "TLSV1_3": common_pb2.TlsParameters.TLSv1_3,
}
# Istio's gateway defaults: TLS 1.2 minimum, ECDHE + AEAD suites only — the same list users
# may choose from (one list, in config/gateway.py).
DEFAULT_CIPHER_SUITES = gateway_config.SAFE_CIPHER_SUITES
_SAN_TYPES = (
    ("spiffe://", common_pb2.SubjectAltNameMatcher.URI),
    ("", common_pb2.SubjectAltNameMatcher.DNS),
)


def gateway_listeners(
    proxy: ir.ProxyModel,
) -> tuple[list[listener_pb2.Listener], list[Diagnostic]]:
    """The listeners of a gateway proxy, and the chains dropped on the way (MW0320)."""
    assert proxy.gateway is not None
    edge = listener.Edge(proxy.gateway.num_trusted_proxies)
    listeners, diagnostics = [], []
    for port in proxy.gateway.listeners:
        made = listener_pb2.Listener(
            name=f"gateway|{port.port}",
            address=core.socket_address(proxy.pod.address.pod_ip, port.port),
            traffic_direction=base_pb2.INBOUND,
        )
        seen: dict[tuple[str, ...], str] = {}
        for chain in port.chains:
            key = ("plaintext" if chain.kind in ("HTTP", "TCP") else "tls", *chain.server_names)
            if key in seen:
                diagnostics.append(_conflict(proxy, port.port, chain.name, seen[key]))
                continue
            seen[key] = chain.name
            made.filter_chains.append(_chain(chain, port, proxy, edge))
        if any(c.server_names or c.kind not in ("HTTP", "TCP") for c in port.chains):
            made.listener_filters.add(
                name=listener.TLS_INSPECTOR,
                typed_config=core.pack(tls_inspector_pb2.TlsInspector()),
            )
        listeners.append(made)
    return listeners, diagnostics


def _conflict(proxy: ir.ProxyModel, port: int, name: str, first: str) -> Diagnostic:
    return Diagnostic(
        code="MW0320",
        level=Level.ERROR,
        resource=f"Workload {proxy.pod.key.namespace}/{proxy.pod.key.workload}",
        location=Location(field=f"port {port}"),
        message=f"chain {name} matches the same SNI as {first}; dropped",
    )


def _chain(
    chain: ir.GatewayChain, port: ir.GatewayListener, proxy: ir.ProxyModel, edge: listener.Edge
) -> listener_components_pb2.FilterChain:
    made = listener_components_pb2.FilterChain(name=chain.name)
    if chain.server_names:
        made.filter_chain_match.server_names.extend(chain.server_names)
    if chain.kind in ("TERMINATE", "TERMINATE_TCP", "PASSTHROUGH"):
        made.filter_chain_match.transport_protocol = "tls"
    stat = f"gateway_{port.port}"
    if chain.kind in ("HTTP", "TERMINATE"):
        mutual = chain.tls is not None and chain.tls.mode != "SIMPLE"
        if chain.tls is not None:
            made.transport_socket.CopyFrom(
                tls.tls_socket(downstream_context(chain.tls, proxy.trust_domain))
            )
        manager = listener.http_connection_manager(
            stat_prefix=stat,
            routes=route_config(chain),
            peer_certificate=mutual,
            direction="inbound",
            log_filter=access_log.inbound_filter(
                [rbac.dry_run_stat_prefix(p) for p in port.authz.policies if p.dry_run]
            ),
            # A RequestAuthentication selecting the gateway validates tokens at the edge.
            http_filters=[
                *jwt_authn.http_filters(proxy.jwt_rules, clear_route_cache=_claims_routed(chain)),
                *rbac.http_filters(port.authz),
            ],
            edge=edge,
            local_reply=jwt_authn.local_reply(proxy.jwt_rules) if proxy.jwt_rules else None,
        )
        made.filters.append(listener.hcm_filter(manager))
    else:
        if chain.tls is not None:  # TERMINATE_TCP: TLS ends here, the bytes inside go on
            made.transport_socket.CopyFrom(
                tls.tls_socket(downstream_context(chain.tls, proxy.trust_domain, http=False))
            )
        made.filters.extend(rbac.network_filters(port.authz, stat_prefix=stat))
        made.filters.append(
            listener.tcp_proxy_filter(chain.clusters[0][0], "inbound", chain.clusters)
        )
    return made


def _claims_routed(chain: ir.GatewayChain) -> bool:
    """Does a route of the chain match on JWT claims (`@request.auth.claims.*` headers)?"""
    return any(route.claims_routed(host.routes) for host in chain.virtual_hosts)


def downstream_context(
    server: ir.ServerTls, trust_domain: str, *, http: bool = True
) -> tls_pb2.DownstreamTlsContext:
    """The server side of one gateway TLS server (Istio ServerTLSSettings semantics); HTTP
    ALPN only where an HTTP connection manager follows (`http`)."""
    if server.mode == "ISTIO_MUTUAL":
        context = tls.downstream_context(trust_domain, http=http)
    else:
        context = tls_pb2.DownstreamTlsContext()
        common = context.common_tls_context
        if http:
            common.alpn_protocols.extend(tls.HTTP_ALPN)
        cert, key, ca, crl = server.files
        if server.certificate:
            common.tls_certificate_sds_secret_configs.append(tls.sds_secret(server.certificate))
        else:
            certificate = common.tls_certificates.add()
            certificate.certificate_chain.filename = cert
            certificate.private_key.filename = key
        if server.mode in ("MUTUAL", "OPTIONAL_MUTUAL"):
            combined = common.combined_validation_context
            default = combined.default_validation_context
            default.match_typed_subject_alt_names.extend(_san(n) for n in server.subject_alt_names)
            if server.validation:
                combined.validation_context_sds_secret_config.CopyFrom(
                    tls.sds_secret(server.validation)
                )
            else:
                default.trusted_ca.filename = ca
                if crl:
                    default.crl.filename = crl
            # OPTIONAL_MUTUAL: a certificate, when sent, must verify; none is also accepted.
            context.require_client_certificate.value = server.mode == "MUTUAL"
    params = context.common_tls_context.tls_params
    params.tls_minimum_protocol_version = (
        common_pb2.TlsParameters.TLSv1_2
        if server.min_version == "TLS_AUTO"
        else _VERSIONS[server.min_version]
    )
    params.tls_maximum_protocol_version = _VERSIONS[server.max_version]
    del params.cipher_suites[:]
    params.cipher_suites.extend(server.cipher_suites or DEFAULT_CIPHER_SUITES)
    return context


def _san(name: str) -> common_pb2.SubjectAltNameMatcher:
    san_type = next(t for prefix, t in _SAN_TYPES if name.startswith(prefix))
    matcher = common_pb2.SubjectAltNameMatcher(san_type=san_type)
    matcher.matcher.exact = name
    return matcher


def route_config(chain: ir.GatewayChain) -> route_pb2.RouteConfiguration:
    """The chain's inline routes: one virtual host per domain (and `domain:*` for any port),
    routes in order; a host no virtual host names gets Envoy's 404."""
    config = route_pb2.RouteConfiguration(name=chain.name)
    for host in chain.virtual_hosts:
        domains = [
            d for name in host.domains for d in ((name,) if name == "*" else (name, f"{name}:*"))
        ]
        made = config.virtual_hosts.add(name=host.name, domains=domains)
        if host.require_tls:
            made.require_tls = route_components_pb2.VirtualHost.ALL
        for vs_route in host.routes:
            made.routes.extend(route.vs_routes(vs_route))
        if host.require_tls and not host.routes:
            made.routes.add().match.prefix = "/"  # redirected before routing anyway
            made.routes[-1].direct_response.status = 404
    return config
