"""HTTP routing: the `outbound_http` RouteConfiguration, the inline inbound route, and
VirtualService http routes as Envoy routes (sidecars and gateways).

Called by translate.py (outbound, served over RDS), listener.py (inbound, inline in the
inbound HTTP connection manager; netns per-VIP outbound routes) and gateway.py (a gateway's
virtual hosts). One virtual host per HTTP mesh service port, named `<fqdn>:<port>`, matching
the Host values the model decided. A Host no virtual host matches: under REGISTRY_ONLY the
catch-all virtual host `block_all` answers 502 itself (Istio's BlackHole route: a direct
response, nothing is dialled); under ALLOW_ANY it gets Envoy's own 404 — loopback mode's
proxy has no original destination to pass an unknown name through to (docs/egress.md).

A service port that a `mesh`-bound VirtualService routes (`OutboundService.vs_routes`) gets
that VirtualService's routes instead of the single route to its cluster; a request no route
matches gets 404, as in Istio (no default route is added). `vs_routes` is the one
translation of a VirtualService http route, shared with the gateway.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from google.protobuf import duration_pb2

from meshward.config import networking
from meshward.diagnostics import Diagnostic, Level, Location
from meshward.model import ir
from meshward.xds import jwt_authn

OUTBOUND_HTTP_ROUTE = "outbound_http"
# Istio's names (pilot networking util): the REGISTRY_ONLY catch-all virtual host and route.
BLOCK_ALL = "block_all"
BLOCKED_STATUS = 502
_DUPLICATE_DOMAIN = "MW0301"


def _virtual_host(
    name: str, domains: Iterable[str], cluster: str
) -> route_components_pb2.VirtualHost:
    host = route_components_pb2.VirtualHost(name=name, domains=list(domains))
    route = host.routes.add()
    route.match.prefix = "/"
    route.route.cluster = cluster
    return host


def _service_host(
    service: ir.OutboundService, domains: Iterable[str]
) -> route_components_pb2.VirtualHost:
    """The virtual host of one outbound service port: its VirtualService routes, or the
    single route to its cluster."""
    name = f"{service.fqdn}:{service.port}"
    if service.vs_routes is None:
        return _virtual_host(name, domains, service.cluster_name)
    host = route_components_pb2.VirtualHost(name=name, domains=list(domains))
    for vs_route in service.vs_routes:
        host.routes.extend(vs_routes(vs_route))
    if service.route_jwt_rules:
        # The caller's jwt_authn verifies with the destination's providers for this host
        # only (xds/jwt_authn.py outbound_filter). A request that matches no route before
        # its token is verified must still reach a route for the per-route config to
        # apply, so the host ends with the 404 Envoy would answer anyway.
        host.typed_per_filter_config[jwt_authn.JWT_FILTER].CopyFrom(
            jwt_authn.outbound_per_route(service)
        )
        last = host.routes.add(name="no route matched")
        last.match.prefix = "/"
        last.direct_response.status = 404
    return host


def claims_routed(routes: Iterable[ir.GatewayRoute]) -> bool:
    """Does one of `routes` match on JWT claims (`@request.auth.claims.*` headers)?"""
    return any(networking.matches_claims(m) for r in routes for m in r.matches)


def block_all_host() -> route_components_pb2.VirtualHost:
    """REGISTRY_ONLY's catch-all: every Host no service claims gets 502 from the sidecar
    (Istio: virtual host and route `block_all`, a direct response — the access log's `route`
    says `block_all`, `details` `direct_response`)."""
    host = route_components_pb2.VirtualHost(name=BLOCK_ALL, domains=["*"])
    blocked = host.routes.add(name=BLOCK_ALL)
    blocked.match.prefix = "/"
    blocked.direct_response.status = BLOCKED_STATUS
    return host


def outbound_http_routes(
    services: Iterable[ir.OutboundService], policy: ir.OutboundPolicy = "ALLOW_ANY"
) -> tuple[route_pb2.RouteConfiguration, tuple[Diagnostic, ...]]:
    """The `outbound_http` route config for the HTTP-family services, plus a diagnostic for
    every domain dropped because an earlier virtual host already claims it (Envoy rejects
    the whole RouteConfiguration when two virtual hosts share a domain). Under `policy`
    REGISTRY_ONLY, `block_all_host` catches every other Host."""
    config = route_pb2.RouteConfiguration(name=OUTBOUND_HTTP_ROUTE)
    diagnostics: list[Diagnostic] = []
    claimed: dict[str, str] = {}
    http = [s for s in services if ir.is_http(s.protocol)]
    for service in sorted(http, key=lambda s: (s.fqdn, s.port)):
        name = f"{service.fqdn}:{service.port}"
        domains: list[str] = []
        for domain in service.http_domains:
            # Envoy matches domains case-insensitively, so duplicates are case-insensitive too.
            key = domain.lower()
            if key in claimed:
                diagnostics.append(
                    Diagnostic(
                        code=_DUPLICATE_DOMAIN,
                        level=Level.WARNING,
                        resource=f"Service {service.namespace}/{service.name}",
                        location=Location(field=f"port {service.port}"),
                        message=f"Host {domain!r} already routes to {claimed[key]}; "
                        f"not routed to {name}",
                    )
                )
                continue
            claimed[key] = name
            domains.append(domain)
        if domains:  # Envoy requires at least one domain per virtual host
            config.virtual_hosts.append(_service_host(service, domains))
    if policy == "REGISTRY_ONLY":
        # Envoy matches exact domains before the `*` wildcard, whatever the order.
        config.virtual_hosts.append(block_all_host())
    return config, tuple(diagnostics)


def inbound_route(port: ir.InboundPort) -> route_pb2.RouteConfiguration:
    """Inline route of an inbound HTTP port: every request to the local app's cluster."""
    config = route_pb2.RouteConfiguration(name=f"inbound|{port.port}")
    config.virtual_hosts.append(
        _virtual_host(f"inbound|http|{port.port}", ["*"], port.cluster_name)
    )
    return config


def service_route(service: ir.OutboundService) -> route_pb2.RouteConfiguration:
    """Inline route of one captured service VIP:port (netns mode): the VIP and port already
    name the service, so every Host goes to its cluster (or its VirtualService routes)."""
    config = route_pb2.RouteConfiguration(name=service.cluster_name)
    config.virtual_hosts.append(_service_host(service, ["*"]))
    return config


def vs_routes(route: ir.GatewayRoute) -> list[route_components_pb2.Route]:
    """One VirtualService http route as Envoy routes, one per match (in order)."""
    matches = route.matches or (networking.HttpMatch(),)
    return [_route(route, match, i) for i, match in enumerate(matches)]


def _string_matcher(match: networking.StringMatch) -> string_pb2.StringMatcher:
    matcher = string_pb2.StringMatcher()
    if match.kind == "exact":
        matcher.exact = match.value
    elif match.kind == "prefix":
        matcher.prefix = match.value
    else:
        matcher.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=match.value))
    return matcher


def _header(
    name: str, match: networking.StringMatch, *, invert: bool = False
) -> route_components_pb2.HeaderMatcher:
    header = route_components_pb2.HeaderMatcher(name=name, invert_match=invert)
    header.string_match.CopyFrom(_string_matcher(match))
    return header


def _route(
    route: ir.GatewayRoute, match: networking.HttpMatch, index: int
) -> route_components_pb2.Route:
    spec = route.route
    made = route_components_pb2.Route(name=f"{route.source} match[{index}]")
    uri = match.uri
    if uri is None:
        made.match.prefix = "/"
    elif uri.kind == "exact":
        made.match.path = uri.value
    elif uri.kind == "prefix":
        made.match.prefix = uri.value
    else:
        made.match.safe_regex.regex = uri.value
    if match.ignore_uri_case:
        made.match.case_sensitive.value = False
    if match.method is not None:
        made.match.headers.append(_header(":method", match.method))
    if match.authority is not None:
        made.match.headers.append(_header(":authority", match.authority))
    for name, m in match.headers:
        if name.startswith(jwt_authn.CLAIM_HEADER_PREFIX):
            claim = name[len(jwt_authn.CLAIM_HEADER_PREFIX) :]
            made.match.dynamic_metadata.append(jwt_authn.claim_matcher(claim, _string_matcher(m)))
        else:
            made.match.headers.append(_header(name, m))
    for name, m in match.without_headers:
        if name.startswith(jwt_authn.CLAIM_HEADER_PREFIX):
            claim = name[len(jwt_authn.CLAIM_HEADER_PREFIX) :]
            made.match.dynamic_metadata.append(
                jwt_authn.claim_matcher(claim, _string_matcher(m), invert=True)
            )
        else:
            made.match.headers.append(_header(name, m, invert=True))
    if spec.redirect is not None:
        _redirect(made, spec.redirect)
    else:
        action = made.route
        if len(route.clusters) == 1:
            action.cluster = route.clusters[0][0]
        else:
            for cluster, weight in route.clusters:
                action.weighted_clusters.clusters.add(name=cluster).weight.value = weight
        if spec.rewrite_uri:
            action.prefix_rewrite = spec.rewrite_uri
        if spec.rewrite_authority:
            action.host_rewrite_literal = spec.rewrite_authority
        if spec.timeout_ms is not None:
            action.timeout.CopyFrom(_duration(spec.timeout_ms))
        if spec.retry_attempts is not None:
            policy = action.retry_policy
            policy.num_retries.value = spec.retry_attempts
            policy.retry_on = (
                spec.retry_on
                or "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
            )
            if spec.retry_per_try_timeout_ms is not None:
                policy.per_try_timeout.CopyFrom(_duration(spec.retry_per_try_timeout_ms))
    _headers(made, spec)
    return made


def _duration(millis: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=millis // 1000, nanos=(millis % 1000) * 1_000_000)


_REDIRECT_CODES = {
    301: route_components_pb2.RedirectAction.MOVED_PERMANENTLY,
    302: route_components_pb2.RedirectAction.FOUND,
    303: route_components_pb2.RedirectAction.SEE_OTHER,
    307: route_components_pb2.RedirectAction.TEMPORARY_REDIRECT,
    308: route_components_pb2.RedirectAction.PERMANENT_REDIRECT,
}


def _redirect(made: route_components_pb2.Route, redirect: networking.HttpRedirect) -> None:
    action = made.redirect
    if redirect.uri:
        action.path_redirect = redirect.uri
    if redirect.authority:
        action.host_redirect = redirect.authority
    if redirect.port is not None:
        action.port_redirect = redirect.port
    if redirect.scheme:
        action.scheme_redirect = redirect.scheme
    action.response_code = _REDIRECT_CODES[redirect.redirect_code]


def _headers(made: route_components_pb2.Route, spec: networking.HttpRoute) -> None:
    for operations, add, remove in (
        (spec.request_headers, made.request_headers_to_add, made.request_headers_to_remove),
        (spec.response_headers, made.response_headers_to_add, made.response_headers_to_remove),
    ):
        _operations(operations, add, remove)


def _operations(
    operations: networking.HeaderOperations,
    add: Sequence[base_pb2.HeaderValueOption],
    remove: Sequence[str],
) -> None:
    overwrite = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    append = base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD
    for pairs, action in ((operations.set, overwrite), (operations.add, append)):
        for name, value in pairs:
            option = add.add()  # type: ignore[attr-defined]
            option.header.key = name
            option.header.value = value
            option.append_action = action
    remove.extend(operations.remove)  # type: ignore[attr-defined]
