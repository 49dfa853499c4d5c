"""Snapshots of shared resources: the consistency check stays strict, output stays identical.

`translate.SharedResources` hands one encoded cluster or route config to many snapshots, and
`snapshot.make_snapshot` takes its references from the `Encoded` instead of walking it again;
the walk itself skips fields whose type cannot hold a reference. These tests pin that every
dangling reference is still refused (inside shared resources too), that shared translation is
byte-identical to translating each proxy alone, and that equal inputs share one object.
"""

from __future__ import annotations

import dataclasses

import pytest
import xds_cases
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from meshward.errors import SnapshotError
from meshward.model import ir
from meshward.xds import cluster, core, snapshot, tls, translate


def _route(name: str, *clusters: str) -> route_pb2.RouteConfiguration:
    config = route_pb2.RouteConfiguration(name=name)
    host = config.virtual_hosts.add(name="all", domains=["*"])
    for target in clusters:
        entry = host.routes.add()
        entry.match.prefix = "/"
        entry.route.cluster = target
    return config


def _tcp_listener(target: str) -> listener_pb2.Listener:
    listener = listener_pb2.Listener(name="tcp", address=core.socket_address("127.0.0.1", 1))
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix="tcp", cluster=target)
    listener.filter_chains.add().filters.add(name="tcp", typed_config=core.pack(proxy))
    return listener


def _rds_listener(route_name: str) -> listener_pb2.Listener:
    listener = listener_pb2.Listener(name="http", address=core.socket_address("127.0.0.1", 2))
    manager = hcm_pb2.HttpConnectionManager(stat_prefix="http")
    manager.rds.route_config_name = route_name
    manager.rds.config_source.CopyFrom(core.ads_source())
    listener.filter_chains.add().filters.add(name="hcm", typed_config=core.pack(manager))
    return listener


def _mtls_cluster(name: str, secret: str) -> cluster_pb2.Cluster:
    # The secret reference sits deep: transport_socket_matches → Any → UpstreamTlsContext.
    made = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.STATIC)
    context = tls.upstream_context(["spiffe://td/ns/a/sa/b"], sni="s", http=False)
    context.common_tls_context.tls_certificate_sds_secret_configs[0].name = secret
    made.transport_socket_matches.add(name="m").transport_socket.CopyFrom(tls.tls_socket(context))
    return made


def _eds_cluster(name: str) -> cluster_pb2.Cluster:
    made = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
    made.eds_cluster_config.eds_config.CopyFrom(core.ads_source())
    return made


# (case, the resources of one snapshot, the error). Each case refers to something absent.
DANGLING: list[tuple[str, dict[str, list[object]], str]] = [
    (
        "route to a missing cluster",
        {"routes": [_route("r", "c1", "gone")], "clusters": [cluster_pb2.Cluster(name="c1")]},
        "snapshot refers to missing Cluster: gone",
    ),
    (
        "tcp proxy (inside Any) to a missing cluster",
        {"listeners": [_tcp_listener("gone")]},
        "snapshot refers to missing Cluster: gone",
    ),
    (
        "RDS name without a route config",
        {"listeners": [_rds_listener("gone")]},
        "snapshot refers to missing RouteConfiguration: gone",
    ),
    (
        "SDS secret that neither the snapshot nor the agent has",
        {"clusters": [_mtls_cluster("c", "gone")]},
        "snapshot refers to missing Secret: gone",
    ),
    (
        "EDS cluster without endpoints",
        {"clusters": [_eds_cluster("c")]},
        "snapshot refers to missing ClusterLoadAssignment: c",
    ),
]


@pytest.mark.parametrize("shared", [False, True], ids=["message", "encoded"])
@pytest.mark.parametrize(("case", "resources", "error"), DANGLING, ids=[c[0] for c in DANGLING])
def test_dangling_reference_is_refused(
    case: str, resources: dict[str, list[object]], error: str, shared: bool
) -> None:
    given = {
        kind: [snapshot.encode(m) if shared else m for m in items]  # type: ignore[arg-type]
        for kind, items in resources.items()
    }
    with pytest.raises(SnapshotError) as raised:
        snapshot.make_snapshot(**given)  # type: ignore[arg-type]
    assert str(raised.value) == error


def test_shared_resource_is_checked_in_every_snapshot_it_enters() -> None:
    """One encoded route config, valid in the snapshot that has its cluster and refused in
    the one that lacks it: its references are not trusted once and for all."""
    shared = snapshot.encode(_route("outbound_http", "c1"))
    good = snapshot.make_snapshot(routes=[shared], clusters=[cluster_pb2.Cluster(name="c1")])
    assert good.of_type(snapshot.ROUTE)["outbound_http"] is shared.message
    with pytest.raises(SnapshotError) as raised:
        snapshot.make_snapshot(routes=[shared], clusters=[cluster_pb2.Cluster(name="c2")])
    assert str(raised.value) == "snapshot refers to missing Cluster: c1"


def test_agent_secrets_and_present_references_pass() -> None:
    made = snapshot.make_snapshot(
        listeners=[_tcp_listener("c"), _rds_listener("r")],
        routes=[_route("r", "c")],
        clusters=[_mtls_cluster("c", tls.IDENTITY_SECRET), _eds_cluster("e")],
        endpoints=[endpoint_pb2.ClusterLoadAssignment(cluster_name="e")],
    )
    assert {t: sorted(made.of_type(t)) for t in snapshot.TYPE_ORDER} == {
        snapshot.CLUSTER: ["c", "e"],
        snapshot.ENDPOINT: ["e"],
        snapshot.LISTENER: ["http", "tcp"],
        snapshot.ROUTE: ["r"],
        snapshot.SECRET: [],
    }


def test_encoded_bytes_and_versions_match_the_messages() -> None:
    made = translate.proxy_snapshot(xds_cases.CASES["mixed_endpoints"])
    for type_url, resources in made.resources.items():
        assert made.version(type_url) == snapshot.content_version(resources)
        for name, message in resources.items():
            assert made.encoding(type_url, name) == message.SerializeToString(deterministic=True)


def _serialised(made: snapshot.Snapshot) -> dict[str, dict[str, bytes]]:
    return {
        t: {n: m.SerializeToString(deterministic=True) for n, m in r.items()}
        for t, r in made.resources.items()
    }


def test_shared_translation_is_byte_identical_to_translating_alone() -> None:
    shared = translate.SharedResources()
    for _ in range(2):  # the second round is served from the memo after a sweep
        for proxy in xds_cases.CASES.values():
            alone = translate.translate(proxy)
            together = translate.translate(proxy, shared)
            assert _serialised(together.snapshot) == _serialised(alone.snapshot)
            assert together.snapshot.versions == alone.snapshot.versions
            assert together.diagnostics == alone.diagnostics
        shared.sweep()


def _callers(count: int, service: ir.OutboundService) -> list[ir.ProxyModel]:
    """`count` callers in two namespaces seeing `service` (HTTP names differ per namespace)."""
    made = []
    for i in range(count):
        namespace = "default" if i % 2 else "other"
        pod = xds_cases.pod(f"c{i}", f"127.0.20.{i + 1}", f"127.0.21.{i + 1}", namespace=namespace)
        seen = dataclasses.replace(service, http_domains=(f"{service.name}.{namespace}",))
        made.append(xds_cases.proxy(pod, outbound=(seen,)))
    return made


def test_equal_clusters_are_one_object_across_proxies_and_reloads() -> None:
    web = xds_cases.CASES["strict_http"].outbound[0]
    shared = translate.SharedResources()
    first = [translate.translate(p, shared).snapshot for p in _callers(4, web)]
    clusters = {id(s.of_type(snapshot.CLUSTER)[web.cluster_name]) for s in first}
    assert len(clusters) == 1  # Host names differ per namespace; the cluster does not
    routes = {id(s.of_type(snapshot.ROUTE)["outbound_http"]) for s in first}
    assert len(routes) == 2  # one route config per distinct set of Host names
    shared.sweep()
    # A reload builds new, equal IR values: the same encoded cluster comes back.
    again = translate.translate(_callers(1, web)[0], shared).snapshot
    assert {id(again.of_type(snapshot.CLUSTER)[web.cluster_name])} == clusters
    # After a sweep in which it was not used, it is gone (a fresh, equal one is made).
    shared.sweep()
    shared.sweep()
    late = translate.translate(_callers(1, web)[0], shared).snapshot
    assert {id(late.of_type(snapshot.CLUSTER)[web.cluster_name])} != clusters


@pytest.mark.parametrize(
    "changes",
    [
        {"http_domains": ("elsewhere",)},
        {"http_domains": (), "tcp_bind": ("127.0.0.9", 7000)},
        {"tls": "ISTIO_MUTUAL", "tls_source": "DestinationRule a/b"},
    ],
)
def test_outbound_cluster_reads_only_the_upstream_side(changes: dict[str, object]) -> None:
    """SharedResources keys clusters without Host names and TCP binds: outbound_cluster must
    not read them (nor `tls`, which the model already folded into each endpoint)."""
    for proxy in xds_cases.CASES.values():
        for service in proxy.outbound:
            other = dataclasses.replace(service, **changes)  # type: ignore[arg-type]
            assert cluster.outbound_cluster(other) == cluster.outbound_cluster(service)


def test_walk_skips_only_types_that_cannot_refer() -> None:
    assert snapshot._may_refer(route_components_pb2.RouteAction.DESCRIPTOR)
    assert snapshot._may_refer(listener_pb2.Listener.DESCRIPTOR)
    assert snapshot._may_refer(cluster_pb2.Cluster.DESCRIPTOR)  # through Any (sockets)
    assert not snapshot._may_refer(
        endpoint_pb2.ClusterLoadAssignment.DESCRIPTOR.fields_by_name["endpoints"]
        .message_type.fields_by_name["lb_endpoints"]
        .message_type.fields_by_name["endpoint"]
        .message_type
    )
