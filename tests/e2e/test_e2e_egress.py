"""ServiceEntry egress in loopback mode under REGISTRY_ONLY: the registered outside host is
reached through the client's sidecar by Host (HTTP, as the app does with http_proxy) and
through the local TCP port its MESHWARD_SVC_* variable names; an unregistered host gets 502
from the sidecar's `block_all` route, as in Istio, and the sidecar logs it. Loopback mode
cannot stop an app that dials the host itself (the analyzer says so, MW0531);
tests/netns/test_netns_egress.py proves the enforced mode.

The mesh is tests/netns/egress/mesh.yaml with the outside addresses of this pool.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshward.runner.network import unused_pool
from meshward.verify import access_log, dial
from tests.e2e.conftest import start_mesh, stop_mesh
from tests.e2e.meshctl import Mesh, get_via_sidecar, write_yaml

pytestmark = pytest.mark.e2e

# This slice's loopback addresses are 127.190-199.x.x (one /16 per running checkout).
POOL_OCTETS = tuple(range(190, 200))
SOURCE = Path(__file__).parents[1] / "netns" / "egress" / "mesh.yaml"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    start = zlib.crc32(str(Path(__file__).resolve()).encode()) % len(POOL_OCTETS)
    pool = unused_pool(POOL_OCTETS, first=start)
    second = pool.split(".")[1]
    root = tmp_path_factory.mktemp("egress")
    # Loopback outside hosts are 127.<pool>.250.2.. in (namespace, name) order.
    text = SOURCE.read_text().replace("198.19.175.3", f"127.{second}.250.3")
    running = start_mesh(root, write_yaml(root, "mesh.yaml", text), pool)
    try:
        yield running
    finally:
        stop_mesh(running)


def test_registered_host_through_the_http_proxy(mesh: Mesh) -> None:
    client, weather = mesh.pod("client", "front"), mesh.pod("weather", "ext")
    status, body = get_via_sidecar(client, "api.weather.example", "/now")
    assert status == 200, body
    seen = json.loads(body)
    assert {k: seen[k] for k in ("server", "listener", "tls_version", "path", "host")} == {
        "server": "api.weather.example",
        "listener": "http",
        "tls_version": None,
        "path": "/now",
        "host": "api.weather.example",
    }
    assert weather.pod_ip.endswith(".250.3")


def test_registered_tcp_port_through_the_local_listener(mesh: Mesh) -> None:
    client = mesh.pod("client", "front")
    route = dial.direct((client.pod_ip, 9001))
    assert dial.tcp_exchange(route) == "open: b'PING\\r\\n'"


def test_unregistered_host_is_blocked_with_502(mesh: Mesh) -> None:
    # Istio's REGISTRY_ONLY answer to HTTP: the sidecar's `block_all` route answers 502
    # itself (a direct response), nothing is dialled.
    ledger = mesh.pod("ledger", "ext")
    probe, host = uuid.uuid4().hex, f"{ledger.pod_ip}:9000"
    client = mesh.pod("client", "front")
    status, body = get_via_sidecar(client, host, "/", {"X-Meshward-Probe": probe})
    assert (status, body) == (502, b"")
    log = mesh.state.sidecar_log("front", "client-0")
    entry = access_log.wait_for([log], lambda e: e.get("probe") == probe)
    assert entry is not None
    assert {k: entry[k] for k in KEYS} == {
        "direction": "outbound",
        "code": 502,
        "details": "direct_response",
        "flags": "-",
        "authority": host,
        "upstream_cluster": None,
        "upstream_host": None,
    }


KEYS = ("direction", "code", "details", "flags", "authority", "upstream_cluster", "upstream_host")


def test_verify_proves_the_unregistered_host_is_refused(mesh: Mesh) -> None:
    result = mesh.cli("verify", "--json", timeout=120)
    report = json.loads(result.stdout)
    policy = [
        (r["target"], r["observed"], r["passed"])
        for r in report["probes"]
        if r["check"] == "egress-policy"
    ]
    assert policy == [
        (
            "front/client-0 → http://unregistered.meshward.invalid/ through its sidecar "
            "(not registered)",
            "HTTP 502; sidecar log: 502 direct_response, upstream None",
            True,
        )
    ]
