"""AuthorizationPolicy compile: selection, order, ports, HTTP vs TCP, normalisation."""

from __future__ import annotations

import pytest

from meshward.config import resources as cfg
from meshward.model import authz
from meshward.model.authorization import (
    AuthzRule,
    Condition,
    OperationMatch,
    SourceMatch,
    StringMatch,
)

ROOT = "meshward-system"


def policy(
    name: str,
    namespace: str = "shop",
    *rules: cfg.AuthzRuleSpec,
    action: cfg.AuthzAction = "ALLOW",
    selector: dict[str, str] | None = None,
) -> cfg.AuthorizationPolicy:
    meta = cfg.Meta(
        "security.istio.io/v1", "AuthorizationPolicy", name, namespace, "p.yaml", 1, ("", 0)
    )
    return cfg.AuthorizationPolicy(
        meta, None if selector is None else cfg.labels(selector), action, "", rules, False
    )


WEB = cfg.labels({"app": "web"})


@pytest.mark.parametrize(
    ("policy_", "namespace", "applies"),
    [
        (policy("ns-wide"), "shop", True),
        (policy("ns-wide"), "other", False),
        (policy("selected", selector={"app": "web"}), "shop", True),
        (policy("not-selected", selector={"app": "db"}), "shop", False),
        (policy("mesh-wide", ROOT), "other", True),
        # Istio: a selector in the root namespace matches workloads in every namespace.
        (policy("root-selector", ROOT, selector={"app": "web"}), "other", True),
        (policy("root-selector", ROOT, selector={"app": "db"}), "other", False),
    ],
)
def test_selection(policy_: cfg.AuthorizationPolicy, namespace: str, applies: bool) -> None:
    assert authz.applies(policy_, ROOT, namespace, WEB) is applies


def test_evaluation_order_is_action_then_namespace_and_name() -> None:
    idx = authz.index(
        [
            policy("b", action="AUDIT"),
            policy("a"),
            policy("z", action="DENY"),
            policy("c", ROOT, action="DENY"),
            policy("y", action="CUSTOM"),
        ],
        ROOT,
        "cluster.local",
    )
    assert [(p.action, p.meta.name) for p in authz.selected(idx, "shop", WEB)] == [
        ("CUSTOM", "y"),
        ("DENY", "c"),
        ("DENY", "z"),
        ("ALLOW", "a"),
        ("AUDIT", "b"),
    ]


GET = cfg.AuthzOperation(methods=("GET",))
USERS = cfg.AuthzSource(service_accounts=("apps/users",), request_principals=("iss/sub",))


@pytest.mark.parametrize(
    ("spec", "action", "port", "http", "compiled"),
    [
        ("rule", "ALLOW", 80, True, AuthzRule(3)),
        (
            cfg.AuthzRuleSpec(sources=(USERS,), operations=(GET,)),
            "ALLOW",
            80,
            True,
            AuthzRule(
                3,
                sources=(
                    SourceMatch(
                        principals=(StringMatch("exact", "td/ns/apps/sa/users"),),
                        request_principals=(StringMatch("exact", "iss/sub"),),
                    ),
                ),
                operations=(OperationMatch(methods=("GET",)),),
            ),
        ),
        # TCP: ALLOW with HTTP fields dropped; DENY widened.
        (cfg.AuthzRuleSpec(operations=(GET,)), "ALLOW", 5432, False, None),
        (
            cfg.AuthzRuleSpec(sources=(USERS,), operations=(GET,)),
            "DENY",
            5432,
            False,
            AuthzRule(
                3,
                sources=(SourceMatch(principals=(StringMatch("exact", "td/ns/apps/sa/users"),)),),
                operations=(OperationMatch(),),
            ),
        ),
        # Ports decided for the port.
        (cfg.AuthzRuleSpec(operations=(cfg.AuthzOperation(ports=(81,)),)), "DENY", 80, True, None),
        (
            cfg.AuthzRuleSpec(
                operations=(cfg.AuthzOperation(not_ports=(80,)), cfg.AuthzOperation(ports=(80,)))
            ),
            "DENY",
            80,
            True,
            AuthzRule(3, operations=(OperationMatch(),)),
        ),
        (
            cfg.AuthzRuleSpec(conditions=(cfg.AuthzCondition("destination.port", ("81",)),)),
            "ALLOW",
            80,
            True,
            None,
        ),
        (
            cfg.AuthzRuleSpec(conditions=(cfg.AuthzCondition("destination.port", ("80",)),)),
            "ALLOW",
            80,
            True,
            AuthzRule(3),
        ),
        # Normalisation: methods ["*"] is any method; notMethods ["*"] matches nothing.
        (
            cfg.AuthzRuleSpec(
                operations=(cfg.AuthzOperation(methods=("*",), paths=("/a/{*}", "/b*")),)
            ),
            "ALLOW",
            80,
            True,
            AuthzRule(
                3,
                operations=(
                    OperationMatch(
                        paths=(StringMatch("template", "/a/{*}"), StringMatch("prefix", "/b"))
                    ),
                ),
            ),
        ),
        (
            cfg.AuthzRuleSpec(operations=(cfg.AuthzOperation(not_methods=("*",)),)),
            "ALLOW",
            80,
            True,
            None,
        ),
        (
            cfg.AuthzRuleSpec(
                sources=(
                    cfg.AuthzSource(
                        ip_blocks=("10.1.2.3", "10.1.2.3/8"), not_remote_ip_blocks=("::1",)
                    ),
                ),
                conditions=(
                    cfg.AuthzCondition("source.serviceAccount", ("a/b",)),
                    cfg.AuthzCondition("destination.ip", (), ("10.0.0.1",)),
                ),
            ),
            "ALLOW",
            5432,
            False,
            AuthzRule(
                3,
                sources=(
                    SourceMatch(
                        ip_blocks=("10.1.2.3/32", "10.0.0.0/8"), not_remote_ip_blocks=("::1/128",)
                    ),
                ),
                conditions=(
                    Condition("source.principal", ("td/ns/a/sa/b",)),
                    Condition("destination.ip", (), ("10.0.0.1/32",)),
                ),
            ),
        ),
    ],
)
def test_compile_rule(
    spec: cfg.AuthzRuleSpec | str,
    action: cfg.AuthzAction,
    port: int,
    http: bool,
    compiled: AuthzRule | None,
) -> None:
    rule_spec = cfg.AuthzRuleSpec() if isinstance(spec, str) else spec
    written = policy("p", "shop", rule_spec, action=action)
    assert authz.compile_rule(rule_spec, 3, written, port, http, "td") == compiled


def test_an_allow_policy_whose_rules_all_drop_stays_in_force() -> None:
    written = policy("p", "shop", cfg.AuthzRuleSpec(operations=(GET,)))
    compiled = authz.compile_policy(written, 5432, False, "td")
    assert (compiled.action, compiled.rules) == ("ALLOW", ())
