"""Sidecar parsing: a valid Sidecar whole, and one coded diagnostic per mistake or refused
feature (config/sidecar.py)."""

from __future__ import annotations

import pytest

from meshward.config import load_text
from meshward.config.resources import SidecarEgressHost

_SC = """\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default, namespace: front}}
spec:
{body}"""


def _sc(body: str) -> str:
    return _SC.format(body=body)


def _found(text: str) -> list[tuple[str, int, str]]:
    return [
        (d.code, d.location.line, d.location.field) for d in load_text(text, "sc.yaml").diagnostics
    ]


def test_a_sidecar_parses_whole() -> None:
    text = _sc(
        "  workloadSelector: {labels: {app: client}}\n"
        "  egress:\n"
        '  - hosts: ["./*", "*/api.weather.example", "ext/*.example.com", "~/*"]\n'
        "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"
    )
    loaded = load_text(text, "sc.yaml")
    assert loaded.diagnostics == ()
    (sidecar,) = loaded.sidecars
    assert (sidecar.workload_selector, sidecar.egress_hosts, sidecar.outbound_policy) == (
        (("app", "client"),),
        (
            SidecarEgressHost("front", "*"),
            SidecarEgressHost("*", "api.weather.example"),
            SidecarEgressHost("ext", "*.example.com"),
            SidecarEgressHost("~", "*"),
        ),
        "REGISTRY_ONLY",
    )


def test_an_empty_sidecar_limits_nothing() -> None:
    (sidecar,) = load_text(_sc("  {}\n"), "sc.yaml").sidecars
    assert (sidecar.workload_selector, sidecar.egress_hosts, sidecar.outbound_policy) == (
        None,
        None,
        None,
    )


CASES: list[tuple[str, list[tuple[str, int, str]]]] = [
    (_sc('  egress: [{hosts: ["api.example.com"]}]\n'), [("MW0159", 5, "spec.egress[0].hosts")]),
    (_sc('  egress: [{hosts: ["a/b/c"]}]\n'), [("MW0159", 5, "spec.egress[0].hosts")]),
    (_sc('  egress: [{hosts: ["Bad_NS/*"]}]\n'), [("MW0159", 5, "spec.egress[0].hosts")]),
    (_sc("  ingress: [{port: {number: 80}}]\n"), [("MW0167", 5, "spec.ingress")]),
    (
        _sc('  egress: [{hosts: ["./*"], port: {number: 80}}]\n'),
        [("MW0168", 5, "spec.egress[0].port")],
    ),
    (
        _sc("  outboundTrafficPolicy: {mode: REGISTRY_ONLY, egressProxy: {host: x}}\n"),
        [("MW0168", 5, "spec.outboundTrafficPolicy.egressProxy")],
    ),
    (
        _sc("  outboundTrafficPolicy: {mode: DENY}\n"),
        [("MW0109", 5, "spec.outboundTrafficPolicy.mode")],
    ),
]


@pytest.mark.parametrize(("text", "found"), CASES)
def test_each_mistake_has_its_code(text: str, found: list[tuple[str, int, str]]) -> None:
    assert _found(text) == found
