"""Where everything lives inside a state directory (default `./.meshward`).

<state>/
  runner.json          pid of the runner, network mode, address pool, ports (runner)
  mesh.json            pods with addresses, identities, env, sidecar flag (runner)
  config/              the last good config set, one file per applied source (runner)
  ca/                  CA files (Istio plug-in names) and the credential key (control plane)
  control-plane.json   pid, ports, config generation, per-proxy ACK/NACK (control plane)
  agent.json           per-pod sidecar status: envoy pid, ready, certificate (agent)
  pods/<ns>.<pod>/     token, sds.sock, bootstrap.json (agent, runner)
  logs/                one log per process
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

# sockaddr_un.sun_path holds 108 bytes on Linux (104 on macOS); stay under both.
_MAX_SOCKET_PATH = 100


@dataclass(frozen=True, slots=True)
class StateDir:
    root: Path

    @property
    def runner(self) -> Path:
        return self.root / "runner.json"

    @property
    def mesh(self) -> Path:
        return self.root / "mesh.json"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def ca(self) -> Path:
        return self.root / "ca"

    @property
    def control_plane(self) -> Path:
        return self.root / "control-plane.json"

    @property
    def agent(self) -> Path:
        return self.root / "agent.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def pod_dir(self, namespace: str, pod: str) -> Path:
        return self.root / "pods" / f"{namespace}.{pod}"

    def pod_log(self, namespace: str, pod: str) -> Path:
        return self.logs / f"{namespace}.{pod}.log"

    def sidecar_log(self, namespace: str, pod: str) -> Path:
        return self.logs / f"{namespace}.{pod}.envoy.log"

    def sds_socket(self, namespace: str, pod: str) -> Path:
        """The pod's SDS socket; moved to a short per-mesh folder in /tmp when the state
        directory is so deep that the path would not fit in a Unix socket address."""
        path = self.pod_dir(namespace, pod) / "sds.sock"
        if len(str(path)) <= _MAX_SOCKET_PATH:
            return path
        tag = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"meshward-{tag}" / f"{namespace}.{pod}.sock"
