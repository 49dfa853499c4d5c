"""PeerAuthentication precedence: one row changes one thing and asserts the whole Decision."""

from __future__ import annotations

import pytest
from model_cases import ROOT, peer, workload

from meshward.config import resources as cfg
from meshward.identity import SpiffeId
from meshward.model import ir, peer_authn
from meshward.model.peer_authn import DEFAULT_SOURCE, Decision

DB = {"app": "db"}
OTHER = {"app": "web"}

# (id, policies, (namespace, labels) of the workload, port asked, expected decision)
CASES: list[tuple[str, list[cfg.PeerAuthentication], tuple[str, dict[str, str]], int, Decision]] = [
    ("nothing set is PERMISSIVE", [], ("core", DB), 6379, Decision("PERMISSIVE", DEFAULT_SOURCE)),
    (
        "mesh STRICT",
        [peer("mesh", ROOT, "STRICT")],
        ("core", DB),
        6379,
        Decision("STRICT", f"PeerAuthentication {ROOT}/mesh"),
    ),
    (
        "mesh UNSET only is PERMISSIVE by default",
        [peer("mesh", ROOT, "UNSET")],
        ("core", DB),
        6379,
        Decision("PERMISSIVE", DEFAULT_SOURCE),
    ),
    (
        "namespace overrides mesh",
        [peer("mesh", ROOT, "STRICT"), peer("ns", "core", "PERMISSIVE")],
        ("core", DB),
        6379,
        Decision("PERMISSIVE", "PeerAuthentication core/ns"),
    ),
    (
        "namespace UNSET inherits mesh",
        [peer("mesh", ROOT, "STRICT"), peer("ns", "core", "UNSET")],
        ("core", DB),
        6379,
        Decision("STRICT", f"PeerAuthentication {ROOT}/mesh"),
    ),
    (
        "namespace without mtls inherits mesh",
        [peer("mesh", ROOT, "DISABLE"), peer("ns", "core", None)],
        ("core", DB),
        6379,
        Decision("DISABLE", f"PeerAuthentication {ROOT}/mesh"),
    ),
    (
        "namespace policy of another namespace does not apply",
        [peer("mesh", ROOT, "STRICT"), peer("ns", "edge", "DISABLE")],
        ("core", DB),
        6379,
        Decision("STRICT", f"PeerAuthentication {ROOT}/mesh"),
    ),
    (
        "empty selector is namespace level",
        [peer("ns", "core", "STRICT", selector={})],
        ("core", OTHER),
        8000,
        Decision("STRICT", "PeerAuthentication core/ns"),
    ),
    (
        "workload overrides namespace",
        [peer("ns", "core", "DISABLE"), peer("db", "core", "STRICT", DB)],
        ("core", DB),
        6379,
        Decision("STRICT", "PeerAuthentication core/db"),
    ),
    (
        "workload UNSET inherits namespace",
        [peer("ns", "core", "STRICT"), peer("db", "core", "UNSET", DB)],
        ("core", DB),
        6379,
        Decision("STRICT", "PeerAuthentication core/ns"),
    ),
    (
        "workload selector not matching leaves namespace",
        [peer("ns", "core", "STRICT"), peer("db", "core", "DISABLE", DB)],
        ("core", OTHER),
        8000,
        Decision("STRICT", "PeerAuthentication core/ns"),
    ),
    (
        "workload policy of another namespace does not apply",
        [peer("db", "edge", "DISABLE", DB)],
        ("core", DB),
        6379,
        Decision("PERMISSIVE", DEFAULT_SOURCE),
    ),
    (
        "port-level overrides the workload mode on that port",
        [peer("db", "core", "STRICT", DB, {6379: "DISABLE"})],
        ("core", DB),
        6379,
        Decision("DISABLE", "PeerAuthentication core/db (port 6379)"),
    ),
    (
        "port-level on another port leaves this one",
        [peer("db", "core", "STRICT", DB, {8080: "DISABLE"})],
        ("core", DB),
        6379,
        Decision("STRICT", "PeerAuthentication core/db"),
    ),
    (
        "port-level UNSET takes the workload's resolved (inherited) mode",
        [peer("ns", "core", "DISABLE"), peer("db", "core", "UNSET", DB, {6379: "UNSET"})],
        ("core", DB),
        6379,
        Decision("DISABLE", "PeerAuthentication core/ns"),
    ),
    (
        "port-level set under an UNSET workload mode",
        [peer("mesh", ROOT, "PERMISSIVE"), peer("db", "core", None, DB, {6379: "STRICT"})],
        ("core", DB),
        6379,
        Decision("STRICT", "PeerAuthentication core/db (port 6379)"),
    ),
    (
        "oldest namespace policy wins",
        [peer("b", "core", "STRICT", order=2), peer("a", "core", "PERMISSIVE", order=1)],
        ("core", DB),
        6379,
        Decision("PERMISSIVE", "PeerAuthentication core/a"),
    ),
    (
        "oldest by creationTimestamp beats input position",
        [
            peer("first", "core", "STRICT", order=1, created="2025-01-01T00:00:00Z"),
            peer("older", "core", "DISABLE", order=2, created="2024-01-01T00:00:00Z"),
        ],
        ("core", DB),
        6379,
        Decision("DISABLE", "PeerAuthentication core/older"),
    ),
    (
        "oldest namespace policy wins even when UNSET (inherits, newer one unused)",
        [
            peer("mesh", ROOT, "DISABLE"),
            peer("old", "core", "UNSET", order=1),
            peer("new", "core", "STRICT", order=2),
        ],
        ("core", DB),
        6379,
        Decision("DISABLE", f"PeerAuthentication {ROOT}/mesh"),
    ),
    (
        "oldest workload policy wins, its port-level too",
        [
            peer("wide", "core", "STRICT", {"tier": "data"}, {6379: "DISABLE"}, order=2),
            peer("narrow", "core", "PERMISSIVE", DB, order=1),
        ],
        ("core", {"app": "db", "tier": "data"}),
        6379,
        Decision("PERMISSIVE", "PeerAuthentication core/narrow"),
    ),
    (
        "oldest mesh policy wins",
        [peer("b", ROOT, "STRICT", order=2), peer("a", ROOT, "DISABLE", order=1)],
        ("core", DB),
        6379,
        Decision("DISABLE", f"PeerAuthentication {ROOT}/a"),
    ),
    (
        "root-namespace selector policy is ignored for a root-namespace workload",
        [peer("mesh", ROOT, "STRICT"), peer("sel", ROOT, "DISABLE", DB)],
        (ROOT, DB),
        6379,
        Decision("STRICT", f"PeerAuthentication {ROOT}/mesh"),
    ),
    (
        "root-namespace selector policy is ignored elsewhere",
        [peer("sel", ROOT, "DISABLE", DB)],
        ("core", DB),
        6379,
        Decision("PERMISSIVE", DEFAULT_SOURCE),
    ),
    (
        "root-namespace workload gets the mesh policy",
        [peer("mesh", ROOT, "STRICT"), peer("ns", "core", "DISABLE")],
        (ROOT, DB),
        6379,
        Decision("STRICT", f"PeerAuthentication {ROOT}/mesh"),
    ),
]


@pytest.mark.parametrize(
    ("policies", "where", "port", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decide(
    policies: list[cfg.PeerAuthentication],
    where: tuple[str, dict[str, str]],
    port: int,
    expected: Decision,
) -> None:
    idx = peer_authn.index(policies, ROOT)
    assert peer_authn.decide(idx, where[0], cfg.labels(where[1]), port) == expected


def _pods(*workloads: cfg.Workload) -> list[ir.Pod]:
    return [
        ir.Pod(
            key=ir.PodKey(w.meta.namespace, w.meta.name, 0),
            labels=w.labels,
            service_account=w.service_account,
            identity=SpiffeId("cluster.local", w.meta.namespace, "sa") if w.sidecar else None,
            address=ir.PodAddress("127.77.0.2", "127.78.0.2"),
            ports=tuple(ir.PodPort(p.name, p.port, "TCP") for p in w.ports),
        )
        for w in workloads
    ]


DB_POD = workload("db", ports=[("redis", 6379)])
WEB_POD = workload("web", labels=OTHER)
LEGACY = workload("old", labels={"app": "old"}, sidecar=False)

# (id, policies, workloads, expected (code, resource) findings)
FINDINGS: list[
    tuple[str, list[cfg.PeerAuthentication], list[cfg.Workload], list[tuple[str, str]]]
] = [
    ("clean", [peer("db", "core", "STRICT", DB, {6379: "DISABLE"})], [DB_POD], []),
    (
        "selector matches nothing",
        [peer("x", "core", "STRICT", {"app": "nope"})],
        [DB_POD],
        [("MW0205", "PeerAuthentication core/x")],
    ),
    (
        "selector in another namespace's workloads",
        [peer("x", "edge", "STRICT", DB)],
        [DB_POD],
        [("MW0205", "PeerAuthentication edge/x")],
    ),
    (
        "selector matches only a legacy workload",
        [peer("x", "core", "STRICT", {"app": "old"})],
        [DB_POD, LEGACY],
        [("MW0205", "PeerAuthentication core/x")],
    ),
    (
        "port-level port not on the selected workload",
        [peer("db", "core", "STRICT", DB, {6379: "DISABLE", 9999: "DISABLE"})],
        [DB_POD],
        [("MW0206", "PeerAuthentication core/db")],
    ),
    (
        "two namespace policies",
        [peer("a", "core", "STRICT", order=1), peer("b", "core", "STRICT", order=2)],
        [DB_POD],
        [("MW0207", "PeerAuthentication core/b")],
    ),
    (
        "namespace policies in two namespaces do not conflict",
        [peer("a", "core", "STRICT"), peer("a", "edge", "STRICT")],
        [DB_POD],
        [],
    ),
    (
        "two mesh policies",
        [peer("b", ROOT, "STRICT", order=2), peer("a", ROOT, "STRICT", order=1)],
        [],
        [("MW0207", f"PeerAuthentication {ROOT}/b")],
    ),
    (
        "two workload policies on one pod",
        [
            peer("b", "core", "STRICT", DB, order=2),
            peer("a", "core", "STRICT", {}, order=1),
            peer("c", "core", "DISABLE", DB, order=3),
        ],
        [DB_POD],
        [("MW0207", "PeerAuthentication core/c")],
    ),
    (
        "workload policies on different pods do not conflict",
        [peer("db", "core", "STRICT", DB), peer("web", "core", "STRICT", OTHER)],
        [DB_POD, WEB_POD],
        [],
    ),
    (
        "selector policy in the root namespace",
        [peer("sel", ROOT, "STRICT", DB)],
        [DB_POD],
        [("MW0209", f"PeerAuthentication {ROOT}/sel")],
    ),
]


@pytest.mark.parametrize(
    ("policies", "workloads", "expected"), [c[1:] for c in FINDINGS], ids=[c[0] for c in FINDINGS]
)
def test_diagnose(
    policies: list[cfg.PeerAuthentication],
    workloads: list[cfg.Workload],
    expected: list[tuple[str, str]],
) -> None:
    found = peer_authn.diagnose(peer_authn.index(policies, ROOT), _pods(*workloads))
    assert [(d.code, d.resource) for d in found] == expected
