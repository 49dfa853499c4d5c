"""Upstream TLS: which DestinationRule a caller uses for a service port, and what it decides.

Called by model/proxies.py for every (calling proxy, service port), through `Upstreams`, the
per-build memo that makes the work per service port rather than per (caller, service port).
Semantics follow Istio
(istio.io reference "Destination Rule"; pilot `PushContext.destinationRule` and
`SidecarScope.DestinationRule`):

- Lookup order: the caller's namespace, then the service's namespace, then the root
  namespace; the first namespace holding a rule for the host decides.
- Within a namespace the most specific host wins: an exact host before any wildcard, a
  longer wildcard (`*.ns.svc.cluster.local`) before a shorter one (`*`). Among rules for the
  same host, one whose `workloadSelector` matches the caller beats a rule without selector;
  then the oldest wins (Istio merges them and keeps the first one's traffic policy).
- `workloadSelector` only applies to callers in the rule's own namespace.
- `portLevelSettings[].tls` for the service port overrides `trafficPolicy.tls`. No TLS set at
  all is auto-mTLS: Istio mTLS to endpoints that have a sidecar and do not DISABLE it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from meshward.config.resources import DestinationRule, Labels, selector_matches
from meshward.diagnostics import Diagnostic
from meshward.model import ir, peer_authn
from meshward.model.finding import finding

AUTO_SOURCE = "auto-mTLS"


@dataclass(frozen=True, slots=True)
class TlsDecision:
    tls: ir.UpstreamTls
    source: str
    sni: str = ""  # ISTIO_MUTUAL's `sni` when the rule gives one


def resolve_host(host: str, namespace: str) -> str:
    """The host a rule in `namespace` means: short names resolve against the rule namespace."""
    if host.startswith("*"):
        return host
    parts = host.split(".")
    if len(parts) == 1:  # "name"
        return f"{host}.{namespace}.{ir.DNS_SUFFIX}"
    if len(parts) == 2:  # "name.ns"
        return f"{host}.{ir.DNS_SUFFIX}"
    if len(parts) == 3 and parts[2] == "svc":  # "name.ns.svc"
        return f"{host}.cluster.local"
    return host


def host_matches(host: str, fqdn: str) -> bool:
    """True if the resolved rule `host` (exact or wildcard) covers service `fqdn`."""
    if host == "*":
        return True
    if host.startswith("*."):
        return fqdn.endswith(host[1:])
    return host == fqdn


def covers(rule: DestinationRule, fqdn: str) -> bool:
    """Does `rule`'s host name service `fqdn`? A dotted host is also taken as written:
    `bank.example` is a ServiceEntry host (Istio expands only dot-less names), while
    `name.ns` is a Service's short form."""
    return host_matches(resolve_host(rule.host, rule.meta.namespace), fqdn) or rule.host == fqdn


def _specificity(host: str) -> tuple[int, int]:
    # An exact host is more specific than every wildcard; longer wildcards are narrower.
    return (0 if host.startswith("*") else 1, len(host))


def _has_selector(rule: DestinationRule) -> bool:
    return bool(rule.workload_selector)


def applies_to(rule: DestinationRule, namespace: str, labels: Labels) -> bool:
    """True if `rule` may be used by a caller in `namespace` with `labels`."""
    if not _has_selector(rule):
        return True
    return rule.meta.namespace == namespace and selector_matches(
        rule.workload_selector or (), labels
    )


def rule_for(
    rules: Sequence[DestinationRule],
    *,
    caller_namespace: str,
    caller_labels: Labels,
    service_namespace: str,
    fqdn: str,
    root_namespace: str,
) -> DestinationRule | None:
    """The DestinationRule a caller uses for service `fqdn`, or None."""
    namespaces = dict.fromkeys((caller_namespace, service_namespace, root_namespace))
    for namespace in namespaces:
        candidates = [
            r
            for r in rules
            if r.meta.namespace == namespace
            and applies_to(r, caller_namespace, caller_labels)
            and covers(r, fqdn)
        ]
        if candidates:
            return min(
                candidates,
                key=lambda r: (
                    tuple(-n for n in _specificity(resolve_host(r.host, r.meta.namespace))),
                    0 if _has_selector(r) else 1,
                    r.meta.order,
                ),
            )
    return None


def decide(rule: DestinationRule | None, port: int) -> TlsDecision:
    """The TLS setting `rule` gives service port `port`."""
    if rule is None:
        return TlsDecision("AUTO", AUTO_SOURCE)
    source = f"DestinationRule {rule.meta.namespace}/{rule.meta.name}"
    port_mode = dict(rule.port_level).get(port)
    if port_mode is not None:
        return TlsDecision(
            port_mode, f"{source} (port {port})", dict(rule.port_mtls_sni).get(port, "")
        )
    if rule.tls_mode is not None:
        return TlsDecision(rule.tls_mode, source, rule.mtls_sni)
    return TlsDecision("AUTO", AUTO_SOURCE)


def endpoint_mtls(tls: ir.UpstreamTls, sidecar: bool, inbound: ir.EffectiveMtls) -> bool:
    """Whether to originate Istio mTLS to one endpoint (`inbound`: its mode on that port)."""
    if tls == "AUTO":
        # Istio auto-mTLS: only endpoints with a sidecar that accepts mTLS on the port. A
        # gateway pod (`sidecar` False here) has no inbound PeerAuthentication: its Gateway
        # servers say what they accept, so mTLS to one is asked for (ISTIO_MUTUAL), as in Istio.
        return sidecar and inbound != "DISABLE"
    return tls == "ISTIO_MUTUAL"


CallerClass = tuple[str, tuple[int, ...]]
"""What DestinationRule lookup knows of a caller: its namespace, and which rules with a
`workloadSelector` select it (indices into `Upstreams`' selector rules)."""


class Upstreams:
    """What every caller shares about the mesh's service ports, computed once per model build.

    Created by model/proxies.py for one build. A service port's endpoints and their TLS depend
    on the caller only through the DestinationRule it uses (the TLS setting), and the
    destination's inbound mode only on the destination pod port: so endpoints are built once
    per (service, target port, TLS setting), each pod port's PeerAuthentication decision once,
    and rule lookup depends on the caller only through its `CallerClass`. Every memo returns
    the same frozen object for equal inputs, so callers share them (1000 sidecars seeing 500
    services hold 500 endpoint tuples, not 500,000).
    """

    def __init__(
        self,
        pods: Mapping[ir.PodKey, ir.Pod],
        pa: peer_authn.PeerAuthnIndex,
        rules: Sequence[DestinationRule],
    ) -> None:
        self.pods = pods
        self.pa = pa
        self.rules = tuple(rules)
        self._selector_rules = tuple(r for r in self.rules if _has_selector(r))
        self._modes: dict[tuple[ir.PodKey, int], peer_authn.Decision] = {}
        self._endpoints: dict[
            tuple[str, str, int, ir.UpstreamTls], tuple[ir.UpstreamEndpoint, ...]
        ] = {}
        self._sans: dict[tuple[str, str], tuple[str, ...]] = {}

    def caller_class(self, caller: ir.Pod) -> CallerClass:
        """The caller's namespace and the selector rules that may apply to it (`applies_to`):
        callers of one class get the same rule for every service."""
        namespace = caller.key.namespace
        return (
            namespace,
            tuple(
                i
                for i, rule in enumerate(self._selector_rules)
                if applies_to(rule, namespace, caller.labels)
            ),
        )

    def rule_for(
        self, caller: ir.Pod, service: ir.Service | ir.OutboundService
    ) -> DestinationRule | None:
        """`rule_for` for one caller and service — a mesh Service, or a ServiceEntry port
        (its host is its fqdn) — (module function; not memoised here: the caller memoises
        per `CallerClass`)."""
        return rule_for(
            self.rules,
            caller_namespace=caller.key.namespace,
            caller_labels=caller.labels,
            service_namespace=service.namespace,
            fqdn=service.fqdn,
            root_namespace=self.pa.root_namespace,
        )

    def inbound_mode(self, pod: ir.Pod, port: int) -> peer_authn.Decision:
        """`peer_authn.decide` for one pod port, decided once per build."""
        key = (pod.key, port)
        decision = self._modes.get(key)
        if decision is None:
            decision = peer_authn.decide(self.pa, pod.key.namespace, pod.labels, port)
            self._modes[key] = decision
        return decision

    def endpoints(
        self, service: ir.Service, port: ir.ServicePort, tls: ir.UpstreamTls
    ) -> tuple[ir.UpstreamEndpoint, ...]:
        """The endpoints of `service:port` with each one's mTLS decision under `tls`."""
        key = (service.namespace, service.name, port.target_port, tls)
        found = self._endpoints.get(key)
        if found is None:
            found = tuple(
                ir.UpstreamEndpoint(
                    address=pod.address.pod_ip,
                    port=port.target_port,
                    pod=pod_key,
                    mtls=endpoint_mtls(
                        tls,
                        pod.has_sidecar and not pod.gateway,
                        self.inbound_mode(pod, port.target_port).mode,
                    ),
                )
                for pod_key in service.pods
                for pod in (self.pods[pod_key],)
            )
            self._endpoints[key] = found
        return found

    def subject_alt_names(self, service: ir.Service) -> tuple[str, ...]:
        """The SPIFFE URIs of the sidecar pods behind `service`, sorted and deduplicated."""
        key = (service.namespace, service.name)
        found = self._sans.get(key)
        if found is None:
            identities = (self.pods[k].identity for k in service.pods)
            found = tuple(sorted({i.uri for i in identities if i is not None}))
            self._sans[key] = found
        return found


def diagnose(
    rules: Iterable[DestinationRule],
    services: Iterable[ir.Service],
    pods: Iterable[ir.Pod],
    external_hosts: Iterable[str] = (),
) -> tuple[Diagnostic, ...]:
    """MW0203/MW0204/MW0208 findings for `rules`; `external_hosts`: ServiceEntry hosts,
    which a rule may name as well."""
    fqdns = [s.fqdn for s in services] + list(external_hosts)
    sidecars = [p for p in pods if p.has_sidecar]
    ordered = sorted(rules, key=lambda r: r.meta.order)
    found: list[Diagnostic] = []
    first: dict[tuple[str, str, Labels], DestinationRule] = {}
    for rule in ordered:
        host = resolve_host(rule.host, rule.meta.namespace)
        if not any(covers(rule, fqdn) for fqdn in fqdns):
            found.append(
                finding("MW0203", rule.meta, "spec.host", f"host {host} matches no service")
            )
        selector = rule.workload_selector or ()
        if selector and not any(
            p.key.namespace == rule.meta.namespace and selector_matches(selector, p.labels)
            for p in sidecars
        ):
            found.append(
                finding(
                    "MW0204",
                    rule.meta,
                    "spec.workloadSelector",
                    f"workloadSelector {dict(selector)} matches no workload with a sidecar "
                    f"in namespace {rule.meta.namespace}",
                )
            )
        winner = first.setdefault((rule.meta.namespace, host, selector), rule)
        if winner is not rule:
            found.append(
                finding(
                    "MW0208",
                    rule.meta,
                    "spec.host",
                    f"{winner.meta.ref} is older and has the same host {host} and callers; "
                    "its traffic policy is used",
                )
            )
    return tuple(found)
