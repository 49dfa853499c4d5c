"""A real mesh for the end-to-end tests: `meshward up --detach` once per module, `down` after.

Teardown asserts that every process the mesh recorded (runner, control plane, agent, each
Envoy) is gone: `down` must leave nothing behind.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshward.process import pid_alive
from meshward.state.layout import StateDir
from tests.e2e.meshctl import Mesh

MESH_DIR = Path(__file__).parent / "mesh"
# Each module gets its own loopback /16, so a leftover of one can never answer another.
_pools = (f"127.{n}.0.0/16" for n in itertools.count(100, 2))


def start_mesh(root: Path, source: Path = MESH_DIR, pool: str | None = None) -> Mesh:
    """`pool`: a /16 of the caller's own (default: the next of the shared series)."""
    mesh = Mesh(StateDir(root / "state"), pool or next(_pools))
    result = mesh.cli("up", str(source), "--detach", "--address-pool", mesh.pool, "--timeout", "90")
    if result.returncode != 0:
        log = (mesh.state.logs / "runner.log").read_text() if mesh.state.logs.exists() else ""
        stop_mesh(mesh)
        pytest.fail(f"mesh did not start:\n{result.stdout}\n{result.stderr}\n{log[-3000:]}")
    return mesh


def stop_mesh(mesh: Mesh) -> None:
    pids = mesh.pids()
    mesh.cli("down")
    left = [pid for pid in pids if pid_alive(pid)]
    assert not left, f"processes left after down: {left}"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    running = start_mesh(tmp_path_factory.mktemp("mesh"))
    try:
        yield running
    finally:
        stop_mesh(running)
