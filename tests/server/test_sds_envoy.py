"""End to end: a real Envoy takes its TLS certificate from `SdsServer` over a Unix socket.

A static TLS listener names SDS secrets `default` and `ROOTCA`; the test's client reads the
certificate Envoy presents, rotates it with `set_secrets`, and sees the new one on new
connections. Also: the socket is mode 0600 and a stale socket file is replaced.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from server_harness import ADMIN, EnvoyProcess, LoopThread, free_port, grpc_cluster, wait_for

from meshward.agent.sds import SdsServer
from meshward.xds.secret import tls_certificate_secret, trust_bundle_secret

pytestmark = pytest.mark.e2e


def _self_signed(common_name: str) -> tuple[bytes, bytes, bytes]:
    """(certificate PEM, key PEM, certificate DER) of a fresh self-signed P-256 certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key_pem,
        cert.public_bytes(serialization.Encoding.DER),
    )


def _sds(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "sds_config": {
            "resource_api_version": "V3",
            "api_config_source": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "sds-grpc"}}],
            },
        },
    }


def _bootstrap(socket_path: Path, tls_port: int) -> dict[str, Any]:
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
        "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "tls",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 200}}],
                }
            ]
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                },
            }
        ],
    }
    tls = {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
        "DownstreamTlsContext",
        "common_tls_context": {
            "tls_certificate_sds_secret_configs": [_sds("default")],
            "validation_context_sds_secret_config": _sds("ROOTCA"),
        },
    }
    listener = {
        "name": "tls",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": tls_port}},
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager",
                     "typed_config": manager}
                ],
                "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls},
            }
        ],
    }  # fmt: skip
    return {
        "node": {"id": "sidecar-1", "cluster": "app"},
        "admin": ADMIN,
        "static_resources": {
            "listeners": [listener],
            "clusters": [grpc_cluster("sds-grpc", {"pipe": {"path": str(socket_path)}})],
        },
    }


def _presented(port: int) -> bytes | None:
    """The DER certificate Envoy presents on a new TLS connection (None if none yet)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=1) as raw,
            context.wrap_socket(raw) as tls,
        ):
            return tls.getpeercert(binary_form=True)
    except OSError:
        return None


def test_envoy_serves_the_sds_certificate_and_picks_up_rotation(
    loop_thread: LoopThread,
    envoy: Callable[[dict[str, Any]], EnvoyProcess],
    short_dir: Path,
) -> None:
    socket_path = short_dir / "sds" / "agent.sock"
    socket_path.parent.mkdir()
    socket_path.write_text("stale")  # left by an agent that died
    sds = SdsServer(socket_path)
    loop_thread.run(sds.start())
    try:
        assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
        assert stat.S_ISSOCK(socket_path.stat().st_mode)
        first_pem, first_key, first_der = _self_signed("first")
        second_pem, second_key, second_der = _self_signed("second")

        def secrets(chain: bytes, key: bytes) -> dict[str, Any]:
            return {
                "default": tls_certificate_secret("default", chain, key),
                "ROOTCA": trust_bundle_secret("ROOTCA", first_pem + second_pem),
            }

        assert sds.set_secrets(None, secrets(first_pem, first_key)) is True
        assert sds.set_secrets(None, secrets(first_pem, first_key)) is False
        tls_port = free_port()
        envoy(_bootstrap(socket_path, tls_port))
        assert wait_for(lambda: _presented(tls_port), what="TLS listener") == first_der
        # Rotation: a new version over the open SDS stream; new connections see it.
        assert sds.set_secrets(None, secrets(second_pem, second_key)) is True
        wait_for(
            lambda: True if _presented(tls_port) == second_der else None,
            timeout=5,
            what="rotated certificate",
        )
    finally:
        loop_thread.run(sds.stop())
    assert not socket_path.exists()
