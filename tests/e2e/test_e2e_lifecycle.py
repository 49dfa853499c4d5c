"""The runner's lifecycle with real processes: foreground Ctrl-C, a killed runner, one mesh
per state directory, and the demo as `make demo --check` runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meshward.process import pid_alive
from meshward.runner import readiness
from meshward.state.layout import StateDir
from tests.e2e.conftest import MESH_DIR, start_mesh, stop_mesh
from tests.e2e.meshctl import Mesh

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def wait_gone(pids: list[int], timeout: float = 20) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if pid_alive(p)]
        if not left:
            return []
        time.sleep(0.2)
    return [p for p in pids if pid_alive(p)]


def test_foreground_up_then_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    mesh = Mesh(StateDir(tmp_path / "state"), "127.180.0.0/16")
    up = subprocess.Popen(
        [sys.executable, "-m", "meshward.cli.main", "--state-dir", str(mesh.state.root)]
        + ["up", str(MESH_DIR), "--address-pool", mesh.pool],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # The foreground runner prints "mesh running" once it has seen every sidecar ready.
        assert up.stdout is not None
        seen = []
        for line in up.stdout:
            seen.append(line)
            if "mesh running" in line:
                break
        assert any("mesh running" in line for line in seen), "".join(seen)
        assert readiness.problems(mesh.state) == []
        pids = mesh.pids()
        assert len(pids) == 3 + 3  # runner, control plane, agent, three sidecar Envoys
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=60)
        assert up.returncode == 0, "".join(seen) + output
        assert wait_gone(pids) == []
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
            stop_mesh(mesh)


def test_a_killed_runner_takes_its_processes_with_it(tmp_path: Path) -> None:
    mesh = start_mesh(tmp_path)
    pids = mesh.pids()
    runner_pid = pids[0]
    try:
        os.kill(runner_pid, signal.SIGKILL)
        assert wait_gone(pids) == [], "children outlived a SIGKILLed runner"
    finally:
        stop_mesh(mesh)
    # The state directory is reusable at once: a new `up` is not refused as "running".
    again = start_mesh(tmp_path)
    stop_mesh(again)


def test_second_up_on_a_running_state_dir_is_refused(tmp_path: Path) -> None:
    mesh = start_mesh(tmp_path)
    try:
        result = mesh.cli("up", str(MESH_DIR), "--detach", "--address-pool", "127.190.0.0/16")
        assert result.returncode == 1
        assert "already running" in result.stderr
    finally:
        stop_mesh(mesh)


def test_demo_check_verifies_the_seed_system(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "meshward.cli.main", "--state-dir", str(tmp_path / "state")]
        + ["demo", "--check", "--address-pool", "127.196.0.0/16"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    out = result.stdout
    assert "probes: all expectations hold" in out
    assert '"location_saw_caller": "By=spiffe://cluster.local/ns/geo/sa/location-service' in out
    assert "URI=spiffe://cluster.local/ns/core/sa/user-service" in out
    # egress: the allowed workload's call leaves with mTLS the gateway originates; another
    # workload gets 403 from the gateway; passthrough TLS is verified by the app end to end
    netns = "in netns network mode" in out  # there the API also names the gateway's address
    via = " from the egress gateway's address" if netns else ""
    assert (
        f"HTTP 200; the maps API saw TLSv1.3{via}, SNI api.maps.example, client certificate "
        "['URI:spiffe://maps-customers.example/simple-system']" in out
    )
    assert "HTTP 403: RBAC: access denied" in out
    assert "certificate CN=payments.example verified by the app" in out
    # enforce: one analyzer finding and one unsafe change refused, each with its fix
    assert "MW0501 Workload geo/location-service" in out
    assert "core-permissive.yaml:2 spec.mtls.mode: error MW0601" in out
    assert "refused by AdmissionPolicy strict-mtls" in out
    assert "stopped; nothing left running" in out
