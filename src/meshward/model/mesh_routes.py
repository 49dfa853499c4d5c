"""VirtualService routing at sidecars: `mesh`-bound VirtualServices as outbound routes.

Called by `meshward.model.mesh.build` after the gateways. Follows Istio (VirtualService
reference; pilot/pkg/networking/core/httproute.go for sidecars):

  * a VirtualService applies to sidecars when its `gateways` is empty (Istio's default) or
    names `mesh`; each host is a mesh Service (`name` in the VirtualService's namespace,
    `name.ns`, FQDN) or a ServiceEntry host the VirtualService's namespace sees (anything
    else, e.g. a wildcard, is not applied at sidecars: MW0267);
  * on the host's HTTP ports its http routes whose `match.gateways` is empty or names `mesh`,
    and whose `match.port` is absent or the port, replace the default single route;
  * on its TCP ports the first `tls` route with an sniHost naming the host (Istio's egress
    "TLS passthrough": the app's TLS is forwarded, e.g. to an egress gateway, by its SNI),
    else the first `tcp` route, replaces the port's own cluster in the tcp_proxy; tls/tcp
    routes that route no port are reported (MW0267);
  * one VirtualService per host at sidecars: the oldest wins, a later one for the same host
    is left out (MW0268) — Istio merges VirtualServices only at gateways;
  * destinations resolve as at the gateway (`gateway.resolve`, MW0262): the existing
    per-service outbound cluster, so auto-mTLS and DestinationRules apply unchanged; no
    route matching gives 404 (Istio adds no default route);
  * `@request.auth.claims.*` matches (Istio supports them at gateways only): the caller's
    sidecar verifies the token with the rules of the RequestAuthentications selecting the
    destination's workloads (merged as for their inbound side) before routing; with no such
    rule a claim can never be verified, so a match testing one is never taken (MW0269).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from meshward.config import networking
from meshward.config.networking import VirtualService
from meshward.diagnostics import Diagnostic
from meshward.model import gateway, ir, service_entries
from meshward.model.request_authn import JwtRule

MESH = "mesh"

_Routed = tuple[tuple[ir.GatewayRoute, ...], tuple[JwtRule, ...]]


def build(
    proxies: Sequence[ir.ProxyModel],
    services: Sequence[ir.Service],
    virtual_services: Sequence[VirtualService],
    registry: service_entries.Registry | None = None,
) -> tuple[tuple[ir.ProxyModel, ...], tuple[Diagnostic, ...]]:
    """`proxies` with VirtualService routes on their outbound service ports, and the
    findings (MW0262, MW0267-MW0269)."""
    context = gateway.RouteContext(
        gateways=(),
        services={(s.namespace, s.name): s for s in services},
        virtual_services=sorted(virtual_services, key=lambda v: v.meta.order),
        policies=None,
        registry=registry,
    )
    rules_of = {p.pod.key: p.jwt_rules for p in proxies}
    routed: dict[_Key, _Routed] = {}
    streams: dict[_Key, tuple[tuple[str, int], ...]] = {}
    owner: dict[tuple[str, str], str] = {}
    for vs in context.virtual_services:
        if vs.gateways and MESH not in vs.gateways:
            continue
        context.viewer = vs.meta.namespace
        streamed = False
        for h, host in enumerate(vs.hosts):
            target = _target(host, vs.meta.namespace, context)
            if target is None:
                context.report(
                    "MW0267",
                    vs.meta,
                    f"spec.hosts[{h}]",
                    f"{host} is neither a mesh service nor a ServiceEntry host; "
                    "not applied at sidecars",
                )
                continue
            key_of, fqdn, ports, service = target
            first = owner.setdefault(key_of, vs.meta.ref)
            if first != vs.meta.ref:
                context.report(
                    "MW0268",
                    vs.meta,
                    f"spec.hosts[{h}]",
                    f"{fqdn} is already routed at sidecars by {first}; left out",
                )
                continue
            rules = _destination_rules(service, rules_of) if service is not None else ()
            for port, proto in ports:
                key = (*key_of, port)
                if ir.is_http(proto):
                    if not vs.http:
                        continue
                    routes = _routes(vs, fqdn, port, rules, context)
                    claims = (
                        rules
                        if any(networking.matches_claims(m) for r in routes for m in r.matches)
                        else ()
                    )
                    routed[key] = (routes, claims)
                else:
                    clusters = _stream_route(vs, fqdn, port, context)
                    if clusters:
                        streams[key] = clusters
                        streamed = True
        if (vs.tls or vs.tcp) and not streamed:
            context.report(
                "MW0267",
                vs.meta,
                "spec.tls" if vs.tls else "spec.tcp",
                "its tls/tcp routes route no TCP port of its hosts at sidecars (a tls match "
                "needs an sniHost naming the host)",
            )
    if not routed and not streams:
        return tuple(proxies), tuple(context.findings)
    replaced: dict[int, ir.OutboundService] = {}

    def with_routes(service: ir.OutboundService) -> ir.OutboundService:
        key = (*_key_of(service), service.port)
        found = routed.get(key) if ir.is_http(service.protocol) else None
        stream = streams.get(key) if not ir.is_http(service.protocol) else None
        if found is None and stream is None:
            return service
        made = replaced.get(id(service))
        if made is None:  # callers that share an OutboundService share its routed form
            made = replaced[id(service)] = (
                dataclasses.replace(service, vs_routes=found[0], route_jwt_rules=found[1])
                if found is not None
                else dataclasses.replace(service, tcp_routes=stream)
            )
        return made

    shared: dict[int, tuple[ir.OutboundService, ...]] = {}
    result = []
    for proxy in proxies:
        if proxy.gateway is not None:  # a gateway pod is not in `mesh` (Istio)
            result.append(proxy)
            continue
        outbound = shared.get(id(proxy.outbound))
        if outbound is None:
            outbound = shared[id(proxy.outbound)] = tuple(with_routes(s) for s in proxy.outbound)
        result.append(dataclasses.replace(proxy, outbound=outbound))
    return tuple(result), tuple(context.findings)


_Key = tuple[str, str, int]
_EXTERNAL = ""  # the namespace part of an external host's key: a host is one name mesh-wide


def _key_of(service: ir.OutboundService) -> tuple[str, str]:
    return (_EXTERNAL if service.external is not None else service.namespace, service.name)


def _target(
    host: str, namespace: str, context: gateway.RouteContext
) -> tuple[tuple[str, str], str, tuple[tuple[int, ir.Protocol], ...], ir.Service | None] | None:
    """What a VirtualService host names at sidecars: (key, fqdn, its (port, protocol)s, the
    mesh Service or None for a ServiceEntry host); None when it names neither."""
    service = gateway.service_of(host, namespace, context)
    if service is not None:
        ports = tuple((p.port, p.protocol) for p in service.ports)
        return (service.namespace, service.name), service.fqdn, ports, service
    if context.registry is None:
        return None
    found = {s.port: s.protocol for s in context.registry.outbound(namespace) if s.name == host}
    if not found:
        return None
    return (_EXTERNAL, host), host, tuple(sorted(found.items())), None


def _stream_route(
    vs: VirtualService, fqdn: str, port: int, context: gateway.RouteContext
) -> tuple[tuple[str, int], ...]:
    """The destinations of a TCP/TLS port: the first `tls` route with an SNI host that
    names `fqdn` (the app's own TLS goes where its SNI says — Istio's egress TLS
    passthrough), else the first `tcp` route, each match bound to `mesh` and the port."""
    for i, tls in enumerate(vs.tls):
        if any(
            (not m.gateways or MESH in m.gateways)
            and m.port in (None, port)
            and any(gateway.host_matches(sni, fqdn) for sni in m.sni_hosts)
            for m in tls.matches
        ):
            return gateway.resolve(vs, tls.route, f"spec.tls[{i}]", context)
    for i, tcp in enumerate(vs.tcp):
        if not tcp.matches or any(
            (not m.gateways or MESH in m.gateways) and m.port in (None, port) for m in tcp.matches
        ):
            return gateway.resolve(vs, tcp.route, f"spec.tcp[{i}]", context)
    return ()


def _destination_rules(
    service: ir.Service, rules_of: dict[ir.PodKey, tuple[JwtRule, ...]]
) -> tuple[JwtRule, ...]:
    """The merged RequestAuthentication rules of the service's workloads, each once."""
    found = dict.fromkeys(rule for key in service.pods for rule in rules_of.get(key, ()))
    return tuple(found)


def _routes(
    vs: VirtualService,
    fqdn: str,
    port: int,
    rules: tuple[JwtRule, ...],
    context: gateway.RouteContext,
) -> tuple[ir.GatewayRoute, ...]:
    routes = []
    for i, http in enumerate(vs.http):
        path = f"spec.http[{i}]"
        matches = tuple(
            m
            for m in http.matches
            if (not m.gateways or MESH in m.gateways) and m.port in (None, port)
        )
        if http.matches and not matches:
            continue  # every match names a gateway or another port
        if not rules and any(networking.matches_claims(m) for m in matches):
            context.report(
                "MW0269",
                vs.meta,
                path,
                f"matches JWT claims, but no RequestAuthentication selects the workloads of "
                f"{fqdn}: a claim match is never taken at sidecars",
            )
            matches = tuple(m for m in matches if not networking.matches_claims(m))
            if not matches:
                continue
        clusters = gateway.resolve(vs, http.route, path, context)
        if http.route and not clusters:
            continue
        routes.append(ir.GatewayRoute(f"{vs.meta.ref} http[{i}]", http, matches, clusters))
    return tuple(routes)
