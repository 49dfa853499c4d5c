"""Gateway model: servers merged per port, VirtualService hosts and routes bound, and one
finding per reference problem (model/gateway.py)."""

from __future__ import annotations

import gateway_cases
import pytest

from meshward.model import ir


def test_gateway_model_whole() -> None:
    mesh, findings = gateway_cases.model()
    assert findings == ()
    proxy = gateway_cases.gateway_proxy(mesh)
    assert proxy.pod.identity is not None
    assert proxy.pod.identity.uri == "spiffe://cluster.local/ns/istio-system/sa/ingressgateway"
    assert proxy.inbound == ()
    gateway = proxy.gateway
    assert gateway is not None
    by_port = {listener.port: listener for listener in gateway.listeners}
    assert sorted(by_port) == [8080, 8443, 9443]
    (http,) = by_port[8080].chains
    assert (http.kind, http.server_names) == ("HTTP", ())
    assert [(v.domains, v.require_tls) for v in http.virtual_hosts] == [
        (("users.example.com",), True)
    ]
    users, mobile = by_port[8443].chains
    assert (users.kind, users.server_names) == ("TERMINATE", ("users.example.com",))
    assert users.tls == ir.ServerTls(
        mode="SIMPLE",
        certificate="credential/users-cert",
        validation="",
        files=("", "", "", ""),
        subject_alt_names=(),
        min_version="TLS_AUTO",
        max_version="TLS_AUTO",
        cipher_suites=(),
        credential="users-cert",
    )
    assert mobile.tls is not None
    assert (mobile.tls.mode, mobile.tls.validation, mobile.tls.subject_alt_names) == (
        "MUTUAL",
        "credential/mobile-cert-cacert",
        ("spiffe://mobile.example.com/app",),
    )
    (host,) = users.virtual_hosts
    assert [(r.source, r.clusters) for r in host.routes] == [
        (
            "VirtualService core/users http[0]",
            (("outbound|8000||users.core.svc.cluster.local", 100),),
        ),
        ("VirtualService core/users http[1]", ()),
    ]
    (passthrough,) = by_port[9443].chains
    assert passthrough == ir.GatewayChain(
        name="passthrough|9443|core/vault/0/0",
        kind="PASSTHROUGH",
        server_names=("vault.example.com",),
        clusters=(("outbound|8443||vault.core.svc.cluster.local", 100),),
    )
    # The gateway reaches services with Istio mTLS as itself, like a sidecar.
    assert {(o.name, o.tls) for o in proxy.outbound} == {("users", "AUTO"), ("vault", "AUTO")}
    # Its local TCP listener for vault avoids the Gateway's own 8443: the next free port.
    assert [(o.name, o.tcp_bind) for o in proxy.outbound] == [
        ("users", None),
        ("vault", (proxy.pod.address.pod_ip, 20000)),
    ]


_BAD_ROUTE = """\
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: core}
spec:
  hosts: [%s]
  gateways: [%s]
  http: [{route: [{destination: {host: %s}}]}]
"""
_ORPHAN = """\
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: orphan, namespace: core}
spec:
  selector: {istio: nobody}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
"""
_RESERVED = """\
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: admin, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 15000, name: http, protocol: HTTP}, hosts: ["*"]}]
"""
_CLASH = """\
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: clash, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: tcp, protocol: TCP}, hosts: ["*"]}]
"""


@pytest.mark.parametrize(
    ("extra", "codes"),
    [
        (_BAD_ROUTE % ("users.example.com", "istio-system/public", "nowhere"), ["MW0262"]),
        (_BAD_ROUTE % ("users.example.com", "istio-system/missing", "users"), ["MW0261"]),
        (_BAD_ROUTE % ("other.example.com", "istio-system/public", "users"), ["MW0265"]),
        (_BAD_ROUTE % ("users.example.com", "mesh", "users"), ["MW0267"]),
        (_ORPHAN, ["MW0260"]),
        (_RESERVED, ["MW0264"]),
        (_CLASH, ["MW0263"]),
    ],
)
def test_gateway_findings(extra: str, codes: list[str]) -> None:
    _, findings = gateway_cases.model(extra)
    assert [f.code for f in findings] == codes


_MESH_AND_GATEWAY = """\
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: users-mesh, namespace: core}
spec:
  hosts: [users]
  gateways: [%s]
  http: [{match: [{uri: {prefix: /v1}}], route: [{destination: {host: users}}]}]
"""


@pytest.mark.parametrize(
    ("gateways", "sidecar_routed"),
    [("mesh", True), ("mesh, istio-system/public", True), ("istio-system/public", False)],
)
def test_mesh_virtual_services_route_sidecars_not_gateway_pods(
    gateways: str, sidecar_routed: bool
) -> None:
    """A `mesh`-bound VirtualService routes at sidecars; a gateway pod is not in `mesh`
    (Istio), so its own outbound side keeps the default routes."""
    mesh, _ = gateway_cases.model(_MESH_AND_GATEWAY % gateways)

    def routes(proxy: ir.ProxyModel) -> list[str] | None:
        (users,) = [o for o in proxy.outbound if o.name == "users"]
        return None if users.vs_routes is None else [r.source for r in users.vs_routes]

    sidecar = next(p for p in mesh.proxies if p.pod.key.workload == "users")
    expected = ["VirtualService core/users-mesh http[0]"] if sidecar_routed else None
    assert (routes(sidecar), routes(gateway_cases.gateway_proxy(mesh))) == (expected, None)
