"""Gateway translation: golden listeners, Envoy accepts them (`--mode validate`), and the
semantics that matter asserted directly (SNI chains, TLS defaults, XFCC and XFF at the edge,
redirects)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gateway_cases
import pytest
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import json_format

from meshward.xds import bootstrap, snapshot, translate

if TYPE_CHECKING:
    from tests.conftest import EnvoyValidate

_HCM = hcm_pb2.HttpConnectionManager


def _listeners() -> dict[str, listener_pb2.Listener]:
    mesh, _ = gateway_cases.model()
    snap = translate.proxy_snapshot(gateway_cases.gateway_proxy(mesh))
    found = dict(snap.of_type(snapshot.LISTENER))
    return {n: m for n, m in found.items() if isinstance(m, listener_pb2.Listener)}


def test_golden_listeners(golden: Callable[[str, Any], None]) -> None:
    listeners = _listeners()
    rendered = [
        json_format.MessageToDict(listeners[n], preserving_proto_field_name=True)
        for n in sorted(listeners)
        if n.startswith("gateway|")
    ]
    golden("xds/gateway/listeners.json", rendered)


@pytest.mark.parametrize("extra", ["", "custom"])
def test_envoy_accepts_the_gateway(
    tmp_path: Path, envoy_validate: EnvoyValidate, extra: str
) -> None:
    mesh, _ = gateway_cases.model(_CUSTOM if extra else "")
    proxy = gateway_cases.gateway_proxy(mesh)
    config = bootstrap.static_bootstrap(
        translate.proxy_snapshot(proxy),
        admin=("127.0.0.1", 0),
        node_id=proxy.node_id,
        secrets_dir=None,
        sds_socket=str(tmp_path / "sds.sock"),
    )
    done = envoy_validate(config)
    assert done.returncode == 0, done.stdout + done.stderr


def _hcm(chain: Any) -> hcm_pb2.HttpConnectionManager:
    manager = _HCM()
    assert chain.filters[-1].typed_config.Unpack(manager)
    return manager


def test_terminating_chains_match_sni_with_safe_tls_defaults() -> None:
    listener = _listeners()["gateway|8443"]
    assert [f.name for f in listener.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    assert [(c.name, list(c.filter_chain_match.server_names)) for c in listener.filter_chains] == [
        ("https|8443|istio-system/public/1", ["users.example.com"]),
        ("https|8443|istio-system/public/2", ["mobile.example.com"]),
    ]
    simple, mutual = (tls_pb2.DownstreamTlsContext() for _ in range(2))
    assert listener.filter_chains[0].transport_socket.typed_config.Unpack(simple)
    assert listener.filter_chains[1].transport_socket.typed_config.Unpack(mutual)
    params = simple.common_tls_context.tls_params
    assert params.tls_minimum_protocol_version == params.TLSv1_2
    assert list(params.cipher_suites) == [
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
    assert [s.name for s in simple.common_tls_context.tls_certificate_sds_secret_configs] == [
        "credential/users-cert"
    ]
    assert not simple.require_client_certificate.value
    assert mutual.require_client_certificate.value
    combined = mutual.common_tls_context.combined_validation_context
    assert combined.validation_context_sds_secret_config.name == "credential/mobile-cert-cacert"
    sans = combined.default_validation_context.match_typed_subject_alt_names
    assert [(s.san_type, s.matcher.exact) for s in sans] == [
        (s.URI, "spiffe://mobile.example.com/app") for s in sans
    ]
    # The edge: real client address (no trusted hops by default) and the client cert in XFCC.
    plain_manager, mutual_manager = (_hcm(c) for c in listener.filter_chains)
    assert plain_manager.use_remote_address.value and plain_manager.xff_num_trusted_hops == 0
    assert plain_manager.forward_client_cert_details == _HCM.SANITIZE
    assert mutual_manager.forward_client_cert_details == _HCM.SANITIZE_SET
    details = mutual_manager.set_current_client_cert_details
    assert (details.subject.value, details.uri, details.dns) == (True, True, True)


def test_https_redirect_and_passthrough() -> None:
    listeners = _listeners()
    (http,) = listeners["gateway|8080"].filter_chains
    host = _hcm(http).route_config.virtual_hosts[0]
    assert (list(host.domains), host.require_tls) == (
        ["users.example.com", "users.example.com:*"],
        host.ALL,
    )
    (passthrough,) = listeners["gateway|9443"].filter_chains
    assert list(passthrough.filter_chain_match.server_names) == ["vault.example.com"]
    assert not passthrough.HasField("transport_socket")  # the client's TLS goes through
    assert passthrough.filters[-1].name == "envoy.filters.network.tcp_proxy"


def test_trusted_proxies_reach_the_connection_manager() -> None:
    extra = "---\napiVersion: meshward.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\n"
    extra += "spec: {defaultConfig: {gatewayTopology: {numTrustedProxies: 2}}}\n"
    mesh, _ = gateway_cases.model(extra)
    snap = translate.proxy_snapshot(gateway_cases.gateway_proxy(mesh))
    listener = snap.of_type(snapshot.LISTENER)["gateway|8080"]
    assert isinstance(listener, listener_pb2.Listener)
    assert _hcm(listener.filter_chains[0]).xff_num_trusted_hops == 2


_CUSTOM = """\
---
apiVersion: meshward.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  extensionProviders:
  - name: authz
    envoyExtAuthzGrpc: {service: authz.core.svc.cluster.local, port: 9000}
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: authz, namespace: core, labels: {app: authz}}
spec: {ports: [{name: grpc, port: 9000}], command: [python]}
---
apiVersion: v1
kind: Service
metadata: {name: authz, namespace: core}
spec: {selector: {app: authz}, ports: [{name: grpc, port: 9000}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: edge-authn, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: CUSTOM
  provider: {name: authz}
  rules: [{to: [{operation: {paths: ["/users/*"]}}]}]
"""


def test_custom_runs_at_the_gateway_as_at_a_sidecar() -> None:
    """A CUSTOM policy selecting the gateway pod becomes the same shadow-RBAC + ext_authz
    filters a sidecar gets: on every HTTP chain, and on the passthrough (TCP) chain, where its
    path rule is widened to every connection and the gRPC provider is asked once per
    connection (Istio's TCP semantics for CUSTOM)."""
    mesh, findings = gateway_cases.model(_CUSTOM)
    assert findings == ()
    proxy = gateway_cases.gateway_proxy(mesh)
    snap = translate.proxy_snapshot(proxy)
    for name, chains in (("gateway|8080", 1), ("gateway|8443", 2)):
        listener = snap.of_type(snapshot.LISTENER)[name]
        assert isinstance(listener, listener_pb2.Listener)
        assert len(listener.filter_chains) == chains
        for chain in listener.filter_chains:
            names = [f.name for f in _hcm(chain).http_filters]
            assert names[-2:] == ["meshward.authz.ext_authz", "envoy.filters.http.router"]
    passthrough = snap.of_type(snapshot.LISTENER)["gateway|9443"]
    assert isinstance(passthrough, listener_pb2.Listener)
    assert [f.name for f in passthrough.filter_chains[0].filters] == [
        "meshward.authz.custom",
        "meshward.authz.ext_authz",
        "envoy.filters.network.tcp_proxy",
    ]
    assert "outbound|9000||authz.core.svc.cluster.local" in dict(snap.of_type(snapshot.CLUSTER))
