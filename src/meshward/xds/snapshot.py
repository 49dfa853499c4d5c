"""Immutable, versioned, consistent per-proxy snapshots (the go-control-plane model).

The control plane builds a Snapshot from translated resources, `make_snapshot` checks that
every cluster, route config and secret a resource refers to is present (or is one of the
secrets the node agent serves over SDS), and only then hands it to the server's cache. The
server never builds or edits a snapshot; it only reads. Each type is versioned by a content
hash so a change to routes alone pushes only RDS (see the xDS facts note).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from google.protobuf.message import Message

from meshward.errors import SnapshotError

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

# The order a server should send types in on a fresh stream (make-before-break, xDS spec
# "eventual consistency considerations"): clusters before the listeners that use them,
# endpoints after clusters, routes after listeners.
TYPE_ORDER: tuple[str, ...] = (CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET)

MESSAGE_TYPES: Mapping[str, type[Message]] = MappingProxyType(
    {
        LISTENER: listener_pb2.Listener,
        CLUSTER: cluster_pb2.Cluster,
        ROUTE: route_pb2.RouteConfiguration,
        ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
        SECRET: secret_pb2.Secret,
    }
)

# Secrets served by the node agent's SDS server, not by the control plane (Istio's names).
AGENT_SECRETS = frozenset({"default", "ROOTCA"})


@dataclass(frozen=True, slots=True)
class Snapshot:
    """All resources of one proxy, by type URL then name, with a content-hash version per type."""

    resources: Mapping[str, Mapping[str, Message]]
    versions: Mapping[str, str] = field(default_factory=dict)

    def version(self, type_url: str) -> str:
        return self.versions.get(type_url, "")

    def of_type(self, type_url: str) -> Mapping[str, Message]:
        return self.resources.get(type_url, MappingProxyType({}))


def content_version(messages: Mapping[str, Message]) -> str:
    """A short hash over the deterministic serialisation of every resource, sorted by name."""
    digest = hashlib.sha256()
    for name in sorted(messages):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(messages[name].SerializeToString(deterministic=True))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def make_snapshot(
    *,
    listeners: Iterable[listener_pb2.Listener] = (),
    clusters: Iterable[cluster_pb2.Cluster] = (),
    routes: Iterable[route_pb2.RouteConfiguration] = (),
    endpoints: Iterable[endpoint_pb2.ClusterLoadAssignment] = (),
    secrets: Iterable[secret_pb2.Secret] = (),
) -> Snapshot:
    """Build a snapshot and check it is consistent; raises SnapshotError if it is not."""
    by_type: dict[str, dict[str, Message]] = {}
    for type_url, items, key in (
        (LISTENER, listeners, "name"),
        (CLUSTER, clusters, "name"),
        (ROUTE, routes, "name"),
        (ENDPOINT, endpoints, "cluster_name"),
        (SECRET, secrets, "name"),
    ):
        table: dict[str, Message] = {}
        for message in items:
            name = getattr(message, key)
            if name in table:
                raise SnapshotError(f"duplicate {type_url.rsplit('.', 1)[-1]} {name!r}")
            table[name] = message
        by_type[type_url] = table
    _check_consistent(by_type)
    return Snapshot(
        resources=MappingProxyType({t: MappingProxyType(r) for t, r in by_type.items()}),
        versions=MappingProxyType({t: content_version(r) for t, r in by_type.items()}),
    )


def _check_consistent(by_type: Mapping[str, Mapping[str, Message]]) -> None:
    refs = _references(by_type)
    for type_url, names in refs.items():
        have = set(by_type.get(type_url, {}))
        if type_url == SECRET:
            have |= AGENT_SECRETS
        missing = sorted(names - have)
        if missing:
            kind = type_url.rsplit(".", 1)[-1]
            raise SnapshotError(f"snapshot refers to missing {kind}: {', '.join(missing)}")


def _references(by_type: Mapping[str, Mapping[str, Message]]) -> dict[str, set[str]]:
    """Names each resource refers to, found by walking the messages' fields.

    Walking (rather than knowing each filter) keeps the check honest as translators grow:
    any `cluster`, `route_config_name` or SDS secret name anywhere in a resource counts.
    """
    refs: dict[str, set[str]] = {CLUSTER: set(), ROUTE: set(), SECRET: set(), ENDPOINT: set()}
    for message in by_type.get(LISTENER, {}).values():
        _walk(message, refs)
    for message in by_type.get(ROUTE, {}).values():
        _walk(message, refs)
    for message in by_type.get(CLUSTER, {}).values():
        _walk(message, refs)
        cluster = message
        assert isinstance(cluster, cluster_pb2.Cluster)
        if cluster.type == cluster_pb2.Cluster.EDS:
            refs[ENDPOINT].add(cluster.eds_cluster_config.service_name or cluster.name)
    return refs


def _walk(message: Message, refs: dict[str, set[str]]) -> None:
    from google.protobuf import any_pb2

    if isinstance(message, any_pb2.Any):
        inner = _unpack(message)
        if inner is not None:
            _walk(inner, refs)
        return
    descriptor = message.DESCRIPTOR
    full = descriptor.full_name
    route_cluster = full == "envoy.config.route.v3.RouteAction" and message.HasField("cluster")
    tcp_cluster = full == "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
    if route_cluster or (tcp_cluster and message.cluster):  # type: ignore[attr-defined]
        refs[CLUSTER].add(message.cluster)  # type: ignore[attr-defined]
    elif full == "envoy.extensions.filters.network.http_connection_manager.v3.Rds":
        refs[ROUTE].add(message.route_config_name)  # type: ignore[attr-defined]
    elif full == "envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig":
        refs[SECRET].add(message.name)  # type: ignore[attr-defined]
        return
    for field_descriptor, value in message.ListFields():
        if field_descriptor.message_type is None:
            continue
        if field_descriptor.is_repeated:
            if field_descriptor.message_type.GetOptions().map_entry:
                for item in value.values():
                    if isinstance(item, Message):
                        _walk(item, refs)
            else:
                for item in value:
                    _walk(item, refs)
        else:
            _walk(value, refs)


def _unpack(packed: Message) -> Message | None:
    from google.protobuf import symbol_database

    type_name = packed.type_url.rsplit("/", 1)[-1]  # type: ignore[attr-defined]
    try:
        cls = symbol_database.Default().GetSymbol(type_name)
    except KeyError:
        return None
    inner: Message = cls()
    packed.Unpack(inner)  # type: ignore[attr-defined]
    return inner
