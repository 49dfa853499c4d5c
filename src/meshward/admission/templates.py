"""The built-in admission templates: one pure function per template, in one table.

Called by `meshward.admission.review`. A template looks at the candidate config set (and,
for RequireDryRunFirst, the running one) and returns the resources that violate one
AdmissionPolicy; it knows nothing of enforcement, exemptions or diagnostics. Adding a
template is one function and one table row (plus its kind parameters in
config/admission_policy.py). Semantics: docs/admission.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from meshward.config.resources import (
    AdmissionPolicy,
    AdmissionTemplate,
    AuthorizationPolicy,
    AuthzOperation,
    AuthzRuleSpec,
    AuthzSource,
    ConfigSet,
    Meta,
)


@dataclass(frozen=True, slots=True)
class Violation:
    """One resource breaking one policy: where (`field`), what is wrong, how to fix it."""

    meta: Meta
    field: str
    problem: str
    fix: str


Template = Callable[[AdmissionPolicy, ConfigSet, ConfigSet | None], tuple[Violation, ...]]

# PeerAuthentication modes that accept plaintext (istio.io PeerAuthentication reference).
_WEAK_MTLS = ("PERMISSIVE", "DISABLE")


def applies(policy: AdmissionPolicy, namespace: str) -> bool:
    """Gatekeeper `match.namespaces` / `excludedNamespaces`: exclusion wins; empty = all."""
    if namespace in policy.excluded_namespaces:
        return False
    return not policy.namespaces or namespace in policy.namespaces


def require_strict_mtls(
    policy: AdmissionPolicy, config: ConfigSet, previous: ConfigSet | None
) -> tuple[Violation, ...]:
    del previous
    fix = "set mtls.mode STRICT (or add an approved exception)"
    found: list[Violation] = []
    for peer in config.peer_authentications:
        if not applies(policy, peer.meta.namespace):
            continue
        if peer.mode in _WEAK_MTLS:
            found.append(Violation(peer.meta, "spec.mtls.mode", f"mtls mode {peer.mode}", fix))
        for port, mode in peer.port_level:
            if mode in _WEAK_MTLS:
                field = f"spec.portLevelMtls.{port}.mode"
                found.append(Violation(peer.meta, field, f"port {port} mtls mode {mode}", fix))
    tls_fix = "use tls mode ISTIO_MUTUAL or drop trafficPolicy.tls (auto mTLS)"
    for rule in config.destination_rules:
        if not applies(policy, rule.meta.namespace):
            continue
        if rule.tls_mode == "DISABLE":
            field = "spec.trafficPolicy.tls.mode"
            found.append(Violation(rule.meta, field, "client TLS mode DISABLE", tls_fix))
        for port, client_mode in rule.port_level:
            if client_mode == "DISABLE":
                field = "spec.trafficPolicy.portLevelSettings"
                problem = f"port {port} client TLS mode DISABLE"
                found.append(Violation(rule.meta, field, problem, tls_fix))
    if policy.require_mesh_wide_strict and not _mesh_wide_strict(config):
        root = config.mesh.root_namespace
        problem = f"no mesh-wide STRICT PeerAuthentication in {root} (the default is PERMISSIVE)"
        fix = f"add a PeerAuthentication without selector in {root} with mtls.mode STRICT"
        found.append(Violation(policy.meta, "spec.parameters.requireMeshWideStrict", problem, fix))
    return tuple(found)


def _mesh_wide_strict(config: ConfigSet) -> bool:
    root = config.mesh.root_namespace
    return any(
        p.meta.namespace == root and not p.selector and p.mode == "STRICT"
        for p in config.peer_authentications
    )


def authorized_commands(
    policy: AdmissionPolicy, config: ConfigSet, previous: ConfigSet | None
) -> tuple[Violation, ...]:
    del previous
    allowed = ", ".join(policy.commands)
    return tuple(
        Violation(
            workload.meta,
            "spec.command",
            f"command {workload.command[0] if workload.command else ''!r} is not authorized",
            f"run one of the authorized commands ({allowed}) or have the policy amended",
        )
        for workload in config.workloads
        # A gateway pod runs meshward's Envoy and no command of the user's.
        if applies(policy, workload.meta.namespace)
        and not workload.gateway
        and not _authorized(workload.command[:1], policy.commands)
    )


def _authorized(argv0: tuple[str, ...], allowed: tuple[str, ...]) -> bool:
    if not argv0:
        return False
    command = argv0[0]
    return any(
        command.startswith(entry[:-1]) if entry.endswith("*") else command == entry
        for entry in allowed
    )


def authorized_exceptions(
    policy: AdmissionPolicy, config: ConfigSet, previous: ConfigSet | None
) -> tuple[Violation, ...]:
    del previous
    by_ref = {meta.ref: meta for meta in _metas(config)}
    found: list[Violation] = []
    approvers = ", ".join(policy.approvers)
    for claim in config.exceptions:
        meta = by_ref.get(claim.resource)
        if meta is None or not applies(policy, meta.namespace):
            continue
        if not claim.reason:
            problem, field = "exception approval without a reason", "meshward.io/exception"
        elif claim.approved_by not in policy.approvers:
            who = claim.approved_by or "nobody"
            problem, field = f"exception approved by {who}", "meshward.io/exception-approved-by"
        else:
            continue
        fix = f"annotate both meshward.io/exception and -approved-by one of: {approvers}"
        found.append(Violation(meta, f"metadata.annotations.{field}", problem, fix))
    return tuple(found)


def _metas(config: ConfigSet) -> tuple[Meta, ...]:
    groups = (
        config.services,
        config.workloads,
        config.peer_authentications,
        config.destination_rules,
        config.authorization_policies,
        config.admission_policies,
    )
    mesh = (config.mesh.meta,) if config.mesh.meta is not None else ()
    return (*(r.meta for group in groups for r in group), *mesh)


def refuse_allow_all(
    policy: AdmissionPolicy, config: ConfigSet, previous: ConfigSet | None
) -> tuple[Violation, ...]:
    del previous
    found: list[Violation] = []
    for authz in config.authorization_policies:
        if authz.action != "ALLOW" or authz.dry_run or not applies(policy, authz.meta.namespace):
            continue
        for index, rule in enumerate(authz.rules):
            if _matches_everything(rule):
                problem = "a rule that matches every request (allow-all)"
                fix = "name the sources (principals, namespaces) and operations to allow"
                found.append(Violation(authz.meta, f"spec.rules[{index}]", problem, fix))
    return tuple(found)


def _matches_everything(rule: AuthzRuleSpec) -> bool:
    """`rules: [{}]`, or from/to whose every field is a `*` (presence) match (Istio: an
    absent clause matches everything; `*` matches any non-empty value)."""
    if rule.conditions:
        return False
    return all(_source_open(s) for s in rule.sources) and all(
        _operation_open(o) for o in rule.operations
    )


def _source_open(source: AuthzSource) -> bool:
    negative = (
        source.not_principals,
        source.not_request_principals,
        source.not_namespaces,
        source.not_service_accounts,
        source.not_ip_blocks,
        source.not_remote_ip_blocks,
    )
    positive = (
        source.principals,
        source.request_principals,
        source.namespaces,
        source.service_accounts,
        source.ip_blocks,
        source.remote_ip_blocks,
    )
    wild = ("*", "0.0.0.0/0", "::/0")
    return not any(negative) and all(not v or any(w in v for w in wild) for v in positive)


def _operation_open(operation: AuthzOperation) -> bool:
    negative = (
        operation.not_hosts,
        operation.not_ports,
        operation.not_methods,
        operation.not_paths,
    )
    positive = (operation.hosts, operation.methods, operation.paths)
    return not any(negative) and not operation.ports and all(not v or "*" in v for v in positive)


def require_dry_run_first(
    policy: AdmissionPolicy, config: ConfigSet, previous: ConfigSet | None
) -> tuple[Violation, ...]:
    if previous is None and policy.exempt_on_first_up:
        return ()
    running = {
        (p.meta.namespace, p.meta.name): p
        for p in (previous.authorization_policies if previous else ())
    }
    found: list[Violation] = []
    for authz in config.authorization_policies:
        if authz.action not in ("ALLOW", "DENY") or authz.dry_run:
            continue
        if not applies(policy, authz.meta.namespace):
            continue
        before = running.get((authz.meta.namespace, authz.meta.name))
        # Same rules already running (enforced: unchanged; dry-run: this is the promotion).
        if before is not None and _same_rules(before, authz):
            continue
        problem = "enforced without having run in dry-run first"
        fix = 'apply it with annotation istio.io/dry-run: "true" first, check, then enforce'
        found.append(Violation(authz.meta, "metadata.annotations", problem, fix))
    return tuple(found)


def _same_rules(a: AuthorizationPolicy, b: AuthorizationPolicy) -> bool:
    return (a.selector, a.action, a.provider, a.rules) == (
        b.selector,
        b.action,
        b.provider,
        b.rules,
    )


TEMPLATES: dict[AdmissionTemplate, tuple[str, Template]] = {
    # template: (code, check). Codes are catalogued in diagnostics/catalog.py (MW06xx).
    "RequireStrictMtls": ("MW0601", require_strict_mtls),
    "AuthorizedCommands": ("MW0602", authorized_commands),
    "AuthorizedExceptions": ("MW0603", authorized_exceptions),
    "RefuseAllowAll": ("MW0604", refuse_allow_all),
    "RequireDryRunFirst": ("MW0605", require_dry_run_first),
}
