"""MeshConfig extensionProviders (one row per MW0190-MW0196 case, the exact (code, line,
field) list) and the `meshward extauthz` rule file (MW0197 and the shared field codes)."""

from __future__ import annotations

import pytest

from meshward.config import extauthz_rules, load_text
from meshward.config.extauthz_rules import RuleSet, RuleSpec
from meshward.config.resources import ExtAuthzProvider

Found = list[tuple[str, int, str]]

MESH = """\
apiVersion: meshward.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  extensionProviders:
"""
P = "spec.extensionProviders[0]"

CASES: list[tuple[str, str, Found]] = [
    ("MW0190 no kind", MESH + "  - name: a\n", [("MW0190", 6, f"{P}.name")]),
    (
        "MW0190 both kinds",
        MESH + "  - name: a\n    envoyExtAuthzGrpc: {service: a.b, port: 1}\n"
        "    envoyExtAuthzHttp: {service: a.b, port: 1}\n",
        [("MW0190", 6, f"{P}.name")],
    ),
    (
        "MW0190 tracing kind",
        MESH + "  - name: a\n    zipkin: {service: z.b, port: 9411}\n",
        [("MW0190", 7, f"{P}.zipkin")],
    ),
    (
        "MW0191 twice",
        MESH + "  - {name: a, envoyExtAuthzGrpc: {service: a.b, port: 1}}\n"
        "  - {name: a, envoyExtAuthzGrpc: {service: a.b, port: 1}}\n",
        [("MW0191", 7, "spec.extensionProviders[1].name")],
    ),
    (
        "MW0192 external host",
        MESH + "  - {name: a, envoyExtAuthzGrpc: {service: authz.example.com, port: 1}}\n",
        [("MW0192", 6, f"{P}.envoyExtAuthzGrpc.service")],
    ),
    (
        "MW0193 zero timeout",
        MESH + "  - {name: a, envoyExtAuthzGrpc: {service: a.b, port: 1, timeout: 0s}}\n",
        [("MW0193", 6, f"{P}.envoyExtAuthzGrpc.timeout")],
    ),
    (
        "MW0114 bad timeout",
        MESH + "  - {name: a, envoyExtAuthzGrpc: {service: a.b, port: 1, timeout: 2d}}\n",
        [("MW0114", 6, f"{P}.envoyExtAuthzGrpc.timeout")],
    ),
    (
        "MW0194 status",
        MESH + "  - {name: a, envoyExtAuthzGrpc: {service: a.b, port: 1, statusOnError: 'x'}}\n",
        [("MW0194", 6, f"{P}.envoyExtAuthzGrpc.statusOnError")],
    ),
    (
        "MW0195 header wildcard inside",
        MESH + "  - {name: a, envoyExtAuthzHttp: {service: a.b, port: 1, "
        "headersToUpstreamOnAllow: ['x-*-y']}}\n",
        [("MW0195", 6, f"{P}.envoyExtAuthzHttp.headersToUpstreamOnAllow")],
    ),
    (
        "MW0195 body size",
        MESH + "  - {name: a, envoyExtAuthzGrpc: {service: a.b, port: 1, "
        "includeRequestBodyInCheck: {maxRequestBytes: 0}}}\n",
        [("MW0195", 6, f"{P}.envoyExtAuthzGrpc.includeRequestBodyInCheck.maxRequestBytes")],
    ),
    (
        "MW0196 path prefix",
        MESH + "  - {name: a, envoyExtAuthzHttp: {service: a.b, port: 1, pathPrefix: check}}\n",
        [("MW0196", 6, f"{P}.envoyExtAuthzHttp.pathPrefix")],
    ),
    (
        "MW0106 HTTP field on gRPC",
        MESH + "  - {name: a, envoyExtAuthzGrpc: {service: a.b, port: 1, pathPrefix: /x}}\n",
        [("MW0106", 6, f"{P}.envoyExtAuthzGrpc.pathPrefix")],
    ),
    (
        "MW0107 no port",
        MESH + "  - {name: a, envoyExtAuthzGrpc: {service: a.b}}\n",
        [("MW0107", 6, f"{P}.envoyExtAuthzGrpc.port")],
    ),
]


def _found(text: str) -> Found:
    result = load_text(text, "t.yaml")
    return [(d.code, d.location.line, d.location.field) for d in result.diagnostics]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_provider_code(text: str, expected: Found) -> None:
    assert _found(text) == expected


def test_providers_parse_to_whole_values() -> None:
    text = MESH + (
        "  - name: grpc\n"
        "    envoyExtAuthzGrpc:\n"
        "      service: authz.auth.svc.cluster.local\n"
        "      port: 9000\n"
        "      timeout: 250ms\n"
        "      includeRequestBodyInCheck: {maxRequestBytes: 1024, allowPartialMessage: true}\n"
        "      clearRouteCache: true\n"
        "  - name: http\n"
        "    envoyExtAuthzHttp:\n"
        "      service: auth/authz.auth\n"
        "      port: 9001\n"
        "      pathPrefix: /check\n"
        "      failOpen: true\n"
        "      statusOnError: '503'\n"
        "      includeRequestHeadersInCheck: [X-User, 'x-b3-*']\n"
        "      includeAdditionalHeadersInCheck: {X-Mesh: meshward}\n"
        "      headersToUpstreamOnAllow: [x-checked-by]\n"
        "      headersToDownstreamOnDeny: ['*-denied-by']\n"
        "      headersToDownstreamOnAllow: [x-trace]\n"
    )
    result = load_text(text, "t.yaml")
    assert result.diagnostics == ()
    assert result.mesh.extension_providers == (
        ExtAuthzProvider(
            name="grpc",
            kind="grpc",
            service="authz.auth.svc.cluster.local",
            port=9000,
            timeout_ms=250,
            max_request_bytes=1024,
            allow_partial_message=True,
            clear_route_cache=True,
            line=6,
            path=P,
        ),
        ExtAuthzProvider(
            name="http",
            kind="http",
            service="auth/authz.auth",
            port=9001,
            fail_open=True,
            status_on_error=503,
            path_prefix="/check",
            include_request_headers=("x-user", "x-b3-*"),
            include_additional_headers=(("x-mesh", "meshward"),),
            headers_to_upstream_on_allow=("x-checked-by",),
            headers_to_downstream_on_deny=("*-denied-by",),
            headers_to_downstream_on_allow=("x-trace",),
            line=13,
            path="spec.extensionProviders[1]",
        ),
    )


RULES = """\
default: {allow: false, status: 401, body: who}
rules:
- name: users
  paths: ["/api/*"]
  methods: [GET]
  principals: ["td/ns/a/sa/b"]
  headers: {X-User: "*"}
  allow: true
  headersToUpstream: {X-Checked-By: rules}
- name: admin
  paths: ["/admin*"]
  allow: false
  status: 418
  body: "no way"
  headersToDownstream: {x-denied-by: rules}
"""


def test_rule_file_parses_to_a_whole_value() -> None:
    rules, found = extauthz_rules.load(RULES, "rules.yaml")
    assert found == ()
    assert rules == RuleSet(
        rules=(
            RuleSpec(
                name="users",
                paths=("/api/*",),
                methods=("GET",),
                principals=("td/ns/a/sa/b",),
                headers=(("x-user", "*"),),
                allow=True,
                status=200,
                headers_to_upstream=(("x-checked-by", "rules"),),
            ),
            RuleSpec(
                name="admin",
                paths=("/admin*",),
                status=418,
                body="no way",
                headers_to_downstream=(("x-denied-by", "rules"),),
            ),
        ),
        default=RuleSpec(name="default", status=401, body="who"),
    )


RULE_CASES: list[tuple[str, str, Found]] = [
    ("MW0101 syntax", "rules: [\n", [("MW0101", 2, "")]),
    ("MW0197 two documents", "rules: []\n---\nrules: []\n", [("MW0197", 1, "")]),
    ("MW0107 no rules", "default: {allow: true}\n", [("MW0107", 1, "rules")]),
    ("MW0107 no allow", "rules:\n- name: a\n", [("MW0107", 2, "rules[0].allow")]),
    (
        "MW0197 status",
        "rules:\n- {name: a, allow: false, status: 99}\n",
        [("MW0197", 2, "rules[0].status")],
    ),
    (
        "MW0197 status on allow",
        "rules:\n- {name: a, allow: true, status: 403}\n",
        [("MW0197", 2, "rules[0].status")],
    ),
    (
        "MW0197 empty path",
        "rules:\n- {name: a, allow: true, paths: ['']}\n",
        [("MW0197", 2, "rules[0].paths")],
    ),
    (
        "MW0106 unknown",
        "rules:\n- {name: a, allow: true, path: /x}\n",
        [("MW0106", 2, "rules[0].path")],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in RULE_CASES], ids=[c[0] for c in RULE_CASES]
)
def test_rule_file_code(text: str, expected: Found) -> None:
    rules, found = extauthz_rules.load(text, "rules.yaml")
    assert rules is None
    assert [(d.code, d.location.line, d.location.field) for d in found] == expected
