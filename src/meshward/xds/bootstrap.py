"""Envoy bootstraps as JSON-able dicts: the real sidecar one, and a static one for tests.

`sidecar_bootstrap` is rendered by the node agent for each sidecar it starts: the node
identity, the admin address, and two static clusters, `xds-grpc` (the control plane's ADS)
and `sds-grpc` (the agent's SDS Unix socket), with LDS and CDS over ADS (Istio's layout).
`static_bootstrap` embeds a whole translated Snapshot as static resources, so tests can run
Envoy on exactly what the translator produced without a control plane. Both are built as
Bootstrap protos (so field names are checked) and rendered with MessageToDict.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import config_source_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.resource_monitors.downstream_connections.v3 import (
    downstream_connections_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import any_pb2, json_format, symbol_database
from google.protobuf.message import Message

from meshward.xds import cluster, core, snapshot, tls

DEFAULT_SDS_SOCKET = "/var/run/meshward/sds.sock"
MAX_DOWNSTREAM_CONNECTIONS = 50_000  # generous for a sidecar; a limit must exist (see _base)
_CONNECTION_MONITOR = "envoy.resource_monitors.global_downstream_max_connections"


def _grpc_cluster(name: str, address: Any) -> cluster_pb2.Cluster:
    """A static cluster that speaks HTTP/2 (gRPC), as the ADS and SDS clusters must."""
    grpc = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.STATIC)
    grpc.connect_timeout.CopyFrom(cluster.CONNECT_TIMEOUT)
    assignment = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    assignment.endpoints.add().lb_endpoints.add().endpoint.address.CopyFrom(address)
    grpc.load_assignment.CopyFrom(assignment)
    options = http_protocol_options_pb2.HttpProtocolOptions()
    options.explicit_http_config.http2_protocol_options.SetInParent()
    grpc.typed_extension_protocol_options[cluster.HTTP_PROTOCOL_OPTIONS].Pack(options)
    return grpc


def _base(node_id: str, cluster_name: str, admin: tuple[str, int]) -> bootstrap_pb2.Bootstrap:
    boot = bootstrap_pb2.Bootstrap()
    boot.node.id = node_id
    boot.node.cluster = cluster_name
    boot.admin.address.CopyFrom(core.socket_address(*admin))
    # Envoy 1.40 warns at start-up when no downstream connection limit is set, and the old
    # runtime key (overload.global_downstream_max_connections) is deprecated: use the
    # resource monitor that replaces it.
    monitor = boot.overload_manager.resource_monitors.add(name=_CONNECTION_MONITOR)
    monitor.typed_config.Pack(
        downstream_connections_pb2.DownstreamConnectionsConfig(
            max_active_downstream_connections=MAX_DOWNSTREAM_CONNECTIONS
        )
    )
    return boot


def _render(boot: bootstrap_pb2.Bootstrap) -> dict[str, Any]:
    return json_format.MessageToDict(boot, preserving_proto_field_name=True)


def sidecar_bootstrap(
    *,
    node_id: str,
    cluster: str,
    admin: tuple[str, int],
    xds: tuple[str, int],
    sds_socket: str,
    metadata: Mapping[str, str] = {},
) -> dict[str, Any]:
    """The bootstrap of a sidecar driven by the control plane over ADS."""
    boot = _base(node_id, cluster, admin)
    boot.node.metadata.update(dict(metadata))
    boot.static_resources.clusters.append(
        _grpc_cluster(core.XDS_CLUSTER, core.socket_address(*xds))
    )
    boot.static_resources.clusters.append(
        _grpc_cluster(core.SDS_CLUSTER, core.pipe_address(sds_socket))
    )
    ads = boot.dynamic_resources.ads_config
    ads.api_type = config_source_pb2.ApiConfigSource.GRPC
    ads.transport_api_version = config_source_pb2.V3
    ads.grpc_services.add().envoy_grpc.cluster_name = core.XDS_CLUSTER
    # xDS protocol: the node is sent once per stream; later requests omit it (less traffic).
    ads.set_node_on_first_message_only = True
    boot.dynamic_resources.lds_config.CopyFrom(core.ads_source())
    boot.dynamic_resources.cds_config.CopyFrom(core.ads_source())
    return _render(boot)


def static_bootstrap(
    snap: snapshot.Snapshot,
    *,
    admin: tuple[str, int],
    node_id: str,
    secrets_dir: Path | None,
    sds_socket: str = DEFAULT_SDS_SOCKET,
) -> dict[str, Any]:
    """All of `snap` as static resources: each RDS reference is replaced by the named route
    config inline. With `secrets_dir`, `default` and `ROOTCA` become static secrets read from
    cert.pem, key.pem and root.pem there; without it, SDS references stay and point at an
    `sds-grpc` cluster on `sds_socket`."""
    boot = _base(node_id, "meshward-static", admin)
    routes: dict[str, route_pb2.RouteConfiguration] = {}
    for name, message in snap.of_type(snapshot.ROUTE).items():
        assert isinstance(message, route_pb2.RouteConfiguration)
        routes[name] = message
    inline_secrets = secrets_dir is not None
    for name in sorted(snap.of_type(snapshot.LISTENER)):
        static = listener_pb2.Listener()
        static.CopyFrom(snap.of_type(snapshot.LISTENER)[name])
        _make_static(static, routes, inline_secrets)
        boot.static_resources.listeners.append(static)
    for name in sorted(snap.of_type(snapshot.CLUSTER)):
        static_cluster = cluster_pb2.Cluster()
        static_cluster.CopyFrom(snap.of_type(snapshot.CLUSTER)[name])
        _make_static(static_cluster, routes, inline_secrets)
        boot.static_resources.clusters.append(static_cluster)
    if secrets_dir is not None:
        boot.static_resources.secrets.append(
            _identity_secret_from_files(str(secrets_dir / "cert.pem"), str(secrets_dir / "key.pem"))
        )
        boot.static_resources.secrets.append(_root_secret_from_file(str(secrets_dir / "root.pem")))
    else:
        boot.static_resources.clusters.append(
            _grpc_cluster(core.SDS_CLUSTER, core.pipe_address(sds_socket))
        )
    return _render(boot)


def _identity_secret_from_files(chain_file: str, key_file: str) -> secret_pb2.Secret:
    """Static `default` secret read by Envoy from PEM files."""
    static = secret_pb2.Secret(name=tls.IDENTITY_SECRET)
    static.tls_certificate.certificate_chain.filename = chain_file
    static.tls_certificate.private_key.filename = key_file
    return static


def _root_secret_from_file(bundle_file: str) -> secret_pb2.Secret:
    """Static `ROOTCA` secret read by Envoy from a PEM trust bundle file."""
    static = secret_pb2.Secret(name=tls.ROOT_SECRET)
    static.validation_context.trusted_ca.filename = bundle_file
    return static


def _make_static(
    message: Message, routes: Mapping[str, route_pb2.RouteConfiguration], inline_secrets: bool
) -> None:
    """Rewrite `message` in place: RDS → inline route config; SDS → static secret name."""
    if isinstance(message, hcm_pb2.HttpConnectionManager) and message.HasField("rds"):
        # Setting route_config selects it in the oneof and drops `rds`.
        message.route_config.CopyFrom(routes[message.rds.route_config_name])
    elif isinstance(message, secret_pb2.SdsSecretConfig):
        if inline_secrets:  # a name without sds_config refers to a static secret
            message.ClearField("sds_config")
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.is_repeated and field.message_type.GetOptions().map_entry:
            items = [v for v in value.values() if isinstance(v, Message)]
        elif field.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            if isinstance(item, any_pb2.Any):
                _rewrite_any(item, routes, inline_secrets)
            else:
                _make_static(item, routes, inline_secrets)


def _rewrite_any(
    packed: any_pb2.Any, routes: Mapping[str, route_pb2.RouteConfiguration], inline_secrets: bool
) -> None:
    type_name = packed.TypeName()
    try:
        inner: Message = symbol_database.Default().GetSymbol(type_name)()
    except KeyError:
        return
    packed.Unpack(inner)
    _make_static(inner, routes, inline_secrets)
    packed.Pack(inner)
