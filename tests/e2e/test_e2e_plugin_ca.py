"""`meshward up --ca-dir`: a user's own root and intermediate (Istio's plug-in CA files)."""

from __future__ import annotations

import json
import socket
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meshward.state.layout import StateDir
from tests.e2e.conftest import MESH_DIR, stop_mesh
from tests.e2e.meshctl import Mesh

pytestmark = pytest.mark.e2e


def _ca_cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_plugin_ca(directory: Path, *, wrong_key: bool = False) -> x509.Certificate:
    """root → intermediate, as the four Istio plug-in files; returns the intermediate."""
    root_key, inter_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    root = _ca_cert("test root", root_key, None, root_key)
    inter = _ca_cert("test intermediate", inter_key, root, root_key)
    directory.mkdir(parents=True)
    (directory / "root-cert.pem").write_bytes(_pem(root))
    (directory / "ca-cert.pem").write_bytes(_pem(inter))
    (directory / "cert-chain.pem").write_bytes(_pem(inter) + _pem(root))
    signing = root_key if wrong_key else inter_key
    (directory / "ca-key.pem").write_bytes(
        signing.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return inter


def test_sidecars_get_svids_from_the_users_intermediate(tmp_path: Path) -> None:
    inter = write_plugin_ca(tmp_path / "plugin")
    mesh = Mesh(StateDir(tmp_path / "state"), "127.170.0.0/16")
    result = mesh.cli(
        "up",
        str(MESH_DIR),
        "--detach",
        "--address-pool",
        mesh.pool,
        "--ca-dir",
        str(tmp_path / "plugin"),
    )
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert (mesh.state.ca / "ca-key.pem").stat().st_mode & 0o777 == 0o600
        server = mesh.pod("httpbin", "strict")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # only reading which CA issued the served leaf
        with (
            socket.create_connection((server.pod_ip, 8000), timeout=3) as raw,
            context.wrap_socket(raw) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        assert x509.load_der_x509_certificate(der).issuer == inter.subject
        report = json.loads(mesh.cli("verify", "--json").stdout)
        assert report["passed"], [p for p in report["probes"] if not p["passed"]]
    finally:
        stop_mesh(mesh)


def test_a_broken_plugin_ca_is_refused_and_nothing_starts(tmp_path: Path) -> None:
    write_plugin_ca(tmp_path / "plugin", wrong_key=True)
    mesh = Mesh(StateDir(tmp_path / "state"), "127.172.0.0/16")
    result = mesh.cli(
        "up",
        str(MESH_DIR),
        "--detach",
        "--address-pool",
        mesh.pool,
        "--ca-dir",
        str(tmp_path / "plugin"),
    )
    assert result.returncode == 1
    assert "error:" in result.stderr and "key" in result.stderr
    assert mesh.pids() == []
