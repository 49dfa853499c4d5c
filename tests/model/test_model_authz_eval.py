"""The evaluator, one matcher at a time: every field and match kind, then the order of
CUSTOM, DENY, ALLOW, AUDIT and dry-run, asserting whole Decisions."""

from __future__ import annotations

import pytest

from meshward.model.authorization import (
    AuthzAction,
    AuthzPolicy,
    AuthzRule,
    Condition,
    ExtAuthz,
    OperationMatch,
    PortAuthz,
    SourceMatch,
    StringMatch,
)
from meshward.model.authz_eval import Decision, Request, ShadowResult, evaluate, rule_matches

BOB = "cluster.local/ns/shop/sa/bob"
REQ = Request(
    source_principal=BOB,
    source_ip="10.0.0.7",
    destination_ip="10.0.1.1",
    destination_port=8080,
    sni="outbound_.8080_._.db.shop.svc.cluster.local",
    host="DB.shop:8080",
    method="GET",
    path="/api/v1/items?limit=5#top",
    headers=(("x-user", "alice"), ("x-tag", "a"), ("x-tag", "b")),
)
PLAIN = Request(
    source_principal="", source_ip="10.0.0.7", destination_ip="10.0.1.1", destination_port=8080
)
JWT = Request(
    source_principal=BOB,
    source_ip="10.0.0.7",
    destination_ip="10.0.1.1",
    destination_port=8080,
    request_principal="https://issuer.example/alice",
    claims={"aud": ["db", "web"], "azp": "cli", "groups": {"role": "admin"}},
)
TCP = Request(
    source_principal=BOB,
    source_ip="10.0.0.7",
    destination_ip="10.0.1.1",
    destination_port=5432,
    is_http=False,
)


def ex(v: str) -> StringMatch:
    return StringMatch("exact", v)


def pre(v: str) -> StringMatch:
    return StringMatch("prefix", v)


def suf(v: str) -> StringMatch:
    return StringMatch("suffix", v)


ANY = StringMatch("presence")


def tpl(v: str) -> StringMatch:
    return StringMatch("template", v)


def src(**kw: object) -> AuthzRule:
    return AuthzRule(0, sources=(SourceMatch(**kw),))  # type: ignore[arg-type]


def op(**kw: object) -> AuthzRule:
    return AuthzRule(0, operations=(OperationMatch(**kw),))  # type: ignore[arg-type]


def when(key: str, values: tuple[str, ...] = (), not_values: tuple[str, ...] = ()) -> AuthzRule:
    return AuthzRule(0, conditions=(Condition(key, values, not_values),))


MATCHES: list[tuple[str, AuthzRule, Request, bool]] = [
    ("empty rule matches all", AuthzRule(0), REQ, True),
    ("principal exact", src(principals=(ex(BOB),)), REQ, True),
    ("principal exact other", src(principals=(ex("cluster.local/ns/shop/sa/eve"),)), REQ, False),
    ("principal prefix", src(principals=(pre("cluster.local/ns/shop/"),)), REQ, True),
    ("principal suffix", src(principals=(suf("/sa/bob"),)), REQ, True),
    ("principal presence", src(principals=(ANY,)), REQ, True),
    ("principal presence plaintext", src(principals=(ANY,)), PLAIN, False),
    ("notPrincipals plaintext holds", src(not_principals=(ANY,)), PLAIN, True),
    ("notPrincipals excludes", src(not_principals=(ex(BOB),)), REQ, False),
    ("namespace exact", src(namespaces=(ex("shop"),)), REQ, True),
    ("namespace exact other", src(namespaces=(ex("sho"),)), REQ, False),
    ("namespace prefix", src(namespaces=(pre("sh"),)), REQ, True),
    ("namespace suffix", src(namespaces=(suf("op"),)), REQ, True),
    ("namespace presence", src(namespaces=(ANY,)), REQ, True),
    ("namespace plaintext", src(namespaces=(ANY,)), PLAIN, False),
    ("notNamespaces", src(not_namespaces=(ex("shop"),)), REQ, False),
    ("ipBlocks in", src(ip_blocks=("10.0.0.0/24",)), REQ, True),
    ("ipBlocks out", src(ip_blocks=("10.0.1.0/24",)), REQ, False),
    ("ipBlocks other family", src(ip_blocks=("::/0",)), REQ, False),
    ("notIpBlocks", src(not_ip_blocks=("10.0.0.7/32",)), REQ, False),
    ("remoteIpBlocks defaults to source", src(remote_ip_blocks=("10.0.0.7/32",)), REQ, True),
    (
        "remoteIpBlocks uses XFF address",
        src(remote_ip_blocks=("10.0.0.7/32",)),
        Request(BOB, "10.0.0.7", "10.0.1.1", 8080, remote_ip="192.0.2.1"),
        False,
    ),
    ("requestPrincipals without JWT", src(request_principals=(ANY,)), REQ, False),
    ("notRequestPrincipals without JWT", src(not_request_principals=(ANY,)), REQ, True),
    ("requestPrincipals *", src(request_principals=(ANY,)), JWT, True),
    (
        "requestPrincipals exact",
        src(request_principals=(ex("https://issuer.example/alice"),)),
        JWT,
        True,
    ),
    (
        "requestPrincipals iss/*",
        src(request_principals=(pre("https://issuer.example/"),)),
        JWT,
        True,
    ),
    ("requestPrincipals */sub", src(request_principals=(suf("/alice"),)), JWT, True),
    ("requestPrincipals */other", src(request_principals=(suf("/bob"),)), JWT, False),
    # Istio splits the written value at its last "/": "https://iss*" is iss "https:/" + sub
    # prefix "iss", which never matches this token.
    (
        "requestPrincipals split at last /",
        src(request_principals=(pre("https://iss"),)),
        JWT,
        False,
    ),
    ("host exact any case", op(hosts=(ex("db.SHOP:8080"),)), REQ, True),
    ("host exact without port", op(hosts=(ex("db.shop"),)), REQ, False),
    ("host prefix", op(hosts=(pre("db."),)), REQ, True),
    ("host suffix", op(hosts=(suf(":8080"),)), REQ, True),
    ("host presence", op(hosts=(ANY,)), REQ, True),
    ("notHosts", op(not_hosts=(pre("db"),)), REQ, False),
    ("method", op(methods=("GET",)), REQ, True),
    ("method case-sensitive", op(methods=("get",)), REQ, False),
    ("notMethods", op(not_methods=("GET",)), REQ, False),
    ("path exact ignores query", op(paths=(ex("/api/v1/items"),)), REQ, True),
    ("path prefix", op(paths=(pre("/api/"),)), REQ, True),
    ("path suffix", op(paths=(suf("/items"),)), REQ, True),
    ("path presence", op(paths=(ANY,)), REQ, True),
    ("notPaths", op(not_paths=(pre("/api"),)), REQ, False),
    ("template {*}", op(paths=(tpl("/api/{*}/items"),)), REQ, True),
    ("template {*} is one segment", op(paths=(tpl("/{*}/items"),)), REQ, False),
    ("template {**}", op(paths=(tpl("/api/{**}"),)), REQ, True),
    ("template {**} zero segments", op(paths=(tpl("/api/v1/items/{**}"),)), REQ, False),
    ("template {**} middle", op(paths=(tpl("/{**}/items"),)), REQ, True),
    ("HTTP fields never match on TCP", op(methods=("GET",)), TCP, False),
    ("header exact", when("request.headers[X-User]", ("alice",)), REQ, True),
    ("header prefix", when("request.headers[x-user]", ("al*",)), REQ, True),
    ("header suffix", when("request.headers[x-user]", ("*ce",)), REQ, True),
    ("header present", when("request.headers[x-user]", ("*",)), REQ, True),
    ("header absent", when("request.headers[x-none]", ("*",)), REQ, False),
    ("header absent notValues", when("request.headers[x-none]", (), ("*",)), REQ, True),
    # Envoy matches each value of a repeated header alone (differential test).
    ("repeated header, first value", when("request.headers[x-tag]", ("a",)), REQ, True),
    ("repeated header, second value", when("request.headers[x-tag]", ("*b",)), REQ, True),
    ("repeated header not joined", when("request.headers[x-tag]", ("a,b",)), REQ, False),
    ("repeated header notValues", when("request.headers[x-tag]", (), ("b",)), REQ, False),
    ("header :method", when("request.headers[:method]", ("GET",)), REQ, True),
    ("source.ip", when("source.ip", ("10.0.0.0/8",)), REQ, True),
    ("source.ip not", when("source.ip", (), ("10.0.0.7/32",)), REQ, False),
    ("remote.ip", when("remote.ip", ("10.0.0.7/32",)), REQ, True),
    ("destination.ip", when("destination.ip", ("10.0.1.1/32",)), REQ, True),
    ("destination.port", when("destination.port", ("8080",)), REQ, True),
    ("destination.port other", when("destination.port", ("80",)), REQ, False),
    ("source.namespace", when("source.namespace", ("sh*",)), REQ, True),
    ("source.principal", when("source.principal", ("*/sa/bob",)), REQ, True),
    ("source.serviceAccount", when("source.serviceAccount", ("shop/bob",)), REQ, True),
    ("source.serviceAccount other", when("source.serviceAccount", ("shop/bo",)), REQ, False),
    ("connection.sni", when("connection.sni", ("outbound_*",)), REQ, True),
    ("connection.sni * needs one", when("connection.sni", ("*",)), PLAIN, False),
    ("request.auth.principal", when("request.auth.principal", ("*/alice",)), JWT, True),
    ("request.auth.audiences list", when("request.auth.audiences", ("web",)), JWT, True),
    ("request.auth.presenter", when("request.auth.presenter", ("cli",)), JWT, True),
    ("request.auth.claims nested", when("request.auth.claims[groups][role]", ("adm*",)), JWT, True),
    ("claims without JWT", when("request.auth.claims[groups][role]", (), ("x",)), REQ, True),
    ("experimental metadata absent", when("experimental.envoy.filters.a[b]", ("x",)), REQ, False),
    (
        "sources OR'ed",
        AuthzRule(
            0, sources=(SourceMatch(namespaces=(ex("x"),)), SourceMatch(principals=(ex(BOB),)))
        ),
        REQ,
        True,
    ),
    (
        "fields of a source AND'ed",
        src(principals=(ex(BOB),), ip_blocks=("192.0.2.0/24",)),
        REQ,
        False,
    ),
    (
        "conditions AND'ed",
        AuthzRule(
            0,
            conditions=(
                Condition("source.ip", ("10.0.0.7",)),
                Condition("destination.port", ("1",)),
            ),
        ),
        REQ,
        False,
    ),
]


@pytest.mark.parametrize(
    ("rule", "request_", "matched"), [c[1:] for c in MATCHES], ids=[c[0] for c in MATCHES]
)
def test_rule_matches(rule: AuthzRule, request_: Request, matched: bool) -> None:
    assert rule_matches(rule, request_) is matched


def policy(
    name: str, action: AuthzAction, *rules: AuthzRule, dry_run: bool = False, provider: str = ""
) -> AuthzPolicy:
    return AuthzPolicy("shop", name, action, tuple(rules), dry_run, provider)


def rule(index: int, *principals: str) -> AuthzRule:
    return AuthzRule(index, sources=(SourceMatch(principals=tuple(ex(p) for p in principals)),))


EVE = "cluster.local/ns/shop/sa/eve"
ALL = AuthzRule(0)


def test_no_policy_allows_by_default() -> None:
    assert evaluate(PortAuthz(), REQ) == Decision(
        True, "DEFAULT", "", None, "", "no ALLOW policy applies"
    )


def test_allow_nothing_denies_naming_the_policies_in_force() -> None:
    assert evaluate(PortAuthz((policy("none", "ALLOW"),)), REQ) == Decision(
        False, "ALLOW", "", None, "", "no ALLOW rule matched; ALLOW policies in force: shop/none"
    )


def test_allow_names_the_rule_envoy_reports() -> None:
    # Envoy keeps policies in a map by name: rule[10] sorts before rule[2].
    rules = [rule(i, BOB) for i in (2, 10)]
    decision = evaluate(PortAuthz((policy("a", "ALLOW", *rules),)), REQ)
    assert decision == Decision(
        True,
        "ALLOW",
        "shop/a",
        10,
        "ns[shop]-policy[a]-rule[10]",
        "matched ALLOW policy shop/a rule[10]",
    )


def test_deny_before_allow() -> None:
    authz = PortAuthz((policy("deny-eve", "DENY", rule(0, BOB)), policy("allow-all", "ALLOW", ALL)))
    assert evaluate(authz, REQ) == Decision(
        False,
        "DENY",
        "shop/deny-eve",
        0,
        "ns[shop]-policy[deny-eve]-rule[0]",
        "matched DENY policy shop/deny-eve rule[0]",
    )


def test_custom_fails_closed_before_everything() -> None:
    authz = PortAuthz(
        (
            policy("ext", "CUSTOM", ALL, provider="opa"),
            policy("deny", "DENY", ALL),
            policy("audit", "AUDIT", ALL),
            policy("dry", "DENY", ALL, dry_run=True),
        )
    )
    decision = evaluate(authz, REQ)
    assert (
        decision.allowed,
        decision.action,
        decision.rule_id,
        decision.shadow,
        decision.audited,
    ) == (
        False,
        "CUSTOM",
        "ns[shop]-policy[ext]-rule[0]",
        # Dry-run filters run before every enforced one (xds/rbac.py), CUSTOM included, and
        # AUDIT before CUSTOM: Envoy marks the fail-closed request as audited.
        (ShadowResult("shop/dry", 0, "DENY", False),),
        ("shop/audit rule[0]",),
    )


OPA = ExtAuthz("opa", "grpc", "outbound|9000||opa.auth.svc.cluster.local", "opa:9000", 1000)


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (
            # The CUSTOM rule matches: the provider is consulted, then DENY and ALLOW decide.
            REQ,
            Decision(
                True,
                "ALLOW",
                "shop/allow-bob",
                0,
                "ns[shop]-policy[allow-bob]-rule[0]",
                "CUSTOM provider 'opa' would be consulted (matched shop/ext rule[0]); it "
                "decides first, and if it allows: matched ALLOW policy shop/allow-bob rule[0]",
                provider="opa",
            ),
        ),
        (
            # No CUSTOM rule matches (not /admin): the provider is never asked.
            Request(BOB, "10.0.0.7", "10.0.1.1", 8080, method="GET", path="/admin"),
            Decision(
                True,
                "ALLOW",
                "shop/allow-bob",
                0,
                "ns[shop]-policy[allow-bob]-rule[0]",
                "matched ALLOW policy shop/allow-bob rule[0]",
            ),
        ),
        (
            # A TCP connection (a gRPC provider: model/ gives TCP ports no other kind).
            TCP,
            Decision(
                True,
                "ALLOW",
                "shop/allow-bob",
                0,
                "ns[shop]-policy[allow-bob]-rule[0]",
                "CUSTOM provider 'opa' would be consulted (matched shop/ext rule[0]); it "
                "decides first, and if it allows: matched ALLOW policy shop/allow-bob rule[0]",
                provider="opa",
            ),
        ),
    ],
    ids=["consulted", "not-matched", "tcp"],
)
def test_custom_with_a_provider_consults_it_first(request_: Request, expected: Decision) -> None:
    ext = AuthzRule(0, operations=(OperationMatch(not_paths=(ex("/admin"),)),))
    authz = PortAuthz(
        (policy("ext", "CUSTOM", ext, provider="opa"), policy("allow-bob", "ALLOW", rule(0, BOB))),
        OPA,
    )
    assert evaluate(authz, request_) == expected


def test_custom_without_a_provider_fails_closed_on_tcp() -> None:
    authz = PortAuthz((policy("ext", "CUSTOM", ALL, provider="web-check"),))
    assert evaluate(authz, TCP) == Decision(
        False,
        "CUSTOM",
        "shop/ext",
        0,
        "ns[shop]-policy[ext]-rule[0]",
        "matched CUSTOM policy shop/ext rule[0]; external authorization (provider "
        "'web-check') is not available, so it fails closed",
    )


def test_audit_only_records() -> None:
    authz = PortAuthz((policy("audit", "AUDIT", rule(1, BOB), rule(0, EVE)),))
    assert evaluate(authz, REQ) == Decision(
        True, "DEFAULT", "", None, "", "no ALLOW policy applies", (), ("shop/audit rule[1]",)
    )


def test_dry_run_never_changes_the_decision_but_is_recorded() -> None:
    authz = PortAuthz(
        (
            policy("would-deny", "DENY", rule(0, BOB), dry_run=True),
            policy("would-allow", "ALLOW", rule(0, EVE), dry_run=True),
        )
    )
    assert evaluate(authz, REQ) == Decision(
        True,
        "DEFAULT",
        "",
        None,
        "",
        "no ALLOW policy applies",
        (
            ShadowResult("shop/would-deny", 0, "DENY", False),
            ShadowResult("shop/would-allow", None, "ALLOW", False),
        ),
    )


def test_every_dry_run_policy_is_recorded_also_when_denied() -> None:
    # Envoy (differential test): one shadow filter per dry-run policy, all before the
    # enforced filters, so a denied request still carries every policy's shadow result.
    authz = PortAuthz(
        (
            policy("deny", "DENY", ALL),
            policy("dry-deny", "DENY", rule(0, EVE), dry_run=True),
            policy("dry-deny2", "DENY", rule(3, BOB), dry_run=True),
            policy("dry-allow", "ALLOW", ALL, dry_run=True),
        )
    )
    assert evaluate(authz, REQ).shadow == (
        ShadowResult("shop/dry-deny", None, "DENY", True),
        ShadowResult("shop/dry-deny2", 3, "DENY", False),
        ShadowResult("shop/dry-allow", 0, "ALLOW", True),
    )


def test_allow_shadow_recorded_when_the_enforced_allow_denies() -> None:
    authz = PortAuthz(
        (policy("allow-eve", "ALLOW", rule(0, EVE)), policy("dry", "ALLOW", ALL, dry_run=True))
    )
    decision = evaluate(authz, REQ)
    assert (decision.allowed, decision.shadow) == (
        False,
        (ShadowResult("shop/dry", 0, "ALLOW", True),),
    )
