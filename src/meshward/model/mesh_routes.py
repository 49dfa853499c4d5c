"""VirtualService routing at sidecars: `mesh`-bound VirtualServices as outbound routes.

Called by `meshward.model.mesh.build` after the gateways. Follows Istio (VirtualService
reference; pilot/pkg/networking/core/httproute.go for sidecars):

  * a VirtualService applies to sidecars when its `gateways` is empty (Istio's default) or
    names `mesh`; its http routes whose `match.gateways` is empty or names `mesh`, and whose
    `match.port` is absent or the service port, replace the default single route of every
    HTTP port of each host that is a mesh Service (`name` in the VirtualService's namespace,
    `name.ns`, FQDN); a host that is not (a wildcard, an outside name) or tls/tcp routes are
    not applied at sidecars (MW0267);
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
from meshward.model import gateway, ir
from meshward.model.request_authn import JwtRule

MESH = "mesh"

_Routed = tuple[tuple[ir.GatewayRoute, ...], tuple[JwtRule, ...]]


def build(
    proxies: Sequence[ir.ProxyModel],
    services: Sequence[ir.Service],
    virtual_services: Sequence[VirtualService],
) -> tuple[tuple[ir.ProxyModel, ...], tuple[Diagnostic, ...]]:
    """`proxies` with VirtualService routes on their outbound service ports, and the
    findings (MW0262, MW0267-MW0269)."""
    context = gateway.RouteContext(
        gateways=(),
        services={(s.namespace, s.name): s for s in services},
        virtual_services=sorted(virtual_services, key=lambda v: v.meta.order),
        policies=None,
    )
    rules_of = {p.pod.key: p.jwt_rules for p in proxies}
    routed: dict[tuple[str, str, int], _Routed] = {}
    owner: dict[tuple[str, str], str] = {}
    for vs in context.virtual_services:
        if vs.gateways and MESH not in vs.gateways:
            continue
        for key, kind_routes in (("tls", vs.tls), ("tcp", vs.tcp)):
            if kind_routes:
                context.report(
                    "MW0267", vs.meta, f"spec.{key}", f"{key} routes are not applied at sidecars"
                )
        if not vs.http:
            continue
        for h, host in enumerate(vs.hosts):
            service = gateway.service_of(host, vs.meta.namespace, context)
            ports = [p.port for p in service.ports if ir.is_http(p.protocol)] if service else []
            if service is None or not ports:
                context.report(
                    "MW0267",
                    vs.meta,
                    f"spec.hosts[{h}]",
                    f"{host} is not an HTTP service of the mesh; not applied at sidecars",
                )
                continue
            first = owner.setdefault((service.namespace, service.name), vs.meta.ref)
            if first != vs.meta.ref:
                context.report(
                    "MW0268",
                    vs.meta,
                    f"spec.hosts[{h}]",
                    f"{service.fqdn} is already routed at sidecars by {first}; left out",
                )
                continue
            rules = _destination_rules(service, rules_of)
            for port in ports:
                routes = _routes(vs, service, port, rules, context)
                claims = (
                    rules
                    if any(networking.matches_claims(m) for r in routes for m in r.matches)
                    else ()
                )
                routed[(service.namespace, service.name, port)] = (routes, claims)
    if not routed:
        return tuple(proxies), tuple(context.findings)
    replaced: dict[int, ir.OutboundService] = {}

    def with_routes(service: ir.OutboundService) -> ir.OutboundService:
        found = routed.get((service.namespace, service.name, service.port))
        if found is None or not ir.is_http(service.protocol):
            return service
        made = replaced.get(id(service))
        if made is None:  # callers that share an OutboundService share its routed form
            made = replaced[id(service)] = dataclasses.replace(
                service, vs_routes=found[0], route_jwt_rules=found[1]
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


def _destination_rules(
    service: ir.Service, rules_of: dict[ir.PodKey, tuple[JwtRule, ...]]
) -> tuple[JwtRule, ...]:
    """The merged RequestAuthentication rules of the service's workloads, each once."""
    found = dict.fromkeys(rule for key in service.pods for rule in rules_of.get(key, ()))
    return tuple(found)


def _routes(
    vs: VirtualService,
    service: ir.Service,
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
                f"{service.fqdn}: a claim match is never taken at sidecars",
            )
            matches = tuple(m for m in matches if not networking.matches_claims(m))
            if not matches:
                continue
        clusters = gateway.resolve(vs, http.route, path, context)
        if http.route and not clusters:
            continue
        routes.append(ir.GatewayRoute(f"{vs.meta.ref} http[{i}]", http, matches, clusters))
    return tuple(routes)
