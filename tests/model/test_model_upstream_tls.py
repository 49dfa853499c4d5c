"""DestinationRule lookup, the TLS decision per port, auto-mTLS per endpoint, DR findings."""

from __future__ import annotations

import pytest
from model_cases import ROOT, rule

from meshward.config import resources as cfg
from meshward.identity import SpiffeId
from meshward.model import ir, upstream_tls
from meshward.model.upstream_tls import TlsDecision

FQDN = "db.core.svc.cluster.local"


@pytest.mark.parametrize(
    ("host", "namespace", "expected"),
    [
        ("db", "core", FQDN),
        ("db", "app", "db.app.svc.cluster.local"),
        ("db.core", "app", FQDN),
        ("db.core.svc", "app", FQDN),
        (FQDN, "app", FQDN),
        ("*.core.svc.cluster.local", "app", "*.core.svc.cluster.local"),
        ("*", "app", "*"),
        ("example.com", "app", "example.com.svc.cluster.local"),
    ],
)
def test_resolve_host(host: str, namespace: str, expected: str) -> None:
    assert upstream_tls.resolve_host(host, namespace) == expected


CLIENT = {"app": "client"}

# (id, rules, caller namespace, expected rule name or None); the service is db in core.
LOOKUP: list[tuple[str, list[cfg.DestinationRule], str, str | None]] = [
    ("no rules", [], "app", None),
    ("short host in the service namespace", [rule("r", "core", "db")], "app", "r"),
    (
        "short host resolves against the rule namespace, not the service's",
        [rule("r", "app", "db")],
        "app",
        None,
    ),
    (
        "caller namespace before service namespace",
        [rule("svc", "core", "db"), rule("mine", "app", "db.core")],
        "app",
        "mine",
    ),
    (
        "service namespace before root namespace",
        [rule("root", ROOT, "*"), rule("svc", "core", FQDN)],
        "app",
        "svc",
    ),
    ("root namespace as the last resort", [rule("root", ROOT, "*")], "app", "root"),
    ("rule in an unrelated namespace is not used", [rule("r", "edge", FQDN)], "app", None),
    (
        "exact host before wildcard in one namespace",
        [
            rule("wild", "core", "*.core.svc.cluster.local", order=1),
            rule("exact", "core", "db", order=2),
        ],
        "app",
        "exact",
    ),
    (
        "longer wildcard before '*'",
        [
            rule("all", "core", "*", order=1),
            rule("ns", "core", "*.core.svc.cluster.local", order=2),
        ],
        "app",
        "ns",
    ),
    (
        "namespace order beats specificity: caller's '*' before service's exact host",
        [rule("exact", "core", "db"), rule("all", "app", "*")],
        "app",
        "all",
    ),
    (
        "matching workloadSelector beats a catch-all for the same host",
        [rule("all", "app", FQDN, order=1), rule("mine", "app", FQDN, selector=CLIENT, order=2)],
        "app",
        "mine",
    ),
    (
        "non-matching workloadSelector is skipped",
        [rule("other", "app", FQDN, selector={"app": "x"}), rule("svc", "core", "db")],
        "app",
        "svc",
    ),
    (
        "workloadSelector does not cross namespaces",
        [rule("sel", "core", "db", selector=CLIENT)],
        "app",
        None,
    ),
    (
        "two rules for one host: the oldest",
        [rule("new", "core", "db", order=2), rule("old", "core", FQDN, order=1)],
        "app",
        "old",
    ),
    ("caller in the service namespace, short host", [rule("r", "core", "db")], "core", "r"),
]


@pytest.mark.parametrize(
    ("rules", "caller_ns", "expected"), [c[1:] for c in LOOKUP], ids=[c[0] for c in LOOKUP]
)
def test_rule_for(rules: list[cfg.DestinationRule], caller_ns: str, expected: str | None) -> None:
    found = upstream_tls.rule_for(
        rules,
        caller_namespace=caller_ns,
        caller_labels=cfg.labels(CLIENT),
        service_namespace="core",
        fqdn=FQDN,
        root_namespace=ROOT,
    )
    assert (found.meta.name if found else None) == expected


DECIDE: list[tuple[cfg.DestinationRule | None, int, TlsDecision]] = [
    (None, 6379, TlsDecision("AUTO", "auto-mTLS")),
    (rule("r", "core", "db"), 6379, TlsDecision("AUTO", "auto-mTLS")),
    (
        rule("r", "core", "db", "ISTIO_MUTUAL"),
        6379,
        TlsDecision("ISTIO_MUTUAL", "DestinationRule core/r"),
    ),
    (rule("r", "core", "db", "DISABLE"), 6379, TlsDecision("DISABLE", "DestinationRule core/r")),
    (
        rule("r", "core", "db", "ISTIO_MUTUAL", port_level={6379: "DISABLE"}),
        6379,
        TlsDecision("DISABLE", "DestinationRule core/r (port 6379)"),
    ),
    (
        rule("r", "core", "db", "ISTIO_MUTUAL", port_level={6379: "DISABLE"}),
        80,
        TlsDecision("ISTIO_MUTUAL", "DestinationRule core/r"),
    ),
    (
        rule("r", "core", "db", port_level={6379: "ISTIO_MUTUAL"}),
        6379,
        TlsDecision("ISTIO_MUTUAL", "DestinationRule core/r (port 6379)"),
    ),
    (rule("r", "core", "db", port_level={6379: "DISABLE"}), 80, TlsDecision("AUTO", "auto-mTLS")),
]


@pytest.mark.parametrize(("found", "port", "expected"), DECIDE)
def test_decide(found: cfg.DestinationRule | None, port: int, expected: TlsDecision) -> None:
    assert upstream_tls.decide(found, port) == expected


@pytest.mark.parametrize(
    ("tls", "sidecar", "inbound", "expected"),
    [
        ("AUTO", True, "STRICT", True),
        ("AUTO", True, "PERMISSIVE", True),
        ("AUTO", True, "DISABLE", False),
        ("AUTO", False, "PERMISSIVE", False),
        ("ISTIO_MUTUAL", False, "PERMISSIVE", True),
        ("ISTIO_MUTUAL", True, "DISABLE", True),
        ("DISABLE", True, "STRICT", False),
        ("DISABLE", False, "PERMISSIVE", False),
    ],
)
def test_endpoint_mtls(
    tls: ir.UpstreamTls, sidecar: bool, inbound: ir.EffectiveMtls, expected: bool
) -> None:
    assert upstream_tls.endpoint_mtls(tls, sidecar, inbound) is expected


SERVICES = [ir.Service("core", "db", (ir.ServicePort("redis", 6379, 6379, "TCP"),), ())]
PODS = [
    ir.Pod(
        key=ir.PodKey("app", "client", 0),
        labels=cfg.labels(CLIENT),
        service_account="client",
        identity=SpiffeId("cluster.local", "app", "client"),
        address=ir.PodAddress("127.77.0.2", "127.78.0.2"),
        ports=(),
    )
]

FINDINGS: list[tuple[str, list[cfg.DestinationRule], list[tuple[str, str]]]] = [
    (
        "clean",
        [rule("r", "core", "db", "DISABLE"), rule("s", "app", "db.core", selector=CLIENT)],
        [],
    ),
    ("host matches no service", [rule("r", "app", "db")], [("MW0203", "DestinationRule app/r")]),
    ("wildcard matching a service is fine", [rule("r", "x", "*.core.svc.cluster.local")], []),
    (
        "workloadSelector matches no workload",
        [rule("r", "core", "db", selector=CLIENT)],
        [("MW0204", "DestinationRule core/r")],
    ),
    (
        "same host and callers twice",
        [rule("b", "core", "db", order=2), rule("a", "core", FQDN, order=1)],
        [("MW0208", "DestinationRule core/b")],
    ),
    (
        "same host, different selectors, do not conflict",
        [rule("a", "app", "db.core"), rule("b", "app", "db.core", selector=CLIENT)],
        [],
    ),
]


@pytest.mark.parametrize(
    ("rules", "expected"), [c[1:] for c in FINDINGS], ids=[c[0] for c in FINDINGS]
)
def test_diagnose(rules: list[cfg.DestinationRule], expected: list[tuple[str, str]]) -> None:
    found = upstream_tls.diagnose(rules, SERVICES, PODS)
    assert [(d.code, d.resource) for d in found] == expected
