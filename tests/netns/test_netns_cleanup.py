"""Cleanup in netns mode: `down`, SIGTERM of a foreground `up`, and `down` after the runner
was SIGKILLed — afterwards nothing with the mesh's prefix exists (`ip netns list`,
`ip -o link`, /etc/netns) and no process the mesh started is alive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meshward.netns.fabric import HOSTS_ROOT, Fabric, link_names, netns_names
from meshward.netns.naming import MeshNet
from meshward.process import pid_alive
from meshward.runner.readiness import wait_ready
from meshward.state.layout import StateDir
from meshward.state.records import read_json
from tests.e2e.meshctl import Mesh

pytestmark = pytest.mark.netns

MESH_DIR = Path(__file__).parent / "mesh"


def _leftovers(net: MeshNet) -> list[str]:
    found = [n for n in netns_names() if net.owns_netns(n)]
    found += [link for link in link_names() if net.owns_link(link)]
    if HOSTS_ROOT.is_dir():
        found += [d.name for d in HOSTS_ROOT.iterdir() if net.owns_netns(d.name)]
    return found


def _app_pids(net: MeshNet) -> list[int]:
    pids = []
    for netns in netns_names():
        if net.owns_netns(netns):
            out = subprocess.run(
                ["ip", "netns", "pids", netns], capture_output=True, text=True, check=False
            )
            pids += [int(p) for p in out.stdout.split()]
    return pids


def _up(mesh: Mesh) -> subprocess.Popen[bytes]:
    """A foreground `up` (the runner is this child process), waited until ready."""
    child = subprocess.Popen(
        [
            *(sys.executable, "-m", "meshward.cli.main", "--state-dir", str(mesh.state.root)),
            *("up", str(MESH_DIR), "--network", "netns", "--address-pool", mesh.pool),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # This child is the runner: wait for its own record (not a killed run's) first.
    deadline = time.monotonic() + 30
    while (read_json(mesh.state.runner) or {}).get("pid") != child.pid:
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    problems = wait_ready(mesh.state, 60, alive=lambda: child.poll() is None)
    assert problems == [], problems
    return child


def _clean(mesh: Mesh, child: subprocess.Popen[bytes], net: MeshNet) -> None:
    """Whatever happened in the test: no runner, no process, no network of it left."""
    if child.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    mesh.cli("down")
    Fabric(net).destroy()


@pytest.mark.parametrize(
    ("pool", "stop"),
    [("127.174.0.0/16", "sigkill-then-down"), ("127.176.0.0/16", "sigterm")],
)
def test_nothing_of_the_mesh_remains(tmp_path: Path, pool: str, stop: str) -> None:
    mesh = Mesh(StateDir(tmp_path / "state"), pool)
    child = _up(mesh)
    net = MeshNet.from_runner(read_json(mesh.state.runner) or {})
    assert net is not None
    pids = mesh.pids()
    apps = _app_pids(net)
    assert len(_leftovers(net)) > 0 and len(apps) >= 4
    try:
        if stop == "sigkill-then-down":
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            time.sleep(0.5)
            assert _leftovers(net), "a killed runner cannot have cleaned up"
            result = mesh.cli("down")
            assert result.returncode == 0, result.stderr
        else:
            os.kill(child.pid, signal.SIGTERM)
            child.wait(timeout=60)
        # Observed before the test's own safety net below runs.
        left, alive = _leftovers(net), [p for p in (*pids, *apps) if pid_alive(p)]
    finally:
        _clean(mesh, child, net)
    assert (left, alive) == ([], [])


def test_next_up_removes_a_killed_runs_leftovers(tmp_path: Path) -> None:
    mesh = Mesh(StateDir(tmp_path / "state"), "127.178.0.0/16")
    child = _up(mesh)
    net = MeshNet.from_runner(read_json(mesh.state.runner) or {})
    assert net is not None
    try:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        before = sorted(_leftovers(net))
        child = _up(mesh)  # same state dir, same prefix: it clears and rebuilds
        assert sorted(_leftovers(net)) == before
        os.kill(child.pid, signal.SIGTERM)
        child.wait(timeout=60)
        left = _leftovers(net)
    finally:
        _clean(mesh, child, net)
    assert left == []
