"""Gateway and VirtualService parsing: valid values whole, and one coded diagnostic per
mistake (Istio's validation rules, see config/gateway.py and config/virtual_service.py)."""

from __future__ import annotations

import pytest

from meshward.config import load_text
from meshward.config.networking import GatewayHost, GatewayServer, GatewayTls

_GW = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: edge}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 443, name: https, protocol: {protocol}}}
    hosts: {hosts}
    tls: {tls}
"""

_VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vs, namespace: core}}
spec:
  hosts: [a.example.com]
  gateways: [{gateway}]
  {body}
"""


def _codes(text: str) -> list[str]:
    return [d.code for d in load_text(text, "c.yaml").diagnostics]


def _gw(protocol: str = "HTTPS", hosts: str = '["a.example.com"]', tls: str = "{}") -> str:
    return _GW.format(protocol=protocol, hosts=hosts, tls=tls)


def test_a_server_parses_whole() -> None:
    text = _gw(
        hosts='["./a.example.com", "core/*.b.example.com", "c.example.com"]',
        tls="{mode: MUTUAL, credentialName: a-cert, subjectAltNames: [spiffe://x/y], "
        "minProtocolVersion: TLSV1_3, cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256]}",
    )
    loaded = load_text(text, "c.yaml")
    assert loaded.diagnostics == ()
    assert loaded.gateways[0].servers == (
        GatewayServer(
            port=443,
            port_name="https",
            protocol="HTTPS",
            hosts=(
                GatewayHost("edge", "a.example.com"),
                GatewayHost("core", "*.b.example.com"),
                GatewayHost("*", "c.example.com"),
            ),
            tls=GatewayTls(
                mode="MUTUAL",
                credential_name="a-cert",
                subject_alt_names=("spiffe://x/y",),
                min_protocol_version="TLSV1_3",
                cipher_suites=("ECDHE-RSA-AES128-GCM-SHA256",),
            ),
        ),
    )


@pytest.mark.parametrize(
    ("protocol", "hosts", "tls", "codes"),
    [
        ("HTTPS", '["bad host!"]', "{mode: SIMPLE, credentialName: c}", ["MW0175"]),
        ("HTTPS", '["a/b/c"]', "{mode: SIMPLE, credentialName: c}", ["MW0175"]),
        ("HTTPS", '["a.example.com"]', "{mode: SIMPLE}", ["MW0176"]),
        (
            "HTTPS",
            '["a.example.com"]',
            "{mode: MUTUAL, serverCertificate: c, privateKey: k}",
            ["MW0176"],
        ),
        ("TLS", '["a.example.com"]', "{mode: PASSTHROUGH, credentialName: c}", ["MW0176"]),
        (
            "HTTPS",
            '["a.example.com"]',
            "{mode: SIMPLE, credentialName: c, privateKey: k}",
            ["MW0176"],
        ),
        (
            "HTTPS",
            '["a.example.com"]',
            "{mode: SIMPLE, credentialName: c, "
            "minProtocolVersion: TLSV1_3, maxProtocolVersion: TLSV1_2}",
            ["MW0177"],
        ),
        (
            "HTTPS",
            '["a.example.com"]',
            "{mode: SIMPLE, credentialName: c, minProtocolVersion: TLSV1_0}",
            ["MW0178"],
        ),
        (
            "HTTPS",
            '["a.example.com"]',
            "{mode: SIMPLE, credentialName: c, cipherSuites: [AES128-SHA]}",
            ["MW0179"],
        ),
        ("HTTPS", '["a.example.com"]', "{mode: PASSTHROUGH}", ["MW0180"]),
        ("HTTP", '["a.example.com"]', "{mode: SIMPLE, credentialName: c}", ["MW0180"]),
        ("HTTPS", '["a.example.com"]', "{mode: AUTO_PASSTHROUGH}", ["MW0125"]),
        (
            "HTTPS",
            '["a.example.com"]',
            "{mode: SIMPLE, credentialName: c, verifyCertificateSpki: [x]}",
            ["MW0125"],
        ),
        ("HTTP", '["a.example.com"]', "{httpsRedirect: true}", []),
        ("TLS", '["a.example.com"]', "{mode: PASSTHROUGH}", []),
        ("HTTPS", '["a.example.com"]', "{mode: ISTIO_MUTUAL}", []),
    ],
)
def test_gateway_mistakes_have_codes(protocol: str, hosts: str, tls: str, codes: list[str]) -> None:
    assert _codes(_gw(protocol, hosts, tls)) == codes


def test_https_without_tls_is_refused() -> None:
    text = _gw().replace("    tls: {}\n", "")
    assert _codes(text) == ["MW0180"]


@pytest.mark.parametrize(
    ("gateway", "body", "codes"),
    [
        ("edge/gw", "http: [{route: [{destination: {host: users}}]}]", []),
        ("a/b/c", "http: [{route: [{destination: {host: users}}]}]", ["MW0182"]),
        (
            "gw",
            "http: [{match: [{uri: {regex: '(?=x)'}}], route: [{destination: {host: u}}]}]",
            ["MW0184"],
        ),
        (
            "gw",
            "http: [{match: [{uri: {exact: /a, prefix: /b}}], route: [{destination: {host: u}}]}]",
            ["MW0109"],
        ),
        (
            "gw",
            "http: [{route: [{destination: {host: a}, weight: 60}, "
            "{destination: {host: b}, weight: 60}]}]",
            ["MW0183"],
        ),
        ("gw", "http: [{route: [{destination: {host: a, subset: v1}}]}]", ["MW0186"]),
        ("gw", "http: [{fault: {}, route: [{destination: {host: a}}]}]", ["MW0186"]),
        ("gw", "http: [{match: [{uri: {prefix: /}}]}]", ["MW0183"]),
        ("gw", "tls: [{match: [{port: 443}], route: [{destination: {host: a}}]}]", ["MW0107"]),
        (
            "gw",
            "tls: [{match: [{sniHosts: ['bad host']}], route: [{destination: {host: a}}]}]",
            ["MW0185"],
        ),
        ("gw", "tcp: [{route: [{destination: {host: a, port: {number: 5432}}}]}]", []),
    ],
)
def test_virtual_service_mistakes_have_codes(gateway: str, body: str, codes: list[str]) -> None:
    assert _codes(_VS.format(gateway=gateway, body=body)) == codes


def test_gateway_references_are_normalised() -> None:
    text = _VS.format(
        gateway="gw, edge/other, mesh", body="http: [{route: [{destination: {host: u}}]}]"
    )
    assert load_text(text, "c.yaml").virtual_services[0].gateways == (
        "core/gw",
        "edge/other",
        "mesh",
    )


@pytest.mark.parametrize(
    ("spec", "codes"),
    [
        ("gateway: ingress", []),
        ("gateway: ingress\n  command: [python]", ["MW0187"]),
        ("gateway: ingress\n  sidecar: false", ["MW0187"]),
        ("gateway: egress", []),
        ("gateway: sideways", ["MW0107", "MW0109"]),
    ],
)
def test_gateway_workload(spec: str, codes: list[str]) -> None:
    head = "apiVersion: meshward.io/v1alpha1\nkind: Workload\nmetadata: {name: gw}\n"
    text = f"{head}spec:\n  {spec}\n"
    assert _codes(text) == codes


_VS_HTTP = "http: [{route: [{destination: {host: u}}]}]"
_MESH = "apiVersion: meshward.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n"
_GW_WORKLOAD = "apiVersion: meshward.io/v1alpha1\nkind: Workload\nmetadata: {name: gw}\nspec:\n"
_SIMPLE = "{mode: SIMPLE, credentialName: c"

# One row per MW0175-MW0188 code (test_config_codes checks every config code has a row).
CASES: list[tuple[str, str, list[tuple[str, int, str]]]] = [
    (
        "MW0175 host",
        _gw(hosts='["bad host!"]', tls=_SIMPLE + "}"),
        [("MW0175", 8, "spec.servers[0].hosts")],
    ),
    ("MW0176 no cert", _gw(tls="{mode: SIMPLE}"), [("MW0176", 9, "spec.servers[0].tls.mode")]),
    (
        "MW0177 min>max",
        _gw(tls=_SIMPLE + ", minProtocolVersion: TLSV1_3, maxProtocolVersion: TLSV1_2}"),
        [("MW0177", 9, "spec.servers[0].tls.minProtocolVersion")],
    ),
    (
        "MW0178 TLS 1.1",
        _gw(tls=_SIMPLE + ", minProtocolVersion: TLSV1_1}"),
        [("MW0178", 9, "spec.servers[0].tls.minProtocolVersion")],
    ),
    (
        "MW0179 CBC",
        _gw(tls=_SIMPLE + ", cipherSuites: [AES128-SHA]}"),
        [("MW0179", 9, "spec.servers[0].tls.cipherSuites")],
    ),
    (
        "MW0180 HTTP with mode",
        _gw(protocol="HTTP", tls=_SIMPLE + "}"),
        [("MW0180", 9, "spec.servers[0].tls.mode")],
    ),
    (
        "MW0181 VS host",
        _VS.format(gateway="gw", body=_VS_HTTP).replace("[a.example.com]", "['bad host']"),
        [("MW0181", 5, "spec.hosts")],
    ),
    (
        "MW0182 gateway ref",
        _VS.format(gateway="a/b/c", body=_VS_HTTP),
        [("MW0182", 6, "spec.gateways")],
    ),
    (
        "MW0183 no route",
        _VS.format(gateway="gw", body="http: [{match: [{uri: {prefix: /}}]}]"),
        [("MW0183", 7, "spec.http[0].route")],
    ),
    (
        "MW0184 look-ahead",
        _VS.format(
            gateway="gw",
            body=_VS_HTTP.replace("{route", "{match: [{uri: {regex: '(?=x)'}}], route"),
        ),
        [("MW0184", 7, "spec.http[0].match[0].uri")],
    ),
    (
        "MW0185 SNI",
        _VS.format(
            gateway="gw",
            body="tls: [{match: [{sniHosts: ['bad host']}], route: [{destination: {host: a}}]}]",
        ),
        [("MW0185", 7, "spec.tls[0].match[0].sniHosts")],
    ),
    (
        "MW0186 subset",
        _VS.format(gateway="gw", body=_VS_HTTP.replace("host: u", "host: u, subset: v1")),
        [("MW0186", 7, "spec.http[0].route[0].destination.subset")],
    ),
    (
        "MW0187 gateway command",
        _GW_WORKLOAD + "  gateway: ingress\n  command: [python]\n",
        [("MW0187", 6, "spec.command")],
    ),
    (
        "MW0188 trusted proxies",
        _MESH + "  defaultConfig: {gatewayTopology: {numTrustedProxies: 99}}\n",
        [("MW0188", 5, "spec.defaultConfig.gatewayTopology.numTrustedProxies")],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_code_rows(text: str, expected: list[tuple[str, int, str]]) -> None:
    found = load_text(text, "t.yaml").diagnostics
    assert [(d.code, d.location.line, d.location.field) for d in found] == expected
