"""Many streams at once (a control-plane restart makes every Envoy reconnect together): each
gets its initial config. And the SDS server in process: per-node secrets over the fallback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import ads_cases
import grpc
import grpc.aio
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc

from meshward.agent.sds import SdsServer
from meshward.server.ads import start_ads
from meshward.server.cache import SnapshotCache
from meshward.xds import snapshot as xs
from meshward.xds.secret import trust_bundle_secret

STREAMS = 400


async def _first_response(
    call: grpc.aio.StreamStreamCall[
        discovery_pb2.DiscoveryRequest, discovery_pb2.DiscoveryResponse
    ],
) -> discovery_pb2.DiscoveryResponse:
    response = await call.read()
    assert isinstance(response, discovery_pb2.DiscoveryResponse)
    call.cancel()
    return response


def test_every_stream_of_a_reconnect_storm_gets_its_initial_config() -> None:
    async def main() -> list[tuple[str, str]]:
        cache = SnapshotCache()
        snapshots = {
            f"n{i}": ads_cases.mesh_snapshot(
                http_port=1, tcp_port=2, backend_port=3, body=f"body{i % 7}"
            )
            for i in range(STREAMS)
        }
        cache.set_snapshots(snapshots)
        server, port = await start_ads(cache, "127.0.0.1", 0)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
                calls = []
                for i in range(STREAMS):
                    request = discovery_pb2.DiscoveryRequest(
                        type_url=xs.ROUTE, resource_names=[ads_cases.ROUTE_NAME]
                    )
                    request.node.id = f"n{i}"
                    calls.append(stub.StreamAggregatedResources(iter([request])))
                async with asyncio.timeout(20):
                    responses = await asyncio.gather(*(_first_response(c) for c in calls))
        finally:
            await server.stop(None)
        return [(r.type_url, r.version_info) for r in responses]

    got = asyncio.run(main())
    expected = [
        (xs.ROUTE, ads_cases.mesh_snapshot(
            http_port=1, tcp_port=2, backend_port=3, body=f"body{i % 7}"
        ).version(xs.ROUTE))
        for i in range(STREAMS)
    ]  # fmt: skip
    assert got == expected


def test_sds_serves_a_node_its_own_secrets_and_others_the_fallback(short_dir: Path) -> None:
    async def main() -> dict[str, list[bytes]]:
        sds = SdsServer(short_dir / "sds.sock")
        await sds.start()
        sds.set_secrets(None, {"ROOTCA": trust_bundle_secret("ignored", b"everyone")})
        sds.set_secrets("special", {"ROOTCA": trust_bundle_secret("ROOTCA", b"special")})
        seen: dict[str, list[bytes]] = {}
        try:
            async with grpc.aio.insecure_channel(f"unix:{short_dir / 'sds.sock'}") as channel:
                stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
                for node in ("special", "plain"):
                    request = discovery_pb2.DiscoveryRequest(
                        type_url=xs.SECRET, resource_names=["ROOTCA", "default"]
                    )
                    request.node.id = node
                    call = stub.StreamSecrets(iter([request]))
                    response = await asyncio.wait_for(call.read(), 5)
                    call.cancel()
                    secrets = []
                    for packed in response.resources:
                        secret = xs.MESSAGE_TYPES[xs.SECRET]()
                        packed.Unpack(secret)
                        assert secret.name == "ROOTCA"  # the mapping key names the secret
                        secrets.append(secret.validation_context.trusted_ca.inline_bytes)
                    seen[node] = secrets
        finally:
            await sds.stop()
        return seen

    assert asyncio.run(main()) == {"special": [b"special"], "plain": [b"everyone"]}
