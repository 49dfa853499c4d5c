"""End to end through real Envoy sidecars: mTLS between sidecars, STRICT and PERMISSIVE
inbound, auto-mTLS to a legacy workload, status, exec, apply (good and bad), verify."""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

import pytest

from tests.e2e.meshctl import Mesh, get_via_sidecar, write_yaml

pytestmark = pytest.mark.e2e


def plaintext_get(host: str, port: int) -> bytes:
    """A plaintext HTTP request from outside the mesh; b"" when the peer refuses it."""
    try:
        with socket.create_connection((host, port), timeout=3) as sock:
            sock.sendall(b"GET /get HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return sock.recv(100)
    except (ConnectionResetError, TimeoutError):
        return b""


def test_http_between_sidecars_is_mtls_and_the_server_sees_the_client_identity(
    mesh: Mesh,
) -> None:
    client = mesh.pod("client", "open")
    status, body = get_via_sidecar(client, "httpbin.strict:8000", "/headers")
    assert status == 200
    xfcc = json.loads(body)["headers"]["X-Forwarded-Client-Cert"]
    fields = dict(part.split("=", 1) for part in xfcc.split(";"))
    assert fields["URI"] == "spiffe://e2e.test/ns/open/sa/client"
    assert fields["By"] == "spiffe://e2e.test/ns/strict/sa/httpbin"


def test_tcp_between_sidecars_reaches_redis_over_mtls(mesh: Mesh) -> None:
    client = mesh.pod("client", "open")
    address = dict(client.env)["MESHWARD_SVC_STRICT_REDIS_6379"]
    host, port = address.rsplit(":", 1)
    assert host == client.pod_ip  # the client's own sidecar, not the server
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(16) == b"+PONG\r\n"


def test_strict_refuses_plaintext_from_outside(mesh: Mesh) -> None:
    server = mesh.pod("httpbin", "strict")
    assert not plaintext_get(server.pod_ip, 8000).startswith(b"HTTP/")


def test_strict_refuses_a_client_without_certificate(mesh: Mesh) -> None:
    server = mesh.pod("httpbin", "strict")
    context = ssl.create_default_context(cafile=str(mesh.state.ca / "root-cert.pem"))
    context.check_hostname = False
    with (
        socket.create_connection((server.pod_ip, 8000), timeout=3) as raw,
        pytest.raises((ssl.SSLError, ConnectionResetError)),
        context.wrap_socket(raw) as tls,
    ):
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert tls.recv(10) == b""  # TLS 1.3: refusal arrives after the handshake
        raise ConnectionResetError("closed without answer")


def test_permissive_accepts_plaintext_and_mtls(mesh: Mesh) -> None:
    target = mesh.pod("client", "open")
    assert plaintext_get(target.pod_ip, 8000).startswith(b"HTTP/1.1 200")
    caller = mesh.pod("httpbin", "strict")
    status, body = get_via_sidecar(caller, "client.open:8000", "/headers")
    assert status == 200
    assert (
        "URI=spiffe://e2e.test/ns/strict/sa/httpbin"
        in json.loads(body)["headers"]["X-Forwarded-Client-Cert"]
    )


def test_plaintext_to_a_legacy_workload_and_no_forged_identity(mesh: Mesh) -> None:
    client = mesh.pod("client", "open")
    status, body = get_via_sidecar(client, "old.legacy:8000", "/headers")
    assert status == 200
    assert "X-Forwarded-Client-Cert" not in json.loads(body)["headers"]
    # A plaintext caller cannot forge an identity: PERMISSIVE strips its XFCC header.
    target = mesh.pod("client", "open")
    with socket.create_connection((target.pod_ip, 8000), timeout=3) as sock:
        sock.sendall(
            b"GET /headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"X-Forwarded-Client-Cert: URI=spiffe://e2e.test/ns/strict/sa/httpbin\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert b"X-Forwarded-Client-Cert" not in data


def test_legacy_workload_cannot_reach_a_strict_service(mesh: Mesh) -> None:
    old = mesh.pod("old", "legacy")
    host, port = dict(old.env)["MESHWARD_SVC_STRICT_HTTPBIN_8000"].rsplit(":", 1)
    assert not plaintext_get(host, int(port)).startswith(b"HTTP/")


def test_status_shows_identity_mode_readiness_and_expiry(mesh: Mesh) -> None:
    pods = {f"{p['namespace']}/{p['pod']}": p for p in mesh.status()["pods"]}
    httpbin = pods["strict/httpbin-0"]
    assert httpbin["identity"] == "spiffe://e2e.test/ns/strict/sa/httpbin"
    assert httpbin["mtls"] == {"8000": "STRICT"}
    assert httpbin["sidecar_ready"] is True
    assert httpbin["in_sync"] is True
    assert httpbin["cert_not_after"]
    assert pods["open/client-0"]["mtls"] == {"8000": "PERMISSIVE"}
    assert pods["legacy/old-0"]["identity"] is None


def test_exec_runs_in_the_workload_network_context(mesh: Mesh) -> None:
    result = mesh.cli(
        "exec",
        "client",
        "-n",
        "open",
        "--",
        "curl",
        "-s",
        "-m",
        "5",
        "http://httpbin.strict:8000/headers",
    )
    assert result.returncode == 0, result.stderr
    assert "URI=spiffe://e2e.test/ns/open/sa/client" in result.stdout


def test_invalid_apply_is_refused_with_a_code_and_the_old_config_stays(
    mesh: Mesh, tmp_path: Path
) -> None:
    before = mesh.status()["generation"]
    bad = write_yaml(
        tmp_path,
        "bad.yaml",
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
        "metadata: {name: default, namespace: strict}\nspec: {mtls: {mode: SOMETIMES}}\n",
    )
    result = mesh.cli("apply", "-f", str(bad))
    assert result.returncode == 1
    assert "MW0109" in result.stderr
    assert f"{bad}:4" in result.stderr
    assert mesh.status()["generation"] == before
    server = mesh.pod("httpbin", "strict")
    assert not plaintext_get(server.pod_ip, 8000).startswith(b"HTTP/")


def test_apply_changes_the_mode_on_the_running_mesh(mesh: Mesh, tmp_path: Path) -> None:
    change = write_yaml(
        tmp_path,
        "open-strict.yaml",
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
        "metadata: {name: default, namespace: open}\nspec: {mtls: {mode: STRICT}}\n",
    )
    target = mesh.pod("client", "open")
    assert plaintext_get(target.pod_ip, 8000).startswith(b"HTTP/1.1 200")
    result = mesh.cli("apply", "-f", str(change))
    assert result.returncode == 0, result.stdout + result.stderr
    assert not plaintext_get(target.pod_ip, 8000).startswith(b"HTTP/")
    # back to PERMISSIVE for the other tests
    undo = write_yaml(
        tmp_path,
        "open-permissive.yaml",
        change.read_text().replace("STRICT", "PERMISSIVE"),
    )
    assert mesh.cli("apply", "-f", str(undo)).returncode == 0
    assert plaintext_get(target.pod_ip, 8000).startswith(b"HTTP/1.1 200")


def test_verify_passes_on_a_healthy_mesh(mesh: Mesh) -> None:
    result = mesh.cli("verify", "--json")
    report = json.loads(result.stdout)
    failed = [p for p in report["probes"] if not p["passed"]]
    assert result.returncode == 0, failed
    checks = {p["check"] for p in report["probes"]}
    assert checks == {
        "plaintext-refused",
        "plaintext-accepted",
        "served-svid",
        "foreign-ca-refused",
        "mtls-between-sidecars",
        "plaintext-to-legacy",
    }
