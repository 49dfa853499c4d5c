"""ServiceEntry egress in netns mode under REGISTRY_ONLY, on the wire: a registered outside
host is reached by name through the caller's sidecar (its access log has the call, the
outside server saw the pod's address), HTTP and TCP; an unregistered outside host is refused,
by name-less HTTP and by a raw socket.

One mesh for the module (pool 127.175 → pods 198.18.175.0/24, outside 198.19.175.0/24).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshward.verify import access_log, dial
from tests.e2e.meshctl import Mesh
from tests.netns.conftest import netns_mesh

pytestmark = pytest.mark.netns

MESH_DIR = Path(__file__).parent / "egress"
POOL = "127.175.0.0/16"
WEATHER, LEDGER = "198.19.175.3", "198.19.175.2"  # see egress/mesh.yaml


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    yield from netns_mesh(tmp_path_factory.mktemp("netns-egress"), MESH_DIR, POOL)


def _curl(mesh: Mesh, *argv: str) -> subprocess.CompletedProcess[str]:
    return mesh.cli("exec", "client", "-n", "front", "--", "curl", "-s", "-m", "5", *argv)


def test_outside_hosts_are_where_the_entry_says(mesh: Mesh) -> None:
    assert (mesh.pod("weather", "ext").pod_ip, mesh.pod("ledger", "ext").pod_ip) == (
        WEATHER,
        LEDGER,
    )


def test_registered_host_is_reached_by_name_through_the_sidecar(mesh: Mesh) -> None:
    probe = uuid.uuid4().hex
    result = _curl(mesh, "-H", f"X-Meshward-Probe: {probe}", "http://api.weather.example/now")
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    client_ip = mesh.pod("client", "front").pod_ip
    assert {k: seen[k] for k in ("server", "listener", "tls_version", "path", "peer")} == {
        "server": "api.weather.example",
        "listener": "http",
        "tls_version": None,  # MESH_EXTERNAL: no mesh mTLS towards the outside host
        "path": "/now",
        "peer": client_ip,
    }
    log = mesh.state.sidecar_log("front", "client-0")
    entry = access_log.wait_for([log], lambda e: e.get("probe") == probe)
    assert entry is not None
    assert (entry["direction"], entry["upstream_host"], entry["upstream_cluster"]) == (
        "outbound",
        f"{WEATHER}:9000",
        "outbound|80||api.weather.example",
    )


def test_registered_tcp_port_is_reached_through_its_vip(mesh: Mesh) -> None:
    result = mesh.cli(
        "exec", "client", "-n", "front", "--", "getent", "hosts", "api.weather.example"
    )
    assert result.returncode == 0, result.stderr
    vip = result.stdout.split()[0]
    assert vip.startswith("198.18.255.")  # auto-allocated, captured, never routed
    env = dict(mesh.pod("client", "front").env)
    assert env["MESHWARD_SVC_FRONT_API_WEATHER_EXAMPLE_9001"] == f"{vip}:9001"
    route = dial.direct((vip, 9001), mesh.pod("client", "front").netns)
    assert dial.tcp_exchange(route) == "open: b'PING\\r\\n'"  # the outside echo


def test_unregistered_host_is_refused(mesh: Mesh) -> None:
    result = _curl(mesh, f"http://{LEDGER}:9000/")
    # BlackHoleCluster closes the connection: curl sees an empty reply (52) or, when its
    # request was already written, a reset (56). Never an answer.
    assert (result.returncode in (52, 56), result.stdout) == (True, ""), result.returncode
    route = dial.direct((LEDGER, 9000), mesh.pod("client", "front").netns)
    assert dial.tcp_exchange(route) in (
        "closed by the server",
        "refused: [Errno 104] Connection reset by peer",
    )


def test_verify_proves_registered_and_unregistered_egress(mesh: Mesh) -> None:
    result = mesh.cli("verify", "--json", timeout=120)
    report = json.loads(result.stdout)
    egress = sorted(
        (r["check"], r["target"], r["passed"])
        for r in report["probes"]
        if r["check"] in ("egress-policy", "registered-egress")
    )
    via = "ServiceEntry front/weather (MESH_EXTERNAL)"
    assert egress == [
        (
            "egress-policy",
            "front/client-0 → outside 198.19.175.250:18080 (not registered), raw TCP",
            True,
        ),
        ("registered-egress", f"front/client-0 → api.weather.example:80 ({via})", True),
        ("registered-egress", f"front/client-0 → api.weather.example:9001 ({via})", True),
    ]
    failed = [r for r in report["probes"] if not r["passed"]]
    assert (result.returncode, failed) == (0, [])
