"""TLS origination by DestinationRule through real sidecars (issue 7 items 5, 6, 9): the app
speaks HTTP to its sidecar, the traffic leaves as HTTPS to `partner`, a legacy workload (no
sidecar) running the outside test server, which reports the TLS version, SNI and client
certificate it saw. SIMPLE with a pinned CA, SNI and SANs; a wrong CA and a SAN mismatch are
refused (503, the server answers nothing); MUTUAL with the client key pair from the secret
store (credentialName, over SDS), replaced without restarting Envoy; an unknown credentialName
is refused at apply and the running config stays."""

from __future__ import annotations

import hashlib
import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshward.config import load
from meshward.model import build
from meshward.runner.network import unused_pool
from meshward.samples.edge_pki import Ca
from meshward.state.layout import StateDir
from meshward.state.mesh import read_mesh
from meshward.verify.origination_probes import origination_probes
from tests.e2e.conftest import stop_mesh
from tests.e2e.meshctl import Mesh, get_via_sidecar, write_yaml

pytestmark = pytest.mark.e2e

# This slice's /16s are 127.200-209.
POOLS = tuple(range(200, 210))
SERVER_NAME = "api.partner.example"
CLIENT_URI = "spiffe://partner.example/client/shop"
PARTNER = "partner.shop.svc.cluster.local"

MESH = """\
apiVersion: meshward.io/v1alpha1
kind: MeshConfig
metadata: {{name: mesh}}
spec: {{trustDomain: e2e.test, rootNamespace: meshward-system}}
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {{name: client, namespace: shop, labels: {{app: client}}}}
spec:
  serviceAccount: client
  ports: [{{name: http, port: 8000}}]
  command: ["python", "-m", "meshward.samples.httpbin"]
  args: ["--host", "$(MESHWARD_APP_HOST)", "--port", "8000"]
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {{name: partner, namespace: shop, labels: {{app: partner}}}}
spec:
  serviceAccount: partner
  sidecar: false
  ports: [{{name: https, port: 8443}}, {{name: mtls, port: 9443}}]
  command: ["python", "-m", "meshward.samples.outside"]
  args: ["--host", "$(MESHWARD_APP_HOST)", "--https-port", "8443", "--mtls-port", "9443",
         "--client-ca", "{client_ca}", "--cert", "{cert}", "--key", "{key}",
         "--server-name", "{server_name}"]
---
{services}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: partner, namespace: shop}}
spec:
  host: partner
  trafficPolicy:
    tls: {{mode: SIMPLE, caCertificates: "{server_ca}", sni: {server_name},
           subjectAltNames: [{server_name}]}}
    portLevelSettings:
    - port: {{number: 9443}}
      tls: {{mode: MUTUAL, credentialName: partner-client, sni: {server_name}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: wrong-ca, namespace: shop}}
spec:
  host: partner-wrong-ca
  trafficPolicy: {{tls: {{mode: SIMPLE, caCertificates: "{other_ca}", sni: {server_name}}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: wrong-san, namespace: shop}}
spec:
  host: partner-wrong-san
  trafficPolicy:
    tls: {{mode: SIMPLE, caCertificates: "{server_ca}", subjectAltNames: [other.example]}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: default-sni, namespace: shop}}
spec:
  host: partner-default-sni
  trafficPolicy: {{tls: {{mode: SIMPLE, caCertificates: "{server_ca}"}}}}
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: shop}}
spec:
  selector: {{app: partner}}
  ports: [{{name: http-tls, port: 8443}}{mtls}]
"""
SERVICES = ("partner", "partner-wrong-ca", "partner-wrong-san", "partner-default-sni")
# TCP origination: the app's bytes (here an HTTP request) leave in TLS, each connection its
# own handshake, so a replaced credential shows at once.
TCP_SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: partner-tcp, namespace: shop}
spec:
  selector: {app: partner}
  ports: [{name: tcp-mtls, port: 9443}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: partner-tcp, namespace: shop}
spec:
  host: partner-tcp
  trafficPolicy: {tls: {mode: MUTUAL, credentialName: partner-client, sni: tcp.partner.example}}
"""


@dataclass
class World:
    mesh: Mesh
    client_ca: Ca
    root: Path


def _free_pool() -> str:
    start = int(hashlib.sha256(str(Path(__file__).resolve()).encode()).hexdigest(), 16)
    return unused_pool(POOLS, first=start % len(POOLS))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("origination")
    pki = root / "pki"
    server_ca, client_ca, other_ca = Ca("servers", pki), Ca("clients", pki), Ca("other", pki)
    cert, key, _ = server_ca.issue("partner", dns=SERVER_NAME)
    # The server sees this certificate from the client's sidecar (MUTUAL by credentialName).
    client_cert, client_key, _ = client_ca.issue("client-1", uri=CLIENT_URI)
    config = root / "config"
    config.mkdir()
    write_yaml(
        config,
        "mesh.yaml",
        MESH.format(
            client_ca=client_ca.cert_file,
            cert=cert,
            key=key,
            server_name=SERVER_NAME,
            server_ca=server_ca.cert_file,
            other_ca=other_ca.cert_file,
            services="---\n".join(
                SERVICE.format(
                    name=name, mtls=", {name: http-mtls, port: 9443}" if name == "partner" else ""
                )
                for name in SERVICES
            )
            + "---\n"
            + TCP_SERVICE,
        ),
    )
    mesh = Mesh(StateDir(root / "state"), _free_pool())
    created = mesh.cli(
        "secret", "create", "tls", "partner-client", "--cert", str(client_cert),
        "--key", str(client_key), "--cacert", str(server_ca.cert_file),
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    up = mesh.cli(
        "up", str(config), "--detach", "--address-pool", mesh.pool, "--timeout", "120", timeout=180
    )
    if up.returncode != 0:
        stop_mesh(mesh)
        pytest.fail(f"mesh did not start:\n{up.stdout}\n{up.stderr}")
    try:
        yield World(mesh, client_ca, root)
    finally:
        stop_mesh(mesh)


def _get(world: World, host: str, port: int) -> tuple[int, bytes]:
    client = world.mesh.pod("client", "shop")
    return get_via_sidecar(client, f"{host}:{port}", "/seen")


def _seen(world: World, host: str, port: int) -> dict[str, object]:
    status, body = _get(world, host, port)
    assert status == 200, body
    view: dict[str, object] = json.loads(body)
    return view


def test_simple_origination_the_server_sees_tls_and_the_rules_sni(world: World) -> None:
    view = _seen(world, PARTNER, 8443)
    assert {k: view[k] for k in ("listener", "tls_version", "sni", "client_cert", "path")} == {
        "listener": "https",
        "tls_version": "TLSv1.3",
        "sni": SERVER_NAME,
        "client_cert": None,
        "path": "/seen",
    }


def test_without_sni_the_host_is_sent(world: World) -> None:
    view = _seen(world, "partner-default-sni.shop.svc.cluster.local", 8443)
    assert (view["listener"], view["sni"]) == (
        "https",
        "partner-default-sni.shop.svc.cluster.local",
    )


@pytest.mark.parametrize("host", ["partner-wrong-ca", "partner-wrong-san"])
def test_unverified_server_is_refused(world: World, host: str) -> None:
    # The handshake fails in the sidecar: Envoy answers 503 itself, the server never gets
    # the request (its JSON would name the listener).
    stat = STATS[host]
    before = _stat(world, host, stat)
    status, body = _get(world, f"{host}.shop.svc.cluster.local", 8443)
    assert (status, body) == (503, CONNECT_FAILURE)
    assert _stat(world, host, stat) > before  # refused by the certificate check, not a dead port


CONNECT_FAILURE = (
    b"upstream connect error or disconnect/reset before headers. reset reason: "
    b"remote connection failure"
)
# Envoy's per-cluster TLS counters (envoy.transport_sockets.tls statistics).
STATS = {"partner-wrong-ca": "ssl.fail_verify_error", "partner-wrong-san": "ssl.fail_verify_san"}


def _admin(world: World, path: str) -> bytes:
    client = world.mesh.pod("client", "shop")
    with urllib.request.urlopen(f"http://{client.pod_ip}:15000{path}", timeout=5) as answer:
        body: bytes = answer.read()
        return body


def _stat(world: World, host: str, name: str) -> int:
    key = f"cluster.outbound|8443||{host}.shop.svc.cluster.local.{name}"
    for line in _admin(world, "/stats").decode().splitlines():
        if line.startswith(key + ":"):
            return int(line.split(":", 1)[1])
    return 0


def _client_subject(world: World) -> object:
    view = _seen(world, PARTNER, 9443)
    assert (view["listener"], view["sni"]) == ("mtls", SERVER_NAME)
    client_cert = view["client_cert"]
    assert isinstance(client_cert, dict)
    return client_cert["subject"]


def _tcp_view(world: World) -> dict[str, object]:
    """An HTTP request as raw bytes through the client's local TCP listener for partner-tcp."""
    mesh = read_mesh(world.mesh.state)
    assert mesh is not None
    model = build(load([world.mesh.state.config]), mesh.addresses(), mesh.model_network())[0]
    (proxy,) = [p for p in model.proxies if p.pod.key.workload == "client"]
    (service,) = [o for o in proxy.outbound if o.name == "partner-tcp"]
    assert service.tcp_bind is not None
    with socket.create_connection(service.tcp_bind, timeout=10) as sock:
        sock.sendall(b"GET /tcp HTTP/1.1\r\nHost: partner\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer
    view: dict[str, object] = json.loads(body)
    return view


def _envoy_pid(world: World) -> int:
    agent = json.loads((world.mesh.state.agent).read_text())
    return int(agent["pods"]["shop/client-0"]["envoy_pid"])


def _served_serials(world: World) -> set[int]:
    """Serial numbers of every certificate the client's Envoy holds (admin /certs, hex)."""
    certs = json.loads(_admin(world, "/certs"))["certificates"]
    return {
        int(chain["serial_number"], 16) for entry in certs for chain in entry.get("cert_chain", ())
    }


def test_mutual_origination_presents_the_credential_and_follows_its_replacement(
    world: World,
) -> None:
    assert _client_subject(world) == "CN=client-1"
    tcp = _tcp_view(world)
    assert (tcp["listener"], tcp["sni"], tcp["path"]) == ("mtls", "tcp.partner.example", "/tcp")
    assert tcp["client_cert"] == {"subject": "CN=client-1", "sans": [f"URI:{CLIENT_URI}"]}
    pid_before = _envoy_pid(world)
    cert, key, serial = world.client_ca.issue("client-2", uri=CLIENT_URI)
    server_ca = world.root / "pki" / "servers-ca.crt"
    replaced = world.mesh.cli(
        "secret", "create", "tls", "partner-client", "--cert", str(cert), "--key", str(key),
        "--cacert", str(server_ca),
    )  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    # The new key pair reaches the running Envoy over SDS. A pooled upstream connection keeps
    # the handshake it made (as in Istio); new handshakes present client-2.
    deadline = time.monotonic() + 30
    while serial not in _served_serials(world) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert (serial in _served_serials(world), _envoy_pid(world)) == (True, pid_before)
    # A new connection is a new handshake: the server sees client-2.
    tcp_after = _tcp_view(world)["client_cert"]
    assert tcp_after == {"subject": "CN=client-2", "sans": [f"URI:{CLIENT_URI}"]}


def test_unknown_credential_is_refused_at_apply(world: World) -> None:
    change = world.root / "change"
    change.mkdir(exist_ok=True)
    path = write_yaml(
        change,
        "dr.yaml",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        "metadata: {name: partner, namespace: shop}\nspec:\n  host: partner\n"
        "  trafficPolicy: {tls: {mode: MUTUAL, credentialName: nobody}}\n",
    )
    result = world.mesh.cli("apply", "-f", str(path))
    assert result.returncode == 1
    assert "MW0470" in result.stdout + result.stderr
    assert "MW0402 refused" in result.stderr
    assert _client_subject(world).startswith("CN=client-")  # the last good config stays


def test_verify_probes_every_originating_rule(world: World) -> None:
    mesh = read_mesh(world.mesh.state)
    assert mesh is not None
    config = load([world.mesh.state.config])
    model = build(config, mesh.addresses(), mesh.model_network())[0]
    results = origination_probes(world.mesh.state, model)
    rule = "DestinationRule shop/"
    target = "shop/client-0 → {}.shop.svc.cluster.local:{} ({})".format
    by_target = {r.target: r for r in results}
    assert {t: r.passed for t, r in by_target.items()} == {
        target("partner", 8443, rule + "partner"): True,
        target("partner", 9443, rule + "partner (port 9443)"): True,
        target("partner-default-sni", 8443, rule + "default-sni"): True,
        target("partner-wrong-ca", 8443, rule + "wrong-ca"): False,
        target("partner-wrong-san", 8443, rule + "wrong-san"): False,
    }
    mutual = by_target[target("partner", 9443, rule + "partner (port 9443)")]
    assert mutual.observed.startswith(f"server saw TLSv1.3 with SNI {SERVER_NAME}, client cert")
    assert f"URI:{CLIENT_URI}" in mutual.observed
    assert by_target[target("partner-wrong-ca", 8443, rule + "wrong-ca")].observed == "HTTP 503"
