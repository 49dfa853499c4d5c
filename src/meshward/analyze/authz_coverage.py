"""Check: authorization coverage — workloads no ALLOW policy covers, namespaces without a
default deny (MW0510, MW0511).

Reference: Kiali KIA1301 ("this workload is not covered by any authorization policy") and
Istio's security best practice "default-deny authorization" (an `allow-nothing` policy,
`spec: {}`, in every namespace or the root namespace). Called from the check table in
analyze/analysis.py. Dry-run policies do not count: they are recorded, never enforced.
"""

from __future__ import annotations

from collections.abc import Iterator

from meshward.analyze.facts import Facts, at, finding
from meshward.config.resources import AuthorizationPolicy, AuthzRuleSpec
from meshward.diagnostics import Diagnostic


def uncovered_workloads(facts: Facts) -> Iterator[Diagnostic]:
    """MW0510: a sidecar workload with ports, none of them under an enforced ALLOW policy."""
    for proxy in facts.sidecars():
        if not proxy.inbound:
            continue
        if any(port.authz.of("ALLOW") for port in proxy.inbound):
            continue
        key = proxy.pod.key
        yield finding(
            "MW0510",
            f"Workload {key.namespace}/{key.workload}",
            at(facts.workload_meta(key)),
            "no enforced ALLOW AuthorizationPolicy selects this workload: any caller its "
            "mTLS mode admits is allowed unless a DENY rule matches",
        )


def is_default_deny(policy: AuthorizationPolicy) -> bool:
    """Istio's two deny-all forms: ALLOW with no rules (allow-nothing), or DENY with an empty
    rule (`rules: [{}]`, matches every request); namespace-wide and enforced."""
    if policy.dry_run or policy.selector:
        return False
    if policy.action == "ALLOW":
        return not policy.rules
    return policy.action == "DENY" and AuthzRuleSpec() in policy.rules


def namespaces_without_default_deny(facts: Facts) -> Iterator[Diagnostic]:
    """MW0511: one finding per namespace with sidecar workloads and no deny-all policy in it
    or in the root namespace (pointing at the namespace's first workload)."""
    root = facts.config.mesh.root_namespace
    denying = {p.meta.namespace for p in facts.config.authorization_policies if is_default_deny(p)}
    if root in denying:
        return
    first: dict[str, str] = {}
    for workload in sorted(facts.config.workloads, key=lambda w: w.meta.order):
        if workload.sidecar:
            first.setdefault(workload.meta.namespace, workload.meta.ref)
    for namespace, ref in sorted(first.items()):
        if namespace in denying:
            continue
        yield finding(
            "MW0511",
            f"Namespace {namespace}",
            at(facts.meta(ref)),
            f"namespace {namespace} has no allow-nothing (default deny) AuthorizationPolicy",
        )
