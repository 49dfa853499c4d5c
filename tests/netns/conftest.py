"""netns tests: real network namespaces, veths, bridges and iptables — root on Linux only.

Tests marked `netns` skip with the reason when the machine cannot run the mode (CI runs as
root, so there they run). Each module gets its own address pool (its own 198.18.N.0/24 and
198.19.N.0/24) from the e2e loopback range this suite owns, 127.170-179, so it never meets
another module's or another mesh's pods.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from meshward.netns.fabric import Fabric
from meshward.netns.naming import MeshNet
from meshward.state.layout import StateDir
from meshward.state.records import read_json
from tests.e2e.conftest import stop_mesh
from tests.e2e.meshctl import Mesh


def netns_unavailable() -> str:
    """Why the netns mode cannot run here ("" when it can)."""
    if not sys.platform.startswith("linux"):
        return "netns mode needs Linux"
    if os.geteuid() != 0:
        return "netns mode needs root (network namespaces, iptables)"
    missing = [t for t in ("ip", "iptables-restore", "setpriv", "getent") if not shutil.which(t)]
    return f"netns mode needs {', '.join(missing)}" if missing else ""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = netns_unavailable()
    if not reason:
        return
    for item in items:
        if item.get_closest_marker("netns") is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


def netns_mesh(
    root: Path, source: Path, pool: str, *, before: Callable[[Mesh], None] | None = None
) -> Iterator[Mesh]:
    """`up --network netns` of `source` in `root`; yields the mesh, then brings it down and
    checks that nothing with its prefix is left (a module fixture's body). `before` runs
    first, against the state directory (e.g. `secret create`)."""
    running = Mesh(StateDir(root / "state"), pool)
    if before is not None:
        before(running)
    result = running.cli(
        *("up", str(source), "--detach", "--network", "netns"),
        *("--address-pool", pool, "--timeout", "60"),
    )
    if result.returncode != 0:
        logs = running.state.logs / "runner.log"
        tail = logs.read_text()[-3000:] if logs.exists() else ""
        stop_mesh(running)
        pytest.fail(f"mesh did not start:\n{result.stdout}\n{result.stderr}\n{tail}")
    try:
        yield running
    finally:
        stop_mesh(running)
        net = MeshNet.from_runner(read_json(running.state.runner) or {})
        assert net is None or Fabric(net).leftovers() == []
