"""MW0526 (analyze/egress_gateway.py): the egress gateway mesh of tests/gateway/egress_cases.py
is clean; each variation changes one thing so that a sidecar's route for an external host
meets a gateway port whose servers cannot take what the sidecar sends — the exact findings
(resource, field, message with the fix). Quiet variations prove the check does not guess."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from meshward.analyze import analyze
from tests.analyze.test_analyze_cases import EXAMPLE, findings
from tests.gateway import egress_cases

GW = egress_cases.GW_FQDN
MESH = egress_cases.MESH
DR = "DestinationRule istio-system/egressgateway"
PORTS = "spec.trafficPolicy.portLevelSettings"

# The sidecar's rule for the gateway, as written in egress_cases.MESH.
RULE_80 = """\
    - port: {{number: 80}}
      tls: {{mode: ISTIO_MUTUAL, sni: api.maps.example}}
"""
RULE_8443 = """\
    - port: {{number: 8443}}
      tls: {{mode: ISTIO_MUTUAL, sni: bank.example}}
"""
RULE_443 = """\
    - port: {{number: 443}}
      tls: {{mode: ISTIO_MUTUAL}}
"""
SERVER_80 = """\
  - port: {{number: 80, name: https-maps, protocol: HTTPS}}
    hosts: [api.maps.example]
    tls: {{mode: ISTIO_MUTUAL}}
"""


def _variant(old: str, new: str) -> str:
    old, new = old.replace("{{", "{").replace("}}", "}"), new.replace("{{", "{").replace("}}", "}")
    assert MESH.count(old) == 1, old
    return MESH.replace(old, new)


def _mw0526(base: str) -> list[tuple[str, str, str]]:
    model, model_findings = egress_cases.model(base=base)
    found = analyze(egress_cases.config(base=base), model, model_findings=model_findings)
    return [(d.resource, d.location.field, d.message) for d in found if d.code == "MW0526"]


PLAIN_80 = (
    "Workload shop/sleep",
    "",
    "calls from shop/sleep for api.maps.example:80 go to gateway istio-system/egressgateway "
    "port 80 in plaintext (auto-mTLS never wraps traffic to a gateway pod), but the "
    "gateway's servers there are ISTIO_MUTUAL: write a DestinationRule for "
    f"{GW} with portLevelSettings "
    "[{port: {number: 80}, tls: {mode: ISTIO_MUTUAL, sni: api.maps.example}}]",
)
PLAIN_8443 = (
    "Workload shop/sleep",
    "",
    "calls from shop/sleep for bank.example:443 go to gateway istio-system/egressgateway "
    "port 8443 in plaintext (auto-mTLS never wraps traffic to a gateway pod), but the "
    "gateway's servers there are ISTIO_MUTUAL: write a DestinationRule for "
    f"{GW} with portLevelSettings "
    "[{port: {number: 8443}, tls: {mode: ISTIO_MUTUAL, sni: bank.example}}]",
)


def _sni(sni: str) -> tuple[str, str, str]:
    return (
        DR,
        PORTS,
        "calls from shop/sleep for api.maps.example:80 go to gateway istio-system/egressgateway "
        f"port 80 over mesh mTLS with SNI {sni}, but the gateway's ISTIO_MUTUAL servers there "
        f"match only api.maps.example: set tls.sni for port 80 in {DR} to a host of those servers",
    )


def _unterminated(port: int, host: str, servers: str) -> tuple[str, str, str]:
    return (
        DR,
        PORTS,
        f"calls from shop/sleep for {host} go to gateway istio-system/egressgateway port {port} "
        "over mesh "
        f"mTLS, but no server there terminates it ({servers}): remove ISTIO_MUTUAL for port "
        f"{port} from {DR} (the sidecar then sends what the app sends), or make the Gateway "
        "server ISTIO_MUTUAL",
    )


CASES: dict[str, tuple[str, list[tuple[str, str, str]]]] = {
    "clean": (MESH, []),
    # (a) no ISTIO_MUTUAL rule for the port: the sidecar sends plaintext to an mTLS server.
    "no rule for port 80": (_variant(RULE_80, ""), [PLAIN_80]),
    "no rule at all": (
        _variant(
            RULE_80 + RULE_8443, "    - port: {{number: 9999}}\n      tls: {{mode: DISABLE}}\n"
        ),
        [PLAIN_80, PLAIN_8443],
    ),
    # (b) mesh mTLS with an SNI the ISTIO_MUTUAL server does not match.
    "wrong sni": (
        _variant(RULE_80, RULE_80.replace("sni: api.maps.example", "sni: maps.example")),
        [_sni("maps.example")],
    ),
    # ... Istio's default SNI when the rule names none.
    "no sni": (
        _variant(RULE_80, RULE_80.replace(", sni: api.maps.example", "")),
        [_sni(f"outbound_.80_._.{GW}")],
    ),
    # (c) mesh mTLS to a PASSTHROUGH server, or to a plaintext HTTP server.
    "mtls to passthrough": (
        _variant(RULE_80, RULE_80 + RULE_443),
        [_unterminated(443, "pay.example:443", "PASSTHROUGH")],
    ),
    "mtls to plaintext http": (
        _variant(
            SERVER_80,
            SERVER_80.replace("HTTPS", "HTTP").replace("    tls: {{mode: ISTIO_MUTUAL}}\n", ""),
        ),
        [_unterminated(80, "api.maps.example:80", "plaintext HTTP")],
    ),
    # Quiet: a wildcard server host matches the rule's SNI (Envoy server_names).
    "wildcard server host": (
        _variant(
            SERVER_80, SERVER_80.replace("hosts: [api.maps.example]", 'hosts: ["*.maps.example"]')
        ),
        [],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_mw0526(case: str) -> None:
    base, expected = CASES[case]
    assert _mw0526(base) == expected


# MW0527: the gateway leaves by api.maps.example:443, which the sidecar sees as well.
ORIGINATION = """\
        mode: SIMPLE
        caCertificates: /etc/ssl/certs/ca-certificates.crt
"""
MUTUAL = ORIGINATION.replace("SIMPLE", "MUTUAL") + "        credentialName: maps-client\n"
MAPS_TLS = "metadata: {{name: maps-tls, namespace: shop}}\nspec:\n"
FOR_THE_GATEWAY = (
    "metadata: {{name: maps-tls, namespace: istio-system}}\nspec:\n"
    "  workloadSelector: {{matchLabels: {{istio: egressgateway}}}}\n"
)
BYPASS = (
    "DestinationRule shop/maps-tls",
    PORTS,
    "sidecars of shop/sleep originate mTLS with the client credential maps-client to "
    "api.maps.example:443, the port gateway istio-system/egressgateway leaves by: a workload "
    "the gateway's policy refuses can call it directly and present the credential; give the "
    "rule a workloadSelector for the gateway",
)


def _mw0527(base: str) -> list[tuple[str, str, str]]:
    model, model_findings = egress_cases.model(base=base)
    found = analyze(egress_cases.config(base=base), model, model_findings=model_findings)
    return [(d.resource, d.location.field, d.message) for d in found if d.code == "MW0527"]


def _gateway_originates(base: str) -> bool:
    model, _ = egress_cases.model(base=base)
    leaving = egress_cases.outbound(model, "egressgateway", "api.maps.example", 443)
    return leaving.origination is not None and leaving.origination.mode == "MUTUAL"


@pytest.mark.parametrize(
    ("case", "base", "expected"),
    [
        # SIMPLE holds no client credential: nothing to present (quiet).
        ("simple", MESH, []),
        # MUTUAL for every caller of the host: the sidecar holds the gateway's credential.
        ("mutual everywhere", _variant(ORIGINATION, MUTUAL), [BYPASS]),
        # MUTUAL only for the gateway (the rule in its namespace, selecting it): quiet.
        (
            "mutual at the gateway only",
            _variant(ORIGINATION, MUTUAL).replace(
                MAPS_TLS.replace("{{", "{").replace("}}", "}"),
                FOR_THE_GATEWAY.replace("{{", "{").replace("}}", "}"),
            ),
            [],
        ),
    ],
)
def test_mw0527(case: str, base: str, expected: list[tuple[str, str, str]]) -> None:
    assert _mw0527(base) == expected
    if case != "simple":  # the gateway itself still originates mTLS either way
        assert _gateway_originates(base)


def _example_without(tmp_path: Path, *lines: str) -> list[tuple[str, str, str]]:
    example = tmp_path / "simple-system"
    shutil.copytree(EXAMPLE, example)
    egress = example / "egress.yaml"
    text = egress.read_text()
    for line in lines:
        assert text.count(line) == 1, line
        text = text.replace(line, "")
    egress.write_text(text)
    return [
        (d.code, d.resource, d.message) for d in findings(example) if d.code in ("MW0527", "MW0528")
    ]


EXPORT = '  exportTo: ["."]\n'
SELECTOR = "  workloadSelector: {matchLabels: {istio: egressgateway}}\n"
EXAMPLE_CALLERS = (
    "core/credentials, core/database, core/user-service, core/vault, geo/location-service"
)
EXAMPLE_DIRECT = (
    "MW0528",
    "ServiceEntry istio-system/maps-exit",
    f"sidecars of {EXAMPLE_CALLERS} reach api.maps.example:443 directly, while its port 80 "
    "leaves through an egress gateway: there the gateway's AuthorizationPolicy does not "
    "apply; export that port only to the gateway's namespace (a ServiceEntry of its own with "
    "exportTo) or route it through the gateway as well",
)


def test_the_examples_way_out_is_the_gateways_alone(tmp_path: Path) -> None:
    # examples/simple-system is clean (test_analyze_cases): the maps API's port 443 is the
    # gateway's namespace's alone. Exported to every namespace, every sidecar could call it.
    assert _example_without(tmp_path, EXPORT) == [EXAMPLE_DIRECT]


def test_the_examples_gateway_credential_stays_at_the_gateway(tmp_path: Path) -> None:
    # And with the port exported, without its workloadSelector every sidecar would also hold
    # maps-client for it.
    assert _example_without(tmp_path, EXPORT, SELECTOR) == [
        EXAMPLE_DIRECT,
        (
            "MW0527",
            "DestinationRule istio-system/maps-mtls",
            f"sidecars of {EXAMPLE_CALLERS} originate mTLS with the client credential "
            "maps-client to api.maps.example:443, the port gateway istio-system/egressgateway "
            "leaves by: a workload the gateway's policy refuses can call it directly and "
            "present the credential; give the rule a workloadSelector for the gateway",
        ),
    ]


# MW0528 on egress_cases: api.maps.example's port 80 goes through the gateway, its port 443
# (the gateway's way out) is in the same ServiceEntry, so shop/sleep sees it too.
ONE_ENTRY = """\
  ports:
  - {{number: 80, name: http, protocol: HTTP}}
  - {{number: 443, name: https, protocol: HTTPS}}
  resolution: STATIC
  endpoints: [{{address: 198.19.9.5}}]
"""
EXIT_OF_ITS_OWN = """\
  ports:
  - {{number: 80, name: http, protocol: HTTP}}
  resolution: STATIC
  endpoints: [{{address: 198.19.9.5}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: maps-exit, namespace: shop}}
spec:
  hosts: [api.maps.example]
  ports: [{{number: 443, name: https, protocol: HTTPS}}]
  resolution: STATIC
  endpoints: [{{address: 198.19.9.5}}]
  exportTo: [istio-system]
"""


def _mw0528(base: str) -> list[tuple[str, str, str]]:
    model, model_findings = egress_cases.model(base=base)
    found = analyze(egress_cases.config(base=base), model, model_findings=model_findings)
    return [(d.resource, d.location.field, d.message) for d in found if d.code == "MW0528"]


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        (
            MESH,
            [
                (
                    "ServiceEntry shop/maps",
                    "spec.ports",
                    "sidecars of shop/sleep reach api.maps.example:443 directly, while its "
                    "port 80 leaves through an egress gateway: there the gateway's "
                    "AuthorizationPolicy does not apply; export that port only to the "
                    "gateway's namespace (a ServiceEntry of its own with exportTo) or route "
                    "it through the gateway as well",
                )
            ],
        ),
        # The exit port exported to the gateway's namespace only: quiet, and the gateway
        # still leaves by it (shop's DestinationRule still applies: the entry is shop's).
        (_variant(ONE_ENTRY, EXIT_OF_ITS_OWN), []),
    ],
    ids=["one entry", "exit of its own"],
)
def test_mw0528(base: str, expected: list[tuple[str, str, str]]) -> None:
    assert _mw0528(base) == expected
    model, _ = egress_cases.model(base=base)
    leaving = egress_cases.outbound(model, "egressgateway", "api.maps.example", 443)
    assert leaving.origination is not None  # the gateway's way out is intact
