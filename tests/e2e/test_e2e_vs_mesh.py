"""VirtualService routing at sidecars (`gateways` omitted: Istio's default `mesh`), through
real sidecars in loopback mode: a client pod calls `svc` through its own sidecar, whose
routes come from the VirtualService — a verified JWT claim (`@request.auth.claims.group`)
routes to `svc-v2`, so does a plain header; a header splits traffic by weight; a path no
route matches gets 404. The caller's sidecar verifies the token with the keys of the
RequestAuthentication selecting `svc` and never rejects: a forged or foreign token just does
not match the claim route, and `svc`'s own sidecar answers 401 to it. Which backend answered
is read from `X-Forwarded-Client-Cert` `By=` (the identity of the receiving sidecar)."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshward.runner.network import unused_pool
from tests.e2e import vs_mesh
from tests.e2e.conftest import start_mesh, stop_mesh
from tests.e2e.meshctl import Mesh, get_via_sidecar

pytestmark = pytest.mark.e2e

# This slice's addresses are 127.180-188.x.x (127.189 is the netns test's); each run takes a
# /16 no other mesh is using.
POOL_OCTETS = tuple(range(180, 189))


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mesh, Path]]:
    root = tmp_path_factory.mktemp("vs-mesh")
    directory, key_dir = vs_mesh.source(root)
    start = zlib.crc32(str(Path(__file__).resolve()).encode()) % len(POOL_OCTETS)
    mesh = start_mesh(root, directory, pool=unused_pool(POOL_OCTETS, first=start))
    try:
        yield mesh, key_dir
    finally:
        stop_mesh(mesh)


def _get(mesh: Mesh, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """GET `svc` through the client's sidecar: the status and the answering backend."""
    client = mesh.pod("client", "shop")
    return vs_mesh.answer(*get_via_sidecar(client, "svc.shop:8000", path, headers))


def test_sidecar_routes_by_virtual_service(routed: tuple[Mesh, Path]) -> None:
    mesh, key_dir = routed

    def get(path: str, headers: dict[str, str]) -> tuple[int, str]:
        return _get(mesh, path, headers)

    vs_mesh.wait_routed(get)
    assert vs_mesh.answers(get, key_dir) == vs_mesh.EXPECTED


def test_weights_split_traffic(routed: tuple[Mesh, Path]) -> None:
    mesh, _ = routed
    seen = [_get(mesh, "/headers", {"x-split": "yes"}) for _ in range(40)]
    counts = {name: seen.count((200, name)) for name in ("svc", "svc-v2")}
    assert sum(counts.values()) == 40, seen
    # 50/50: each side at least 8 of 40 (binomial, p < 1e-4 of failing by chance).
    assert min(counts.values()) >= 8, counts
