"""ProxyModel → Envoy protos: golden files per case, plus the semantics that matter checked
directly (chains per mTLS mode, TLS sockets per endpoint mix, dropped resources)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
import xds_cases
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import json_format
from google.protobuf.message import Message

from meshward.diagnostics import CATALOG, Level
from meshward.model import ir
from meshward.xds import snapshot, translate

_HCM = hcm_pb2.HttpConnectionManager


def _render(messages: dict[str, Message]) -> list[dict[str, Any]]:
    return [
        json_format.MessageToDict(messages[name], preserving_proto_field_name=True)
        for name in sorted(messages)
    ]


@pytest.mark.parametrize("case", sorted(xds_cases.CASES))
def test_golden(case: str, golden: Callable[[str, Any], None]) -> None:
    snap = translate.proxy_snapshot(xds_cases.CASES[case])
    for kind, type_url in (
        ("listeners", snapshot.LISTENER),
        ("clusters", snapshot.CLUSTER),
        ("routes", snapshot.ROUTE),
    ):
        golden(f"xds/{case}/{kind}.json", _render(dict(snap.of_type(type_url))))


@pytest.mark.parametrize("case", sorted(xds_cases.CASES))
def test_translation_is_deterministic(case: str) -> None:
    first = translate.proxy_snapshot(xds_cases.CASES[case])
    second = translate.proxy_snapshot(xds_cases.CASES[case])
    assert dict(first.versions) == dict(second.versions)
    assert first.version(snapshot.LISTENER) != ""


def _listener(proxy: ir.ProxyModel, name: str) -> listener_pb2.Listener:
    message = translate.proxy_snapshot(proxy).of_type(snapshot.LISTENER)[name]
    assert isinstance(message, listener_pb2.Listener)
    return message


def _chain_shape(chain: Any) -> tuple[str, str, bool, str]:
    """(name, matched transport protocol, has TLS, HCM XFCC mode or tcp_proxy)."""
    hcm = _HCM()
    filter_ = chain.filters[0]
    if filter_.typed_config.Unpack(hcm):
        mode = _HCM.ForwardClientCertDetails.Name(hcm.forward_client_cert_details)
        if hcm.set_current_client_cert_details.uri:
            mode += "+uri"
    else:
        mode = filter_.name
    tls = chain.transport_socket.name == "envoy.transport_sockets.tls"
    return (chain.name, chain.filter_chain_match.transport_protocol, tls, mode)


_TCP = "envoy.filters.network.tcp_proxy"


@pytest.mark.parametrize(
    ("mode", "protocol", "listener_filters", "chains"),
    [
        ("STRICT", "HTTP", [], [("inbound|80|mtls", "", True, "SANITIZE_SET+uri")]),
        ("STRICT", "TCP", [], [("inbound|80|mtls", "", True, _TCP)]),
        (
            "PERMISSIVE",
            "HTTP",
            ["envoy.filters.listener.tls_inspector"],
            [
                ("inbound|80|mtls", "tls", True, "SANITIZE_SET+uri"),
                ("inbound|80|plaintext", "raw_buffer", False, "SANITIZE"),
            ],
        ),
        (
            "PERMISSIVE",
            "TCP",
            ["envoy.filters.listener.tls_inspector"],
            [
                ("inbound|80|mtls", "tls", True, _TCP),
                ("inbound|80|plaintext", "raw_buffer", False, _TCP),
            ],
        ),
        ("DISABLE", "HTTP", [], [("inbound|80|plaintext", "", False, "SANITIZE")]),
        ("DISABLE", "GRPC", [], [("inbound|80|plaintext", "", False, "SANITIZE")]),
    ],
)
def test_inbound_chains_follow_mtls_mode(
    mode: ir.EffectiveMtls,
    protocol: ir.Protocol,
    listener_filters: list[str],
    chains: list[tuple[str, str, bool, str]],
) -> None:
    pod = xds_cases.pod("web", "127.0.11.1", "127.0.11.2")
    proxy = xds_cases.proxy(pod, inbound=(xds_cases.inbound(80, protocol, mode),))
    listener = _listener(proxy, "inbound|80")
    assert [f.name for f in listener.listener_filters] == listener_filters
    assert [_chain_shape(c) for c in listener.filter_chains] == chains
    assert listener.address.socket_address.address == "127.0.11.1"


def test_strict_tls_context_requires_mesh_client_certificate() -> None:
    pod = xds_cases.pod("web", "127.0.11.1", "127.0.11.2")
    proxy = xds_cases.proxy(pod, inbound=(xds_cases.inbound(80, "HTTP", "STRICT"),))
    context = tls_pb2.DownstreamTlsContext()
    assert (
        _listener(proxy, "inbound|80")
        .filter_chains[0]
        .transport_socket.typed_config.Unpack(context)
    )
    common = context.common_tls_context
    combined = common.combined_validation_context
    assert context.require_client_certificate.value is True
    assert [s.name for s in common.tls_certificate_sds_secret_configs] == ["default"]
    assert combined.validation_context_sds_secret_config.name == "ROOTCA"
    sans = combined.default_validation_context.match_typed_subject_alt_names
    assert [(s.san_type, s.matcher.prefix) for s in sans] == [
        (sans[0].URI, "spiffe://cluster.local/")
    ]
    assert list(common.alpn_protocols) == ["h2", "http/1.1"]
    assert common.tls_params.tls_minimum_protocol_version == common.tls_params.TLSv1_2


def _cluster_shape(service: ir.OutboundService) -> tuple[list[str], str, str]:
    """(transport socket match names, default socket, HTTP protocol option kind)."""
    proxy = xds_cases.proxy(xds_cases.pod("c", "127.0.10.1", "127.0.10.2"), outbound=(service,))
    cluster = translate.proxy_snapshot(proxy).of_type(snapshot.CLUSTER)[service.cluster_name]
    assert isinstance(cluster, cluster_pb2.Cluster)
    options = http_protocol_options_pb2.HttpProtocolOptions()
    kind = "none"
    key = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    if key in cluster.typed_extension_protocol_options:
        assert cluster.typed_extension_protocol_options[key].Unpack(options)
        kind = options.WhichOneof("upstream_protocol_options")
    return (
        [m.name for m in cluster.transport_socket_matches],
        cluster.transport_socket.name,
        kind,
    )


_WEB = xds_cases.pod("web", "127.0.11.1", "127.0.11.2")
_OLD = xds_cases.pod("old", "127.0.12.1", "127.0.12.1", sidecar=False)
_TLS = "envoy.transport_sockets.tls"


@pytest.mark.parametrize(
    ("protocol", "mtls", "expected"),
    [
        ("HTTP", (True,), (["tlsMode-istio"], _TLS, "auto_config")),
        ("HTTP", (), (["tlsMode-istio"], _TLS, "auto_config")),
        ("HTTP", (True, False), (["tlsMode-istio", "tlsMode-disabled"], "", "none")),
        ("HTTP", (False,), (["tlsMode-istio", "tlsMode-disabled"], "", "none")),
        ("HTTP2", (True,), (["tlsMode-istio"], _TLS, "explicit_http_config")),
        ("GRPC", (False,), (["tlsMode-istio", "tlsMode-disabled"], "", "explicit_http_config")),
        ("TCP", (True,), (["tlsMode-istio"], _TLS, "none")),
        ("TCP", (True, False), (["tlsMode-istio", "tlsMode-disabled"], "", "none")),
    ],
)
def test_outbound_cluster_sockets(
    protocol: ir.Protocol, mtls: tuple[bool, ...], expected: tuple[list[str], str, str]
) -> None:
    endpoints = tuple(
        xds_cases.endpoint(_WEB if flag else _OLD, 80 + i, mtls=flag) for i, flag in enumerate(mtls)
    )
    assert _cluster_shape(xds_cases.service("web", 80, protocol, endpoints)) == expected


def _domains(routes: route_pb2.RouteConfiguration) -> dict[str, list[str]]:
    return {v.name: list(v.domains) for v in routes.virtual_hosts}


def test_duplicate_domain_is_dropped_from_the_later_service() -> None:
    client = xds_cases.pod("c", "127.0.10.1", "127.0.10.2")
    proxy = xds_cases.proxy(
        client,
        outbound=(
            xds_cases.service("a", 80, "HTTP", (), domains=("a", "shared")),
            xds_cases.service("b", 80, "HTTP", (), domains=("SHARED", "b")),
            xds_cases.service("c", 80, "HTTP", (), domains=("a",)),
        ),
    )
    result = translate.translate(proxy)
    assert [(d.code, d.resource) for d in result.diagnostics] == [
        ("MW0301", "Service default/b"),
        ("MW0301", "Service default/c"),
    ]
    routes = result.snapshot.of_type(snapshot.ROUTE)["outbound_http"]
    assert isinstance(routes, route_pb2.RouteConfiguration)
    assert _domains(routes) == {
        "a.default.svc.cluster.local:80": ["a", "shared"],
        "b.default.svc.cluster.local:80": ["b"],
    }
    # The service with no domain left still has its cluster.
    assert "outbound|80||c.default.svc.cluster.local" in result.snapshot.of_type(snapshot.CLUSTER)


@pytest.mark.parametrize(
    ("policy", "hosts"),
    [
        ("ALLOW_ANY", ["a.default.svc.cluster.local:80"]),  # an unknown Host: Envoy's 404
        ("REGISTRY_ONLY", ["a.default.svc.cluster.local:80", "block_all"]),
    ],
)
def test_outbound_policy_decides_the_catch_all_of_shared_routes(
    policy: ir.OutboundPolicy, hosts: list[str]
) -> None:
    # Both proxies share one outbound tuple (as callers under different Sidecars do) and
    # one SharedResources; each gets the routes of its own policy.
    client = xds_cases.pod("c", "127.0.10.1", "127.0.10.2")
    outbound = (xds_cases.service("a", 80, "HTTP", (), domains=("a",)),)
    shared = translate.SharedResources()
    other = "REGISTRY_ONLY" if policy == "ALLOW_ANY" else "ALLOW_ANY"
    translate.translate(xds_cases.proxy(client, outbound=outbound, outbound_policy=other), shared)
    proxy = xds_cases.proxy(client, outbound=outbound, outbound_policy=policy)
    routes = translate.translate(proxy, shared).snapshot.of_type(snapshot.ROUTE)["outbound_http"]
    assert isinstance(routes, route_pb2.RouteConfiguration)
    assert [v.name for v in routes.virtual_hosts] == hosts
    if policy == "REGISTRY_ONLY":
        assert json_format.MessageToDict(routes.virtual_hosts[-1]) == {
            "name": "block_all",
            "domains": ["*"],
            "routes": [
                {"name": "block_all", "match": {"prefix": "/"}, "directResponse": {"status": 502}}
            ],
        }


def _sni_entry(host: str, port: int, vip: str = "") -> ir.OutboundService:
    upstream = ir.ExternalUpstream("ServiceEntry default/e", "NONE", "MESH_EXTERNAL", (), True)
    return dataclasses.replace(xds_cases.service(host, port, "TCP", (), vip=vip), external=upstream)


def test_tls_inspector_runs_only_on_sni_routed_ports() -> None:
    # One SNI-routed port (the two-port form is in the external_captured golden); an entry
    # TLS port with an address is matched by address, so it needs no inspector.
    client = xds_cases.pod("c", "127.0.10.1", "127.0.10.2")
    outbound = (_sni_entry("*.tls.example", 443), _sni_entry("vip.example", 8443, "198.18.255.3"))
    proxy = xds_cases.proxy(client, outbound=outbound, capture=True)
    virtual = _listener(proxy, "virtualOutbound")
    filters = [json_format.MessageToDict(f) for f in virtual.listener_filters]
    assert [f["name"] for f in filters] == [
        "envoy.filters.listener.original_dst",
        "envoy.filters.listener.tls_inspector",
    ]
    assert filters[1]["filterDisabled"] == {
        "notMatch": {"destinationPortRange": {"start": 443, "end": 444}}
    }
    assert [
        (c.name, json_format.MessageToDict(c.filter_chain_match)) for c in virtual.filter_chains
    ] == [
        (
            "outbound|443||*.tls.example",
            {"destinationPort": 443, "serverNames": ["*.tls.example"], "transportProtocol": "tls"},
        ),
        (
            "outbound|8443||vip.example",
            {
                "destinationPort": 8443,
                "prefixRanges": [{"addressPrefix": "198.18.255.3", "prefixLen": 32}],
            },
        ),
    ]


def test_listener_address_clash_drops_the_later_listener() -> None:
    client = xds_cases.pod("c", "127.0.10.1", "127.0.10.2")
    proxy = xds_cases.proxy(
        client,
        inbound=(xds_cases.inbound(5432, "TCP", "STRICT"),),
        outbound=(
            xds_cases.service("db", 5432, "TCP", (), tcp_bind=("127.0.10.1", 5432)),
            xds_cases.service("web", 80, "TCP", (), tcp_bind=("127.0.10.1", 15001)),
            xds_cases.service("ok", 80, "TCP", (), tcp_bind=("127.0.10.1", 16000)),
        ),
    )
    result = translate.translate(proxy)
    assert [(d.code, d.resource) for d in result.diagnostics] == [
        ("MW0302", "Service default/db"),
        ("MW0302", "Service default/web"),
    ]
    assert sorted(result.snapshot.of_type(snapshot.LISTENER)) == [
        "inbound|5432",
        "outbound_http",
        "outbound|16000|tcp|ok.default.svc.cluster.local",
    ]


def test_duplicate_service_port_is_dropped() -> None:
    client = xds_cases.pod("c", "127.0.10.1", "127.0.10.2")
    web = xds_cases.service("web", 80, "HTTP", ())
    result = translate.translate(xds_cases.proxy(client, outbound=(web, web)))
    assert [d.code for d in result.diagnostics] == ["MW0303"]
    assert sorted(result.snapshot.of_type(snapshot.CLUSTER)) == [
        "outbound|80||web.default.svc.cluster.local"
    ]


def test_golden_cases_translate_without_diagnostics() -> None:
    found = {
        name: [d.code for d in translate.translate(proxy).diagnostics]
        for name, proxy in xds_cases.CASES.items()
    }
    assert found == {name: [] for name in xds_cases.CASES}


@pytest.mark.parametrize(
    ("code", "level"),
    [("MW0301", Level.WARNING), ("MW0302", Level.ERROR), ("MW0303", Level.ERROR)],
)
def test_codes_are_catalogued(code: str, level: Level) -> None:
    assert CATALOG[code].level is level
