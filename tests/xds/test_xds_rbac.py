"""PortAuthz → Envoy RBAC filters: golden listeners per case, Envoy accepting every case
(`--mode validate`), and the semantics that matter checked directly (filter order, engines,
never-matching policies, Istio's TCP handling, stat prefixes, the access-log readers)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import xds_cases
from envoy.config.listener.v3 import listener_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from google.protobuf import json_format
from xds_pki import Pki

from meshward.model import ir
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
from meshward.xds import access_log, bootstrap, rbac, snapshot, translate

_EXACT, _PREFIX, _SUFFIX = "exact", "prefix", "suffix"


def _m(kind: str, value: str = "") -> StringMatch:
    return StringMatch(kind, value)  # type: ignore[arg-type]


def _policy(
    name: str,
    action: AuthzAction,
    *rules: AuthzRule,
    namespace: str = "default",
    dry_run: bool = False,
) -> AuthzPolicy:
    return AuthzPolicy(namespace, name, action, tuple(rules), dry_run=dry_run)


def _custom(provider: str, *rules: AuthzRule) -> AuthzPolicy:
    return AuthzPolicy("default", "ext", "CUSTOM", rules, provider=provider)


def _provider(name: str, kind: str, port: int, **settings: Any) -> ExtAuthz:
    host = "authz.auth.svc.cluster.local"
    return ExtAuthz(
        name,
        kind,
        f"outbound|{port}||{host}",
        f"{host}:{port}",
        **settings,  # type: ignore[arg-type]
    )


_EVERY_SOURCE = SourceMatch(
    principals=(_m(_EXACT, "cluster.local/ns/a/sa/b"), _m(_PREFIX, "cluster.local/ns/a/")),
    not_principals=(_m(_SUFFIX, "/sa/admin"), _m("presence")),
    request_principals=(_m(_EXACT, "https://issuer.example/sub-1"), _m(_SUFFIX, "/sub-2")),
    not_request_principals=(_m(_PREFIX, "https://evil.example/"), _m("presence")),
    namespaces=(_m(_EXACT, "a"), _m(_PREFIX, "team-"), _m(_SUFFIX, "-prod")),
    not_namespaces=(_m("presence"),),
    ip_blocks=("10.0.0.1/32", "192.168.0.0/16"),
    not_ip_blocks=("10.0.0.2/32",),
    remote_ip_blocks=("2001:db8::/32",),
    not_remote_ip_blocks=("172.16.0.0/12",),
)
_EVERY_OPERATION = OperationMatch(
    hosts=(_m(_EXACT, "web.example"), _m(_SUFFIX, ".example"), _m(_PREFIX, "web."), _m("presence")),
    not_hosts=(_m(_EXACT, "admin.example"),),
    methods=("GET", "POST"),
    not_methods=("DELETE",),
    paths=(_m(_EXACT, "/a"), _m(_PREFIX, "/b/"), _m(_SUFFIX, ".png"), _m("presence")),
    not_paths=(_m("template", "/users/{*}/secret"), _m("template", "/{**}/admin")),
)
_EVERY_CONDITION = (
    Condition("request.headers[x-team]", ("blue", "green-*"), ("*-test",)),
    Condition("source.ip", ("10.1.0.0/16",), ("10.1.2.3",)),
    Condition("remote.ip", ("10.2.0.0/16",)),
    Condition("source.namespace", ("a", "team-*")),
    Condition("source.principal", ("cluster.local/ns/a/sa/b",), ("*",)),
    Condition("request.auth.principal", ("https://issuer.example/*", "*")),
    Condition("request.auth.audiences", ("api", "api-*")),
    Condition("request.auth.presenter", ("frontend",)),
    Condition("request.auth.claims[groups]", ("admins",)),
    Condition("request.auth.claims[realm][role]", ("*-ops",)),
    Condition("destination.ip", ("127.0.11.1",)),
    Condition("destination.port", ("8080",)),
    Condition("connection.sni", ("*.svc.cluster.local",)),
    Condition("experimental.envoy.filters.network.mysql_proxy[db.table]", ("[update]", "x*")),
)
_EVERYTHING = AuthzRule(
    0, sources=(_EVERY_SOURCE,), operations=(_EVERY_OPERATION,), conditions=_EVERY_CONDITION
)
_ONLY_CLIENT = SourceMatch(principals=(_m(_EXACT, "cluster.local/ns/default/sa/client"),))
_ADMIN_PATHS = OperationMatch(paths=(_m(_PREFIX, "/admin"),))

# Every case: (protocol, PortAuthz) on inbound port 8080 (STRICT).
CASES: dict[str, tuple[ir.Protocol, PortAuthz]] = {
    "allow-nothing": ("HTTP", PortAuthz((_policy("allow-nothing", "ALLOW"),))),
    "deny-all": ("HTTP", PortAuthz((_policy("deny-all", "DENY", AuthzRule(0)),))),
    "allow-all": ("HTTP", PortAuthz((_policy("allow-all", "ALLOW", AuthzRule(0)),))),
    "deny-and-allow": (
        "HTTP",
        PortAuthz(
            (
                _policy("no-admin", "DENY", AuthzRule(0, operations=(_ADMIN_PATHS,))),
                _policy(
                    "only-client",
                    "ALLOW",
                    AuthzRule(0, sources=(_ONLY_CLIENT,)),
                    AuthzRule(2, operations=(OperationMatch(methods=("GET",)),)),
                    namespace="istio-system",
                ),
            )
        ),
    ),
    "every-field": ("HTTP", PortAuthz((_policy("everything", "ALLOW", _EVERYTHING),))),
    "templates": (
        "HTTP",
        PortAuthz(
            (
                _policy(
                    "templates",
                    "ALLOW",
                    AuthzRule(
                        0,
                        operations=(
                            OperationMatch(
                                paths=(
                                    _m("template", "/api/{*}/items"),
                                    _m("template", "/files/{**}"),
                                )
                            ),
                        ),
                    ),
                ),
            )
        ),
    ),
    "dry-run": (
        "HTTP",
        PortAuthz(
            (
                _policy("dry-deny", "DENY", AuthzRule(0, operations=(_ADMIN_PATHS,)), dry_run=True),
                _policy("allow-all", "ALLOW", AuthzRule(0)),
                _policy("dry-allow", "ALLOW", AuthzRule(0, sources=(_ONLY_CLIENT,)), dry_run=True),
                _policy("dry-none", "ALLOW", dry_run=True),
            )
        ),
    ),
    "audit": (
        "HTTP",
        PortAuthz((_policy("audit-admin", "AUDIT", AuthzRule(0, operations=(_ADMIN_PATHS,))),)),
    ),
    "custom": (
        "HTTP",
        PortAuthz(
            (
                AuthzPolicy(
                    "default",
                    "ext",
                    "CUSTOM",
                    (AuthzRule(1, operations=(_ADMIN_PATHS,)),),
                    provider="opa",
                ),
            )
        ),
    ),
    # CUSTOM with a provider: a shadow engine marks matching requests, ext_authz after it.
    "custom-grpc": (
        "HTTP",
        PortAuthz(
            (
                _custom("ext-grpc", AuthzRule(1, operations=(_ADMIN_PATHS,))),
                _policy("deny-admin", "DENY", AuthzRule(0, operations=(_ADMIN_PATHS,))),
            ),
            _provider(
                "ext-grpc",
                "grpc",
                9000,
                timeout_ms=250,
                max_request_bytes=1024,
                allow_partial_message=True,
                clear_route_cache=True,
            ),
        ),
    ),
    "custom-http": (
        "HTTP",
        PortAuthz(
            (_custom("ext-http", AuthzRule(0, operations=(_ADMIN_PATHS,))),),
            _provider(
                "ext-http",
                "http",
                9001,
                timeout_ms=600_000,
                fail_open=True,
                status_on_error=503,
                path_prefix="/check",
                include_request_headers=(_m(_EXACT, "x-user"), _m(_PREFIX, "x-b3-")),
                include_additional_headers=(("x-mesh", "meshward"),),
                headers_to_upstream_on_allow=(_m(_EXACT, "x-checked-by"),),
                headers_to_downstream_on_deny=(_m(_SUFFIX, "-denied-by"),),
                headers_to_downstream_on_allow=(_m(_EXACT, "x-trace"),),
            ),
        ),
    ),
    # On TCP: network RBAC shadow engine, then the network ext_authz filter (gRPC only).
    "custom-tcp": (
        "TCP",
        PortAuthz(
            (_custom("ext-grpc", AuthzRule(0, sources=(_ONLY_CLIENT,))),),
            _provider("ext-grpc", "grpc", 9000, timeout_ms=1500, fail_open=True),
        ),
    ),
    "tcp": (
        "TCP",
        PortAuthz(
            (
                _policy("deny-widened", "DENY", _EVERYTHING),
                _policy(
                    "allow-dropped", "ALLOW", _EVERYTHING, AuthzRule(1, sources=(_ONLY_CLIENT,))
                ),
                _policy("dry-deny", "DENY", AuthzRule(0, sources=(_ONLY_CLIENT,)), dry_run=True),
                _policy("audit", "AUDIT", AuthzRule(0)),
            )
        ),
    ),
}


def _proxy(protocol: ir.Protocol, authz: PortAuthz) -> ir.ProxyModel:
    pod = xds_cases.pod("web", "127.0.11.1", "127.0.11.2")
    port = ir.InboundPort(8080, protocol, "STRICT", "test", authz)
    return xds_cases.proxy(pod, inbound=(port,))


def _inbound(proxy: ir.ProxyModel) -> listener_pb2.Listener:
    message = translate.proxy_snapshot(proxy).of_type(snapshot.LISTENER)["inbound|8080"]
    assert isinstance(message, listener_pb2.Listener)
    return message


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str, golden: Callable[[str, Any], None]) -> None:
    listener = _inbound(_proxy(*CASES[case]))
    golden(
        f"xds/authz-{case}/listeners.json",
        json_format.MessageToDict(listener, preserving_proto_field_name=True),
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_envoy_accepts_case(
    case: str,
    pki: Pki,
    envoy_validate: Callable[[dict[str, Any]], subprocess.CompletedProcess[str]],
) -> None:
    proxy = _proxy(*CASES[case])
    assert proxy.pod.identity is not None
    config = bootstrap.static_bootstrap(
        translate.proxy_snapshot(proxy),
        admin=("127.0.0.1", 0),
        node_id=proxy.node_id,
        secrets_dir=pki.leaf_dir(proxy.pod.identity.uri),
    )
    result = envoy_validate(config)
    assert (result.returncode, result.stderr) == (0, "")


# --- engines and order ------------------------------------------------------------------------


def _http_engines(authz: PortAuthz) -> list[tuple[str, str, str, list[str]]]:
    """(filter name, mode, action, policy names) per HTTP RBAC filter."""
    out = []
    for http_filter in rbac.rbac_filters_for(authz, http=True):
        config = http_rbac_pb2.RBAC()
        assert http_filter.typed_config.Unpack(config)
        shadow = config.HasField("shadow_rules")
        rules = config.shadow_rules if shadow else config.rules
        prefix = config.shadow_rules_stat_prefix if shadow else config.rules_stat_prefix
        out.append(
            (
                http_filter.name,
                f"{'shadow' if shadow else 'rules'}:{prefix}",
                rbac_pb2.RBAC.Action.Name(rules.action),
                sorted(rules.policies),
            )
        )
    return out


def test_no_policy_means_no_filter() -> None:
    assert rbac.rbac_filters_for(PortAuthz(), http=True) == []
    assert rbac.rbac_filters_for(PortAuthz(), http=False) == []
    hcm = hcm_pb2.HttpConnectionManager()
    assert (
        _inbound(_proxy("HTTP", PortAuthz())).filter_chains[0].filters[0].typed_config.Unpack(hcm)
    )
    assert [f.name for f in hcm.http_filters] == ["envoy.filters.http.router"]


def test_filter_order_and_engines() -> None:
    """Shadow filters and AUDIT first (they see every request), then CUSTOM, DENY, ALLOW; one
    Envoy policy per rule, named by the rule's index as written."""
    authz = PortAuthz(
        (
            _policy("ext", "CUSTOM", AuthzRule(0)),
            _policy("d1", "DENY", AuthzRule(0), AuthzRule(3)),
            _policy("d2", "DENY", AuthzRule(1), namespace="root"),
            _policy("dry", "DENY", AuthzRule(0), dry_run=True),
            _policy("a1", "ALLOW"),
            _policy("dry-a", "ALLOW", AuthzRule(2), dry_run=True),
            _policy("log", "AUDIT", AuthzRule(0)),
        )
    )
    assert _http_engines(authz) == [
        (
            "meshward.authz.dryrun.default.dry",
            "shadow:meshward_dryrun_default_dry_",
            "DENY",
            ["ns[default]-policy[dry]-rule[0]"],
        ),
        (
            "meshward.authz.dryrun.default.dry-a",
            "shadow:meshward_dryrun_default_dry-a_",
            "ALLOW",
            ["ns[default]-policy[dry-a]-rule[2]"],
        ),
        (
            "meshward.authz.audit",
            "rules:meshward_audit_",
            "LOG",
            ["ns[default]-policy[log]-rule[0]"],
        ),
        (
            "meshward.authz.custom",
            "rules:meshward_custom_",
            "DENY",
            ["ns[default]-policy[ext]-rule[0]"],
        ),
        (
            "meshward.authz.deny",
            "rules:meshward_deny_",
            "DENY",
            [
                "ns[default]-policy[d1]-rule[0]",
                "ns[default]-policy[d1]-rule[3]",
                "ns[root]-policy[d2]-rule[1]",
            ],
        ),
        (
            "meshward.authz.allow",
            "rules:meshward_allow_",
            "ALLOW",
            ["ns[default]-policy[a1]-rule[0]"],
        ),
    ]


def test_network_filters_carry_scoped_stat_prefixes() -> None:
    authz = PortAuthz(
        (
            _policy("d", "DENY", AuthzRule(0)),
            _policy("dry", "ALLOW", AuthzRule(0), dry_run=True, namespace="ops"),
        )
    )
    seen = []
    for network_filter in rbac.rbac_filters_for(authz, http=False, stat_prefix="inbound_5432"):
        config = network_rbac_pb2.RBAC()
        assert network_filter.typed_config.Unpack(config)
        seen.append(
            (
                network_filter.name,
                config.stat_prefix,
                config.shadow_rules_stat_prefix,
                sorted(config.rules.policies),
                sorted(config.shadow_rules.policies),
            )
        )
    assert seen == [
        (
            "meshward.authz.dryrun.ops.dry",
            "inbound_5432.meshward_dryrun_",
            "meshward_dryrun_ops_dry_",
            [],
            ["ns[ops]-policy[dry]-rule[0]"],
        ),
        (
            "meshward.authz.deny",
            "inbound_5432.meshward_deny_",
            "",
            ["ns[default]-policy[d]-rule[0]"],
            [],
        ),
    ]


def test_tcp_chain_puts_rbac_before_tcp_proxy() -> None:
    authz = PortAuthz((_policy("d", "DENY", AuthzRule(0)),))
    chain = _inbound(_proxy("TCP", authz)).filter_chains[0]
    assert [f.name for f in chain.filters] == [
        "meshward.authz.deny",
        "envoy.filters.network.tcp_proxy",
    ]


def _policy_dict(authz: PortAuthz, *, http: bool) -> dict[str, Any]:
    """{policy name: policy as dict} of the single enforced engine."""
    (only,) = rbac.rbac_filters_for(authz, http=http)  # type: ignore[call-overload]
    config = http_rbac_pb2.RBAC() if http else network_rbac_pb2.RBAC()
    assert only.typed_config.Unpack(config)
    rules = json_format.MessageToDict(config.rules, preserving_proto_field_name=True)
    return dict(rules["policies"])


_NEVER = {
    "permissions": [{"not_rule": {"any": True}}],
    "principals": [{"not_id": {"any": True}}],
}


@pytest.mark.parametrize(
    ("action", "http", "expected"),
    [
        # ALLOW with an HTTP-only field on TCP: the rule is dropped; the policy still allows
        # nothing (Istio: allows less).
        ("ALLOW", False, {"ns[default]-policy[p]-rule[0]": _NEVER}),
        # DENY with it: the field is removed, so the rule matches every method (denies more).
        (
            "DENY",
            False,
            {
                "ns[default]-policy[p]-rule[0]": {
                    "permissions": [{"and_rules": {"rules": [{"any": True}]}}],
                    "principals": [{"and_ids": {"ids": [{"any": True}]}}],
                }
            },
        ),
        (
            "ALLOW",
            True,
            {
                "ns[default]-policy[p]-rule[0]": {
                    "permissions": [
                        {
                            "and_rules": {
                                "rules": [
                                    {
                                        "or_rules": {
                                            "rules": [
                                                {
                                                    "header": {
                                                        "name": ":method",
                                                        "string_match": {"exact": "GET"},
                                                    }
                                                }
                                            ]
                                        }
                                    }
                                ]
                            }
                        }
                    ],
                    "principals": [{"and_ids": {"ids": [{"any": True}]}}],
                }
            },
        ),
    ],
)
def test_http_only_fields_on_tcp(action: AuthzAction, http: bool, expected: dict[str, Any]) -> None:
    rule = AuthzRule(0, operations=(OperationMatch(methods=("GET",)),))
    assert _policy_dict(PortAuthz((_policy("p", action, rule),)), http=http) == expected


@pytest.mark.parametrize(
    ("action", "expected_ids"),
    [
        # A malformed CIDR in an ALLOW rule drops the rule (never more access).
        ("ALLOW", None),
        # In a DENY rule the bad value is skipped, the good one stays.
        ("DENY", [{"direct_remote_ip": {"address_prefix": "10.0.0.0", "prefix_len": 8}}]),
    ],
)
def test_malformed_value_follows_action(
    action: AuthzAction, expected_ids: list[dict[str, Any]] | None
) -> None:
    rule = AuthzRule(0, sources=(SourceMatch(ip_blocks=("10.0.0.0/8", "10.0.0.300")),))
    (policy,) = _policy_dict(PortAuthz((_policy("p", action, rule),)), http=True).values()
    if expected_ids is None:
        assert policy == _NEVER
    else:
        assert policy["principals"] == [{"and_ids": {"ids": [{"or_ids": {"ids": expected_ids}}]}}]


@pytest.mark.parametrize(
    ("key", "action", "expected_principal_ids"),
    [
        ("request.unknown", "ALLOW", None),
        ("request.unknown", "DENY", [{"any": True}]),
        ("request.auth.claims[bad", "ALLOW", None),
        (
            "source.ip",
            "ALLOW",
            [
                {
                    "or_ids": {
                        "ids": [
                            {"direct_remote_ip": {"address_prefix": "10.0.0.1", "prefix_len": 32}}
                        ]
                    }
                }
            ],
        ),
    ],
)
def test_condition_keys(
    key: str, action: AuthzAction, expected_principal_ids: list[dict[str, Any]] | None
) -> None:
    rule = AuthzRule(0, conditions=(Condition(key, ("10.0.0.1",)),))
    (policy,) = _policy_dict(PortAuthz((_policy("p", action, rule),)), http=True).values()
    if expected_principal_ids is None:
        assert policy == _NEVER
    else:
        assert policy["principals"] == [{"and_ids": {"ids": expected_principal_ids}}]


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "name", "prefix"),
    [
        ("default", "deny-db", "meshward_dryrun_default_deny-db_"),
        ("team-a", "v1.allow", "meshward_dryrun_team-a_v1_allow_"),
    ],
)
def test_dry_run_stat_prefix_round_trips(namespace: str, name: str, prefix: str) -> None:
    policy = _policy(name, "DENY", namespace=namespace, dry_run=True)
    assert rbac.dry_run_stat_prefix(policy) == prefix
    assert rbac.policy_of_dry_run_prefix(prefix) == f"{namespace}/{name}"


@pytest.mark.parametrize(
    "prefix", ["meshward_deny_", "meshward_dryrun_", "meshward_dryrun_x_", "x"]
)
def test_other_prefixes_name_no_policy(prefix: str) -> None:
    assert rbac.policy_of_dry_run_prefix(prefix) is None


# --- access-log readers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {"code": 403, "details": "rbac_access_denied_matched_policy[ns[a]-policy[b]-rule[2]]"},
            ("a/b", "DENY", 2),
        ),
        ({"code": 403, "details": "rbac_access_denied_matched_policy[none]"}, ("", "ALLOW", None)),
        (
            {
                "details": "rbac_access_denied_matched_policy[ns[a]-policy[ext]-rule[0]]",
                "rbac": {
                    "meshward_custom_enforced_effective_policy_id": "ns[a]-policy[ext]-rule[0]"
                },
            },
            ("a/ext", "CUSTOM", 0),
        ),
        (
            {"termination": "rbac_access_denied_matched_policy[ns[data]-policy[db]-rule[0]]"},
            ("data/db", "DENY", 0),
        ),
        ({"details": "rbac_access_denied_matched_policy[other]"}, ("other", "DENY", None)),
        (
            {
                "code": 401,
                "details": "ext_authz_denied",
                "rbac": {
                    "meshward_ext_authz_shadow_effective_policy_id": "ns[a]-policy[ext]-rule[1]"
                },
            },
            ("a/ext", "CUSTOM", 1),
        ),
        ({"code": 403, "details": "ext_authz_error"}, ("", "CUSTOM", None)),
        ({"code": 403, "details": "via_upstream"}, None),
        ({"code": 200, "details": "via_upstream", "termination": None}, None),
        ({}, None),
    ],
)
def test_denial(entry: dict[str, Any], expected: tuple[str, str, int | None] | None) -> None:
    assert access_log.denial(entry) == expected


def test_shadow_decisions() -> None:
    entry = {
        "rbac": {
            "meshward_allow_enforced_engine_result": "allowed",
            "meshward_dryrun_a_one_shadow_effective_policy_id": "ns[a]-policy[one]-rule[1]",
            "meshward_dryrun_a_one_shadow_engine_result": "denied",
            "meshward_dryrun_b_v1_two_shadow_engine_result": "allowed",
        }
    }
    assert access_log.shadow_decisions(entry) == (
        access_log.ShadowDecision("a/one", 1, would_allow=False),
        access_log.ShadowDecision("b/v1.two", None, would_allow=True),
    )
    assert access_log.shadow_decisions({"rbac": None}) == ()


def test_access_log_keys() -> None:
    """The authorization keys, added beside the existing ones (never renamed)."""
    http = json_format.MessageToDict(access_log.access_log("inbound", http=True))
    tcp = json_format.MessageToDict(access_log.access_log("inbound", http=False))
    http_format = http["typedConfig"]["logFormat"]["jsonFormat"]
    tcp_format = tcp["typedConfig"]["logFormat"]["jsonFormat"]
    assert (http_format["details"], http_format["rbac"], http_format["audit"]) == (
        "%RESPONSE_CODE_DETAILS%",
        "%DYNAMIC_METADATA(envoy.filters.http.rbac)%",
        "%DYNAMIC_METADATA(envoy.common:access_log_hint)%",
    )
    assert (tcp_format["termination"], tcp_format["rbac"]) == (
        "%CONNECTION_TERMINATION_DETAILS%",
        "%DYNAMIC_METADATA(envoy.filters.network.rbac)%",
    )
