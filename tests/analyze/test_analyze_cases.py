"""The analyzer grid: every case under tests/analyze/cases/ → its exact (code, resource)
findings. Each check has a case where it fires and one where it stays quiet."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshward.analyze import analyze
from meshward.config import load
from meshward.diagnostics import Diagnostic, has_errors
from meshward.model import allocate, build, replicas

CASES = Path(__file__).parent / "cases"
EXAMPLE = Path(__file__).parents[2] / "examples" / "simple-system"

EGRESS = ("MW0530", "MeshConfig (defaults)")

EXPECTED: dict[str, list[tuple[str, str]]] = {
    # STRICT, default deny, explicit allows, agreeing DestinationRule: only the egress info.
    "strict-covered": [("MW0530", "MeshConfig default/mesh")],
    "root-deny-all": [EGRESS],
    "permissive-default": [
        EGRESS,
        ("MW0501", "Workload team/app"),
        ("MW0510", "Workload team/app"),
        ("MW0511", "Namespace team"),
    ],
    "disable": [EGRESS, ("MW0502", "Workload team/app")],
    "references": [
        EGRESS,
        ("MW0512", "AuthorizationPolicy team/callers"),
        ("MW0512", "AuthorizationPolicy team/callers"),
        ("MW0513", "AuthorizationPolicy team/callers"),
        ("MW0513", "AuthorizationPolicy team/callers"),
    ],
    "identity-plaintext": [
        EGRESS,
        ("MW0501", "Workload geo/maps"),
        ("MW0514", "AuthorizationPolicy geo/allow-geo"),
        ("MW0514", "AuthorizationPolicy geo/deny-geo-admin"),
    ],
    "dr-contradiction": [
        EGRESS,
        ("MW0520", "DestinationRule app/api-plain"),
        ("MW0521", "DestinationRule app/old-mtls"),
    ],
    # SIMPLE/MUTUAL origination to a STRICT sidecar fires; to a pod without a sidecar, quiet.
    "dr-origination": [EGRESS, ("MW0525", "DestinationRule app/api-tls")],
    "cert-ttl": [("MW0532", "MeshConfig default/mesh")],
    # failOpen on a consulted provider fires; on one no policy uses, and without it, quiet.
    "extauthz-fail-open": [
        ("MW0530", "MeshConfig default/mesh"),
        ("MW0558", "MeshConfig default/mesh"),
    ],
    # Tokens validated where no policy requires them fire; DENY notRequestPrincipals, ALLOW
    # requestPrincipals and a TCP-only workload stay quiet.
    "tokens-optional": [
        ("MW0530", "MeshConfig default/mesh"),
        ("MW0550", "Workload team/app"),
    ],
    "model-findings": [
        EGRESS,
        ("MW0205", "PeerAuthentication data/nothing"),
        ("MW0220", "AuthorizationPolicy data/nobody"),
        ("MW0222", "AuthorizationPolicy data/deny-admin"),
        ("MW0204", "DestinationRule data/db"),
    ],
    # Istio reference examples used unchanged (PeerAuthentication, AuthorizationPolicy).
    "istio-docs": [
        EGRESS,
        ("MW0224", "AuthorizationPolicy foo/httpbin"),
        ("MW0512", "AuthorizationPolicy foo/httpbin"),
        ("MW0513", "AuthorizationPolicy foo/httpbin"),
        ("MW0514", "AuthorizationPolicy foo/httpbin"),
        ("MW0502", "Workload foo/finance"),
        ("MW0511", "Namespace foo"),
    ],
}


def findings(path: Path, **options: int) -> tuple[Diagnostic, ...]:
    config = load([path])
    assert not has_errors(config.diagnostics), config.diagnostics
    model, model_findings = build(config, allocate(replicas(config.workloads), {}))
    return analyze(config, model, model_findings=model_findings, **options)


def test_every_case_directory_has_an_expectation() -> None:
    assert sorted(p.name for p in CASES.iterdir() if p.is_dir()) == sorted(EXPECTED)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_case(case: str) -> None:
    assert [(d.code, d.resource) for d in findings(CASES / case)] == EXPECTED[case]


def test_simple_system_example() -> None:
    # geo is PERMISSIVE by design (migration): that finding must appear, at its policy.
    found = findings(EXAMPLE)
    # The mesh-wide RequestAuthentication also reaches the authorization provider, which no
    # end-user token needs to reach: MW0550 says its tokens are optional.
    # The gateways' namespace has no default deny: the ingress gateway answers whoever reaches
    # it, as an edge does (its Gateway servers and VirtualServices decide what); the egress
    # gateway has its own ALLOW list. Outbound traffic is REGISTRY_ONLY: no MW0530.
    assert [(d.code, d.resource, str(d.location)) for d in found] == [
        ("MW0511", "Namespace istio-system", f"{EXAMPLE}/egress.yaml:16"),
        ("MW0550", "Workload core/credentials", f"{EXAMPLE}/external-authn.yaml:7"),
        ("MW0510", "Workload geo/location-service", f"{EXAMPLE}/geo.yaml:4"),
        ("MW0511", "Namespace geo", f"{EXAMPLE}/geo.yaml:4"),
        (
            "MW0501",
            "Workload geo/location-service",
            f"{EXAMPLE}/peer-authentication.yaml:13 spec.mtls.mode",
        ),
    ]


@pytest.mark.parametrize(
    ("max_ttl", "expected"),
    [(24 * 3600, ["MW0532"]), (48 * 3600, []), (72 * 3600, [])],
)
def test_max_cert_ttl(max_ttl: int, expected: list[str]) -> None:
    found = findings(CASES / "cert-ttl", max_cert_ttl_seconds=max_ttl)
    assert [d.code for d in found] == expected


def test_findings_point_at_the_deciding_field() -> None:
    found = {(d.code, d.resource): d.location for d in findings(CASES / "dr-contradiction")}
    plain = found[("MW0520", "DestinationRule app/api-plain")]
    mtls = found[("MW0521", "DestinationRule app/old-mtls")]
    assert (plain.line, plain.field) == (42, "spec.trafficPolicy.tls")
    assert (mtls.line, mtls.field) == (48, "spec.trafficPolicy.portLevelSettings")
