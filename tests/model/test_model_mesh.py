"""build(): refuses configs with errors and unaddressed pods; service findings; ordering."""

from __future__ import annotations

import dataclasses

import pytest
from model_cases import addresses, config_set, service, workload

from meshward.config import resources as cfg
from meshward.diagnostics import Diagnostic, Level, Location
from meshward.errors import ConfigError
from meshward.model import build, ir


def test_config_with_errors_is_refused() -> None:
    config = dataclasses.replace(
        config_set(workload("web")),
        diagnostics=(Diagnostic("MW0106", Level.ERROR, "", Location(), "unknown field"),),
    )
    with pytest.raises(ConfigError):
        build(config, addresses(config))


def test_config_warnings_do_not_block_and_are_not_repeated() -> None:
    config = dataclasses.replace(
        config_set(workload("web"), service("web")),
        diagnostics=(Diagnostic("MW0105", Level.WARNING, "", Location(), "ignored kind"),),
    )
    _, findings = build(config, addresses(config))
    assert findings == ()


def test_pods_without_address_are_left_out_with_mw0211() -> None:
    config = config_set(workload("web", replicas=2), service("web"))
    web0 = ir.PodKey("core", "web", 0)
    model, findings = build(config, {web0: ir.PodAddress("127.77.0.2", "127.78.0.2")})
    assert [p.key for p in model.pods] == [web0]
    assert model.services[0].pods == (web0,)
    assert [(d.code, d.level, d.resource) for d in findings] == [
        ("MW0211", Level.INFO, "Workload core/web")
    ]


FINDINGS: list[tuple[str, list[cfg.Service | cfg.Workload], list[tuple[str, str, str]]]] = [
    ("clean", [workload("web"), service("web")], []),
    (
        "selector matches nothing",
        [workload("web"), service("api")],
        [("MW0201", "Service core/api", "spec.selector")],
    ),
    (
        "empty selector selects nothing",
        [workload("web"), service("api", selector={})],
        [("MW0201", "Service core/api", "spec.selector")],
    ),
    (
        "selector does not cross namespaces",
        [workload("web", namespace="edge"), service("web")],
        [("MW0201", "Service core/web", "spec.selector")],
    ),
    (
        "selected workload lacks the targetPort",
        [workload("web", ports=[("http", 9000)]), service("web")],
        [("MW0202", "Workload core/web", "spec.ports")],
    ),
]


@pytest.mark.parametrize(
    ("resources", "expected"), [c[1:] for c in FINDINGS], ids=[c[0] for c in FINDINGS]
)
def test_service_findings(
    resources: list[cfg.Service | cfg.Workload], expected: list[tuple[str, str, str]]
) -> None:
    config = config_set(*resources)
    _, findings = build(config, addresses(config))
    assert [(d.code, d.resource, d.location.field) for d in findings] == expected


def test_services_and_pods_sorted_and_selected() -> None:
    config = config_set(
        workload("web", namespace="zeta", replicas=2),
        workload("web", namespace="alpha"),
        workload("api", namespace="alpha", labels={"app": "web", "tier": "api"}),
        service("web", namespace="zeta"),
        service("web", namespace="alpha", ports=[("http-b", 90, 8000), ("http-a", 80, 8000)]),
    )
    model, _ = build(config, addresses(config))
    assert [str(p.key) for p in model.pods] == [
        "alpha/api-0",
        "alpha/web-0",
        "zeta/web-0",
        "zeta/web-1",
    ]
    assert model.services == (
        ir.Service(
            "alpha",
            "web",
            (
                ir.ServicePort("http-a", 80, 8000, "HTTP"),
                ir.ServicePort("http-b", 90, 8000, "HTTP"),
            ),
            (ir.PodKey("alpha", "api", 0), ir.PodKey("alpha", "web", 0)),
        ),
        ir.Service(
            "zeta",
            "web",
            (ir.ServicePort("http", 80, 8000, "HTTP"),),
            (ir.PodKey("zeta", "web", 0), ir.PodKey("zeta", "web", 1)),
        ),
    )


def test_pod_port_protocol_comes_from_the_service_port_targeting_it() -> None:
    config = config_set(
        workload("db", ports=[("web", 6379), ("metrics", 9100)]),
        service("db", ports=[("http-admin", 80, 6379)]),
    )
    model, _ = build(config, addresses(config))
    pod = model.pod(ir.PodKey("core", "db", 0))
    assert pod is not None
    assert pod.ports == (ir.PodPort("web", 6379, "HTTP"), ir.PodPort("metrics", 9100, "TCP"))
