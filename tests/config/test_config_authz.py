"""AuthorizationPolicy parsing: one table row per MW013x/MW014x code (the exact codes, lines
and fields), and whole-value checks of what valid YAML becomes."""

from __future__ import annotations

import pytest

from meshward.config import load_text
from meshward.config.resources import (
    AuthorizationPolicy,
    AuthzCondition,
    AuthzOperation,
    AuthzRuleSpec,
    AuthzSource,
)

Found = list[tuple[str, int, str]]

HEAD = """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: shop}
spec:
"""
R = "spec.rules[0]"


def rule(body: str, action: str = "ALLOW") -> str:
    """A policy with one rule whose YAML starts at line 7."""
    return HEAD + f"  action: {action}\n  rules:\n" + body


def source(fields: str) -> str:
    return rule(f"  - from:\n    - source: {{{fields}}}\n")


def operation(fields: str) -> str:
    return rule(f"  - to:\n    - operation: {{{fields}}}\n")


def when(cond: str, action: str = "ALLOW") -> str:
    return rule(f"  - when:\n    - {{{cond}}}\n", action)


S = f"{R}.from[0].source"
OP = f"{R}.to[0].operation"
W = f"{R}.when[0]"

CASES: list[tuple[str, str, Found]] = [
    ("MW0130 unknown key", when("key: source.user, values: [a]"), [("MW0130", 8, f"{W}.key")]),
    (
        "MW0130 replaced key",
        when('key: "destination.labels[app]", values: [a]'),
        [("MW0130", 8, f"{W}.key")],
    ),
    (
        "MW0131 spiffe scheme",
        source('principals: ["spiffe://cluster.local/ns/a/sa/b"]'),
        [("MW0131", 8, f"{S}.principals[0]")],
    ),
    (
        "MW0131 shape",
        source("principals: [cluster.local/ns/a]"),
        [("MW0131", 8, f"{S}.principals[0]")],
    ),
    (
        "MW0131 when source.principal",
        when("key: source.principal, values: [bob]"),
        [("MW0131", 8, f"{W}.values[0]")],
    ),
    ("MW0132", source("requestPrincipals: [issuer]"), [("MW0132", 8, f"{S}.requestPrincipals[0]")]),
    ("MW0133 ipBlocks", source("ipBlocks: [10.0.0.300]"), [("MW0133", 8, f"{S}.ipBlocks[0]")]),
    (
        "MW0133 remote cidr",
        source("notRemoteIpBlocks: [10.0.0.0/33]"),
        [("MW0133", 8, f"{S}.notRemoteIpBlocks[0]")],
    ),
    (
        "MW0133 when",
        when('key: destination.ip, values: ["::1/129"]'),
        [("MW0133", 8, f"{W}.values[0]")],
    ),
    ("MW0134 port", operation('ports: ["http"]'), [("MW0134", 8, f"{OP}.ports[0]")]),
    ("MW0134 range", operation("notPorts: [70000]"), [("MW0134", 8, f"{OP}.notPorts[0]")]),
    (
        "MW0134 when",
        when('key: destination.port, values: ["0"]'),
        [("MW0134", 8, f"{W}.values[0]")],
    ),
    ("MW0135 relative", operation("paths: [api]"), [("MW0135", 8, f"{OP}.paths[0]")]),
    ("MW0135 template", operation('paths: ["/a{*}"]'), [("MW0135", 8, f"{OP}.paths[0]")]),
    ("MW0135 after **", operation('paths: ["/{**}/{*}"]'), [("MW0135", 8, f"{OP}.paths[0]")]),
    ("MW0136", source("serviceAccounts: [web]"), [("MW0136", 8, f"{S}.serviceAccounts[0]")]),
    ("MW0137 empty source", rule("  - from:\n    - source: {}\n"), [("MW0137", 8, S)]),
    ("MW0137 no source", rule("  - from:\n    - {}\n"), [("MW0137", 8, f"{R}.from[0].source")]),
    ("MW0137 empty from", rule("  - from: []\n"), [("MW0137", 7, f"{R}.from")]),
    ("MW0137 empty op", rule("  - to:\n    - operation: {}\n"), [("MW0137", 8, OP)]),
    ("MW0138", when("key: source.ip"), [("MW0138", 8, f"{W}.key")]),
    (
        "MW0139 CUSTOM without provider",
        HEAD + "  action: CUSTOM\n  rules: [{}]\n",
        [("MW0139", 5, "spec.action")],
    ),
    (
        "MW0139 provider on ALLOW",
        HEAD + "  provider: {name: opa}\n",
        [("MW0139", 5, "spec.provider")],
    ),
    (
        "MW0140",
        HEAD.replace("namespace: shop}", 'namespace: shop, annotations: {istio.io/dry-run: "yes"}}')
        + "  rules: [{}]\n",
        [("MW0140", 3, "metadata.annotations.istio.io/dry-run")],
    ),
    (
        "MW0141",
        HEAD.replace(
            "namespace: shop}", 'namespace: shop, annotations: {istio.io/dry-run: "true"}}'
        )
        + "  action: AUDIT\n  rules: [{}]\n",
        [("MW0141", 5, "spec.action")],
    ),
    (
        "MW0142",
        HEAD + "  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]\n",
        [("MW0142", 5, "spec.targetRefs")],
    ),
    (
        "MW0143 source",
        HEAD + "  action: CUSTOM\n  provider: {name: opa}\n  rules:\n"
        "  - from:\n    - source: {namespaces: [a]}\n",
        [("MW0143", 9, f"{S}.namespaces")],
    ),
    (
        "MW0143 when",
        HEAD + "  action: CUSTOM\n  provider: {name: opa}\n  rules:\n"
        '  - when:\n    - {key: "request.auth.claims[iss]", values: [a]}\n',
        [("MW0143", 9, f"{W}.key")],
    ),
    ("MW0144", HEAD + "  action: DENY\n", [("MW0144", 5, "spec.action")]),
    ("MW0145", source('namespaces: [""]'), [("MW0145", 8, f"{S}.namespaces[0]")]),
    (
        "MW0146",
        source("serviceAccounts: [a/b], namespaces: [a]"),
        [("MW0146", 8, S)],
    ),
    (
        "MW0147 principal",
        source('principals: ["*/ns/a/sa/*"]'),
        [("MW0147", 8, f"{S}.principals[0]")],
    ),
    ("MW0147 method", operation('methods: ["G*"]'), [("MW0147", 8, f"{OP}.methods[0]")]),
    ("MW0147 path", operation('paths: ["/a*b"]'), [("MW0147", 8, f"{OP}.paths[0]")]),
    ("MW0148", operation("methods: [get]"), [("MW0148", 8, f"{OP}.methods[0]")]),
    ("MW0149 headers", when("key: request.headers, values: [a]"), [("MW0149", 8, f"{W}.key")]),
    (
        "MW0149 filter",
        when('key: "experimental.envoy.filters.[x]", values: [a]'),
        [("MW0149", 8, f"{W}.key")],
    ),
]


def _found(text: str) -> Found:
    result = load_text(text, "t.yaml")
    return [(d.code, d.location.line, d.location.field) for d in result.diagnostics]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_code(text: str, expected: Found) -> None:
    assert _found(text) == expected


def test_an_error_drops_the_policy_and_a_warning_does_not() -> None:
    assert load_text(source("ipBlocks: [bad]")).authorization_policies == ()
    assert len(load_text(operation("methods: [get]")).authorization_policies) == 1


VALID = """\
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: db
  namespace: shop
  annotations: {istio.io/dry-run: "True"}
spec:
  selector: {matchLabels: {app: db}}
  action: DENY
  rules:
  - from:
    - source:
        principals: [cluster.local/ns/shop/sa/user, "*"]
        notRequestPrincipals: ["*"]
        namespaces: ["team-*"]
        ipBlocks: [10.0.0.1, "2001:db8::/32"]
        notRemoteIpBlocks: [192.168.0.0/16]
    - source: {serviceAccounts: [shop/location], notServiceAccounts: [shop/x]}
    to:
    - operation:
        hosts: ["*.example.com"]
        ports: ["5432", 8080]
        methods: [GET, "*"]
        notPaths: ["/admin/{**}", "/{*}/secret", "*.php"]
  - when:
    - {key: "request.headers[X-User]", values: ["a*"], notValues: ["*b"]}
    - {key: "request.auth.claims[groups][0]", values: [admin]}
    - {key: destination.port, values: [5432]}
    - {key: "experimental.envoy.filters.http.lua[key]", notValues: ["[x]"]}
    - {key: source.serviceAccount, values: [shop/user]}
    - {key: connection.sni, values: ["*"]}
  - {}
"""


def test_every_field_becomes_its_typed_value() -> None:
    result = load_text(VALID, "v.yaml")
    assert result.diagnostics == ()
    (policy,) = result.authorization_policies
    assert isinstance(policy, AuthorizationPolicy)
    assert (policy.selector, policy.action, policy.provider, policy.dry_run) == (
        (("app", "db"),),
        "DENY",
        "",
        True,
    )
    assert policy.rules == (
        AuthzRuleSpec(
            sources=(
                AuthzSource(
                    principals=("cluster.local/ns/shop/sa/user", "*"),
                    not_request_principals=("*",),
                    namespaces=("team-*",),
                    ip_blocks=("10.0.0.1", "2001:db8::/32"),
                    not_remote_ip_blocks=("192.168.0.0/16",),
                ),
                AuthzSource(service_accounts=("shop/location",), not_service_accounts=("shop/x",)),
            ),
            operations=(
                AuthzOperation(
                    hosts=("*.example.com",),
                    ports=(5432, 8080),
                    methods=("GET", "*"),
                    not_paths=("/admin/{**}", "/{*}/secret", "*.php"),
                ),
            ),
        ),
        AuthzRuleSpec(
            conditions=(
                AuthzCondition("request.headers[X-User]", ("a*",), ("*b",)),
                AuthzCondition("request.auth.claims[groups][0]", ("admin",)),
                AuthzCondition("destination.port", ("5432",)),
                AuthzCondition("experimental.envoy.filters.http.lua[key]", (), ("[x]",)),
                AuthzCondition("source.serviceAccount", ("shop/user",)),
                AuthzCondition("connection.sni", ("*",)),
            )
        ),
        AuthzRuleSpec(),
    )


@pytest.mark.parametrize(
    ("spec", "action", "rules"),
    [
        ("{}", "ALLOW", ()),  # allow-nothing
        ("{rules: []}", "ALLOW", ()),
        ("{rules: [{}]}", "ALLOW", (AuthzRuleSpec(),)),  # allow-all
        ("{action: DENY, rules: [{}]}", "DENY", (AuthzRuleSpec(),)),  # deny-all
        ("{action: AUDIT}", "AUDIT", ()),
    ],
)
def test_istio_shorthands(spec: str, action: str, rules: tuple[AuthzRuleSpec, ...]) -> None:
    text = HEAD.replace("spec:\n", f"spec: {spec}\n")
    (policy,) = load_text(text).authorization_policies
    assert (policy.selector, policy.action, policy.rules, policy.dry_run) == (
        None,
        action,
        rules,
        False,
    )


@pytest.mark.parametrize(
    ("value", "dry_run"), [('"true"', True), ('"1"', True), ('"false"', False), ('"F"', False)]
)
def test_dry_run_annotation_takes_go_booleans(value: str, dry_run: bool) -> None:
    meta = f"namespace: shop, annotations: {{istio.io/dry-run: {value}}}}}"
    text = HEAD.replace("namespace: shop}", meta) + "  rules: [{}]\n"
    (policy,) = load_text(text).authorization_policies
    assert policy.dry_run is dry_run


def test_custom_with_provider() -> None:
    text = (
        HEAD
        + "  action: CUSTOM\n  provider: {name: opa}\n  rules:\n"
        + "  - to:\n    - operation: {paths: [/admin]}\n"
    )
    result = load_text(text)
    assert result.diagnostics == ()
    assert [(p.action, p.provider) for p in result.authorization_policies] == [("CUSTOM", "opa")]
