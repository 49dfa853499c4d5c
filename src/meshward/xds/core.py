"""Small builders for `envoy.config.core.v3` values every translator module shares.

Addresses, typed extension configs (always packed as `Any`: xDS v3 requires typed_config),
and the two config sources a sidecar uses: ADS for RDS, and the agent's SDS server reached
through the bootstrap cluster `sds-grpc` (Istio's layout). Called by listener, cluster, route,
tls and bootstrap.
"""

from __future__ import annotations

from envoy.config.core.v3 import address_pb2, config_source_pb2, grpc_service_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

XDS_CLUSTER = "xds-grpc"  # bootstrap static cluster of the control plane (ADS)
SDS_CLUSTER = "sds-grpc"  # bootstrap static cluster of the node agent's SDS Unix socket


def pack(message: Message) -> any_pb2.Any:
    """`message` packed as `Any` with its exact v3 type URL."""
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def socket_address(ip: str, port: int) -> address_pb2.Address:
    """A TCP socket address `ip:port`."""
    address = address_pb2.Address()
    address.socket_address.address = ip
    address.socket_address.port_value = port
    return address


def pipe_address(path: str) -> address_pb2.Address:
    """A Unix domain socket address."""
    address = address_pb2.Address()
    address.pipe.path = path
    return address


def ads_source() -> config_source_pb2.ConfigSource:
    """Resources delivered on the ADS stream (`ads: {}`), v3 resources."""
    source = config_source_pb2.ConfigSource()
    source.ads.SetInParent()
    source.resource_api_version = config_source_pb2.V3
    return source


def grpc_source(cluster: str) -> config_source_pb2.ConfigSource:
    """Resources fetched over a gRPC xDS stream to a bootstrap cluster, v3 transport and
    resources (how Istio points every SDS reference at its agent)."""
    source = config_source_pb2.ConfigSource()
    source.resource_api_version = config_source_pb2.V3
    api = source.api_config_source
    api.api_type = config_source_pb2.ApiConfigSource.GRPC
    api.transport_api_version = config_source_pb2.V3
    api.grpc_services.append(grpc_service_pb2.GrpcService())
    api.grpc_services[0].envoy_grpc.cluster_name = cluster
    return source
