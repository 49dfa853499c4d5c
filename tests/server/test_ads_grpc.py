"""The ADS server in process: a Python gRPC client plays Envoy against `start_ads` on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import ads_cases
import grpc
import grpc.aio
import pytest
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.rpc import status_pb2

from meshward.server.ads import start_ads
from meshward.server.cache import SnapshotCache
from meshward.xds import snapshot as xs

LDS, CDS, RDS = xs.LISTENER, xs.CLUSTER, xs.ROUTE
TIMEOUT = 5.0

V1 = ads_cases.mesh_snapshot(http_port=1, tcp_port=2, backend_port=3, body="v1")
V2 = ads_cases.mesh_snapshot(http_port=1, tcp_port=2, backend_port=3, body="v2")
V3 = ads_cases.mesh_snapshot(http_port=1, tcp_port=2, backend_port=4, body="v3")


class FakeEnvoy:
    """One ADS stream: `send` requests, `receive` responses (with a timeout)."""

    def __init__(self, stub: ads_pb2_grpc.AggregatedDiscoveryServiceStub) -> None:
        self._outgoing: asyncio.Queue[discovery_pb2.DiscoveryRequest | None] = asyncio.Queue()
        self.call = stub.StreamAggregatedResources(self._requests())

    async def _requests(self) -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
        while (request := await self._outgoing.get()) is not None:
            yield request

    def send(
        self,
        type_url: str,
        *,
        nonce: str = "",
        version: str = "",
        node: str = "",
        names: tuple[str, ...] = (),
        error: str = "",
    ) -> None:
        request = discovery_pb2.DiscoveryRequest(
            type_url=type_url,
            response_nonce=nonce,
            version_info=version,
            resource_names=list(names),
        )
        if node:
            request.node.id = node
        if error:
            request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        self._outgoing.put_nowait(request)

    async def receive(self) -> discovery_pb2.DiscoveryResponse:
        response = await asyncio.wait_for(self.call.read(), TIMEOUT)
        assert isinstance(response, discovery_pb2.DiscoveryResponse)
        return response

    def close(self) -> None:
        self._outgoing.put_nowait(None)


Scenario = Callable[[SnapshotCache, ads_pb2_grpc.AggregatedDiscoveryServiceStub], Awaitable[None]]


def run(scenario: Scenario) -> None:
    async def main() -> None:
        cache = SnapshotCache(clock=lambda: 1000.0)
        server, port = await start_ads(cache, "127.0.0.1", 0)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await scenario(cache, ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel))
        finally:
            await server.stop(None)

    asyncio.run(main())


async def _until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not predicate():
            await asyncio.sleep(0.01)


def test_waits_for_a_snapshot_then_serves_acks_pushes_and_records_a_nack() -> None:
    async def scenario(
        cache: SnapshotCache, stub: ads_pb2_grpc.AggregatedDiscoveryServiceStub
    ) -> None:
        envoy = FakeEnvoy(stub)
        envoy.send(CDS, node="n1")
        await _until(lambda: cache.status("n1").connected)
        # No snapshot yet: nothing is sent (never an empty config).
        read = asyncio.ensure_future(envoy.receive())
        await asyncio.sleep(0.2)
        assert not read.done()
        assert cache.set_snapshot("n1", V1) is True
        cds = await read
        assert (cds.type_url, cds.version_info, cds.nonce) == (CDS, V1.version(CDS), "1")
        envoy.send(CDS, nonce=cds.nonce, version=cds.version_info)
        envoy.send(RDS, names=(ads_cases.ROUTE_NAME,))
        rds = await envoy.receive()
        assert (rds.type_url, rds.version_info, rds.nonce) == (RDS, V1.version(RDS), "2")
        envoy.send(RDS, names=(ads_cases.ROUTE_NAME,), nonce="2", version=rds.version_info)
        await _until(lambda: RDS in cache.status("n1").acked)
        # An equal rebuild pushes nothing; a route change pushes only RDS.
        assert cache.set_snapshot("n1", V1) is False
        assert cache.set_snapshots({"n1": V2, "n2": V1}) == frozenset({"n1", "n2"})
        push = await envoy.receive()
        assert (push.type_url, push.version_info, push.nonce) == (RDS, V2.version(RDS), "3")
        envoy.send(
            RDS,
            names=(ads_cases.ROUTE_NAME,),
            nonce="3",
            version=V1.version(RDS),
            error="bad route",
        )
        await _until(lambda: bool(cache.status("n1").nacks))
        status = cache.status("n1")
        assert status.as_json() == {
            "connected": True,
            "streams": 1,
            "in_sync": False,
            "acked": {"Cluster": V1.version(CDS), "RouteConfiguration": V1.version(RDS)},
            "served": {
                xs.MESSAGE_TYPES[t].DESCRIPTOR.name: v for t, v in sorted(V2.versions.items())
            },
            "nacks": {
                "RouteConfiguration": {
                    "type": "RouteConfiguration",
                    "rejected_version": V2.version(RDS),
                    "kept_version": V1.version(RDS),
                    "message": "bad route",
                    "time": 1000.0,
                }
            },
            "last_nack": status.as_json()["nacks"]["RouteConfiguration"],
        }
        assert status.last_nack is not None
        assert status.last_nack.diagnostic().code == "MW0401"
        # New routes and endpoints: only RDS goes out (EDS is not subscribed, CDS unchanged),
        # and it is the way out of the NACK.
        cache.set_snapshot("n1", V3)
        push = await envoy.receive()
        assert (push.type_url, push.version_info, push.nonce) == (RDS, V3.version(RDS), "4")
        envoy.close()
        await _until(lambda: not cache.status("n1").connected)

    run(scenario)


def test_delta_is_unimplemented() -> None:
    async def scenario(
        cache: SnapshotCache, stub: ads_pb2_grpc.AggregatedDiscoveryServiceStub
    ) -> None:
        call = stub.DeltaAggregatedResources(iter([discovery_pb2.DeltaDiscoveryRequest()]))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call.read()
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED

    run(scenario)


def test_first_request_without_a_node_is_refused() -> None:
    async def scenario(
        cache: SnapshotCache, stub: ads_pb2_grpc.AggregatedDiscoveryServiceStub
    ) -> None:
        envoy = FakeEnvoy(stub)
        envoy.send(LDS)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await envoy.receive()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert cache.nodes() == ()

    run(scenario)


def _server_certificate() -> tuple[bytes, bytes]:
    """A self-signed P-256 certificate for 127.0.0.1 (PEM cert, PEM key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "control-plane")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def test_tls_server_credentials() -> None:
    cert_pem, key_pem = _server_certificate()

    async def main() -> tuple[str, str]:
        cache = SnapshotCache()
        cache.set_snapshot("n1", V1)
        credentials = grpc.ssl_server_credentials([(key_pem, cert_pem)])
        server, port = await start_ads(cache, "127.0.0.1", 0, credentials=credentials)
        try:
            channel_credentials = grpc.ssl_channel_credentials(root_certificates=cert_pem)
            async with grpc.aio.secure_channel(f"127.0.0.1:{port}", channel_credentials) as channel:
                envoy = FakeEnvoy(ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel))
                envoy.send(LDS, node="n1")
                response = await envoy.receive()
                envoy.close()
                return (response.type_url, response.version_info)
        finally:
            await server.stop(None)

    assert asyncio.run(main()) == (LDS, V1.version(LDS))
