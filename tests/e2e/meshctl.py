"""Driving a real mesh from tests: the CLI as a subprocess, and requests as apps send them."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshward.samples.idp.keys import KeyStore
from meshward.state.layout import StateDir
from meshward.state.mesh import PodRecord, read_mesh
from meshward.state.records import read_json


@dataclass(frozen=True)
class Mesh:
    state: StateDir
    pool: str

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "meshward.cli.main", "--state-dir", str(self.state.root), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def status(self) -> dict[str, Any]:
        result = self.cli("status", "--json")
        assert result.returncode == 0, result.stderr
        value: dict[str, Any] = json.loads(result.stdout)
        return value

    def pod(self, workload: str, namespace: str) -> PodRecord:
        mesh = read_mesh(self.state)
        assert mesh is not None
        return mesh.find(workload, namespace)[0]

    def pids(self) -> list[int]:
        """Every PID the mesh recorded: runner, control plane, agent, Envoys."""
        pids = []
        for path in (self.state.runner, self.state.control_plane, self.state.agent):
            record = read_json(path) or {}
            if record.get("pid"):
                pids.append(int(record["pid"]))
        for pod in ((read_json(self.state.agent) or {}).get("pods") or {}).values():
            if pod.get("envoy_pid"):
                pids.append(int(pod["envoy_pid"]))
        return pids


def get_via_sidecar(
    client: PodRecord, url_host: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """GET through `client`'s sidecar outbound listener, as its app does with http_proxy."""
    connection = http.client.HTTPConnection(client.pod_ip, 15001, timeout=10)
    try:
        connection.request(
            "GET", f"http://{url_host}{path}", headers={"Host": url_host, **(headers or {})}
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def write_yaml(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def keyed_source(root: Path, template: str, issuer: str) -> tuple[Path, KeyStore]:
    """A mesh source dir from `template` with `{issuer}` and `{jwks}` (an inline key set of
    a new key store under `root/idp`) filled in, and that key store."""
    store = KeyStore(root / "idp")
    now = time.time()
    store.ensure(now)
    source = root / "mesh"
    source.mkdir()
    jwks = json.dumps(store.public_jwks(now, 0))
    (source / "mesh.yaml").write_text(template.format(issuer=issuer, jwks=jwks))
    return source, store


def answered_by(body: bytes) -> str:
    """The workload whose sidecar received an httpbin `/headers` request: the `By=` identity
    of the `X-Forwarded-Client-Cert` it added."""
    xfcc = json.loads(body)["headers"].get("X-Forwarded-Client-Cert", "")
    by = next((p[3:] for p in xfcc.split(";") if p.startswith("By=")), "")
    return str(by.rsplit("/", 1)[-1])
