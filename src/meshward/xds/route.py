"""HTTP routing: the `outbound_http` RouteConfiguration and the inline inbound route.

Called by translate.py (outbound, served over RDS) and listener.py (inbound, inline in the
inbound HTTP connection manager). One virtual host per HTTP mesh service port, named
`<fqdn>:<port>`, matching the Host values the model decided; a Host no virtual host matches
gets Envoy's own 404 (no catch-all: an unknown name must not reach anything).
"""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.route.v3 import route_components_pb2, route_pb2

from meshward.diagnostics import Diagnostic, Level, Location
from meshward.model import ir

OUTBOUND_HTTP_ROUTE = "outbound_http"
_DUPLICATE_DOMAIN = "MW0301"


def _virtual_host(
    name: str, domains: Iterable[str], cluster: str
) -> route_components_pb2.VirtualHost:
    host = route_components_pb2.VirtualHost(name=name, domains=list(domains))
    route = host.routes.add()
    route.match.prefix = "/"
    route.route.cluster = cluster
    return host


def outbound_http_routes(
    services: Iterable[ir.OutboundService],
) -> tuple[route_pb2.RouteConfiguration, tuple[Diagnostic, ...]]:
    """The `outbound_http` route config for the HTTP-family services, plus a diagnostic for
    every domain dropped because an earlier virtual host already claims it (Envoy rejects
    the whole RouteConfiguration when two virtual hosts share a domain)."""
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
            config.virtual_hosts.append(_virtual_host(name, domains, service.cluster_name))
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
    name the service, so every Host goes to its cluster."""
    config = route_pb2.RouteConfiguration(name=service.cluster_name)
    config.virtual_hosts.append(
        _virtual_host(f"{service.fqdn}:{service.port}", ["*"], service.cluster_name)
    )
    return config
