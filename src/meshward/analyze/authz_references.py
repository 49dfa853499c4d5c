"""Check: AuthorizationPolicy sources naming a namespace, principal or service account that no
sidecar workload has (MW0512, MW0513).

Reference: Kiali KIA0101 ("namespace not found for this rule") and KIA0106 ("service account
not found for this rule"). Only identities that could exist are checked: principals in the
mesh's trust domain, without wildcards (Istio matches `*`, `prefix*`, `*suffix`). A rule
naming a missing identity matches no caller — a typo that silently denies (ALLOW) or never
denies (DENY). Called from the check table in analyze/analysis.py.
"""

from __future__ import annotations

from collections.abc import Iterator

from meshward.analyze.facts import Facts, at, finding
from meshward.config.resources import AuthorizationPolicy
from meshward.diagnostics import Diagnostic

_NAMESPACE_FIELDS = ("namespaces", "not_namespaces")
_PRINCIPAL_FIELDS = ("principals", "not_principals")
_ACCOUNT_FIELDS = ("service_accounts", "not_service_accounts")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def principal_identity(principal: str, trust_domain: str) -> tuple[str, str] | None:
    """(namespace, service account) of `<td>/ns/<ns>/sa/<sa>` in `trust_domain`, else None
    (a wildcard, or another trust domain: not ours to check)."""
    parts = principal.split("/")
    if "*" in principal or len(parts) != 5 or parts[1] != "ns" or parts[3] != "sa":
        return None
    return (parts[2], parts[4]) if parts[0] == trust_domain else None


def unknown_references(facts: Facts) -> Iterator[Diagnostic]:
    """MW0512/MW0513 for every policy, rule and source, once per (field, value)."""
    sidecars = [w for w in facts.config.workloads if w.sidecar]
    namespaces = {w.meta.namespace for w in sidecars}
    accounts = {(w.meta.namespace, w.service_account) for w in sidecars}
    for policy in facts.config.authorization_policies:
        yield from _policy(facts, policy, namespaces, accounts)


def _policy(
    facts: Facts,
    policy: AuthorizationPolicy,
    namespaces: set[str],
    accounts: set[tuple[str, str]],
) -> Iterator[Diagnostic]:
    trust_domain = facts.config.mesh.trust_domain
    for r, rule in enumerate(policy.rules):
        for s, source in enumerate(rule.sources):
            base = f"spec.rules[{r}].from[{s}].source"
            for name in _NAMESPACE_FIELDS:
                for value in getattr(source, name):
                    if "*" not in value and value not in namespaces:
                        yield finding(
                            "MW0512",
                            policy.meta.ref,
                            at(policy.meta, f"{base}.{_camel(name)}"),
                            f"namespace {value} has no workload with a sidecar",
                        )
            for name in _PRINCIPAL_FIELDS:
                for value in getattr(source, name):
                    identity = principal_identity(value, trust_domain)
                    if identity is not None and identity not in accounts:
                        yield finding(
                            "MW0513",
                            policy.meta.ref,
                            at(policy.meta, f"{base}.{_camel(name)}"),
                            f"principal {value}: no sidecar workload runs as it",
                        )
            for name in _ACCOUNT_FIELDS:
                for value in getattr(source, name):
                    namespace, _, account = value.partition("/")
                    if "*" not in value and (namespace, account) not in accounts:
                        yield finding(
                            "MW0513",
                            policy.meta.ref,
                            at(policy.meta, f"{base}.{_camel(name)}"),
                            f"service account {value}: no sidecar workload runs as it",
                        )
