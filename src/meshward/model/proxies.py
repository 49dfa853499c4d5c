"""Proxies: the ProxyModel of every sidecar pod, inbound and outbound, fully decided.

Called by `meshward.model.mesh.build`. Inbound: one port per pod port (except the
`ir.RESERVED_PORTS` the sidecar binds itself, MW0210), its mTLS mode from model/peer_authn.py
and its AuthorizationPolicies compiled by model/authz.py.
Outbound: every service port of the mesh (then every ServiceEntry port the caller's namespace
sees, model/service_entries.py), its endpoints and their TLS from
model/upstream_tls.py, plus where the app reaches it: HTTP ports by Host header through the
outbound HTTP listener, TCP ports through a local listener on the pod address.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from meshward.config.resources import DestinationRule, RequestAuthentication, Sidecar
from meshward.model import (
    authz,
    ir,
    origination,
    peer_authn,
    request_authn,
    service_entries,
    sidecar_scope,
    upstream_tls,
)
from meshward.model.authorization import NO_AUTHZ

FIRST_FALLBACK_PORT = 20000  # where TCP binds go when the service port is taken on the pod
HTTP_DEFAULT_PORT = 80


def _portless_port(service: ir.Service) -> int | None:
    """The one HTTP port a Host without `:port` routes to.

    A Host header without a port means port 80 (RFC 9110 §4.2.1), so port 80 gets the port-less
    names when it speaks HTTP; otherwise the lowest HTTP port does. Only one port may have
    them: all HTTP services share the outbound HTTP listener, and a domain may appear in only
    one virtual host of a route configuration.
    """
    http = [p.port for p in service.ports if ir.is_http(p.protocol)]
    if not http:
        return None
    return HTTP_DEFAULT_PORT if HTTP_DEFAULT_PORT in http else min(http)


def http_domains(service: ir.Service, port: int, caller_namespace: str) -> tuple[str, ...]:
    """The Host values Istio routes to `service:port` from a caller in `caller_namespace`."""
    names = [service.fqdn, f"{service.name}.{service.namespace}.svc"]
    names.append(f"{service.name}.{service.namespace}")
    if caller_namespace == service.namespace:
        names.append(service.name)
    with_port = port == _portless_port(service)
    domains: list[str] = []
    for name in names:
        if with_port:
            domains.append(name)
        domains.append(f"{name}:{port}")
    return tuple(domains)


_FIRST_UNPRIVILEGED_PORT = 1024  # Linux net.ipv4.ip_unprivileged_port_start's default


class _PortPicker:
    """Local ports for a proxy's TCP listeners: the service port if free and unprivileged,
    else 20000 upward (loopback mode runs without root: ports below 1024 cannot be bound).
    `taken` are ports the proxy binds for other reasons (a gateway pod's Gateway ports)."""

    def __init__(self, pod: ir.Pod, taken: frozenset[int] = frozenset()) -> None:
        self._used = {p.port for p in pod.ports} | set(ir.RESERVED_PORTS) | set(taken)

    def take(self, wanted: int) -> int:
        port = wanted
        if port in self._used or port < _FIRST_UNPRIVILEGED_PORT:
            port = FIRST_FALLBACK_PORT
            while port in self._used:
                port += 1
        self._used.add(port)
        return port


def _inbound(
    pod: ir.Pod, pa: peer_authn.PeerAuthnIndex, policies: authz.AuthzIndex | None
) -> tuple[ir.InboundPort, ...]:
    ports = []
    for port in pod.ports:
        if port.port in ir.RESERVED_PORTS:
            continue  # the sidecar binds it itself (admin, outbound HTTP): MW0210
        decision = peer_authn.decide(pa, pod.key.namespace, pod.labels, port.port)
        port_authz = (
            authz.compile_port(policies, pod.key.namespace, pod.labels, port.port, port.protocol)
            if policies is not None
            else NO_AUTHZ
        )
        ports.append(
            ir.InboundPort(port.port, port.protocol, decision.mode, decision.source, port_authz)
        )
    return tuple(ports)


def _shared_outbound(
    caller: ir.Pod,
    services: Sequence[ir.Service],
    upstreams: upstream_tls.Upstreams,
    interned: dict[tuple[str, str, int, str, str, bool, str], ir.OutboundService],
) -> tuple[ir.OutboundService, ...]:
    # Everything but the TCP binds, for every caller of `caller`'s CallerClass: the rule
    # depends on the caller only through the class, the Host names only through whether it
    # shares the service's namespace. Equal OutboundServices are one object (`interned`).
    outbound = []
    for service in services:
        rule = upstreams.rule_for(caller, service)
        same_namespace = caller.key.namespace == service.namespace
        for port in sorted(service.ports, key=lambda p: p.port):
            decision = upstream_tls.decide(rule, port.port)
            key = (
                service.namespace,
                service.name,
                port.port,
                decision.tls,
                decision.source,
                same_namespace,
                decision.sni,
            )
            shared = interned.get(key)
            if shared is None:
                http = ir.is_http(port.protocol)
                shared = interned[key] = ir.OutboundService(
                    namespace=service.namespace,
                    name=service.name,
                    port=port.port,
                    protocol=port.protocol,
                    endpoints=upstreams.endpoints(service, port, decision.tls),
                    tls=decision.tls,
                    tls_source=decision.source,
                    subject_alt_names=upstreams.subject_alt_names(service),
                    http_domains=http_domains(service, port.port, caller.key.namespace)
                    if http
                    else (),
                    tcp_bind=None,
                    vip=service.vip,
                    origination=_origination(rule, port.port, service.fqdn),
                    mtls_sni=decision.sni,
                )
            outbound.append(shared)
    return tuple(outbound)


def _origination(rule: DestinationRule | None, port: int, fqdn: str) -> ir.Origination | None:
    settings = origination.settings_for(rule, port) if rule is not None else None
    return origination.decide(settings, fqdn) if settings is not None else None


def _external_tls(
    upstreams: upstream_tls.Upstreams, caller: ir.Pod, service: ir.OutboundService
) -> ir.OutboundService:
    """A ServiceEntry port under the caller's DestinationRule for its host: SIMPLE/MUTUAL
    make the sidecar originate TLS (Istio's "egress TLS origination": the app speaks HTTP,
    the traffic leaves as HTTPS); any other rule leaves the app's bytes as they are."""
    rule = upstreams.rule_for(caller, service)
    made = _origination(rule, service.port, service.fqdn)
    if made is None:
        return service
    decision = upstream_tls.decide(rule, service.port)
    return dataclasses.replace(
        service, tls=decision.tls, tls_source=decision.source, origination=made
    )


def _outbound(
    caller: ir.Pod,
    shared: tuple[ir.OutboundService, ...],
    tcp: bool,
    taken: frozenset[int] = frozenset(),
) -> tuple[ir.OutboundService, ...]:
    if not tcp:
        return shared  # no TCP binds: the very tuple the caller's class shares
    picker = _PortPicker(caller, taken)
    return tuple(
        s
        if ir.is_http(s.protocol)
        else dataclasses.replace(s, tcp_bind=(caller.address.pod_ip, picker.take(s.port)))
        for s in shared
    )


def build(
    pods: Sequence[ir.Pod],
    services: Sequence[ir.Service],
    pa: peer_authn.PeerAuthnIndex,
    rules: Sequence[DestinationRule],
    trust_domain: str,
    policies: authz.AuthzIndex | None = None,
    request_authns: Sequence[RequestAuthentication] = (),
    root_namespace: str = "",
    taken: Mapping[ir.PodKey, frozenset[int]] | None = None,
    *,
    capture: bool = False,
    outbound_policy: ir.OutboundPolicy = "ALLOW_ANY",
    registry: service_entries.Registry | None = None,
    sidecars: Sequence[Sidecar] = (),
) -> tuple[ir.ProxyModel, ...]:
    """One ProxyModel per sidecar pod, in pod-key order; `policies` fill InboundPort.authz.

    `taken`: ports a pod's proxy binds besides its app ports (gateway pods' Gateway ports),
    which its local TCP listeners must avoid. With `capture` (netns mode) apps reach TCP
    services at their VIP through the captured virtual outbound listener, so no local TCP
    listeners are bound. `registry`: the ServiceEntry ports, after the mesh's services.
    `sidecars`: Sidecar resources narrowing what each proxy sees and its outbound policy
    (model/sidecar_scope.py).
    """
    taken = taken or {}
    upstreams = upstream_tls.Upstreams({p.key: p for p in pods}, pa, rules)
    ordered = sorted(services, key=lambda s: (s.namespace, s.name))
    interned: dict[tuple[str, str, int, str, str, bool, str], ir.OutboundService] = {}
    by_class: dict[upstream_tls.CallerClass, tuple[tuple[ir.OutboundService, ...], bool]] = {}

    scoped: dict[tuple[int, int], tuple[tuple[ir.OutboundService, ...], bool]] = {}

    def outbound(caller: ir.Pod, scope: Sidecar | None) -> tuple[ir.OutboundService, ...]:
        key = upstreams.caller_class(caller)
        if key not in by_class:
            shared = _shared_outbound(caller, ordered, upstreams, interned)
            if registry is not None:
                external = registry.outbound(caller.key.namespace)
                shared += tuple(_external_tls(upstreams, caller, s) for s in external)
            by_class[key] = (shared, not all(ir.is_http(s.protocol) for s in shared))
        shared, tcp = by_class[key]
        if scope is not None and scope.egress_hosts is not None:
            # One filtered tuple per (class, Sidecar), shared by the callers that have both.
            memo = (id(shared), id(scope))
            if memo not in scoped:
                seen = tuple(s for s in shared if sidecar_scope.visible(scope, s))
                scoped[memo] = (seen, not all(ir.is_http(s.protocol) for s in seen))
            shared, tcp = scoped[memo]
        # A captured pod's app reaches TCP services at their VIPs: no local TCP listeners. A
        # gateway pod is never captured (reached directly, like Istio's), so it keeps them.
        captured = capture and not caller.gateway
        return _outbound(caller, shared, tcp and not captured, taken.get(caller.key, frozenset()))

    def scope_of(pod: ir.Pod) -> Sidecar | None:
        if pod.gateway:
            return None  # a Sidecar scopes sidecars, never gateways (Istio)
        return sidecar_scope.select(sidecars, root_namespace, pod.key.namespace, pod.labels)

    return tuple(
        ir.ProxyModel(
            node_id=ir.node_id(pod.key, pod.address.pod_ip),
            pod=pod,
            trust_domain=trust_domain,
            inbound=_inbound(pod, pa, policies),
            outbound=outbound(pod, scope),
            jwt_rules=request_authn.compile_pod(
                request_authns, root_namespace, pod.key.namespace, pod.labels
            ),
            capture=capture and not pod.gateway,  # a gateway is reached directly
            outbound_policy=(scope.outbound_policy if scope else None) or outbound_policy,
        )
        for pod in sorted(pods, key=lambda p: p.key)
        if pod.has_sidecar
        for scope in (scope_of(pod),)
    )
