"""The egress gateway (issue 7 items 3-6), model and translation: what the sidecar and the
gateway each decide for Istio's egress gateway tasks (egress_cases.py), whole values; the
golden gateway listeners; Envoy accepts both proxies' configurations (`--mode validate`), in
loopback and netns mode."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import egress_cases
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import json_format

from meshward.model import ir
from meshward.xds import bootstrap, snapshot, translate

if TYPE_CHECKING:
    from tests.conftest import EnvoyValidate

GW = egress_cases.GW_FQDN
NETNS = ir.Network(
    mode="netns",
    vips=(
        (("istio-system", "egressgateway"), "198.18.255.2"),
        (("shop", "api.maps.example"), "198.18.255.3"),
        (("shop", "pay.example"), "198.18.255.4"),
        (("shop", "bank.example"), "198.18.255.5"),
    ),
    netns_prefix="mwtest",
)


def _chains(mesh: ir.MeshModel) -> list[tuple[int, str, tuple[str, ...], str, Any]]:
    gateway = egress_cases.proxy(mesh, "egressgateway").gateway
    assert gateway is not None
    return [
        (
            listener.port,
            chain.kind,
            chain.server_names,
            chain.tls.mode if chain.tls else "",
            chain.clusters or tuple(r.clusters for h in chain.virtual_hosts for r in h.routes),
        )
        for listener in gateway.listeners
        for chain in listener.chains
    ]


def test_the_gateway_routes_each_host_its_way_out() -> None:
    mesh, findings = egress_cases.model()
    assert [d.code for d in findings if d.level.name != "INFO"] == []
    assert _chains(mesh) == [
        # ISTIO_MUTUAL HTTPS: mesh mTLS ends here, HTTP routed to the host's TLS port
        (80, "TERMINATE", ("api.maps.example",), "ISTIO_MUTUAL",
         ((("outbound|443||api.maps.example", 100),),)),
        # PASSTHROUGH: the app's TLS, by SNI, untouched
        (443, "PASSTHROUGH", ("pay.example",), "", (("outbound|443||pay.example", 100),)),
        # ISTIO_MUTUAL TLS: the mesh mTLS ends, the app's own TLS inside goes on (tcp route)
        (8443, "TERMINATE_TCP", ("bank.example",), "ISTIO_MUTUAL",
         (("outbound|443||bank.example", 100),)),
    ]  # fmt: skip
    # The gateway originates TLS to the host (the DestinationRule selects it as a caller).
    origination = egress_cases.outbound(mesh, "egressgateway", "api.maps.example", 443)
    assert origination.origination == ir.Origination(
        mode="SIMPLE", sni="api.maps.example", ca_file="/etc/ssl/certs/ca-certificates.crt"
    )


def test_the_sidecar_sends_external_hosts_to_the_gateway() -> None:
    mesh, _ = egress_cases.model()

    def seen(name: str, port: int) -> tuple[Any, ...]:
        s = egress_cases.outbound(mesh, "sleep", name, port)
        routes = s.vs_routes and tuple(r.clusters for r in s.vs_routes)
        return (s.tls, s.mtls_sni, tuple(e.mtls for e in s.endpoints), s.tcp_routes, routes)

    assert seen("api.maps.example", 80) == (
        "DISABLE", "", (), None, ((("outbound|80||" + GW, 100),),)
    )  # fmt: skip
    assert seen("pay.example", 443) == ("DISABLE", "", (), (("outbound|443||" + GW, 100),), None)
    assert seen("bank.example", 443) == (
        "DISABLE", "", (), (("outbound|8443||" + GW, 100),), None
    )  # fmt: skip
    # mesh mTLS to the gateway where the rule says ISTIO_MUTUAL, with the SNI its server
    # matches; plaintext (the app's TLS) to the PASSTHROUGH port: auto-mTLS never wraps
    # traffic for a gateway pod, whose servers say what they accept.
    assert seen("egressgateway", 80) == ("ISTIO_MUTUAL", "api.maps.example", (True,), None, None)
    assert seen("egressgateway", 443) == ("AUTO", "", (False,), None, None)
    assert seen("egressgateway", 8443) == ("ISTIO_MUTUAL", "bank.example", (True,), None, None)


def test_gateway_policy_is_compiled_per_port() -> None:
    mesh, _ = egress_cases.model()
    gateway = egress_cases.proxy(mesh, "egressgateway").gateway
    assert gateway is not None
    rules = {
        listener.port: [(p.name, [r.index for r in p.rules]) for p in listener.authz.policies]
        for listener in gateway.listeners
    }
    assert rules == {
        80: [("egress-callers", [0])],
        443: [("egress-callers", [2])],
        8443: [("egress-callers", [1])],
    }


def test_unknown_destination_and_deaf_service_port_are_reported() -> None:
    extra = """\
---
apiVersion: v1
kind: Service
metadata: {name: egress-extra, namespace: istio-system}
spec: {selector: {istio: egressgateway}, ports: [{name: http, port: 9090}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: nowhere, namespace: shop}
spec:
  hosts: [api.maps.example]
  gateways: [istio-system/egress]
  http: [{route: [{destination: {host: api.maps.example, port: {number: 8080}}}]}]
"""
    _, findings = egress_cases.model(extra)
    found = sorted((d.code, d.resource, d.location.field if d.location else "") for d in findings)
    assert found == [
        ("MW0262", "VirtualService shop/nowhere", "spec.http[0].route[0].destination"),
        ("MW0274", "Service istio-system/egress-extra", "spec.ports[port 9090]"),
    ]


def _snapshot(mesh: ir.MeshModel, workload: str) -> snapshot.Snapshot:
    return translate.proxy_snapshot(egress_cases.proxy(mesh, workload))


def _of(snap: snapshot.Snapshot, kind: str) -> dict[str, Any]:
    return dict(snap.of_type(kind))


def test_golden_gateway_listeners(golden: Callable[[str, Any], None]) -> None:
    mesh, _ = egress_cases.model()
    listeners = _of(_snapshot(mesh, "egressgateway"), snapshot.LISTENER)
    rendered = [
        json_format.MessageToDict(listeners[n], preserving_proto_field_name=True)
        for n in sorted(listeners)
        if n.startswith("gateway|")
    ]
    golden("xds/gateway/egress-listeners.json", rendered)


def test_wrapped_tls_chain_terminates_mesh_mtls_then_forwards_bytes() -> None:
    mesh, _ = egress_cases.model()
    listener = _of(_snapshot(mesh, "egressgateway"), snapshot.LISTENER)["gateway|8443"]
    assert isinstance(listener, listener_pb2.Listener)
    (chain,) = listener.filter_chains
    assert list(chain.filter_chain_match.server_names) == ["bank.example"]
    context = tls_pb2.DownstreamTlsContext()
    assert chain.transport_socket.typed_config.Unpack(context)
    assert context.require_client_certificate.value is True
    assert list(context.common_tls_context.alpn_protocols) == []  # no HTTP follows
    proxy = tcp_proxy_pb2.TcpProxy()
    assert chain.filters[-1].typed_config.Unpack(proxy)
    assert proxy.cluster == "outbound|443||bank.example"
    # the gateway's policy decides on the caller's mesh identity, then the bytes go on
    assert [f.name for f in chain.filters] == [
        "meshward.authz.allow",
        "envoy.filters.network.tcp_proxy",
    ]


def test_sidecar_cluster_to_the_gateway_carries_the_rules_sni() -> None:
    mesh, _ = egress_cases.model()
    cluster = _of(_snapshot(mesh, "sleep"), snapshot.CLUSTER)["outbound|80||" + GW]
    assert isinstance(cluster, cluster_pb2.Cluster)
    context = tls_pb2.UpstreamTlsContext()
    assert cluster.transport_socket.typed_config.Unpack(context)
    assert context.sni == "api.maps.example"
    sans = context.common_tls_context.combined_validation_context.default_validation_context
    assert [m.matcher.exact for m in sans.match_typed_subject_alt_names] == [
        "spiffe://cluster.local/ns/istio-system/sa/egressgateway"
    ]


@pytest.mark.parametrize("mode", ["loopback", "netns"])
@pytest.mark.parametrize("workload", ["sleep", "egressgateway"])
def test_envoy_accepts_both_proxies(
    tmp_path: Path, envoy_validate: EnvoyValidate, mode: str, workload: str
) -> None:
    mesh, _ = egress_cases.model(network=NETNS if mode == "netns" else ir.LOOPBACK)
    proxy = egress_cases.proxy(mesh, workload)
    config = bootstrap.static_bootstrap(
        translate.proxy_snapshot(proxy),
        admin=("127.0.0.1", 0),
        node_id=proxy.node_id,
        secrets_dir=None,
        sds_socket=str(tmp_path / "sds.sock"),
    )
    done = envoy_validate(config)
    assert done.returncode == 0, done.stdout + done.stderr


def test_server_ports_name_the_gateway_services_ports_as_in_istio() -> None:
    # Istio's gateway Service maps 80 → 8080: a Gateway server on 80 listens on 8080, its
    # routes still match port 80, and the gateway's policies see 8080.
    text = egress_cases.MESH.replace(
        "  - {name: http, port: 80}\n", "  - {name: http, port: 80, targetPort: 8080}\n"
    ).replace('ports: ["80"]', 'ports: ["8080"]')
    loaded = egress_cases.load_text(text, "egress.yaml")
    mesh, findings = egress_cases.build(
        loaded,
        egress_cases.allocate(egress_cases.replicas(loaded.workloads), {}, egress_cases.POOL),
    )
    assert [d.code for d in findings if d.level.name != "INFO"] == []
    gateway = egress_cases.proxy(mesh, "egressgateway").gateway
    assert gateway is not None
    assert [(g.port, g.server_port, [c.kind for c in g.chains]) for g in gateway.listeners] == [
        (8080, 80, ["TERMINATE"]),
        (443, 443, ["PASSTHROUGH"]),
        (8443, 8443, ["TERMINATE_TCP"]),
    ]
    http = next(g for g in gateway.listeners if g.port == 8080)
    assert [p.name for p in http.authz.policies] == ["egress-callers"]
    to_gateway = egress_cases.outbound(mesh, "sleep", "egressgateway", 80)
    assert [(e.port, e.mtls) for e in to_gateway.endpoints] == [(8080, True)]
