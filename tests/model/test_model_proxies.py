"""Proxies: HTTP domains per caller, TCP local binds, and one whole ProxyModel."""

from __future__ import annotations

import pytest
from model_cases import addresses, config_set, peer, rule, service, workload

from meshward.identity import SpiffeId
from meshward.model import build, ir, proxies

WEB = ir.Service("core", "web", (ir.ServicePort("http", 8080, 8000, "HTTP"),), ())
TWO = ir.Service(
    "core",
    "api",
    (
        ir.ServicePort("http-metrics", 9090, 9090, "HTTP"),
        ir.ServicePort("http", 80, 8000, "HTTP"),
        ir.ServicePort("grpc", 7070, 7070, "GRPC"),
    ),
    (),
)
LONG = "web.core.svc.cluster.local"


@pytest.mark.parametrize(
    ("svc", "port", "caller_ns", "expected"),
    [
        (
            WEB,
            8080,
            "core",
            (
                LONG,
                f"{LONG}:8080",
                "web.core.svc",
                "web.core.svc:8080",
                "web.core",
                "web.core:8080",
                "web",
                "web:8080",
            ),
        ),
        (
            WEB,
            8080,
            "edge",
            (
                LONG,
                f"{LONG}:8080",
                "web.core.svc",
                "web.core.svc:8080",
                "web.core",
                "web.core:8080",
            ),
        ),
        # Several HTTP ports: only port 80 takes the names without a port.
        (
            TWO,
            80,
            "edge",
            (
                "api.core.svc.cluster.local",
                "api.core.svc.cluster.local:80",
                "api.core.svc",
                "api.core.svc:80",
                "api.core",
                "api.core:80",
            ),
        ),
        (
            TWO,
            9090,
            "edge",
            ("api.core.svc.cluster.local:9090", "api.core.svc:9090", "api.core:9090"),
        ),
    ],
)
def test_http_domains(
    svc: ir.Service, port: int, caller_ns: str, expected: tuple[str, ...]
) -> None:
    assert proxies.http_domains(svc, port, caller_ns) == expected


def test_lowest_http_port_takes_portless_names_without_port_80() -> None:
    svc = ir.Service(
        "core",
        "api",
        (ir.ServicePort("http-a", 9090, 1, "HTTP"), ir.ServicePort("http-b", 8080, 1, "HTTP")),
        (),
    )
    assert "api.core" in proxies.http_domains(svc, 8080, "edge")
    assert "api.core" not in proxies.http_domains(svc, 9090, "edge")


def test_tcp_binds_avoid_own_ports_reserved_ports_and_each_other() -> None:
    config = config_set(
        workload("client", ports=[("tcp-own", 6379), ("http", 20000)]),
        workload("db", ports=[("redis", 6379)]),
        workload("admin", ports=[("tcp", 15000)]),
        workload("cache", ports=[("redis", 6380)]),
        service("a-db", selector={"app": "db"}, ports=[("redis", 6379, 6379)]),
        service("b-admin", selector={"app": "admin"}, ports=[("tcp", 15000, 15000)]),
        service("c-cache", selector={"app": "cache"}, ports=[("redis", 6380, 6380)]),
        service("d-again", selector={"app": "cache"}, ports=[("redis", 6380, 6380)]),
    )
    model, _ = build(config, addresses(config))
    client = next(p for p in model.proxies if p.pod.key.workload == "client")
    ip = client.pod.address.pod_ip
    assert [(o.name, o.tcp_bind) for o in client.outbound] == [
        ("a-db", (ip, 20001)),  # 6379 is the client's own port, 20000 too
        ("b-admin", (ip, 20002)),  # 15000 is reserved (Envoy admin)
        ("c-cache", (ip, 6380)),
        ("d-again", (ip, 20003)),  # 6380 already bound for c-cache
    ]


def test_whole_proxy_model() -> None:
    config = config_set(
        workload("web", ports=[("http", 8000)], sa="web-sa"),
        workload("db", ports=[("redis", 6379), ("http-metrics", 9100)], sa="db-sa", replicas=2),
        workload("legacy", labels={"app": "db"}, ports=[("redis", 6379)], sidecar=False),
        service("db", ports=[("redis", 6379, 6379)]),
        peer("ns", "core", "STRICT"),
        peer("db", "core", None, {"app": "db"}, {9100: "DISABLE"}),
        rule("db", "core", "db", port_level={6379: "ISTIO_MUTUAL"}, selector={"app": "none"}),
    )
    addr = addresses(config)
    model, findings = build(config, addr)
    assert [(d.code, d.resource) for d in findings] == [("MW0204", "DestinationRule core/db")]
    db0, db1, legacy, web = (
        ir.PodKey("core", "db", 0),
        ir.PodKey("core", "db", 1),
        ir.PodKey("core", "legacy", 0),
        ir.PodKey("core", "web", 0),
    )
    web_pod = model.pod(web)
    assert web_pod == ir.Pod(
        key=web,
        labels=(("app", "web"),),
        service_account="web-sa",
        identity=SpiffeId("cluster.local", "core", "web-sa"),
        address=addr[web],
        ports=(ir.PodPort("http", 8000, "HTTP"),),
    )
    db_sans = ("spiffe://cluster.local/ns/core/sa/db-sa",)
    assert model.proxy(ir.node_id(web, addr[web].pod_ip)) == ir.ProxyModel(
        node_id=f"sidecar~{addr[web].pod_ip}~web-0.core~core.svc.cluster.local",
        pod=web_pod,
        trust_domain="cluster.local",
        inbound=(ir.InboundPort(8000, "HTTP", "STRICT", "PeerAuthentication core/ns"),),
        outbound=(
            ir.OutboundService(
                namespace="core",
                name="db",
                port=6379,
                protocol="TCP",
                endpoints=(
                    ir.UpstreamEndpoint(addr[db0].pod_ip, 6379, db0, mtls=True),
                    ir.UpstreamEndpoint(addr[db1].pod_ip, 6379, db1, mtls=True),
                    ir.UpstreamEndpoint(addr[legacy].pod_ip, 6379, legacy, mtls=False),
                ),
                tls="AUTO",
                tls_source="auto-mTLS",
                subject_alt_names=db_sans,
                http_domains=(),
                tcp_bind=(addr[web].pod_ip, 6379),
            ),
        ),
    )
    db_proxy = model.proxy(ir.node_id(db0, addr[db0].pod_ip))
    assert db_proxy is not None
    assert db_proxy.inbound == (
        ir.InboundPort(6379, "TCP", "STRICT", "PeerAuthentication core/ns"),
        ir.InboundPort(9100, "HTTP", "DISABLE", "PeerAuthentication core/db (port 9100)"),
    )
    assert [p.node_id for p in model.proxies] == [
        ir.node_id(k, addr[k].pod_ip) for k in (db0, db1, web)
    ]
