"""Sidecar clusters: `inbound|<port>||` to the local app and `outbound|<port>||<fqdn>`.

Called by translate.py. Outbound clusters are STATIC (the model already knows every endpoint)
and carry the per-endpoint TLS decision the way Istio's auto-mTLS does: each endpoint's
metadata `envoy.transport_socket_match: {tlsMode: istio|disabled}` selects one of the
cluster's `transport_socket_matches` (first match wins, so the mTLS entry comes first and the
empty-match plaintext entry catches the rest).
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import duration_pb2, struct_pb2

from meshward.model import ir
from meshward.xds import core, tls

HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
TRANSPORT_SOCKET_MATCH = "envoy.transport_socket_match"
CONNECT_TIMEOUT = duration_pb2.Duration(seconds=1)

# Upstream HTTP version by (protocol, some endpoint is plaintext). HTTP to mTLS endpoints:
# whatever ALPN negotiates (h2 between sidecars). Envoy refuses auto_config on a cluster with
# any non-ALPN transport socket (raw_buffer included, even as a match), so a cluster with a
# plaintext endpoint (a legacy pod, DestinationRule DISABLE) keeps Envoy's default, HTTP/1.1,
# which every HTTP app and every sidecar speaks. HTTP2/GRPC: always h2, since the app speaks
# it with prior knowledge. TCP: no HTTP options at all.
_UPSTREAM_HTTP: MappingProxyType[tuple[ir.Protocol, bool], str] = MappingProxyType(
    {
        ("HTTP", False): "auto",
        ("HTTP", True): "http/1.1",
        ("HTTP2", False): "h2",
        ("HTTP2", True): "h2",
        ("GRPC", False): "h2",
        ("GRPC", True): "h2",
    }
)


def _http_options(
    protocol: ir.Protocol, *, plaintext: bool
) -> http_protocol_options_pb2.HttpProtocolOptions | None:
    mode = _UPSTREAM_HTTP.get((protocol, plaintext), "http/1.1")
    if mode == "http/1.1":
        return None
    options = http_protocol_options_pb2.HttpProtocolOptions()
    if mode == "auto":
        options.auto_config.http_protocol_options.SetInParent()
        options.auto_config.http2_protocol_options.SetInParent()
    else:
        options.explicit_http_config.http2_protocol_options.SetInParent()
    return options


def _static_cluster(
    name: str,
    endpoints: Iterable[endpoint_components_pb2.LbEndpoint],
    http: http_protocol_options_pb2.HttpProtocolOptions | None,
) -> cluster_pb2.Cluster:
    cluster = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.STATIC)
    cluster.connect_timeout.CopyFrom(CONNECT_TIMEOUT)
    assignment = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    lb_endpoints = list(endpoints)
    if lb_endpoints:
        assignment.endpoints.add().lb_endpoints.extend(lb_endpoints)
    cluster.load_assignment.CopyFrom(assignment)
    if http is not None:
        cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].Pack(http)
    return cluster


def _lb_endpoint(address: str, port: int) -> endpoint_components_pb2.LbEndpoint:
    endpoint = endpoint_components_pb2.LbEndpoint()
    endpoint.endpoint.address.CopyFrom(core.socket_address(address, port))
    return endpoint


def inbound_cluster(
    port: ir.InboundPort, pod: ir.Pod, bind: str | None = None
) -> cluster_pb2.Cluster:
    """`inbound|<port>||`: the local app at `app_ip:<port>`. HTTP/1.1 to an HTTP app (the
    default), h2 with prior knowledge to an HTTP2/GRPC app. `bind`: the source address of
    connections to the app (netns mode: 127.0.0.6, which the pod's capture rules let pass —
    Istio's inbound passthrough bind)."""
    # The app is reached in plaintext; only HTTP2/GRPC get options (h2 prior knowledge).
    http = _http_options(port.protocol, plaintext=True)
    endpoints = [_lb_endpoint(pod.address.app_ip, port.port)]
    cluster = _static_cluster(port.cluster_name, endpoints, http)
    if bind is not None:
        cluster.upstream_bind_config.source_address.CopyFrom(
            core.socket_address(bind, 0).socket_address
        )
    return cluster


def _tls_mode(mtls: bool) -> struct_pb2.Struct:
    match = struct_pb2.Struct()
    match.update({"tlsMode": "istio" if mtls else "disabled"})
    return match


# Envoy's cluster discovery type for each ServiceEntry resolution (Istio's mapping:
# STATIC → STATIC, DNS → STRICT_DNS, NONE → ORIGINAL_DST).
_EXTERNAL_TYPES: MappingProxyType[ir.ExternalResolution, cluster_pb2.Cluster.DiscoveryType] = (
    MappingProxyType(
        {
            "STATIC": cluster_pb2.Cluster.STATIC,
            "DNS": cluster_pb2.Cluster.STRICT_DNS,
            "NONE": cluster_pb2.Cluster.ORIGINAL_DST,
        }
    )
)


def external_cluster(service: ir.OutboundService) -> cluster_pb2.Cluster:
    """`outbound|<port>||<host>` of a ServiceEntry port: plaintext on the wire (no Istio mTLS
    to MESH_EXTERNAL; an app speaking TLS keeps its own TLS end to end), HTTP/1.1 upstream
    for HTTP ports unless the port says HTTP2/GRPC. A DestinationRule SIMPLE/MUTUAL for the
    host (`origination`) wraps every connection in the TLS it decided."""
    external = service.external
    assert external is not None
    if external.resolution == "NONE":
        cluster = passthrough_cluster(service.cluster_name)
    else:
        endpoints = [_lb_endpoint(address, port) for address, port in external.endpoints]
        http = _http_options(service.protocol, plaintext=True)
        cluster = _static_cluster(service.cluster_name, endpoints, http)
        cluster.type = _EXTERNAL_TYPES[external.resolution]
        if external.resolution == "DNS":
            # The pod network has IPv4 only; Envoy's default (AUTO) would try AAAA first.
            cluster.dns_lookup_family = cluster_pb2.Cluster.V4_ONLY
    if service.origination is not None:  # a DestinationRule SIMPLE/MUTUAL for the host
        context = tls.origination_context(service.origination)
        cluster.transport_socket.CopyFrom(tls.tls_socket(context))
    return cluster


def outbound_cluster(service: ir.OutboundService) -> cluster_pb2.Cluster:
    """`outbound|<port>||<fqdn>` with one endpoint per upstream pod port, each marked for
    mTLS or plaintext. No endpoints gives a valid cluster that answers 503.

    The cluster's default transport socket (used by an endpoint no match selects) is mTLS,
    and the plaintext match exists only when some endpoint is plaintext: a cluster the model
    made all-mTLS holds no raw_buffer socket at all, so it fails closed.
    A ServiceEntry port becomes `external_cluster`.
    """
    if service.external is not None:
        return external_cluster(service)
    if service.origination is not None:
        return _originating_cluster(service, service.origination)
    lb_endpoints = []
    for upstream in service.endpoints:
        endpoint = _lb_endpoint(upstream.address, upstream.port)
        endpoint.metadata.filter_metadata[TRANSPORT_SOCKET_MATCH].CopyFrom(_tls_mode(upstream.mtls))
        lb_endpoints.append(endpoint)
    plaintext = any(not upstream.mtls for upstream in service.endpoints)
    cluster = _static_cluster(
        service.cluster_name,
        lb_endpoints,
        _http_options(service.protocol, plaintext=plaintext),
    )
    context = tls.upstream_context(
        service.subject_alt_names,
        sni=service.mesh_sni,
        http=ir.is_http(service.protocol),
    )
    mtls = cluster.transport_socket_matches.add(name="tlsMode-istio")
    mtls.match.CopyFrom(_tls_mode(True))
    mtls.transport_socket.CopyFrom(tls.tls_socket(context))
    if plaintext:
        plain = cluster.transport_socket_matches.add(name="tlsMode-disabled")
        plain.transport_socket.CopyFrom(tls.raw_socket())
    else:
        cluster.transport_socket.CopyFrom(tls.tls_socket(context))
    return cluster


def _originating_cluster(
    service: ir.OutboundService, origination: ir.Origination
) -> cluster_pb2.Cluster:
    """DestinationRule SIMPLE/MUTUAL: every endpoint gets the rule's TLS (Istio: the mode
    replaces auto-mTLS), and there is no plaintext socket to fall back to. HTTP/1.1 to the
    server (the app's own protocol; no ALPN offered), h2 for HTTP2/GRPC."""
    endpoints = [_lb_endpoint(upstream.address, upstream.port) for upstream in service.endpoints]
    cluster = _static_cluster(
        service.cluster_name, endpoints, _http_options(service.protocol, plaintext=True)
    )
    cluster.transport_socket.CopyFrom(tls.tls_socket(tls.origination_context(origination)))
    return cluster


def passthrough_cluster(name: str) -> cluster_pb2.Cluster:
    """Istio's `PassthroughCluster`: connect to the original destination (ORIGINAL_DST with
    the cluster-provided load balancer), plaintext, as the app itself would have."""
    cluster = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.ORIGINAL_DST,
        lb_policy=cluster_pb2.Cluster.CLUSTER_PROVIDED,
    )
    cluster.connect_timeout.CopyFrom(CONNECT_TIMEOUT)
    return cluster


def blackhole_cluster(name: str) -> cluster_pb2.Cluster:
    """Istio's `BlackHoleCluster`: no endpoints, so every connection routed here is closed."""
    return _static_cluster(name, [], None)
