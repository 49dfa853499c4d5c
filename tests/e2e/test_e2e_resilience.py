"""Under load, with real Envoy: certificate rotation and a control-plane crash fail nothing."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import time
from datetime import UTC, datetime

import pytest
from cryptography import x509

from meshward.ca.authority import CertificateAuthority
from meshward.identity import SpiffeId
from meshward.process import pid_alive
from meshward.state.records import read_json
from meshward.verify.identity import issue
from tests.e2e.load import Load
from tests.e2e.meshctl import Mesh

pytestmark = pytest.mark.e2e


def served_serial(mesh: Mesh, host: str, port: int, tmp: str) -> int:
    """The serial of the certificate a sidecar presents to a new mTLS connection."""
    from pathlib import Path

    ca = CertificateAuthority.load_or_create(
        mesh.state.ca, trust_domain="e2e.test", now=datetime.now(UTC)
    )
    credential = issue(ca, SpiffeId("e2e.test", "meshward-system", "probe"), Path(tmp))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cafile=str(mesh.state.ca / "root-cert.pem"))
    context.load_cert_chain(str(credential.cert_path), str(credential.key_path))
    with (
        socket.create_connection((host, port), timeout=3) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def agent_serial(mesh: Mesh, pod: str) -> str:
    return str(((read_json(mesh.state.agent) or {})["pods"][pod]).get("cert_serial"))


def test_certificate_rotation_under_load_fails_no_request(mesh: Mesh, tmp_path: object) -> None:
    server = mesh.pod("httpbin", "strict")
    client = mesh.pod("client", "open")
    before = {p: agent_serial(mesh, p) for p in ("strict/httpbin-0", "open/client-0")}
    assert served_serial(mesh, server.pod_ip, 8000, str(tmp_path)) == int(
        before["strict/httpbin-0"], 16
    )
    # TTL is 60 s in the test mesh: both sidecars rotate at half-life, within ~30 s.
    with Load((client.pod_ip, 15001), "httpbin.strict:8000", max_seconds=60) as load:
        deadline = time.monotonic() + 50
        while time.monotonic() < deadline:
            now = {p: agent_serial(mesh, p) for p in before}
            if all(now[p] != before[p] for p in before):
                break
            time.sleep(0.5)
        time.sleep(2)  # traffic on the rotated certificates too
    assert all(now[p] != before[p] for p in before), "no rotation within 50 s"
    assert load.failures == []
    assert load.ok > 100
    # New connections get the new certificate, without an Envoy restart.
    assert served_serial(mesh, server.pod_ip, 8000, str(tmp_path)) == int(
        now["strict/httpbin-0"], 16
    )


def test_control_plane_crash_under_load_fails_no_request(mesh: Mesh) -> None:
    client = mesh.pod("client", "open")
    plane = read_json(mesh.state.control_plane) or {}
    old_pid = int(plane["pid"])
    with Load((client.pod_ip, 15001), "httpbin.strict:8000", max_seconds=40) as load:
        time.sleep(1)
        os.kill(old_pid, signal.SIGKILL)
        # The runner restarts it on the same xDS port; every proxy reconnects and re-syncs.
        deadline = time.monotonic() + 30
        restarted = False
        while time.monotonic() < deadline:
            plane = read_json(mesh.state.control_plane) or {}
            pods = mesh.status()["pods"]
            if (
                plane.get("pid") not in (None, old_pid)
                and plane.get("generation", 0) >= 1
                and all(p["in_sync"] for p in pods if p["sidecar"])
            ):
                restarted = True
                break
            time.sleep(0.5)
        time.sleep(1)
    assert not pid_alive(old_pid)
    assert restarted, "control plane did not come back with every proxy in sync"
    assert load.failures == []
    assert load.ok > 50
