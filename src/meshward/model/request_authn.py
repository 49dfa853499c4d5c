"""RequestAuthentication compile: the JWT rules in force for one sidecar (`JwtRule`s).

Called by model/proxies.py for every sidecar pod (ProxyModel.jwt_rules) and by model/mesh.py
for the findings (MW0250-MW0251). Semantics copied from Istio (RequestAuthentication
reference; pilot `model/authentication.go` getConfigsForWorkload, `security/authn`
policy_applier.go):

- Selection is AuthorizationPolicy's: a policy applies to the pods of its own namespace
  (all of them without a selector, the matching ones with one); a policy in the root
  namespace applies likewise to pods in every namespace.
- Every policy that selects a pod contributes all its jwtRules: Istio *merges* them (no
  precedence, unlike PeerAuthentication), oldest policy first, rules in written order.
- A token that is present must be valid for one of the rules (else 401); a request without
  a token passes with no identity. That is Envoy's `requires_any [rule..., allow_missing]`,
  built by xds/jwt_authn.py from these values.

The key set of a rule is decided here only when it is inline (`jwks`); for `jwksUri` or OIDC
discovery (neither given) `jwks` stays "" and the control plane fills it from its fetched
cache (jwks/), so the model stays pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshward.config.resources import JwtRuleSpec, Labels, RequestAuthentication
from meshward.diagnostics import Diagnostic
from meshward.model.authz import applies
from meshward.model.finding import finding

DISCOVERY_PATH = "/.well-known/openid-configuration"  # OpenID Connect Discovery 1.0 §4
# Istio's list (authn `SpaceDelimitedClaims`): OAuth 2.0 `scope` (RFC 8693 §4.2) and
# `permission` are space-separated strings that policies match one element at a time; the
# sidecar splits them into lists (xds/jwt_authn.py) and the evaluator does the same.
SPACE_DELIMITED_CLAIMS = ("scope", "permission")


@dataclass(frozen=True, slots=True)
class JwtRule:
    """One jwtRule as it applies to a sidecar.

    `key_source` says where its keys come from: the jwksUri, the issuer's OIDC discovery
    document (`discovery` True), or "inline". `jwks` is the key set JSON Envoy gets; ""
    while no fetch has succeeded yet (xds/jwt_authn.py then refuses every token of this rule:
    fail closed, visible in `meshward status`). `origin` names the policy and rule.
    """

    origin: str
    issuer: str
    audiences: tuple[str, ...]
    key_source: str
    jwks: str
    from_headers: tuple[tuple[str, str], ...]
    from_params: tuple[str, ...]
    from_cookies: tuple[str, ...]
    output_payload_to_header: str
    forward_original_token: bool
    output_claim_to_headers: tuple[tuple[str, str], ...]
    timeout_seconds: float
    discovery: bool = False

    @property
    def fetched(self) -> bool:
        """Its keys come from the control plane's fetch (jwksUri or discovery)."""
        return self.key_source != "inline"


def key_source(spec: JwtRuleSpec) -> str:
    if spec.jwks:
        return "inline"  # Istio: an inline jwks wins over jwksUri
    if spec.jwks_uri:
        return spec.jwks_uri
    return spec.issuer.rstrip("/") + DISCOVERY_PATH


def compile_pod(
    policies: Sequence[RequestAuthentication], root_namespace: str, namespace: str, labels: Labels
) -> tuple[JwtRule, ...]:
    """The merged rules of every policy selecting the pod, oldest policy first."""
    chosen = sorted(
        (p for p in policies if applies(p, root_namespace, namespace, labels)),
        key=lambda p: p.meta.order,
    )
    return tuple(
        JwtRule(
            origin=f"{policy.meta.namespace}/{policy.meta.name} jwtRules[{index}]",
            issuer=spec.issuer,
            audiences=spec.audiences,
            key_source=key_source(spec),
            jwks=spec.jwks,
            from_headers=spec.from_headers,
            from_params=spec.from_params,
            from_cookies=spec.from_cookies,
            output_payload_to_header=spec.output_payload_to_header,
            forward_original_token=spec.forward_original_token,
            output_claim_to_headers=spec.output_claim_to_headers,
            timeout_seconds=spec.timeout_seconds,
            discovery=not spec.jwks and not spec.jwks_uri,
        )
        for policy in chosen
        for index, spec in enumerate(policy.jwt_rules)
    )


def diagnose(
    policies: Sequence[RequestAuthentication],
    root_namespace: str,
    sidecars: Sequence[tuple[str, Labels]],
) -> tuple[Diagnostic, ...]:
    """MW0250: a selector that selects no sidecar; MW0251: a policy with no jwtRules."""
    found = []
    for policy in policies:
        if policy.selector is not None and not any(
            applies(policy, root_namespace, ns, labels) for ns, labels in sidecars
        ):
            found.append(
                finding(
                    "MW0250",
                    policy.meta,
                    "spec.selector",
                    f"selector {dict(policy.selector)} matches no workload with a sidecar",
                )
            )
        if not policy.jwt_rules:
            found.append(
                finding(
                    "MW0251",
                    policy.meta,
                    "spec.jwtRules",
                    "no jwtRules: this policy has no effect (no token is validated because of it)",
                )
            )
    return tuple(found)
