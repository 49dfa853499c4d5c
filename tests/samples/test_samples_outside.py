"""meshward.samples.outside as a child process on real loopback sockets: what each listener
reports (TLS version, SNI, client certificate), the mTLS listener refusing a client without a
certificate, the TCP echo, and the command-line refusals."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.samples.conftest import REPO, SpawnFn, free_port, wait_for_port

from meshward.samples import edge_pki


def _get(conn: http.client.HTTPConnection, path: str = "/x") -> tuple[int, Any]:
    try:
        conn.request("GET", path, headers={"Host": "api.example.com"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _client(ca: Path, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


@pytest.fixture
def outside(spawn: SpawnFn, tmp_path: Path) -> Callable[[], dict[str, Any]]:
    """Start the server with every listener; returns ports, the pinned server certificate and
    a client certificate issued by the CA the mTLS listener trusts."""

    def start() -> dict[str, Any]:
        clients = edge_pki.Ca("clients", tmp_path / "pki")
        client_cert = clients.issue("app", dns="app.example.com", uri="spiffe://example/app")
        ports = {name: free_port() for name in ("http", "tcp", "https", "mtls")}
        argv = [sys.executable, "-m", "meshward.samples.outside", "--host", "127.0.0.1"]
        for name, port in ports.items():
            argv += [f"--{name}-port", str(port)]
        argv += ["--client-ca", str(clients.cert_file), "--server-name", "api.example.com"]
        argv += ["--cert-out", str(tmp_path / "server.crt")]
        process = spawn(argv, ports["http"])
        for port in ports.values():
            wait_for_port(port, process)
        return {"ports": ports, "server_cert": tmp_path / "server.crt", "client": client_cert}

    return start


def _view(listener: str, tls: str | None, sni: str | None, cert: object, peer: str) -> object:
    return {
        "server": "api.example.com",
        "listener": listener,
        "tls_version": tls,
        "sni": sni,
        "client_cert": cert,
        "method": "GET",
        "path": "/x",
        "host": "api.example.com",
        "peer": peer,
    }


def test_each_listener_reports_what_it_saw(outside: Callable[[], dict[str, Any]]) -> None:
    s = outside()
    ports, ca = s["ports"], s["server_cert"]
    plain = http.client.HTTPConnection("127.0.0.1", ports["http"], timeout=5)
    assert _get(plain) == (200, _view("http", None, None, None, "127.0.0.1"))
    https = http.client.HTTPSConnection("127.0.0.1", ports["https"], timeout=5)
    https.sock = _tls_socket(ports["https"], _client(ca))  # SNI api.example.com, pinned cert
    assert _get(https) == (200, _view("https", "TLSv1.3", "api.example.com", None, "127.0.0.1"))
    mtls = http.client.HTTPSConnection("127.0.0.1", ports["mtls"], timeout=5)
    mtls.sock = _tls_socket(ports["mtls"], _client(ca, s["client"][:2]))
    cert = {
        "subject": "CN=app.example.com",
        "sans": ["DNS:app.example.com", "URI:spiffe://example/app"],
    }
    assert _get(mtls) == (200, _view("mtls", "TLSv1.3", "api.example.com", cert, "127.0.0.1"))


def _tls_socket(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return context.wrap_socket(raw, server_hostname="api.example.com")


def test_mtls_listener_refuses_a_client_without_certificate(
    outside: Callable[[], dict[str, Any]],
) -> None:
    s = outside()
    conn = http.client.HTTPSConnection("127.0.0.1", s["ports"]["mtls"], timeout=5)
    conn.sock = _tls_socket(s["ports"]["mtls"], _client(s["server_cert"]))
    # TLS 1.3: the server's certificate_required alert arrives with the first read.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _get(conn)


def test_tcp_listener_echoes(outside: Callable[[], dict[str, Any]]) -> None:
    s = outside()
    with socket.create_connection(("127.0.0.1", s["ports"]["tcp"]), timeout=5) as conn:
        conn.sendall(b"ping\n")
        assert conn.recv(100) == b"ping\n"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ([], "give at least one of"),
        (["--mtls-port", "1"], "--mtls-port needs --client-ca"),
        (["--https-port", "1", "--cert", "x"], "--cert and --key go together"),
    ],
)
def test_command_line_refusals(args: list[str], error: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "meshward.samples.outside", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert error in done.stderr
