"""End to end: a real Envoy 1.40 configured only over ADS by `start_ads` and `SnapshotCache`.

Traffic proves each push applied: an HTTP listener whose routes come over RDS answers with the
pushed body, and a TCP listener proxies through an EDS cluster to a Python echo server. A
route config Envoy refuses is NACKed, recorded, and the old routes stay in force.
"""

from __future__ import annotations

import http.client
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from typing import Any

import ads_cases
import pytest
from server_harness import ADMIN, EnvoyProcess, LoopThread, free_port, grpc_cluster, wait_for

from meshward.server.ads import start_ads
from meshward.server.cache import SnapshotCache
from meshward.xds import snapshot as xs

pytestmark = pytest.mark.e2e

NODE = "sidecar~127.0.0.1~app.default~default.svc.cluster.local"


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def _bootstrap(ads_port: int) -> dict[str, Any]:
    address = {"socket_address": {"address": "127.0.0.1", "port_value": ads_port}}
    ads = {"ads": {}, "resource_api_version": "V3"}
    return {
        "node": {"id": NODE, "cluster": "app"},
        "admin": ADMIN,
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}],
            },
            "lds_config": ads,
            "cds_config": ads,
        },
        "static_resources": {"clusters": [grpc_cluster("xds-grpc", address)]},
    }


def _get(port: int) -> str | None:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        connection.request("GET", "/")
        body = connection.getresponse().read().decode()
        connection.close()
        return body
    except OSError:
        return None


def _echo_through(port: int) -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as client:
            client.sendall(b"ping")
            return client.recv(4).decode() or None
    except OSError:
        return None


def _stat(envoy: EnvoyProcess, name: str) -> int:
    for line in envoy.admin(f"/stats?filter=^{name}$").splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    raise AssertionError(f"no stat {name}")


def test_envoy_applies_pushes_acks_and_nacks(
    loop_thread: LoopThread,
    envoy: Callable[[dict[str, Any]], EnvoyProcess],
    echo_port: int,
) -> None:
    cache = SnapshotCache()
    server, ads_port = loop_thread.run(start_ads(cache, "127.0.0.1", 0))
    try:
        http_port, tcp_port = free_port(), free_port()

        def snap(body: str, **changes: Any) -> xs.Snapshot:
            return ads_cases.mesh_snapshot(
                http_port=http_port, tcp_port=tcp_port, backend_port=echo_port, body=body,
                **changes,
            )  # fmt: skip

        v1 = snap("v1")
        proxy = envoy(_bootstrap(ads_port))
        # Envoy connects before any snapshot exists and is kept waiting, not sent emptiness.
        wait_for(lambda: True if cache.status(NODE).connected else None, what="ADS stream")
        cache.set_snapshot(NODE, v1)
        assert wait_for(lambda: _get(http_port), what="HTTP listener") == "v1"
        assert wait_for(lambda: _echo_through(tcp_port), what="TCP via EDS") == "ping"
        wait_for(lambda: True if cache.status(NODE).in_sync else None, what="all ACKed")
        assert dict(cache.status(NODE).acked) == {
            t: v1.version(t) for t in (xs.LISTENER, xs.CLUSTER, xs.ROUTE, xs.ENDPOINT)
        }

        # A route-only change is pushed over RDS and applies to the next request.
        v2 = snap("v2")
        cache.set_snapshot(NODE, v2)
        assert wait_for(lambda: _get(http_port) if _get(http_port) == "v2" else None) == "v2"
        wait_for(lambda: True if cache.status(NODE).in_sync else None, what="v2 ACKed")

        # Changing the EDS cluster makes Envoy re-request EDS with the ACKed version and
        # nonce; answering it lets the new cluster warm at once instead of after 15 s.
        v3 = ads_cases.mesh_snapshot(
            http_port=http_port, tcp_port=tcp_port, backend_port=echo_port, body="v2",
            connect_timeout_s=2,
        )  # fmt: skip
        cache.set_snapshot(NODE, v3)
        wait_for(
            lambda: (
                True
                if _stat(proxy, "cluster_manager.cluster_modified") >= 1
                and _stat(proxy, "cluster_manager.warming_clusters") == 0
                else None
            ),
            timeout=5,
            what="updated cluster warmed",
        )
        assert _echo_through(tcp_port) == "ping"

        # A route config Envoy refuses: NACK recorded, old routes still answer.
        bad = ads_cases.mesh_snapshot(
            http_port=http_port, tcp_port=tcp_port, backend_port=echo_port, body="v3",
            connect_timeout_s=2, rejected=True,
        )  # fmt: skip
        cache.set_snapshot(NODE, bad)
        nack = wait_for(lambda: cache.status(NODE).nacks.get(xs.ROUTE), what="NACK")
        assert (nack.node_id, nack.rejected_version, nack.kept_version) == (
            NODE,
            bad.version(xs.ROUTE),
            v2.version(xs.ROUTE),
        )
        assert "wildcard" in nack.message and len(nack.message) <= 1024
        assert nack.diagnostic().code == "MW0401"
        assert _get(http_port) == "v2"
        assert cache.status(NODE).acked[xs.ROUTE] == v2.version(xs.ROUTE)
    finally:
        loop_thread.run(server.stop(None))
