"""Hand-built snapshots for the ADS tests: an HTTP listener on RDS, a TCP listener on an EDS
cluster, and a route configuration Envoy rejects. Built directly as protos, not by the
translator, so these tests depend on the server and xds.snapshot only."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message

from meshward.xds import snapshot as xs

HTTP_LISTENER, TCP_LISTENER, ROUTE_NAME, BACKEND = "http", "tcp", "r1", "backend"


def _any(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _address(port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=port)
    )


def _ads_source() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.ApiVersion.Value("V3"),
    )


def http_listener(port: int) -> listener_pb2.Listener:
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix="http",
        rds=hcm_pb2.Rds(config_source=_ads_source(), route_config_name=ROUTE_NAME),
        http_filters=[
            hcm_pb2.HttpFilter(
                name="envoy.filters.http.router", typed_config=_any(router_pb2.Router())
            )
        ],
    )
    return listener_pb2.Listener(
        name=HTTP_LISTENER,
        address=_address(port),
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[
                    listener_components_pb2.Filter(
                        name="envoy.filters.network.http_connection_manager",
                        typed_config=_any(manager),
                    )
                ]
            )
        ],
    )


def tcp_listener(port: int) -> listener_pb2.Listener:
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix="tcp", cluster=BACKEND)
    return listener_pb2.Listener(
        name=TCP_LISTENER,
        address=_address(port),
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[
                    listener_components_pb2.Filter(
                        name="envoy.filters.network.tcp_proxy", typed_config=_any(proxy)
                    )
                ]
            )
        ],
    )


def routes(body: str, *, rejected: bool = False) -> route_pb2.RouteConfiguration:
    """A route config answering every request with `body`; `rejected=True` adds a second
    wildcard virtual host, which Envoy refuses ("Only a single wildcard domain")."""
    config = route_pb2.RouteConfiguration(name=ROUTE_NAME)
    for index in range(2 if rejected else 1):
        host = config.virtual_hosts.add(name=f"all{index}", domains=["*"])
        route = host.routes.add()
        route.match.prefix = "/"
        route.direct_response.status = 200
        route.direct_response.body.inline_string = body
    return config


def backend_cluster(connect_timeout_s: int = 1) -> cluster_pb2.Cluster:
    return cluster_pb2.Cluster(
        name=BACKEND,
        type=cluster_pb2.Cluster.DiscoveryType.Value("EDS"),
        connect_timeout=duration_pb2.Duration(seconds=connect_timeout_s),
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(eds_config=_ads_source()),
    )


def backend_endpoints(port: int) -> endpoint_pb2.ClusterLoadAssignment:
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=BACKEND,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                lb_endpoints=[
                    endpoint_components_pb2.LbEndpoint(
                        endpoint=endpoint_components_pb2.Endpoint(address=_address(port))
                    )
                ]
            )
        ],
    )


def mesh_snapshot(
    *,
    http_port: int,
    tcp_port: int,
    backend_port: int,
    body: str,
    rejected: bool = False,
    connect_timeout_s: int = 1,
) -> xs.Snapshot:
    return xs.make_snapshot(
        listeners=[http_listener(http_port), tcp_listener(tcp_port)],
        clusters=[backend_cluster(connect_timeout_s)],
        endpoints=[backend_endpoints(backend_port)],
        routes=[routes(body, rejected=rejected)],
    )
