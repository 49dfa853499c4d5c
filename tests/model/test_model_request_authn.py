"""RequestAuthentication compile: which policies select a pod, how their rules merge, where
the keys come from, and the MW025x findings — from YAML through config.load and model.build."""

from __future__ import annotations

import pytest

from meshward.config import load_text
from meshward.model import allocate, build, replicas
from meshward.model.request_authn import JwtRule

WORKLOADS = """\
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {ports: [{name: http, port: 8000}], command: [python]}
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: api, namespace: shop, labels: {app: api}}
spec: {ports: [{name: http, port: 8000}], command: [python]}
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: db, namespace: data, labels: {app: db}}
spec: {ports: [{name: http, port: 8000}], command: [python]}
"""


def _ra(name: str, namespace: str, issuer: str, selector: str = "", extra: str = "") -> str:
    chosen = f"  selector: {{matchLabels: {{{selector}}}}}\n" if selector else ""
    return (
        "---\napiVersion: security.istio.io/v1\nkind: RequestAuthentication\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{chosen}"
        f"  jwtRules:\n  - issuer: {issuer}\n{extra}"
    )


def _rules(text: str) -> dict[str, list[str]]:
    config = load_text(WORKLOADS + text)
    assert not config.diagnostics, config.diagnostics
    model, _ = build(config, allocate(replicas(config.workloads), {}))
    return {
        p.pod.key.workload: [f"{r.origin} {r.issuer}" for r in p.jwt_rules] for p in model.proxies
    }


def test_rules_of_every_selecting_policy_merge_oldest_first() -> None:
    text = (
        _ra("mesh", "meshward-system", "https://mesh")
        + _ra("shop", "shop", "https://shop")
        + _ra("web-only", "shop", "https://web", "app: web")
        + _ra("root-db", "meshward-system", "https://db", "app: db")
        + _ra("elsewhere", "data", "https://data", "app: web")
    )
    assert _rules(text) == {
        "api": [
            "meshward-system/mesh jwtRules[0] https://mesh",
            "shop/shop jwtRules[0] https://shop",
        ],
        "db": [
            "meshward-system/mesh jwtRules[0] https://mesh",
            "meshward-system/root-db jwtRules[0] https://db",
        ],
        "web": [
            "meshward-system/mesh jwtRules[0] https://mesh",
            "shop/shop jwtRules[0] https://shop",
            "shop/web-only jwtRules[0] https://web",
        ],
    }


@pytest.mark.parametrize(
    ("extra", "source", "discovery", "jwks"),
    [
        ("", "https://idp/.well-known/openid-configuration", True, ""),
        ("    jwksUri: https://keys/jwks\n", "https://keys/jwks", False, ""),
        (
            '    jwksUri: https://keys/jwks\n    jwks: \'{"keys": [{"kty": "RSA"}]}\'\n',
            "inline",
            False,
            '{"keys": [{"kty": "RSA"}]}',
        ),
    ],
)
def test_key_source(extra: str, source: str, discovery: bool, jwks: str) -> None:
    config = load_text(WORKLOADS + _ra("a", "shop", "https://idp/", "app: web", extra))
    model, _ = build(config, allocate(replicas(config.workloads), {}))
    rule = next(p for p in model.proxies if p.pod.key.workload == "web").jwt_rules[0]
    assert isinstance(rule, JwtRule)
    assert (rule.key_source, rule.discovery, rule.jwks, rule.fetched) == (
        source,
        discovery,
        jwks,
        source != "inline",
    )


def test_findings() -> None:
    text = (
        _ra("nobody", "shop", "https://x", "app: nothing")
        + "---\napiVersion: security.istio.io/v1\nkind: RequestAuthentication\n"
        "metadata: {name: empty, namespace: shop}\nspec: {}\n"
        "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        "metadata: {name: needs-jwt, namespace: data}\nspec:\n"
        "  rules: [{from: [{source: {requestPrincipals: ['*']}}]}]\n"
    )
    config = load_text(WORKLOADS + text)
    _, findings = build(config, allocate(replicas(config.workloads), {}))
    assert [(d.code, d.resource, d.location.field) for d in findings] == [
        ("MW0224", "AuthorizationPolicy data/needs-jwt", "spec.rules"),
        ("MW0250", "RequestAuthentication shop/nobody", "spec.selector"),
        ("MW0251", "RequestAuthentication shop/empty", "spec.jwtRules"),
    ]
