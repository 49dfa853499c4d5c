"""The control plane's Aggregated Discovery Service: a grpc.aio server around the snapshot cache.

Called by the control plane (`meshward.server.control_plane`) to start serving xDS, plaintext
on loopback or with TLS server credentials for agents and gateways on other hosts. Each
StreamAggregatedResources call is one `meshward.xds.serving.serve_stream` loop over the
sans-I/O `DiscoveryStream`; this module only wires it to gRPC. Incremental (delta) xDS is not
served: Envoy is answered UNIMPLEMENTED and must be configured for state of the world.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
from envoy.service.discovery.v3 import ads_pb2_grpc

from meshward.server import cache as server_cache
from meshward.xds import serving

# Pushes built and written at once (serving.PushLimiter): enough to keep both cores busy,
# few enough that the responses in flight after a reload of 1000 proxies stay tens of MB.
PUSH_PERMITS = 32
PUSH_PATIENCE_SECONDS = 2.0


class AggregatedDiscoveryServicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    """envoy.service.discovery.v3.AggregatedDiscoveryService over a `SnapshotCache`."""

    def __init__(self, cache: server_cache.SnapshotCache) -> None:
        self.cache = cache
        self.limiter = serving.PushLimiter(PUSH_PERMITS, PUSH_PATIENCE_SECONDS)

    async def StreamAggregatedResources(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        await serving.serve_stream(
            self.cache.store, context, observer=self.cache, limiter=self.limiter
        )

    async def DeltaAggregatedResources(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        await serving.refuse_delta(context)


async def serve_ads(
    cache: server_cache.SnapshotCache,
    host: str,
    port: int,
    *,
    credentials: grpc.ServerCredentials | None = None,
) -> grpc.aio.Server:
    """Start an ADS server on host:port; the caller stops it with `await server.stop(grace)`.

    With `credentials` the port is TLS (`grpc.ssl_server_credentials`); without, plaintext,
    which only belongs on loopback. `start_ads` also returns the bound port (for port 0).
    """
    server, _ = await start_ads(cache, host, port, credentials=credentials)
    return server


async def start_ads(
    cache: server_cache.SnapshotCache,
    host: str,
    port: int,
    *,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, int]:
    """`serve_ads`, returning the server and the port it bound (port 0 picks a free one)."""
    server = grpc.aio.server(
        # Envoy keeps one ADS stream open for its lifetime; keepalive pings from Envoy must
        # not be treated as abuse when no call is in flight.
        options=[
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ],
    )
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(
        AggregatedDiscoveryServicer(cache), server
    )
    address = f"{host}:{port}"
    if credentials is None:
        bound = server.add_insecure_port(address)
    else:
        bound = server.add_secure_port(address, credentials)
    await server.start()
    return server, bound
