"""When is a mesh ready? Used by `up`, `apply` and the demo to wait, and to say what is not.

Ready means: the runner is running the latest generation, the control plane has built
snapshots from that generation and every sidecar proxy has ACKed its listeners and clusters,
and the agent reports every sidecar pod's Envoy ready with a certificate.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from meshward.state.layout import StateDir
from meshward.state.mesh import read_mesh
from meshward.state.records import read_json


def problems(state: StateDir) -> list[str]:
    """What stands between the mesh and ready, one line each (empty: ready)."""
    runner = read_json(state.runner) or {}
    if runner.get("phase") != "running":
        return [f"runner: {runner.get('phase', 'not started')}"]
    mesh = read_mesh(state)
    plane = read_json(state.control_plane) or {}
    agent = read_json(state.agent) or {}
    if mesh is None:
        return ["runner: no mesh record yet"]
    found = []
    if plane.get("refused"):
        found.append("control plane refused the config: " + "; ".join(plane["refused"]))
    if plane.get("mesh_generation") != mesh.generation:
        found.append(f"control plane: building generation {mesh.generation}")
    proxies = plane.get("proxies") or {}
    pods = agent.get("pods") or {}
    for pod in mesh.pods:
        if not pod.sidecar:
            continue
        name = f"{pod.namespace}/{pod.pod}"
        sidecar = pods.get(name) or {}
        if not sidecar.get("ready"):
            found.append(f"{name}: sidecar not ready {sidecar.get('last_error', '')}".rstrip())
            continue
        proxy = proxies.get(pod.node_id) or {}
        if not proxy.get("in_sync"):
            found.append(f"{name}: proxy has not ACKed the latest configuration")
    return found


def wait_ready(state: StateDir, timeout: float, alive: Callable[[], bool]) -> list[str]:
    """Poll until ready (→ []) or `timeout` passes or `alive()` turns false (→ problems)."""
    deadline = time.monotonic() + timeout
    found = ["not started"]
    while time.monotonic() < deadline:
        found = problems(state)
        if not found:
            return []
        if not alive():
            return ["the runner exited", *found]
        time.sleep(0.2)
    return found
