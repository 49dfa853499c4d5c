"""SNI-matched chains for a TLS ServiceEntry without an address, in netns mode, on the wire:
`*.tls.example` (port 443, TLS, resolution NONE) has no VIP, so the client's sidecar matches
captured connections on port 443 by the ClientHello's server name (Istio's `server_names`
chains) and sends a match on to the address the app dialled; so does `pay.example` (NONE, no
address: Istio allocates no VIP for NONE). Under REGISTRY_ONLY a name under tls.example or
pay.example passes, and the outside server sees the app's own TLS from the pod's
address; another name, the bare `tls.example` (a wildcard needs a label before the suffix)
and plaintext go to BlackHoleCluster.

One mesh for the module (pool 127.177 → pods 198.18.177.0/24, outside 198.19.177.0/24).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshward.verify import access_log
from tests.e2e.meshctl import Mesh
from tests.netns.conftest import netns_mesh

pytestmark = pytest.mark.netns

MESH_DIR = Path(__file__).parent / "sni"
POOL = "127.177.0.0/16"
SERVER = "198.19.177.2"  # ext/tls-0, see sni/mesh.yaml


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    yield from netns_mesh(tmp_path_factory.mktemp("netns-sni"), MESH_DIR, POOL)


def _https(mesh: Mesh, name: str) -> subprocess.CompletedProcess[str]:
    """The app's own TLS from inside the client pod: `name` as SNI, to the server's address
    (no hosts entry: a wildcard has none). -k: the server's certificate is self-signed."""
    return mesh.cli(
        "exec", "client", "-n", "front", "--", "curl", "-sk", "-m", "5",
        "--resolve", f"{name}:443:{SERVER}", f"https://{name}/sni",
    )  # fmt: skip


def _to_server(mesh: Mesh) -> list[access_log.Entry]:
    """The client sidecar's TCP entries for connections to the server's :443, in order."""
    log = mesh.state.sidecar_log("front", "client-0")
    return [e for e in access_log.entries(log) if e.get("local") == f"{SERVER}:443"]


def _logged(mesh: Mesh, before: int) -> tuple[str, str | None]:
    """(upstream_cluster, upstream_host) of the entry after the first `before` (a TCP entry
    is written when the connection closes)."""
    deadline = time.monotonic() + 3
    while len(found := _to_server(mesh)) <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(found) == before + 1, found
    return found[before]["upstream_cluster"], found[before]["upstream_host"]


@pytest.mark.parametrize(
    ("name", "entry"), [("api.tls.example", "*.tls.example"), ("pay.example", "pay.example")]
)
def test_a_registered_name_reaches_the_dialled_address(mesh: Mesh, name: str, entry: str) -> None:
    before = len(_to_server(mesh))
    result = _https(mesh, name)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert {k: seen[k] for k in ("listener", "tls_version", "sni", "path", "peer")} == {
        "listener": "https",
        "tls_version": "TLSv1.3",  # the app's own TLS, end to end
        "sni": name,
        "path": "/sni",
        "peer": mesh.pod("client", "front").pod_ip,
    }
    assert _logged(mesh, before) == (f"outbound|443||{entry}", f"{SERVER}:443")


@pytest.mark.parametrize("name", ["other.example", "tls.example"])
def test_another_name_is_blocked(mesh: Mesh, name: str) -> None:
    before = len(_to_server(mesh))
    result = _https(mesh, name)
    assert (result.returncode, result.stdout) == (35, "")  # curl: the TLS handshake failed
    assert _logged(mesh, before) == ("BlackHoleCluster", None)


def test_plaintext_to_the_tls_port_is_blocked(mesh: Mesh) -> None:
    before = len(_to_server(mesh))
    result = mesh.cli(
        "exec", "client", "-n", "front", "--", "curl", "-s", "-m", "5", f"http://{SERVER}:443/"
    )
    # BlackHoleCluster closes the connection: an empty reply (52) or a reset (56).
    assert (result.returncode in (52, 56), result.stdout) == (True, ""), result.returncode
    assert _logged(mesh, before) == ("BlackHoleCluster", None)
