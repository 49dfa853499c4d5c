"""AuthorizationPolicy compile: the policies in force on one inbound port (`PortAuthz`).

Called by model/proxies.py for every InboundPort of every sidecar, and by model/mesh.py for
the findings (MW0220-MW0224). Semantics copied from Istio (istio.io reference
"Authorization Policy"; pilot `AuthorizationPolicies.ListAuthorizationPolicies`, authz
`builder.go`, `model/model.go`, `model/generator.go`); what is decided here is stated in
model/authorization.py's docstring. In short:

- Selection: a policy applies to a pod in its own namespace (every pod without a selector,
  the matching ones with one); a policy in the root namespace applies likewise to pods in
  every namespace ("If the authorization policy is in the root namespace, the selector will
  additionally match with workloads in all namespaces").
- Order: CUSTOM, DENY, ALLOW, AUDIT, each by (namespace, name); dry-run policies stay in the
  list with `dry_run=True` (they become shadow rules).
- Ports: `to.ports`/`notPorts` and `when destination.port` are decided against the port; an
  operation that cannot match is removed, a rule with `to` whose operations all went, or
  whose destination.port condition excludes the port, is removed.
- TCP: Istio's generator fails on HTTP-only fields when building a TCP filter; for ALLOW the
  error drops the rule (allows less), for the other actions the field is skipped (the rule
  is widened: denies more) — `checkError` in model.go. The same happens here, rule by rule.
- Normalisation: serviceAccounts `ns/sa` (and `when source.serviceAccount`) become exact
  principals `<trust-domain>/ns/<ns>/sa/<sa>` (decision: Istio matches any trust domain
  there; a meshward mesh has one); CIDRs are normalised (`10.0.0.1` → `10.0.0.1/32`, host
  bits cleared); `methods: ["*"]` means any method (Envoy present_match on :method).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from meshward.config.resources import (
    AuthorizationPolicy,
    AuthzCondition,
    AuthzOperation,
    AuthzRuleSpec,
    AuthzSource,
    Labels,
    RequestAuthentication,
    selector_matches,
)
from meshward.diagnostics import Diagnostic
from meshward.model import ir
from meshward.model.authorization import (
    ACTION_ORDER,
    AuthzPolicy,
    AuthzRule,
    Condition,
    ExtAuthz,
    OperationMatch,
    PortAuthz,
    SourceMatch,
    StringMatch,
)
from meshward.model.finding import finding

# `when` keys that only exist on HTTP (Authorization Policy Conditions: "HTTP only").
HTTP_ONLY_KEY_PREFIXES = ("request.headers", "request.auth.")
JWT_KEY_PREFIX = "request.auth."
_IP_KEYS = ("source.ip", "remote.ip", "destination.ip")


@dataclass(frozen=True, slots=True)
class AuthzIndex:
    """The valid policies of the mesh, by (namespace, name), with what compiling needs.
    `providers`: the usable external authorization providers by name (model/extauthz.py);
    `defined`: every provider name MeshConfig defines, usable or not."""

    root_namespace: str
    trust_domain: str
    policies: tuple[AuthorizationPolicy, ...]
    providers: Mapping[str, ExtAuthz] = field(default_factory=dict)
    defined: frozenset[str] = frozenset()


def index(
    policies: Iterable[AuthorizationPolicy],
    root_namespace: str,
    trust_domain: str,
    providers: Mapping[str, ExtAuthz] | None = None,
    defined: Iterable[str] = (),
) -> AuthzIndex:
    ordered = sorted(policies, key=lambda p: (p.meta.namespace, p.meta.name))
    return AuthzIndex(
        root_namespace, trust_domain, tuple(ordered), dict(providers or {}), frozenset(defined)
    )


def applies(
    policy: AuthorizationPolicy | RequestAuthentication,
    root_namespace: str,
    namespace: str,
    labels: Labels,
) -> bool:
    """Istio's selection of one policy for a workload in `namespace` with `labels` (the same
    for RequestAuthentication: pilot getConfigsForWorkload serves both kinds)."""
    if policy.meta.namespace not in (namespace, root_namespace):
        return False
    return policy.selector is None or selector_matches(policy.selector, labels)


def selected(idx: AuthzIndex, namespace: str, labels: Labels) -> tuple[AuthorizationPolicy, ...]:
    """The policies selecting a workload, in evaluation order (action, namespace, name)."""
    found = [p for p in idx.policies if applies(p, idx.root_namespace, namespace, labels)]
    return tuple(sorted(found, key=lambda p: ACTION_ORDER.index(p.action)))


def compile_port(
    idx: AuthzIndex, namespace: str, labels: Labels, port: int, protocol: ir.Protocol
) -> PortAuthz:
    """The PortAuthz of one inbound port of a workload."""
    http = ir.is_http(protocol)
    chosen = selected(idx, namespace, labels)
    return PortAuthz(
        tuple(compile_policy(p, port, http, idx.trust_domain) for p in chosen),
        provider_for(idx, chosen, http=http),
    )


def provider_for(
    idx: AuthzIndex, chosen: Sequence[AuthorizationPolicy], *, http: bool = True
) -> ExtAuthz | None:
    """The provider a workload's CUSTOM policies consult on a port, or None when they fail
    closed: the provider is unknown or unusable, or they name several providers (Istio
    allows one provider per workload and fails all of them closed otherwise, builder.go).
    On a TCP port only a gRPC provider can be asked (Envoy's network ext_authz filter speaks
    gRPC only; Istio builds no TCP filter for an HTTP provider): else CUSTOM fails closed."""
    names = {p.provider for p in chosen if p.action == "CUSTOM"}
    if len(names) != 1:
        return None
    provider = idx.providers.get(names.pop())
    if provider is None or (not http and provider.kind != "grpc"):
        return None
    return provider


def compile_policy(
    policy: AuthorizationPolicy, port: int, http: bool, trust_domain: str
) -> AuthzPolicy:
    rules = (
        compile_rule(spec, i, policy, port, http, trust_domain)
        for i, spec in enumerate(policy.rules)
    )
    return AuthzPolicy(
        namespace=policy.meta.namespace,
        name=policy.meta.name,
        action=policy.action,
        rules=tuple(r for r in rules if r is not None),
        dry_run=policy.dry_run,
        provider=policy.provider,
    )


def compile_rule(
    spec: AuthzRuleSpec,
    index: int,
    policy: AuthorizationPolicy,
    port: int,
    http: bool,
    trust_domain: str,
) -> AuthzRule | None:
    """One rule as it applies to `port`, or None when it cannot match there (or is dropped)."""
    if not http and http_fields(spec):
        if policy.action == "ALLOW":
            return None  # Istio: an ALLOW rule that cannot be built for TCP is skipped
        spec = strip_http(spec)
    if not reachable(spec, port):
        return None
    operations = tuple(op for o in spec.operations if (op := _operation(o, port)) is not None)
    if spec.operations and not operations:
        return None  # `to` was given and no operation of it can match here
    return AuthzRule(
        index=index,
        sources=tuple(_source(s, trust_domain) for s in spec.sources),
        operations=operations,
        conditions=tuple(
            _condition(c, trust_domain) for c in spec.conditions if c.key != "destination.port"
        ),
    )


def http_fields(spec: AuthzRuleSpec) -> tuple[str, ...]:
    """The HTTP-only fields a rule uses, by their YAML names (for findings)."""
    used: list[str] = []
    for source in spec.sources:
        if source.request_principals or source.not_request_principals:
            used.append("requestPrincipals")
    for op in spec.operations:
        for name, values in (
            ("hosts", op.hosts + op.not_hosts),
            ("methods", op.methods + op.not_methods),
            ("paths", op.paths + op.not_paths),
        ):
            if values:
                used.append(name)
    used.extend(c.key for c in spec.conditions if c.key.startswith(HTTP_ONLY_KEY_PREFIXES))
    return tuple(dict.fromkeys(used))


def strip_http(spec: AuthzRuleSpec) -> AuthzRuleSpec:
    """The rule without its HTTP-only fields (a DENY/AUDIT/CUSTOM rule widened for TCP)."""
    return AuthzRuleSpec(
        sources=tuple(
            replace(s, request_principals=(), not_request_principals=()) for s in spec.sources
        ),
        operations=tuple(
            AuthzOperation(ports=o.ports, not_ports=o.not_ports) for o in spec.operations
        ),
        conditions=tuple(
            c for c in spec.conditions if not c.key.startswith(HTTP_ONLY_KEY_PREFIXES)
        ),
    )


def reachable(spec: AuthzRuleSpec, port: int) -> bool:
    """False when the rule's ports or destination.port condition exclude `port`."""
    if spec.operations and not any(_port_ok(o, port) for o in spec.operations):
        return False
    for cond in spec.conditions:
        if cond.key == "destination.port":
            if cond.values and port not in {int(v) for v in cond.values}:
                return False
            if port in {int(v) for v in cond.not_values}:
                return False
    return True


def _port_ok(op: AuthzOperation, port: int) -> bool:
    return (not op.ports or port in op.ports) and port not in op.not_ports


def string_match(value: str) -> StringMatch:
    """Istio string matching: "*" presence, "x*" prefix, "*x" suffix, else exact."""
    if value == "*":
        return StringMatch("presence")
    if value.startswith("*"):
        return StringMatch("suffix", value[1:])
    if value.endswith("*"):
        return StringMatch("prefix", value[:-1])
    return StringMatch("exact", value)


def path_match(value: str) -> StringMatch:
    if "{*}" in value or "{**}" in value:
        return StringMatch("template", value)
    return string_match(value)


def cidr(value: str) -> str:
    """A bare IP becomes /32 or /128; host bits are cleared (Envoy CidrRange does the same)."""
    return str(ipaddress.ip_network(value, strict=False))


def service_account_principal(value: str, trust_domain: str) -> str:
    namespace, _, name = value.partition("/")
    return f"{trust_domain}/ns/{namespace}/sa/{name}"


def _matches(values: Sequence[str]) -> tuple[StringMatch, ...]:
    return tuple(string_match(v) for v in values)


def _source(source: AuthzSource, trust_domain: str) -> SourceMatch:
    accounts = tuple(
        StringMatch("exact", service_account_principal(v, trust_domain))
        for v in source.service_accounts
    )
    not_accounts = tuple(
        StringMatch("exact", service_account_principal(v, trust_domain))
        for v in source.not_service_accounts
    )
    return SourceMatch(
        principals=_matches(source.principals) + accounts,
        not_principals=_matches(source.not_principals) + not_accounts,
        request_principals=_matches(source.request_principals),
        not_request_principals=_matches(source.not_request_principals),
        namespaces=_matches(source.namespaces),
        not_namespaces=_matches(source.not_namespaces),
        ip_blocks=tuple(cidr(v) for v in source.ip_blocks),
        not_ip_blocks=tuple(cidr(v) for v in source.not_ip_blocks),
        remote_ip_blocks=tuple(cidr(v) for v in source.remote_ip_blocks),
        not_remote_ip_blocks=tuple(cidr(v) for v in source.not_remote_ip_blocks),
    )


def _operation(op: AuthzOperation, port: int) -> OperationMatch | None:
    """The operation for `port`, or None when it cannot match there."""
    if not _port_ok(op, port) or "*" in op.not_methods:
        return None  # notMethods ["*"] excludes every HTTP request
    return OperationMatch(
        hosts=_matches(op.hosts),
        not_hosts=_matches(op.not_hosts),
        methods=() if "*" in op.methods else op.methods,
        not_methods=op.not_methods,
        paths=tuple(path_match(v) for v in op.paths),
        not_paths=tuple(path_match(v) for v in op.not_paths),
    )


def _condition(cond: AuthzCondition, trust_domain: str) -> Condition:
    if cond.key in _IP_KEYS:
        return Condition(
            cond.key, tuple(cidr(v) for v in cond.values), tuple(cidr(v) for v in cond.not_values)
        )
    if cond.key == "source.serviceAccount":
        return Condition(
            "source.principal",
            tuple(service_account_principal(v, trust_domain) for v in cond.values),
            tuple(service_account_principal(v, trust_domain) for v in cond.not_values),
        )
    return Condition(cond.key, cond.values, cond.not_values)


# --- findings ------------------------------------------------------------------------------


def diagnose(
    idx: AuthzIndex,
    pods: Iterable[ir.Pod],
    request_authns: Sequence[RequestAuthentication] = (),
) -> tuple[Diagnostic, ...]:
    """MW0220-MW0224 for the policies of `idx` against the sidecar pods."""
    sidecars = [p for p in pods if p.has_sidecar]
    found: list[Diagnostic] = []
    for policy in idx.policies:
        targets = [
            pod
            for pod in sidecars
            if applies(policy, idx.root_namespace, pod.key.namespace, pod.labels)
        ]
        if policy.selector is not None and not targets:
            scope = (
                "in any namespace"
                if policy.meta.namespace == idx.root_namespace
                else f"in namespace {policy.meta.namespace}"
            )
            found.append(
                finding(
                    "MW0220",
                    policy.meta,
                    "spec.selector",
                    f"selector {dict(policy.selector)} matches no workload with a sidecar {scope}",
                )
            )
        if policy.action == "CUSTOM":
            found.extend(_custom_findings(idx, policy, targets))
        unauthenticated = [
            str(pod.key)
            for pod in targets
            if not any(
                applies(r, idx.root_namespace, pod.key.namespace, pod.labels)
                for r in request_authns
            )
        ]
        if unauthenticated and any(_uses_jwt(rule) for rule in policy.rules):
            found.append(
                finding(
                    "MW0224",
                    policy.meta,
                    "spec.rules",
                    "requestPrincipals and request.auth.* need a RequestAuthentication; none "
                    f"selects {', '.join(unauthenticated)}: requests there carry no JWT "
                    "principal, so these never match (and their not* forms always do)",
                )
            )
        found.extend(_tcp_findings(policy, targets))
    return tuple(found)


def _custom_findings(
    idx: AuthzIndex, policy: AuthorizationPolicy, targets: Sequence[ir.Pod]
) -> list[Diagnostic]:
    """MW0270 (provider not defined), MW0273 (several providers on one workload), MW0223
    (TCP ports without a gRPC provider, where CUSTOM fails closed). An unusable defined
    provider is reported once, against MeshConfig (model/extauthz.py)."""
    found: list[Diagnostic] = []
    if policy.provider not in idx.defined:
        known = ", ".join(sorted(idx.defined)) or "none"
        found.append(
            finding(
                "MW0270",
                policy.meta,
                "spec.provider.name",
                f"provider {policy.provider!r} is not in MeshConfig extensionProviders "
                f"(defined: {known}); requests matching its rules are denied",
            )
        )
    for pod in targets:
        chosen = selected(idx, pod.key.namespace, pod.labels)
        names = sorted({p.provider for p in chosen if p.action == "CUSTOM"})
        if len(names) > 1:
            found.append(
                finding(
                    "MW0273",
                    policy.meta,
                    "spec.provider.name",
                    f"workload {pod.key.pod_name} has CUSTOM policies naming providers "
                    f"{', '.join(names)}; only one provider per workload can be consulted, "
                    "so all of them deny the requests they match",
                )
            )
            break
    tcp_ports = sorted(
        {
            port.port
            for pod in targets
            for port in pod.ports
            if not ir.is_http(port.protocol) and port.port not in ir.RESERVED_PORTS
        }
    )
    provider = idx.providers.get(policy.provider)
    if provider is not None and provider.kind == "grpc":
        tcp_ports = []  # the network ext_authz filter asks a gRPC provider on TCP ports too
    if tcp_ports and any(
        reachable(strip_http(rule), port) for rule in policy.rules for port in tcp_ports
    ):
        found.append(
            finding(
                "MW0223",
                policy.meta,
                "spec.provider",
                f"on TCP port(s) {', '.join(map(str, tcp_ports))} provider "
                f"{policy.provider!r} cannot be asked (only an envoyExtAuthzGrpc provider can, "
                "on TCP): connections matching its rules are refused; name the HTTP ports in "
                "`to.ports` to avoid this",
            )
        )
    return found


def _uses_jwt(rule: AuthzRuleSpec) -> bool:
    return any(s.request_principals or s.not_request_principals for s in rule.sources) or any(
        c.key.startswith(JWT_KEY_PREFIX) for c in rule.conditions
    )


def _tcp_findings(policy: AuthorizationPolicy, targets: Sequence[ir.Pod]) -> list[Diagnostic]:
    tcp_ports = sorted(
        {
            port.port
            for pod in targets
            for port in pod.ports
            if not ir.is_http(port.protocol) and port.port not in ir.RESERVED_PORTS
        }
    )
    found = []
    for index, rule in enumerate(policy.rules):
        fields = http_fields(rule)
        if not fields:
            continue
        for port in tcp_ports:
            if not reachable(rule if policy.action == "ALLOW" else strip_http(rule), port):
                continue
            used = ", ".join(fields)
            if policy.action == "ALLOW":
                code = "MW0221"
                message = (
                    f"rule[{index}] uses HTTP-only fields ({used}); on TCP port {port} it is "
                    "dropped, so it allows nothing there"
                )
            else:
                code = "MW0222"
                sources = "those sources" if rule.sources else "every source"
                message = (
                    f"rule[{index}] uses HTTP-only fields ({used}); on TCP port {port} they "
                    f"are ignored, so it now applies to all TCP traffic from {sources} "
                    f"({policy.action}); name the HTTP ports in `to.ports` to avoid this"
                )
            found.append(finding(code, policy.meta, f"spec.rules[{index}]", message))
    return found
