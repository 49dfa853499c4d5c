"""ServiceEntry parsing: a valid entry whole, and one coded diagnostic per mistake (Istio's
`ValidateServiceEntry` rules, see config/service_entry.py)."""

from __future__ import annotations

import pytest

from meshward.config import load_text
from meshward.config.resources import ServiceEntryEndpoint, ServiceEntryPort

_SE = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: weather, namespace: core}}
spec:
  hosts: {hosts}
  ports: {ports}
  resolution: {resolution}
{extra}"""

_HTTP = "[{number: 80, name: http, protocol: HTTP}]"


def _se(
    hosts: str = "[api.weather.example]",
    ports: str = _HTTP,
    resolution: str = "DNS",
    extra: str = "",
) -> str:
    return _SE.format(hosts=hosts, ports=ports, resolution=resolution, extra=extra)


def _found(text: str) -> list[tuple[str, int, str]]:
    return [
        (d.code, d.location.line, d.location.field) for d in load_text(text, "se.yaml").diagnostics
    ]


def test_an_entry_parses_whole() -> None:
    text = _se(
        ports="[{number: 80, name: http, protocol: HTTP}, "
        "{number: 443, name: tls, protocol: tls, targetPort: 8443}]",
        resolution="STATIC",
        extra="  addresses: [240.240.0.7]\n  location: MESH_EXTERNAL\n  exportTo: ['.']\n"
        "  endpoints:\n  - {address: 198.19.3.20, ports: {http: 8080}, labels: {v: a}}\n",
    )
    loaded = load_text(text, "se.yaml")
    assert loaded.diagnostics == ()
    (entry,) = loaded.service_entries
    assert (entry.hosts, entry.addresses, entry.resolution, entry.location) == (
        ("api.weather.example",),
        ("240.240.0.7",),
        "STATIC",
        "MESH_EXTERNAL",
    )
    assert entry.ports == (
        ServiceEntryPort(80, "HTTP", "http"),
        ServiceEntryPort(443, "TLS", "tls", 8443),
    )
    assert entry.endpoints == (
        ServiceEntryEndpoint("198.19.3.20", (("http", 8080),), (("v", "a"),)),
    )
    assert entry.export_to == (".",)


@pytest.mark.parametrize(
    ("resolution", "expected"), [("DNS_ROUND_ROBIN", "DNS"), ("NONE", "NONE"), ("DNS", "DNS")]
)
def test_resolution_defaults(resolution: str, expected: str) -> None:
    loaded = load_text(_se(resolution=resolution), "se.yaml")
    assert loaded.diagnostics == ()
    assert loaded.service_entries[0].resolution == expected
    assert loaded.service_entries[0].location == "MESH_EXTERNAL"


CASES: list[tuple[str, list[tuple[str, int, str]]]] = [
    (_se(hosts='["*"]'), [("MW0152", 5, "spec.hosts")]),
    (_se(hosts='["bad host"]'), [("MW0152", 5, "spec.hosts")]),
    (_se(hosts='["10.0.0.1"]'), [("MW0152", 5, "spec.hosts")]),
    (_se(hosts="[]"), [("MW0107", 5, "spec.hosts")]),
    (_se(extra="  addresses: [nonsense]\n"), [("MW0153", 8, "spec.addresses")]),
    (_se(extra="  addresses: [10.0.0.0/8]\n"), [("MW0153", 8, "spec.addresses")]),
    (
        _se(resolution="NONE", extra="  endpoints: [{address: 1.2.3.4}]\n"),
        [("MW0154", 8, "spec.endpoints")],
    ),
    (_se(resolution="STATIC"), [("MW0154", 4, "spec.endpoints")]),
    (
        _se(resolution="STATIC", extra="  endpoints: [{address: a.example}]\n"),
        [("MW0154", 8, "spec.endpoints[0].address")],
    ),
    (_se(hosts='["*.example.com"]'), [("MW0154", 5, "spec.hosts")]),
    (
        _se(extra="  endpoints: [{address: 'not a host'}]\n"),
        [("MW0154", 8, "spec.endpoints[0].address")],
    ),
    (
        _se(extra="  endpoints: [{address: a.example, ports: {https: 443}}]\n"),
        [("MW0155", 8, "spec.endpoints[0].ports")],
    ),
    (
        _se(extra="  workloadSelector: {labels: {app: vm}}\n"),
        [("MW0156", 8, "spec.workloadSelector")],
    ),
    (
        _se(ports="[{number: 53, name: dns, protocol: UDP}]"),
        [("MW0157", 6, "spec.ports[0].protocol")],
    ),
    (_se(ports="[{number: 80, name: http}]"), [("MW0107", 6, "spec.ports[0].protocol")]),
    (_se(extra="  exportTo: [Bad_NS]\n"), [("MW0158", 8, "spec.exportTo")]),
    (
        _se(
            ports="[{number: 80, name: http, protocol: HTTP}, "
            "{number: 80, name: h, protocol: HTTP}]"
        ),
        [("MW0116", 6, "spec.ports[1].number")],
    ),
]


@pytest.mark.parametrize(("text", "found"), CASES)
def test_each_mistake_has_its_code(text: str, found: list[tuple[str, int, str]]) -> None:
    assert _found(text) == found
