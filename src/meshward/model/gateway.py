"""Gateways (ingress and egress): each gateway pod's GatewayModel, from Gateways and VSs.

Called by `meshward.model.mesh.build`. Follows Istio (pilot/pkg/networking/core/gateway.go
and the Gateway / VirtualService reference):

  * a Gateway applies to the gateway pods whose labels its `selector` matches, in any
    namespace (Istio's default, PILOT_SCOPE_GATEWAY_TO_NAMESPACE=false) (MW0260 if none);
  * servers on one port merge into one listener: plaintext HTTP servers share one filter
    chain (virtual hosts of all of them); each TLS-terminating server gets its own chain
    matched by SNI = its hosts; PASSTHROUGH servers get one chain per `tls` route SNI set;
    a second server claiming a port with another protocol family is dropped (MW0263);
  * a VirtualService binds to `ns/name` gateways; its host is served by a server when a
    server host `ns/dnsName` admits the VirtualService's namespace and the names intersect
    (MW0265 when none does); routes whose `match.gateways` or `match.port` exclude this
    gateway/port are left out; routes are ordered by VirtualService age, then as written;
  * a destination is a mesh Service (`name`, `name.ns`, `name.ns.svc[.cluster.local]`), its
    port given or the Service's only port; otherwise the route is dropped (MW0262).

AuthorizationPolicies selecting the gateway pod are compiled per port exactly as for a
sidecar's inbound port (model/authz.py), so the same RBAC code enforces them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from meshward.config import networking
from meshward.config.networking import Gateway, VirtualService
from meshward.config.resources import MeshConfig, Meta, selector_matches
from meshward.diagnostics import Diagnostic, Level, Location
from meshward.model import authz, ir, service_entries
from meshward.model.authorization import NO_AUTHZ
from meshward.model.finding import finding

_HTTP_FAMILY = ("HTTP", "HTTP2", "GRPC")
_PROTOCOL: dict[str, ir.Protocol] = {"TLS": "TCP", "TCP": "TCP"}


@dataclass
class RouteContext:
    """What route resolution reads (services, VirtualServices by age) and the findings it
    reports, once per resource and field; model/mesh_routes.py builds one without gateways."""

    gateways: Sequence[Gateway]
    services: dict[tuple[str, str], ir.Service]
    virtual_services: Sequence[VirtualService]
    policies: authz.AuthzIndex | None
    findings: list[Diagnostic] = field(default_factory=list)
    reported: set[tuple[str, str, str]] = field(default_factory=set)
    # ServiceEntry hosts are destinations too (an egress gateway's way out), as the proxy
    # that routes sees them: `viewer` is its namespace (a gateway pod's; at sidecars the
    # VirtualService's), `registry` what each namespace sees (exportTo).
    registry: service_entries.Registry | None = None
    viewer: str = ""

    def external_ports(self, host: str) -> tuple[int, ...]:
        """The ports of ServiceEntry host `host` visible in `viewer`'s namespace, sorted."""
        if self.registry is None:
            return ()
        return tuple(
            sorted({s.port for s in self.registry.outbound(self.viewer) if s.name == host})
        )

    def report(self, code: str, meta: Meta, path: str, message: str) -> None:
        key = (code, meta.ref, path)
        if key not in self.reported:  # once per resource and field, not once per pod
            self.reported.add(key)
            self.findings.append(finding(code, meta, path, message))


def bound_port(pod: ir.PodKey, server_port: int, services: Iterable[ir.Service]) -> int:
    """The port a gateway pod listens on for a Gateway server port: as in Istio, a server
    port that is a port of a Service selecting the pod means that Service port, and the pod
    listens on its targetPort (the gateway Service's `80 → 8080`); otherwise the number itself."""
    for service in sorted(services, key=lambda s: (s.namespace, s.name)):
        if pod in service.pods:
            for port in service.ports:
                if port.port == server_port:
                    return port.target_port
    return server_port


def listen_ports(
    pods: Iterable[ir.Pod], gateways: Sequence[Gateway], services: Sequence[ir.Service] = ()
) -> dict[ir.PodKey, frozenset[int]]:
    """The ports each gateway pod will bind (its local TCP listeners avoid them)."""
    return {
        pod.key: frozenset(
            bound_port(pod.key, server.port, services)
            for gw in gateways
            if selector_matches(gw.selector, pod.labels)
            for server in gw.servers
        )
        for pod in pods
        if pod.gateway
    }


def build(
    proxies: Sequence[ir.ProxyModel],
    services: Sequence[ir.Service],
    gateways: Sequence[Gateway],
    virtual_services: Sequence[VirtualService],
    mesh: MeshConfig,
    policies: authz.AuthzIndex | None,
    registry: service_entries.Registry | None = None,
) -> tuple[tuple[ir.ProxyModel, ...], tuple[Diagnostic, ...]]:
    """`proxies` with a GatewayModel on every gateway pod, and the findings (MW026x)."""
    context = RouteContext(
        gateways=sorted(gateways, key=lambda g: g.meta.order),
        services={(s.namespace, s.name): s for s in services},
        virtual_services=sorted(virtual_services, key=lambda v: v.meta.order),
        policies=policies,
        registry=registry,
    )
    result = []
    for proxy in proxies:
        if proxy.pod.gateway:
            context.viewer = proxy.pod.key.namespace
            model = _gateway_model(proxy.pod, context, mesh.num_trusted_proxies)
            result.append(dataclasses.replace(proxy, gateway=model))
        else:
            result.append(proxy)
    gateway_pods = [p.pod for p in proxies if p.pod.gateway]
    _check_service_ports(services, gateway_pods, context.gateways, context)
    for gw in context.gateways:
        if not any(selector_matches(gw.selector, pod.labels) for pod in gateway_pods):
            context.report(
                "MW0260",
                gw.meta,
                "spec.selector",
                f"no gateway Workload (`gateway: ingress|egress`) has labels {dict(gw.selector)}",
            )
    known = {f"{g.meta.namespace}/{g.meta.name}" for g in gateways}
    for vs in context.virtual_services:
        for i, ref in enumerate(vs.gateways):
            if ref != "mesh" and ref not in known:
                context.report("MW0261", vs.meta, f"spec.gateways[{i}]", f"no Gateway {ref}")
        _check_kinds(vs, context)
    return tuple(result), tuple(context.findings)


def _check_service_ports(
    services: Sequence[ir.Service],
    pods: Sequence[ir.Pod],
    gateways: Sequence[Gateway],
    context: RouteContext,
) -> None:
    """MW0274 when a Service sends a port to a gateway pod where no Gateway server listens
    (callers through it would get a refused connection)."""
    listening = listen_ports(pods, gateways, services)
    for service in services:
        for pod_key in service.pods:
            ports = listening.get(pod_key)
            if ports is None:
                continue  # not a gateway pod
            for port in service.ports:
                if port.target_port not in ports:
                    context.findings.append(
                        Diagnostic(
                            code="MW0274",
                            level=Level.WARNING,
                            resource=f"Service {service.namespace}/{service.name}",
                            location=Location(field=f"spec.ports[port {port.port}]"),
                            message=f"targets port {port.target_port} of gateway pod "
                            f"{pod_key.namespace}/{pod_key.workload}-{pod_key.replica}, where no "
                            f"Gateway server listens (it listens on {sorted(ports)})",
                        )
                    )


def _check_kinds(vs: VirtualService, context: RouteContext) -> None:
    """MW0266 when a route kind fits no server of the VirtualService's gateways."""
    families = {
        _family(server) for gw in context.gateways if _bound(vs, gw) for server in gw.servers
    }
    if not families:
        return
    served = [
        server
        for gw in context.gateways
        if _bound(vs, gw)
        for server in gw.servers
        if _domains(gw, server, vs)
    ]
    if not served:
        context.report(
            "MW0265",
            vs.meta,
            "spec.hosts",
            f"none of {list(vs.hosts)} is a host of a server of {list(vs.gateways)}",
        )
    for key, routes, wanted in (
        ("http", vs.http, {"HTTP", "HTTPS"}),
        ("tls", vs.tls, {"PASSTHROUGH"}),
        ("tcp", vs.tcp, {"TCP", "TLS"}),
    ):
        if routes and not families & wanted:
            context.report(
                "MW0266",
                vs.meta,
                f"spec.{key}",
                f"{key} routes, but its gateways serve only {sorted(families)}",
            )


def _gateway_model(pod: ir.Pod, context: RouteContext, trusted: int) -> ir.GatewayModel:
    by_port: dict[int, list[tuple[Gateway, int, networking.GatewayServer]]] = {}
    for gw in context.gateways:
        if not selector_matches(gw.selector, pod.labels):
            continue
        for index, server in enumerate(gw.servers):
            if server.port in ir.RESERVED_PORTS:
                context.report(
                    "MW0264",
                    gw.meta,
                    f"spec.servers[{index}].port.number",
                    f"port {server.port} is reserved by the proxy",
                )
                continue
            by_port.setdefault(server.port, []).append((gw, index, server))
    listeners = []
    for port in sorted(by_port):
        chains = _chains(port, by_port[port], context)
        if not chains:
            continue
        # Routes match the server port (`match.port`); the pod listens on the bound port, which
        # is also what the gateway's AuthorizationPolicies see as destination.port (Istio).
        bound = bound_port(pod.key, port, context.services.values())
        protocol = _PROTOCOL.get(by_port[port][0][2].protocol, "HTTP")
        port_authz = (
            authz.compile_port(context.policies, pod.key.namespace, pod.labels, bound, protocol)
            if context.policies is not None
            else NO_AUTHZ
        )
        listeners.append(ir.GatewayListener(bound, chains, port_authz, server_port=port))
    return ir.GatewayModel(tuple(listeners), trusted)


def _family(server: networking.GatewayServer) -> str:
    if server.protocol in _HTTP_FAMILY:
        return "HTTP"
    if server.protocol == "HTTPS":
        return "HTTPS"
    if server.protocol == "TLS" and server.tls is not None:
        # Istio: a TLS server that terminates (SIMPLE, MUTUAL, ISTIO_MUTUAL) forwards the
        # bytes inside by its tcp routes; only PASSTHROUGH reads `tls` (SNI) routes.
        return "PASSTHROUGH" if server.tls.mode == "PASSTHROUGH" else "TLS"
    return "TCP"


def _chains(
    port: int,
    servers: list[tuple[Gateway, int, networking.GatewayServer]],
    context: RouteContext,
) -> tuple[ir.GatewayChain, ...]:
    first_family = _family(servers[0][2])
    kept: list[tuple[Gateway, int, networking.GatewayServer]] = []
    for gw, index, server in servers:
        family = _family(server)
        # TLS servers (HTTPS, TLS, PASSTHROUGH) share a port by SNI; HTTP and TCP do not.
        tls_pair = {family, first_family} <= {"HTTPS", "TLS", "PASSTHROUGH"}
        if family != first_family and not tls_pair:
            context.report(
                "MW0263",
                gw.meta,
                f"spec.servers[{index}].port",
                f"port {port} is already served as {first_family}; this {family} server dropped",
            )
            continue
        kept.append((gw, index, server))
    chains: list[ir.GatewayChain] = []
    plain_hosts: list[ir.GatewayVirtualHost] = []
    plain_redirect = False
    for gw, index, server in kept:
        family = _family(server)
        name = f"{gw.meta.namespace}/{gw.meta.name}/{index}"
        if family == "HTTP":
            plain_hosts.extend(_virtual_hosts(gw, server, port, context))
            plain_redirect |= bool(server.tls and server.tls.https_redirect)
        elif family == "HTTPS":
            assert server.tls is not None
            chains.append(
                ir.GatewayChain(
                    name=f"https|{port}|{name}",
                    kind="TERMINATE",
                    server_names=_server_names(server),
                    tls=server_tls(server.tls),
                    virtual_hosts=tuple(_virtual_hosts(gw, server, port, context)),
                )
            )
        elif family == "PASSTHROUGH":
            chains.extend(_passthrough(gw, index, server, port, context))
        elif family == "TLS":
            assert server.tls is not None
            clusters = _tcp_clusters(gw, index, port, context, server)
            if clusters:
                chains.append(
                    ir.GatewayChain(
                        name=f"tls|{port}|{name}",
                        kind="TERMINATE_TCP",
                        server_names=_server_names(server),
                        tls=server_tls(server.tls),
                        clusters=clusters,
                    )
                )
        else:
            clusters = _tcp_clusters(gw, index, port, context)
            if clusters:
                chains.append(ir.GatewayChain(f"tcp|{port}|{name}", "TCP", clusters=clusters))
                break  # a plaintext TCP port has one destination: the first server wins
    if first_family == "HTTP":
        hosts = _merge(plain_hosts, require_tls=plain_redirect)
        chains.insert(0, ir.GatewayChain(f"http|{port}", "HTTP", virtual_hosts=hosts))
    return tuple(chains)


def server_tls(tls: networking.GatewayTls) -> ir.ServerTls:
    """The decided TLS of a terminating server (also used by the verifier)."""
    if tls.mode == "ISTIO_MUTUAL":
        certificate, validation = "default", "ROOTCA"
    elif tls.credential_name:
        certificate = ir.credential_sds_name(tls.credential_name)
        mutual = tls.mode in ("MUTUAL", "OPTIONAL_MUTUAL")
        validation = ir.credential_sds_name(f"{tls.credential_name}-cacert") if mutual else ""
    else:
        certificate = validation = ""
    return ir.ServerTls(
        mode=tls.mode,
        certificate=certificate,
        validation=validation,
        files=(tls.server_certificate, tls.private_key, tls.ca_certificates, tls.ca_crl),
        subject_alt_names=tls.subject_alt_names,
        min_version=tls.min_protocol_version,
        max_version=tls.max_protocol_version,
        cipher_suites=tls.cipher_suites,
        credential=tls.credential_name,
    )


def _server_names(server: networking.GatewayServer) -> tuple[str, ...]:
    names = sorted({h.dns_name for h in server.hosts})
    return () if "*" in names else tuple(names)


def host_matches(pattern: str, host: str) -> bool:
    """Istio host matching: `*` matches all, `*.x.com` matches names ending in `.x.com`."""
    if pattern in ("*", host):
        return True
    return pattern.startswith("*.") and host.endswith(pattern[1:])


def _intersect(server_host: str, vs_host: str) -> str | None:
    if host_matches(server_host, vs_host):
        return vs_host
    if host_matches(vs_host, server_host):
        return server_host
    return None


def _bound(vs: VirtualService, gw: Gateway) -> bool:
    return f"{gw.meta.namespace}/{gw.meta.name}" in vs.gateways


def _domains(gw: Gateway, server: networking.GatewayServer, vs: VirtualService) -> list[str]:
    found: list[str] = []
    for vs_host in vs.hosts:
        for host in server.hosts:
            if host.namespace not in ("*", vs.meta.namespace):
                continue
            common = _intersect(host.dns_name, vs_host)
            if common is not None and common not in found:
                found.append(common)
    del gw
    return found


def _applies(
    matches: Iterable[networking.HttpMatch | networking.TcpMatch], gw: Gateway, port: int
) -> bool:
    ref = f"{gw.meta.namespace}/{gw.meta.name}"
    return any(
        (not m.gateways or ref in m.gateways) and (m.port is None or m.port == port)
        for m in matches
    )


def _virtual_hosts(
    gw: Gateway, server: networking.GatewayServer, port: int, context: RouteContext
) -> list[ir.GatewayVirtualHost]:
    hosts: list[ir.GatewayVirtualHost] = []
    redirect = bool(server.tls and server.tls.https_redirect and server.protocol in _HTTP_FAMILY)
    for vs in context.virtual_services:
        if not _bound(vs, gw):
            continue
        if not vs.http:
            continue
        domains = _domains(gw, server, vs)
        if not domains:
            continue  # no host of this server (MW0265 if of no server at all)
        routes = []
        for i, http in enumerate(vs.http):
            matches = tuple(
                m
                for m in http.matches
                if (not m.gateways or f"{gw.meta.namespace}/{gw.meta.name}" in m.gateways)
                and (m.port is None or m.port == port)
            )
            if http.matches and not matches:
                continue  # every match names another gateway or port
            path = f"spec.http[{i}]"
            clusters = resolve(vs, http.route, path, context)
            if http.route and not clusters:
                continue
            routes.append(ir.GatewayRoute(f"{vs.meta.ref} http[{i}]", http, matches, clusters))
        for domain in domains:
            hosts.append(ir.GatewayVirtualHost(domain, (domain,), tuple(routes), redirect))
    if redirect and not hosts:
        # httpsRedirect with no VirtualService still redirects every host (Istio).
        names = sorted({h.dns_name for h in server.hosts})
        hosts.append(ir.GatewayVirtualHost(names[0], tuple(names), (), True))
    return hosts


def _merge(
    hosts: list[ir.GatewayVirtualHost], *, require_tls: bool
) -> tuple[ir.GatewayVirtualHost, ...]:
    """One virtual host per domain (Envoy refuses a domain in two), routes in order."""
    merged: dict[str, ir.GatewayVirtualHost] = {}
    for host in hosts:
        for domain in host.domains:
            current = merged.get(domain)
            routes = host.routes if current is None else (*current.routes, *host.routes)
            merged[domain] = ir.GatewayVirtualHost(domain, (domain,), routes, require_tls)
    return tuple(merged[d] for d in sorted(merged))


def resolve(
    vs: VirtualService,
    route: Sequence[networking.RouteDestination],
    path: str,
    context: RouteContext,
) -> tuple[tuple[str, int], ...]:
    """The (cluster, weight) of each destination; () and MW0262 if one is neither a mesh
    service port nor a port of a ServiceEntry host the routing proxy sees (gateways and
    sidecars alike)."""
    clusters = []
    for j, target in enumerate(route):
        host = target.destination.host
        service = service_of(host, vs.meta.namespace, context)
        fqdn, ports = (
            (service.fqdn, tuple(p.port for p in service.ports))
            if service is not None
            else (host, context.external_ports(host))
        )
        port = target.destination.port
        if port is None and len(ports) == 1:
            port = ports[0]
        if port not in ports:
            context.report(
                "MW0262",
                vs.meta,
                f"{path}.route[{j}].destination",
                f"{host}:{port or '?'} is not a port of a mesh service or a ServiceEntry host",
            )
            return ()
        clusters.append((f"outbound|{port}||{fqdn}", target.weight or 100))
    return tuple(clusters)


def service_of(host: str, namespace: str, context: RouteContext) -> ir.Service | None:
    """The mesh Service `host` names: `name` (in `namespace`), `name.ns`, `name.ns.svc`,
    or the FQDN; None for any other name."""
    parts = host.split(".")
    if len(parts) == 1:
        key = (namespace, parts[0])
    elif len(parts) == 2 or (len(parts) >= 3 and ".".join(parts[2:]) in ("svc", ir.DNS_SUFFIX)):
        key = (parts[1], parts[0])
    else:
        return None
    return context.services.get(key)


def _passthrough(
    gw: Gateway, index: int, server: networking.GatewayServer, port: int, context: RouteContext
) -> list[ir.GatewayChain]:
    chains = []
    for vs in context.virtual_services:
        if not _bound(vs, gw):
            continue
        for i, route in enumerate(vs.tls):
            ref = f"{gw.meta.namespace}/{gw.meta.name}"
            for k, match in enumerate(route.matches):
                if (match.gateways and ref not in match.gateways) or match.port not in (None, port):
                    continue
                names = tuple(
                    sorted(
                        {
                            common
                            for sni in match.sni_hosts
                            for host in server.hosts
                            if host.namespace in ("*", vs.meta.namespace)
                            and (common := _intersect(host.dns_name, sni)) is not None
                        }
                    )
                )
                if not names:
                    continue
                clusters = resolve(vs, route.route, f"spec.tls[{i}]", context)
                if clusters:
                    chains.append(
                        ir.GatewayChain(
                            f"passthrough|{port}|{vs.meta.namespace}/{vs.meta.name}/{i}/{k}",
                            "PASSTHROUGH",
                            server_names=names,
                            clusters=clusters,
                        )
                    )
    del index
    return chains


def _tcp_clusters(
    gw: Gateway,
    index: int,
    port: int,
    context: RouteContext,
    server: networking.GatewayServer | None = None,
) -> tuple[tuple[str, int], ...]:
    """The first applicable tcp route's destinations; with `server` (a terminating TLS
    server, one chain per SNI) only VirtualServices for one of its hosts count."""
    for vs in context.virtual_services:
        if not _bound(vs, gw) or (server is not None and not _domains(gw, server, vs)):
            continue
        for i, route in enumerate(vs.tcp):
            if route.matches and not _applies(route.matches, gw, port):
                continue
            clusters = resolve(vs, route.route, f"spec.tcp[{i}]", context)
            if clusters:
                return clusters
    del index
    return ()
