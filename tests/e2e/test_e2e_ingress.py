"""The ingress gateway on a running mesh, through real Envoy: SIMPLE, MUTUAL (CA, CRL),
OPTIONAL_MUTUAL, PASSTHROUGH, httpsRedirect, minimum TLS version, AuthorizationPolicy at the
gateway on the client certificate and on X-Forwarded-For, gateway → mesh mTLS as the
gateway's own identity, and a credential replaced in the secret store reaching Envoy without a
restart."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from meshward.runner.network import unused_pool
from meshward.samples.edge_pki import Ca
from meshward.state.layout import StateDir
from tests.e2e.conftest import stop_mesh
from tests.e2e.meshctl import Mesh

pytestmark = pytest.mark.e2e

MESH_DIR = Path(__file__).parent / "ingress"
# This slice's /16s are 127.150-159; bench/dataplane.py takes 150/158/159, bench/ingress.py
# 152/156/157.
# Every worktree's suite runs this module, at times together: take a /16 whose first pod
# addresses have no Envoy admin port bound, starting from one derived from the checkout.
POOLS = (151, 153, 154, 155)


def _free_pool() -> str:
    start = int(hashlib.sha256(str(Path(__file__).resolve()).encode()).hexdigest(), 16)
    return unused_pool(POOLS, first=start % len(POOLS))


GATEWAY_URI = "spiffe://e2e.test/ns/istio-system/sa/ingressgateway"
MOBILE_URI = "spiffe://mobile.example.com/ns/apps/sa/mobile"


@dataclass
class Edge:
    """The running mesh and the outside world's certificates."""

    mesh: Mesh
    ip: str
    server_ca: Ca
    client_ca: Ca
    certs: dict[str, tuple[Path, Path, int]]


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    root = tmp_path_factory.mktemp("ingress")
    pki = root / "pki"
    server_ca, client_ca, other_ca = Ca("servers", pki), Ca("clients", pki), Ca("other", pki)
    certs = {
        "www": server_ca.issue("www", dns="www.example.com"),
        "mobile-server": server_ca.issue("mobile-server", dns="mobile.example.com"),
        "mobile": client_ca.issue("mobile", uri=MOBILE_URI),
        "revoked": client_ca.issue("revoked", uri=MOBILE_URI),
        "other": other_ca.issue("other", uri=MOBILE_URI),
        "plain-client": client_ca.issue("plain-client", uri="spiffe://mobile.example.com/x"),
    }
    pool = _free_pool()
    mesh = Mesh(StateDir(root / "state"), pool)
    www, mobile = certs["www"], certs["mobile-server"]
    crl = client_ca.crl(certs["revoked"][2])
    for args in (
        ("www-cert", "--cert", str(www[0]), "--key", str(www[1])),
        ("mobile-cert", "--cert", str(mobile[0]), "--key", str(mobile[1]))
        + ("--cacert", str(client_ca.cert_file), "--crl", str(crl)),
    ):
        created = mesh.cli("secret", "create", "tls", *args)
        assert created.returncode == 0, created.stderr
    # 4 Envoys on a 2-core host that other meshes share: a longer readiness budget than 90 s.
    up = mesh.cli(
        "up", str(MESH_DIR), "--detach", "--address-pool", pool, "--timeout", "150", timeout=200
    )
    if up.returncode != 0:
        stop_mesh(mesh)
        pytest.fail(f"mesh did not start:\n{up.stdout}\n{up.stderr}")
    try:
        yield Edge(
            mesh, mesh.pod("ingressgateway", "istio-system").pod_ip, server_ca, client_ca, certs
        )
    finally:
        stop_mesh(mesh)


def _context(
    edge: Edge, client: str = "", *, version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(edge.server_ca.cert_file))
    if client:
        cert, key, _ = edge.certs[client]
        context.load_cert_chain(cert, key)
    if version is not None:
        context.minimum_version = context.maximum_version = version
    return context


def _request(
    edge: Edge,
    port: int,
    sni: str,
    path: str,
    context: ssl.SSLContext | None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes, x509.Certificate | None]:
    """One HTTP/1.1 request (over TLS with `context`), and the certificate the server showed."""
    raw = socket.create_connection((edge.ip, port), timeout=10)
    peer = None
    stream: socket.socket = raw
    if context is not None:
        stream = context.wrap_socket(raw, server_hostname=sni)
        der = stream.getpeercert(binary_form=True)
        peer = x509.load_der_x509_certificate(der) if der else None
    lines = [f"GET {path} HTTP/1.1", f"Host: {sni}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with stream:
        stream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := stream.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    fields = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in fields.items()}, body, peer


def _refused(edge: Edge, port: int, sni: str, context: ssl.SSLContext) -> bool:
    """True when the handshake fails, or the server closes before answering (TLS 1.3 sends
    a missing-client-certificate alert only after the client's Finished)."""
    try:
        status, *_ = _request(edge, port, sni, "/get", context)
    except (ssl.SSLError, ConnectionError, ValueError, IndexError):
        return True
    return status == 0


def test_simple_tls_reaches_the_mesh_as_the_gateway(edge: Edge) -> None:
    status, _, body, peer = _request(edge, 8443, "www.example.com", "/headers", _context(edge))
    assert status == 200
    assert peer is not None and peer.serial_number == edge.certs["www"][2]
    # httpbin's sidecar saw the gateway's SPIFFE identity over mTLS, and its policy (only
    # the gateway may call) let the request through.
    xfcc = json.loads(body)["headers"]["X-Forwarded-Client-Cert"]
    fields = dict(part.split("=", 1) for part in xfcc.split(";"))
    assert (fields["URI"], fields["By"]) == (GATEWAY_URI, "spiffe://e2e.test/ns/shop/sa/httpbin")


def test_http_redirects_to_https_and_virtual_service_redirects(edge: Edge) -> None:
    status, headers, _, _ = _request(edge, 8080, "www.example.com", "/get?x=1", None)
    assert (status, headers["location"]) == (301, "https://www.example.com/get?x=1")
    status, headers, _, _ = _request(edge, 8443, "www.example.com", "/old/x", _context(edge))
    assert (status, headers["location"]) == (301, "https://www.example.com/headers")


def test_sni_selects_the_certificate_and_unknown_names_get_none(edge: Edge) -> None:
    *_, www = _request(edge, 8443, "www.example.com", "/get", _context(edge))
    *_, mobile = _request(edge, 8443, "mobile.example.com", "/get", _context(edge, "mobile"))
    assert www is not None and mobile is not None
    assert (www.serial_number, mobile.serial_number) == (
        edge.certs["www"][2],
        edge.certs["mobile-server"][2],
    )
    assert _refused(edge, 8443, "unknown.example.com", _context(edge))


@pytest.mark.parametrize(
    ("client", "refused"),
    [("", True), ("other", True), ("revoked", True), ("mobile", False)],
)
def test_mutual_needs_a_valid_client_certificate(edge: Edge, client: str, refused: bool) -> None:
    assert _refused(edge, 8443, "mobile.example.com", _context(edge, client)) is refused


def test_optional_mutual_and_minimum_version(edge: Edge) -> None:
    anonymous = _context(edge, version=ssl.TLSVersion.TLSv1_3)
    assert _request(edge, 8444, "mobile.example.com", "/get", anonymous)[0] == 200
    assert _request(edge, 8444, "mobile.example.com", "/get", _context(edge, "mobile"))[0] == 200
    assert _refused(edge, 8444, "mobile.example.com", _context(edge, "other"))
    # minProtocolVersion TLSV1_3: a TLS 1.2 client is refused; 8443 keeps the 1.2 default.
    assert _refused(
        edge, 8444, "mobile.example.com", _context(edge, version=ssl.TLSVersion.TLSv1_2)
    )
    tls12 = _context(edge, version=ssl.TLSVersion.TLSv1_2)
    assert _request(edge, 8443, "www.example.com", "/get", tls12)[0] == 200


@pytest.mark.parametrize(
    ("client", "port", "sni", "status"),
    [
        ("mobile", 8443, "mobile.example.com", 418),
        ("plain-client", 8444, "mobile.example.com", 403),
        ("", 8444, "mobile.example.com", 403),
        ("", 8443, "www.example.com", 403),
    ],
)
def test_gateway_policy_on_the_client_certificate(
    edge: Edge, client: str, port: int, sni: str, status: int
) -> None:
    assert _request(edge, port, sni, "/status/418", _context(edge, client))[0] == status


@pytest.mark.parametrize(
    ("forwarded", "status"),
    [
        (None, 403),
        ("10.1.2.3", 202),
        ("10.1.2.3, 203.0.113.9", 403),
        ("203.0.113.9, 10.1.2.3", 202),
    ],
)
def test_remote_ip_blocks_trust_one_proxy(edge: Edge, forwarded: str | None, status: int) -> None:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    found = _request(edge, 8443, "www.example.com", "/status/202", _context(edge), headers)
    assert found[0] == status


def test_passthrough_delivers_the_backends_own_certificate(edge: Edge) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the backend's certificate is self-signed: pinned below
    deadline = time.monotonic() + 10
    while True:  # the backend makes its key at start-up
        try:
            status, _, body, peer = _request(edge, 9443, "vault.example.com", "/", context)
            break
        except (OSError, ssl.SSLError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert status == 200
    assert json.loads(body) == {"server": "vault.example.com", "tls": "terminated by the backend"}
    assert peer is not None and peer.issuer == peer.subject  # the backend's, not a gateway cert
    assert peer.subject.rfc4514_string() == "CN=vault.example.com"


def test_a_replaced_credential_reaches_envoy_without_restart(edge: Edge, tmp_path: Path) -> None:
    pid_before = _gateway_pid(edge)
    cert, key, serial = edge.server_ca.issue("www-2", dns="www.example.com")
    replaced = edge.mesh.cli(
        "secret", "create", "tls", "www-cert", "--cert", str(cert), "--key", str(key)
    )
    assert replaced.returncode == 0, replaced.stderr
    deadline = time.monotonic() + 15
    while True:
        *_, peer = _request(edge, 8443, "www.example.com", "/get", _context(edge))
        if peer is not None and peer.serial_number == serial:
            break
        assert time.monotonic() < deadline, "the new certificate never reached Envoy"
        time.sleep(0.2)
    assert _gateway_pid(edge) == pid_before
    shutil.rmtree(tmp_path, ignore_errors=True)


def _gateway_pid(edge: Edge) -> int:
    pods = edge.mesh.status()
    del pods
    agent = json.loads(edge.mesh.state.agent.read_text())
    return int(agent["pods"]["istio-system/ingressgateway-0"]["envoy_pid"])


def test_verify_probes_the_gateway(edge: Edge) -> None:
    """`meshward verify` derives the gateway probes from the Gateways in force."""
    result = edge.mesh.cli("verify", "--json")
    report = json.loads(result.stdout)
    gateway = [p for p in report["probes"] if p["check"].startswith("gateway-")]
    failed = [p for p in gateway if not p["passed"]]
    assert failed == []
    counted: dict[str, int] = {}
    for probe in gateway:
        counted[probe["check"]] = counted.get(probe["check"], 0) + 1
    # Three terminating chains (www SIMPLE, mobile MUTUAL on 8443; OPTIONAL_MUTUAL on 8444):
    # a certificate and a minimum-version probe each; MUTUAL two refusals; one passthrough.
    assert counted == {
        "gateway-certificate": 3,
        "gateway-min-version": 3,
        "gateway-mutual-refused": 2,
        "gateway-passthrough": 1,
    }
    assert result.returncode == 0, [p for p in report["probes"] if not p["passed"]]
