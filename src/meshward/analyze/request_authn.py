"""Check: end-user authentication that requires nothing — a RequestAuthentication selects a
workload, yet no enforced policy requires a request principal there (MW0550).

Reference: Istio's RequestAuthentication docs ("a request without a token is accepted... to
reject requests without valid tokens, add an authorization policy with a rule specifying a
DENY action for requests without request principals") and istioctl's analyzer notes; the
most common Istio JWT mistake. Called from the check table in analyze/analysis.py. A policy
"requires a principal" when an enforced ALLOW rule names requestPrincipals (or a
request.auth.* condition) in every source it has, or an enforced DENY rule uses
notRequestPrincipals: then at least some requests need a valid token.
"""

from __future__ import annotations

from collections.abc import Iterator

from meshward.analyze.facts import Facts, at, finding
from meshward.diagnostics import Diagnostic
from meshward.model.authorization import AuthzPolicy, AuthzRule
from meshward.model.ir import is_http


def tokens_optional(facts: Facts) -> Iterator[Diagnostic]:
    """MW0550: a workload whose jwt rules no enforced policy ever requires."""
    for proxy in facts.sidecars():
        http = [port for port in proxy.inbound if is_http(port.protocol)]
        if not proxy.jwt_rules or not http:
            continue  # tokens exist on HTTP ports only
        policies = [p for port in http for p in port.authz.policies if not p.dry_run]
        if any(_requires_principal(policy) for policy in policies):
            continue
        key = proxy.pod.key
        issuers = ", ".join(sorted({rule.issuer for rule in proxy.jwt_rules}))
        yield finding(
            "MW0550",
            f"Workload {key.namespace}/{key.workload}",
            at(facts.workload_meta(key)),
            f"tokens from {issuers} are validated but never required: a request without a "
            "token is accepted with no end-user identity",
        )


def _requires_principal(policy: AuthzPolicy) -> bool:
    if policy.action == "ALLOW":
        return any(_names_principal(rule) for rule in policy.rules)
    if policy.action == "DENY":
        return any(
            any(source.not_request_principals for source in rule.sources) for rule in policy.rules
        )
    return False


def _names_principal(rule: AuthzRule) -> bool:
    by_source = bool(rule.sources) and all(s.request_principals for s in rule.sources)
    by_condition = any(c.key.startswith("request.auth.") and c.values for c in rule.conditions)
    return by_source or by_condition
