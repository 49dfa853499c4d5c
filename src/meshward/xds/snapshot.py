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
from google.protobuf import any_pb2, symbol_database
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from meshward.errors import SnapshotError
from meshward.model import ir

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
    """All resources of one proxy, by type URL then name, with a content-hash version per type.

    `encoded` holds each resource's deterministic serialisation (same keys as `resources`),
    made once when the snapshot was built: the server packs it into every response as is, so
    a resource shared by 1000 proxies is serialised once, not once per stream.
    """

    resources: Mapping[str, Mapping[str, Message]]
    versions: Mapping[str, str] = field(default_factory=dict)
    encoded: Mapping[str, Mapping[str, bytes]] = field(default_factory=dict)

    def version(self, type_url: str) -> str:
        return self.versions.get(type_url, "")

    def of_type(self, type_url: str) -> Mapping[str, Message]:
        return self.resources.get(type_url, MappingProxyType({}))

    def encoding(self, type_url: str, name: str) -> bytes | None:
        """The stored serialisation of one resource, or None (a snapshot made by hand)."""
        return self.encoded.get(type_url, {}).get(name)


@dataclass(frozen=True, slots=True, eq=False)
class Encoded:
    """A resource with its deterministic serialisation and the names it refers to, made once.

    Translators that share one resource between many proxies (xds/translate.py) encode it once
    and pass the `Encoded` to `make_snapshot` for every proxy: the snapshot then needs neither
    to serialise it nor to walk it again, and still checks every name in `references` against
    its own resources (a shared resource with a dangling reference is refused in every
    snapshot it enters). The message must not change after encoding; nothing mutates a
    translated resource (make_snapshot stores it, consumers only serialise).
    """

    message: Message
    name: str  # `name`, or `cluster_name` for a ClusterLoadAssignment
    data: bytes
    references: frozenset[tuple[str, str]]  # (type URL, name)


def encode(message: Message) -> Encoded:
    """`message` with its serialisation and references (see `Encoded`)."""
    refs: dict[str, set[str]] = {CLUSTER: set(), ROUTE: set(), SECRET: set(), ENDPOINT: set()}
    _resource_references(message, refs)
    key = "cluster_name" if isinstance(message, endpoint_pb2.ClusterLoadAssignment) else "name"
    return Encoded(
        message=message,
        name=getattr(message, key),
        data=message.SerializeToString(deterministic=True),
        references=frozenset((t, n) for t, names in refs.items() for n in names),
    )


def content_version(messages: Mapping[str, Message]) -> str:
    """A short hash over the deterministic serialisation of every resource, sorted by name."""
    return _content_version(
        {name: message.SerializeToString(deterministic=True) for name, message in messages.items()}
    )


def _content_version(encoded: Mapping[str, bytes]) -> str:
    parts: list[bytes] = []
    for name in sorted(encoded):
        parts += (name.encode(), b"\0", encoded[name], b"\0")
    # One update over the joined parts hashes the same bytes as one update per part.
    return hashlib.sha256(b"".join(parts)).hexdigest()[:16]


def make_snapshot(
    *,
    listeners: Iterable[listener_pb2.Listener | Encoded] = (),
    clusters: Iterable[cluster_pb2.Cluster | Encoded] = (),
    routes: Iterable[route_pb2.RouteConfiguration | Encoded] = (),
    endpoints: Iterable[endpoint_pb2.ClusterLoadAssignment | Encoded] = (),
    secrets: Iterable[secret_pb2.Secret | Encoded] = (),
) -> Snapshot:
    """Build a snapshot and check it is consistent; raises SnapshotError if it is not.

    Each resource is a message or an `Encoded` one (shared between snapshots, encoded once).
    """
    by_type: dict[str, dict[str, Encoded]] = {}
    for type_url, items in (
        (LISTENER, listeners),
        (CLUSTER, clusters),
        (ROUTE, routes),
        (ENDPOINT, endpoints),
        (SECRET, secrets),
    ):
        table: dict[str, Encoded] = {}
        for item in items:
            encoded = item if isinstance(item, Encoded) else encode(item)
            if encoded.name in table:
                raise SnapshotError(f"duplicate {type_url.rsplit('.', 1)[-1]} {encoded.name!r}")
            table[encoded.name] = encoded
        by_type[type_url] = table
    _check_consistent(by_type)
    return Snapshot(
        resources=MappingProxyType(
            {t: MappingProxyType({n: e.message for n, e in r.items()}) for t, r in by_type.items()}
        ),
        versions=MappingProxyType(
            {t: _content_version({n: e.data for n, e in r.items()}) for t, r in by_type.items()}
        ),
        encoded=MappingProxyType(
            {t: MappingProxyType({n: e.data for n, e in r.items()}) for t, r in by_type.items()}
        ),
    )


def _check_consistent(by_type: Mapping[str, Mapping[str, Encoded]]) -> None:
    every: set[tuple[str, str]] = set()
    for table in by_type.values():
        # Shared resources carry equal reference sets: the union is small and made in C.
        every.update(*[encoded.references for encoded in table.values()])
    refs: dict[str, set[str]] = {}
    for type_url, name in every:
        refs.setdefault(type_url, set()).add(name)
    for type_url in (CLUSTER, ROUTE, SECRET, ENDPOINT):
        if type_url not in refs:
            continue
        have = set(by_type.get(type_url, {}))
        if type_url == SECRET:
            # The node agent serves these itself: the identity, the trust bundle, and a
            # gateway's secret-store credentials (a missing credential fails only its own
            # handshakes, like Istio's; the agent and `meshward status` report it).
            have |= AGENT_SECRETS
            have |= {n for n in refs[type_url] if n.startswith(ir.CREDENTIAL_SDS_PREFIX)}
        missing = sorted(refs[type_url] - have)
        if missing:
            kind = type_url.rsplit(".", 1)[-1]
            raise SnapshotError(f"snapshot refers to missing {kind}: {', '.join(missing)}")


def _resource_references(message: Message, refs: dict[str, set[str]]) -> None:
    """Names one resource refers to, found by walking its fields.

    Walking (rather than knowing each filter) keeps the check honest as translators grow:
    any `cluster`, `route_config_name` or SDS secret name anywhere in a resource counts, and
    an EDS cluster refers to its endpoints. Only listeners, routes and clusters can refer to
    anything here (endpoints and secrets are leaves), as before.
    """
    if isinstance(message, listener_pb2.Listener | route_pb2.RouteConfiguration):
        _walk(message, refs)
    elif isinstance(message, cluster_pb2.Cluster):
        _walk(message, refs)
        if message.type == cluster_pb2.Cluster.EDS:
            refs[ENDPOINT].add(message.eds_cluster_config.service_name or message.name)


# Message types whose fields name other resources (the checks in `_walk`), and Any, whose
# content can be anything. A field whose type can reach none of these holds no reference.
_REFERRING_ROOTS = frozenset(
    {
        "envoy.config.route.v3.RouteAction",
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "envoy.extensions.filters.network.http_connection_manager.v3.Rds",
        "envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig",
        any_pb2.Any.DESCRIPTOR.full_name,
    }
)
_MAY_REFER: dict[str, bool] = {}  # message full name -> can a reference occur inside it


def _may_refer(descriptor: Descriptor) -> bool:
    """Whether a message of this type can hold a reference, at any depth (through Any too).

    Decided from the schema once per type (a fixed point over the types reachable from it,
    which may be recursive), so `_walk` skips the subtrees that cannot hold one (endpoint
    lists, Struct metadata, addresses) instead of visiting every field of every resource.
    """
    known = _MAY_REFER.get(descriptor.full_name)
    if known is not None:
        return known
    reachable: dict[str, Descriptor] = {}
    stack = [descriptor]
    while stack:
        current = stack.pop()
        if current.full_name in reachable or current.full_name in _MAY_REFER:
            continue
        reachable[current.full_name] = current
        stack.extend(f.message_type for f in current.fields if f.message_type is not None)
    marked = {name for name in reachable if name in _REFERRING_ROOTS}
    changed = True
    while changed:
        changed = False
        for name, current in reachable.items():
            if name not in marked and any(
                f.message_type is not None
                and (f.message_type.full_name in marked or _MAY_REFER.get(f.message_type.full_name))
                for f in current.fields
            ):
                marked.add(name)
                changed = True
    for name in reachable:
        _MAY_REFER[name] = name in marked
    return _MAY_REFER[descriptor.full_name]


def _walk(message: Message, refs: dict[str, set[str]]) -> None:
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
        field_type = field_descriptor.message_type
        if field_type is None or not _may_refer(field_type):
            continue
        if field_descriptor.is_repeated:
            if field_type.GetOptions().map_entry:
                for item in value.values():
                    if isinstance(item, Message):
                        _walk(item, refs)
            else:
                for item in value:
                    _walk(item, refs)
        else:
            _walk(value, refs)


def _unpack(packed: any_pb2.Any) -> Message | None:
    type_name = packed.type_url.rsplit("/", 1)[-1]
    try:
        cls = symbol_database.Default().GetSymbol(type_name)
    except KeyError:
        return None
    inner: Message = cls()
    packed.Unpack(inner)
    return inner
