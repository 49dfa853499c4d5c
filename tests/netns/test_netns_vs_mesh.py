"""VirtualService routing at sidecars in netns mode: the client app dials `svc.shop:8000`
(its VIP), the capture hands the connection to the sidecar's virtualOutbound chain for that
VIP:port, and that chain routes by the VirtualService — the same table as the loopback e2e
test (tests/e2e/vs_mesh.py): claims verified by the caller, a header, 404 when no route
matches. Pool 127.189 → pods on 198.18.189.0/24."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meshward.netns.fabric import Fabric
from meshward.netns.naming import MeshNet
from meshward.state.layout import StateDir
from meshward.state.records import read_json
from tests.e2e import vs_mesh
from tests.e2e.conftest import stop_mesh
from tests.e2e.meshctl import Mesh

pytestmark = pytest.mark.netns

POOL = "127.189.0.0/16"


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mesh, Path]]:
    root = tmp_path_factory.mktemp("netns-vs")
    directory, key_dir = vs_mesh.source(root)
    running = Mesh(StateDir(root / "state"), POOL)
    result = running.cli(
        *("up", str(directory), "--detach", "--network", "netns"),
        *("--address-pool", POOL, "--timeout", "60"),
    )
    if result.returncode != 0:
        stop_mesh(running)
        pytest.fail(f"mesh did not start:\n{result.stdout}\n{result.stderr}")
    try:
        yield running, key_dir
    finally:
        stop_mesh(running)
        net = MeshNet.from_runner(read_json(running.state.runner) or {})
        assert net is None or Fabric(net).leftovers() == []


def test_captured_calls_route_by_virtual_service(routed: tuple[Mesh, Path]) -> None:
    mesh, key_dir = routed

    def get(path: str, headers: dict[str, str]) -> tuple[int, str]:
        """curl inside the client pod, by name (the VIP), as its app would."""
        flags = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
        result = mesh.cli(
            *("exec", "client", "-n", "shop", "--", "curl", "-s", "-m", "5"),
            *("-w", "\n%{http_code}", *flags, f"http://svc.shop:8000{path}"),
            timeout=30,
        )
        body, _, code = result.stdout.rpartition("\n")
        return vs_mesh.answer(int(code) if code.isdigit() else 0, body.encode())

    vs_mesh.wait_routed(get)
    assert vs_mesh.answers(get, key_dir) == vs_mesh.EXPECTED
