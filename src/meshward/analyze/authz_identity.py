"""Check: a rule that matches on the caller's identity on a port that accepts plaintext
(MW0514).

Reference: Kiali KIA0105 ("this field requires mTLS to be enabled"); Istio's
AuthorizationPolicy reference: `principals` and `namespaces` "require mutual TLS enabled".
A plaintext caller has no principal and no namespace, so on a PERMISSIVE or DISABLE port an
ALLOW rule naming them denies it (maybe not intended), and a DENY rule naming them lets it
through (a plaintext caller escapes the deny). `notPrincipals` in a DENY is the documented way
to refuse plaintext and is not reported, nor is ALLOW `principals: ["*"]` (mTLS callers
only). Works on the compiled per-port policies of the model, so only rules in force on that
port count. Called from the check table in analyze/analysis.py.
"""

from __future__ import annotations

from collections.abc import Iterator

from meshward.analyze.facts import Facts, at, finding
from meshward.diagnostics import Diagnostic
from meshward.model.authorization import AuthzRule, StringMatch

_IDENTITY_KEYS = ("source.principal", "source.namespace")

_EFFECT = {
    "ALLOW": "plaintext callers have no identity and are denied",
    "DENY": "plaintext callers have no identity and are not denied",
}


def _names_identity(rule: AuthzRule, action: str) -> bool:
    # ALLOW `principals: ["*"]` is Istio's documented "mTLS callers only": refusing plaintext
    # is its purpose, so a presence-only match is not reported for ALLOW.
    def named(matches: tuple[StringMatch, ...]) -> bool:
        return any(m.kind != "presence" or action != "ALLOW" for m in matches)

    return any(named(s.principals) or named(s.namespaces) for s in rule.sources) or any(
        c.key in _IDENTITY_KEYS and c.values for c in rule.conditions
    )


def identity_on_plaintext(facts: Facts) -> Iterator[Diagnostic]:
    """MW0514, once per (policy, rule): the first workload port where it applies."""
    seen: set[tuple[str, int]] = set()
    for proxy in facts.sidecars():
        for port in proxy.inbound:
            if port.mtls == "STRICT":
                continue
            for policy in port.authz.policies:
                if policy.action not in _EFFECT:
                    continue
                for rule in policy.rules:
                    if (policy.ref, rule.index) in seen or not _names_identity(rule, policy.action):
                        continue
                    seen.add((policy.ref, rule.index))
                    ref = f"AuthorizationPolicy {policy.ref}"
                    key = proxy.pod.key
                    yield finding(
                        "MW0514",
                        ref,
                        at(facts.meta(ref), f"spec.rules[{rule.index}]"),
                        f"{policy.action} rule {rule.index} names principals or namespaces, "
                        f"but port {port.port} of {key.namespace}/{key.workload} is "
                        f"{port.mtls}: {_EFFECT[policy.action]}",
                    )
