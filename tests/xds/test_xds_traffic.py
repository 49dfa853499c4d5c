"""Real traffic through two real Envoys built from translated snapshots (static bootstraps).

client app → client sidecar (outbound HTTP proxy port, or an outbound TCP port) → mTLS →
server sidecar (STRICT) → a tiny HTTP app that echoes the XFCC header it received. Proves the
translation end to end: the caller's SPIFFE identity reaches the app, a forged XFCC does not,
an unknown Host gets 404, and plaintext straight to the STRICT listener is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import xds_cases
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from static_envoy import free_port, http_apps, static_envoy
from xds_pki import Pki

from meshward.model import ir
from meshward.xds import bootstrap, translate

pytestmark = pytest.mark.e2e

CLIENT_IP, CLIENT_APP_IP = "127.0.30.1", "127.0.30.2"
SERVER_IP, SERVER_APP_IP = "127.0.31.1", "127.0.31.2"
CLIENT_URI = "spiffe://cluster.local/ns/default/sa/client"
SERVER_URI = "spiffe://cluster.local/ns/default/sa/web"


class _EchoXfcc(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"xfcc": self.headers.get("X-Forwarded-Client-Cert")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass


@contextlib.contextmanager
def _envoy(proxy: ir.ProxyModel, secrets: Path, workdir: Path) -> Iterator[None]:
    admin = (proxy.pod.address.pod_ip, free_port(proxy.pod.address.pod_ip))
    config = bootstrap.static_bootstrap(
        translate.proxy_snapshot(proxy), admin=admin, node_id=proxy.node_id, secrets_dir=secrets
    )
    name = proxy.pod.key.workload
    with static_envoy(config, workdir / f"{name}.log", admin):
        yield
    # The translated config uses no deprecated field or runtime key (Envoy warns on each).
    assert "deprecated" not in (workdir / f"{name}.log").read_text()


def _get(address: tuple[str, int], target: str, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request("GET", target, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _cert_hash(pem_file: Path) -> str:
    cert = x509.load_pem_x509_certificate(pem_file.read_bytes())
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def test_mtls_between_two_sidecars(pki: Pki, tmp_path: Path) -> None:
    port = free_port(SERVER_IP, SERVER_APP_IP)
    http_proxy_port = free_port(CLIENT_IP)
    tcp_port = free_port(CLIENT_IP)
    server_pod = xds_cases.pod("web", SERVER_IP, SERVER_APP_IP)
    server = xds_cases.proxy(server_pod, inbound=(xds_cases.inbound(port, "HTTP", "STRICT"),))
    upstream = (xds_cases.endpoint(server_pod, port, mtls=True),)
    client = xds_cases.proxy(
        xds_cases.pod("client", CLIENT_IP, CLIENT_APP_IP),
        outbound=(
            xds_cases.service("web", port, "HTTP", upstream, sans=(SERVER_URI,)),
            xds_cases.service(
                "webtcp", port, "TCP", upstream, sans=(SERVER_URI,), tcp_bind=(CLIENT_IP, tcp_port)
            ),
        ),
        outbound_http_port=http_proxy_port,
    )
    client_secrets = pki.leaf_dir(CLIENT_URI)
    expected_xfcc = (
        f"By={SERVER_URI};Hash={_cert_hash(client_secrets / 'cert.pem')};URI={CLIENT_URI}"
    )
    forged = {"X-Forwarded-Client-Cert": "By=x;URI=spiffe://cluster.local/ns/default/sa/admin"}
    with (
        http_apps(SERVER_APP_IP, [port], _EchoXfcc),
        _envoy(server, pki.leaf_dir(SERVER_URI), tmp_path),
        _envoy(client, client_secrets, tmp_path),
    ):
        # The app uses its sidecar as an HTTP proxy: absolute-form URI, routed by its host.
        status, body = _get((CLIENT_IP, http_proxy_port), f"http://web:{port}/hello", forged)
        assert (status, json.loads(body)) == (200, {"xfcc": expected_xfcc})

        # A TCP port tunnels the bytes through the same mTLS.
        status, body = _get((CLIENT_IP, tcp_port), "/hello", forged)
        assert (status, json.loads(body)) == (200, {"xfcc": expected_xfcc})

        # A Host that no virtual host matches gets Envoy's 404.
        status, _ = _get((CLIENT_IP, http_proxy_port), "http://elsewhere:80/", {})
        assert status == 404

        # Plaintext straight to the STRICT listener never reaches the app.
        with socket.create_connection((SERVER_IP, port), timeout=5) as raw:
            raw.sendall(b"GET /hello HTTP/1.1\r\nHost: web\r\n\r\n")
            try:
                reply = raw.recv(4096)
            except ConnectionResetError:
                reply = b""
        assert not reply.startswith(b"HTTP/")
