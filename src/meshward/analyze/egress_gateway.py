"""Checks of the egress gateway: a sidecar's route sends an external host to a gateway port
whose servers cannot take what the sidecar sends there (MW0526) — the trap Istio users hit
most (istio.io "Egress Gateways": the DestinationRule for the gateway is half the task) —,
sidecars hold the client credential the gateway leaves with (MW0527), and sidecars reach a
port of a host directly while its other ports go through the gateway (MW0528).

Istio's auto-mTLS never wraps traffic for a gateway pod: what the sidecar sends to the
gateway's Service port is plaintext (or the app's own TLS) unless a DestinationRule for the
gateway host says ISTIO_MUTUAL, and then its SNI is the rule's `sni` or Istio's default
`outbound_.<port>_._.<fqdn>`, which the gateway's filter chains match against their
servers' hosts. So traffic fails when, on the gateway pod port a route leads to:

  (a) every server is ISTIO_MUTUAL but the sidecar sends no mesh mTLS (no rule);
  (b) the sidecar sends mesh mTLS with an SNI no ISTIO_MUTUAL server's hosts match (often
      the default SNI: the rule has no `sni`);
  (c) the sidecar sends mesh mTLS but no server there terminates it (plaintext HTTP/TCP,
      PASSTHROUGH, or a SIMPLE/MUTUAL server with its own certificate).

And the way round the gateway (MW0527): the gateway leaves by a host's port (e.g. 443) that
sidecars see too. Where a DestinationRule MUTUAL (a client credential or key pair) for that
port applies to sidecars as well as the gateway, a sidecar that calls the port directly
presents the gateway's client certificate: the gateway's AuthorizationPolicy is bypassed
with the very credential the external server trusts. Istio guards it by serving a
`credentialName` only from the proxy's own namespace; meshward's secret store is one per
mesh, so the rule must select the gateway (`workloadSelector`).

Read from the model: the caller's routes (model/gateway_hops.py), its TLS to the gateway
(`endpoints[].mtls`, `mesh_sni`, `tls_source`) and the gateway's `listeners[].chains[]`. One
finding per (DestinationRule, or without one the caller's namespace — which rule applies
depends on it —, gateway port, problem), naming the hosts and callers. Called from the
check table in analyze/analysis.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from meshward.analyze.destination_rules import deciding_rule
from meshward.analyze.facts import Facts, at, finding
from meshward.diagnostics import Diagnostic
from meshward.model import gateway_hops
from meshward.model.ir import GatewayChain, GatewayListener, OutboundService

_Key = tuple[str, str, int, str]  # (rule ref or caller namespace, gateway pod, port, problem)
_Kind = Literal["plaintext", "sni", "unterminated"]  # (a), (b), (c) above


@dataclass
class _Found:
    resource: str
    path: str  # the field of `resource` the finding points at
    to_gateway: OutboundService
    kind: _Kind
    problem: str
    hosts: dict[str, None] = field(default_factory=dict)
    callers: dict[str, None] = field(default_factory=dict)


def credential_bypass(facts: Facts) -> Iterator[Diagnostic]:
    """MW0527 once per DestinationRule whose MUTUAL origination to a gateway's way out
    applies to sidecars (listed) as well."""
    exits = {
        cluster: f"{p.pod.key.namespace}/{p.pod.key.workload}"
        for p in facts.model.proxies
        if p.gateway is not None
        for listener in p.gateway.listeners
        for chain in listener.chains
        for cluster in _chain_clusters(chain)
    }
    found: dict[tuple[str, str], tuple[str, OutboundService, str, dict[str, None]]] = {}
    for caller in facts.sidecars():
        if caller.gateway is not None:
            continue
        for service in caller.outbound:
            origination = service.origination
            gateway = exits.get(service.cluster_name)
            rule = deciding_rule(service)
            if origination is None or origination.mode != "MUTUAL" or gateway is None:
                continue
            if rule is None or service.vs_routes is not None or service.tcp_routes is not None:
                continue  # routed (e.g. to the gateway itself): the sidecar does not leave
            ref, path = rule
            entry = found.setdefault((ref, service.cluster_name), (path, service, gateway, {}))
            entry[3][f"{caller.pod.key.namespace}/{caller.pod.key.workload}"] = None
    for (ref, _), (path, service, gateway, callers) in found.items():
        origination = service.origination
        assert origination is not None
        credential = origination.credential or origination.cert_file
        yield finding(
            "MW0527",
            ref,
            at(facts.meta(ref), path),
            f"sidecars of {', '.join(callers)} originate mTLS with the client credential "
            f"{credential} to {service.name}:{service.port}, the port gateway {gateway} leaves "
            "by: a workload the gateway's policy refuses can call it directly and present "
            "the credential; give the rule a workloadSelector for the gateway",
        )


def direct_exits(facts: Facts) -> Iterator[Diagnostic]:
    """MW0528 once per ServiceEntry port that sidecars reach directly while other ports of
    the same host go through an egress gateway: the gateway's policy is bypassed there."""
    found: dict[tuple[str, str, int], tuple[str, dict[str, None]]] = {}
    for caller in facts.sidecars():
        if caller.gateway is not None:
            continue
        by_host: dict[str, list[OutboundService]] = {}
        for service in caller.outbound:
            if service.external is not None:
                by_host.setdefault(service.name, []).append(service)
        for host, ports in by_host.items():
            through = [s.port for s in ports if gateway_hops.gateway_hops(facts.model, caller, s)]
            if not through:
                continue
            for service in ports:
                if service.vs_routes is not None or service.tcp_routes is not None:
                    continue  # routed elsewhere: not a direct exit
                assert service.external is not None
                key = (service.external.source, host, service.port)
                entry = found.setdefault(key, (f"port {through[0]}", {}))
                entry[1][f"{caller.pod.key.namespace}/{caller.pod.key.workload}"] = None
    for (source, host, port), (via, callers) in found.items():
        yield finding(
            "MW0528",
            source,
            at(facts.meta(source), "spec.ports"),
            f"sidecars of {', '.join(callers)} reach {host}:{port} directly, while its {via} "
            "leaves through an egress gateway: there the gateway's AuthorizationPolicy does "
            "not apply; export that port only to the gateway's namespace (a ServiceEntry of "
            "its own with exportTo) or route it through the gateway as well",
        )


def _chain_clusters(chain: GatewayChain) -> tuple[str, ...]:
    routed = (c for h in chain.virtual_hosts for r in h.routes for c, _ in r.clusters)
    return (*(c for c, _ in chain.clusters), *routed)


def unusable_gateway_ports(facts: Facts) -> Iterator[Diagnostic]:
    """MW0526 for every gateway port a sidecar's route for an external host cannot use."""
    found: dict[_Key, _Found] = {}
    for caller in facts.sidecars():
        if caller.gateway is not None:
            continue
        for service in caller.outbound:
            if service.external is None:
                continue
            for hop in gateway_hops.gateway_hops(facts.model, caller, service):
                problem = _problem(hop.listener, hop.to_gateway, mutual=hop.endpoint.mtls)
                if problem is None:
                    continue
                kind, text = problem
                rule = deciding_rule(hop.to_gateway)
                workload = f"{caller.pod.key.namespace}/{caller.pod.key.workload}"
                resource, where = rule or (f"Workload {workload}", "")
                scope = rule[0] if rule else caller.pod.key.namespace
                gateway = f"{hop.gateway.pod.key.namespace}/{hop.gateway.pod.key.workload}"
                key = (scope, gateway, hop.listener.port, kind)
                entry = found.setdefault(key, _Found(resource, where, hop.to_gateway, kind, text))
                entry.hosts[f"{service.name}:{service.port}"] = None
                entry.callers[workload] = None
    for (_, gateway, port, _), entry in found.items():
        yield finding(
            "MW0526",
            entry.resource,
            at(facts.meta(entry.resource), entry.path),
            f"calls from {', '.join(entry.callers)} for {', '.join(entry.hosts)} go to gateway "
            f"{gateway} port {port} {entry.problem}{_fix(entry, port)}",
        )


def _problem(
    listener: GatewayListener, to_gateway: OutboundService, *, mutual: bool
) -> tuple[_Kind, str] | None:
    """What goes wrong on `listener` for what the sidecar sends (None: a chain takes it)."""
    chains = listener.chains
    terminating = [c for c in chains if gateway_hops.takes_mesh_mtls(c)]
    if not mutual:
        if chains and len(terminating) == len(chains):
            return "plaintext", (
                "in plaintext (auto-mTLS never wraps traffic to a gateway pod), but the "
                "gateway's servers there are ISTIO_MUTUAL"
            )
        return None
    sni = to_gateway.mesh_sni
    if not terminating:
        kinds = ", ".join(dict.fromkeys(_kind(c) for c in chains)) or "none"
        return "unterminated", f"over mesh mTLS, but no server there terminates it ({kinds})"
    if not any(gateway_hops.matches_sni(c, sni) for c in terminating):
        names = sorted({n for c in terminating for n in c.server_names})
        return "sni", (
            f"over mesh mTLS with SNI {sni}, but the gateway's ISTIO_MUTUAL servers there "
            f"match only {', '.join(names)}"
        )
    return None


def _kind(chain: GatewayChain) -> str:
    if chain.kind in ("HTTP", "TCP"):
        return f"plaintext {chain.kind}"
    if chain.kind == "PASSTHROUGH":
        return "PASSTHROUGH"
    return chain.tls.mode if chain.tls is not None else chain.kind


def _fix(entry: _Found, port: int) -> str:
    """The DestinationRule to write (or change), as a sentence after the problem."""
    host = entry.to_gateway.fqdn
    hosts = [h.rsplit(":", 1)[0] for h in entry.hosts]
    if entry.kind == "plaintext":
        return (
            f": write a DestinationRule for {host} with portLevelSettings "
            f"[{{port: {{number: {port}}}, tls: {{mode: ISTIO_MUTUAL, sni: {hosts[0]}}}}}]"
        )
    if entry.kind == "sni":
        return f": set tls.sni for port {port} in {entry.resource} to a host of those servers"
    return (
        f": remove ISTIO_MUTUAL for port {port} from {entry.resource} (the sidecar then sends "
        "what the app sends), or make the Gateway server ISTIO_MUTUAL"
    )
