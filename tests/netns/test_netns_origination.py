"""TLS origination to ServiceEntry hosts in netns mode, on the wire (issue 7 items 5, 6 at the
sidecar; Istio's "egress TLS origination" task): the app in a pod runs plain
`curl http://api.secure.example/...`, its sidecar originates the DestinationRule's TLS, and
the outside server (meshward.samples.outside) reports what it saw — TLS 1.3, the SNI (the
host, or the rule's `sni`), for MUTUAL the client certificate from the secret store. A rule
that trusts another CA or wants another SAN is refused in the sidecar: 503, and the server
answered nothing (Envoy's TLS counters name the check that failed). `meshward verify`'s
`tls-origination` probe covers the entry hosts.

One mesh for the module (pool 127.176 → pods 198.18.176.0/24, outside 198.19.176.0/24),
from the template origination/mesh.yaml and a PKI made here.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshward.samples.edge_pki import Ca
from meshward.state.layout import StateDir
from meshward.verify import access_log
from tests.e2e.meshctl import Mesh
from tests.netns.conftest import netns_mesh

pytestmark = pytest.mark.netns

TEMPLATE = Path(__file__).parent / "origination" / "mesh.yaml"
POOL = "127.176.0.0/16"
SERVER = "198.19.176.2"  # ext/secure-0, see origination/mesh.yaml
SERVER_NAME = "api.secure.example"
CLIENT_URI = "spiffe://partner.example/client/front"
CONNECT_FAILURE = (
    "upstream connect error or disconnect/reset before headers. reset reason: "
    "remote connection failure"
)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("netns-origination")
    pki = root / "pki"
    server_ca, client_ca, other_ca = Ca("servers", pki), Ca("clients", pki), Ca("other", pki)
    cert, key, _ = server_ca.issue("secure", dns=SERVER_NAME)
    client_cert, client_key, _ = client_ca.issue("client-1", uri=CLIENT_URI)
    config = root / "config"
    config.mkdir()
    (config / "mesh.yaml").write_text(
        TEMPLATE.read_text().format(
            server_ca=server_ca.cert_file,
            other_ca=other_ca.cert_file,
            client_ca=client_ca.cert_file,
            cert=cert,
            key=key,
        )
    )
    created = Mesh(StateDir(root / "state"), POOL).cli(
        "secret", "create", "tls", "secure-client", "--cert", str(client_cert),
        "--key", str(client_key), "--cacert", str(server_ca.cert_file),
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    yield from netns_mesh(root, config, POOL)


def _curl(mesh: Mesh, url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """The app's own request: plain HTTP from inside the client pod, captured by its sidecar."""
    return mesh.cli("exec", "client", "-n", "front", "--", "curl", "-s", "-m", "5", *argv, url)


def _seen(mesh: Mesh, url: str, *argv: str) -> dict[str, object]:
    result = _curl(mesh, url, *argv)
    assert result.returncode == 0, result.stderr
    view: dict[str, object] = json.loads(result.stdout)
    return view


def _view(
    mesh: Mesh, listener: str, sni: str, host: str, path: str, client_cert: object = None
) -> dict[str, object]:
    return {
        "server": SERVER_NAME,
        "listener": listener,
        "tls_version": "TLSv1.3",
        "sni": sni,
        "client_cert": client_cert,
        "method": "GET",
        "path": path,
        "host": host,
        "peer": mesh.pod("client", "front").pod_ip,  # no NAT: the pod's own address
    }


def test_simple_origination_the_server_sees_tls_and_the_host_as_sni(mesh: Mesh) -> None:
    probe = uuid.uuid4().hex
    seen = _seen(mesh, f"http://{SERVER_NAME}/seen", "-H", f"X-Meshward-Probe: {probe}")
    assert seen == _view(mesh, "https", SERVER_NAME, SERVER_NAME, "/seen")
    log = mesh.state.sidecar_log("front", "client-0")
    entry = access_log.wait_for([log], lambda e: e.get("probe") == probe)
    assert entry is not None
    assert (entry["code"], entry["upstream_cluster"], entry["upstream_host"]) == (
        200,
        f"outbound|80||{SERVER_NAME}",
        f"{SERVER}:8443",  # the entry's targetPort: HTTP for the app, TLS on the wire
    )


def test_mutual_origination_presents_the_stored_credential(mesh: Mesh) -> None:
    seen = _seen(mesh, f"http://{SERVER_NAME}:8080/seen")
    client_cert = {"subject": "CN=client-1", "sans": [f"URI:{CLIENT_URI}"]}
    assert seen == _view(mesh, "mtls", SERVER_NAME, f"{SERVER_NAME}:8080", "/seen", client_cert)


def test_resolution_none_originates_to_the_dialled_address_with_the_rules_sni(
    mesh: Mesh,
) -> None:
    seen = _seen(mesh, "http://direct.secure.example:8443/none")
    assert seen == _view(mesh, "https", SERVER_NAME, "direct.secure.example:8443", "/none")


def _stat(mesh: Mesh, cluster: str, name: str) -> int:
    client = mesh.pod("client", "front")
    with urllib.request.urlopen(f"http://{client.pod_ip}:15000/stats", timeout=5) as answer:
        lines = answer.read().decode().splitlines()
    key = f"cluster.{cluster}.{name}:"
    return next((int(line[len(key) :]) for line in lines if line.startswith(key)), 0)


# Envoy's per-cluster TLS counters (envoy.transport_sockets.tls statistics).
@pytest.mark.parametrize(
    ("host", "stat"),
    [
        ("wrong-ca.secure.example", "ssl.fail_verify_error"),
        ("wrong-san.secure.example", "ssl.fail_verify_san"),
    ],
)
def test_unverified_server_is_refused_in_the_sidecar(mesh: Mesh, host: str, stat: str) -> None:
    cluster = f"outbound|80||{host}"
    before = _stat(mesh, cluster, stat)
    result = _curl(mesh, f"http://{host}/never", "-w", " %{http_code}")
    # Envoy answers itself: the server's JSON never comes back.
    assert (result.returncode, result.stdout) == (0, f"{CONNECT_FAILURE} 503")
    assert _stat(mesh, cluster, stat) == before + 1  # refused by that check, not a dead port


def test_verify_probes_the_entry_hosts_origination(mesh: Mesh) -> None:
    result = mesh.cli("verify", "--json", timeout=120)
    report = json.loads(result.stdout)
    rule = "DestinationRule front/"
    target = "front/client-0 → {}:{} ({})".format
    checked = {
        (r["check"], r["target"]): r["passed"]
        for r in report["probes"]
        if r["check"] in ("tls-origination", "registered-egress")
    }
    # registered-egress leaves originating HTTP ports to tls-origination.
    assert checked == {
        ("tls-origination", target(SERVER_NAME, 80, rule + "secure")): True,
        ("tls-origination", target(SERVER_NAME, 8080, rule + "secure (port 8080)")): True,
        ("tls-origination", target("direct.secure.example", 8443, rule + "direct")): True,
        ("tls-origination", target("wrong-ca.secure.example", 80, rule + "wrong-ca")): False,
        ("tls-origination", target("wrong-san.secure.example", 80, rule + "wrong-san")): False,
    }
    mutual = next(r for r in report["probes"] if r["target"].endswith("(port 8080))"))
    assert mutual["observed"] == (
        f"server saw TLSv1.3 with SNI {SERVER_NAME}, client certificate "
        f"CN=client-1 ['URI:{CLIENT_URI}']"
    )
    failed = sorted(r["target"] for r in report["probes"] if not r["passed"])
    assert (result.returncode, failed) == (
        1,
        [
            target("wrong-ca.secure.example", 80, rule + "wrong-ca"),
            target("wrong-san.secure.example", 80, rule + "wrong-san"),
        ],
    )
