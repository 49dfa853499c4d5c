"""SDS Secret resources: a workload's certificate and key, and the mesh's trust bundle.

Called by the node agent (`meshward.agent`) when it hands a freshly issued certificate to
Envoy over SDS, and by tests. Istio's names are `default` (key + chain) and `ROOTCA` (trust
bundle); Envoy matches SDS names exactly, so callers pass the name explicitly.
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2


def tls_certificate_secret(name: str, chain_pem: bytes, key_pem: bytes) -> secret_pb2.Secret:
    """A `tls_certificate` secret: the chain (leaf first) and its private key, inline bytes.

    Inline bytes rather than file names: the key never touches the disk (DESIGN: the private
    key never leaves the node, and here it never leaves the agent's memory either).
    """
    return secret_pb2.Secret(
        name=name,
        tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=base_pb2.DataSource(inline_bytes=chain_pem),
            private_key=base_pb2.DataSource(inline_bytes=key_pem),
        ),
    )


def trust_bundle_secret(name: str, roots_pem: bytes, crl_pem: bytes = b"") -> secret_pb2.Secret:
    """A `validation_context` secret whose trusted CA is `roots_pem` (one or more roots);
    with `crl_pem`, certificates it revokes are refused (a gateway's `caCrl`)."""
    context = common_pb2.CertificateValidationContext(
        trusted_ca=base_pb2.DataSource(inline_bytes=roots_pem),
    )
    if crl_pem:
        context.crl.inline_bytes = crl_pem
    return secret_pb2.Secret(name=name, validation_context=context)


def identity_secret_from_files(
    cert_path: str, key_path: str, *, name: str = "default"
) -> secret_pb2.Secret:
    """A `tls_certificate` secret that Envoy reads from files (static bootstraps in tests)."""
    return secret_pb2.Secret(
        name=name,
        tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=base_pb2.DataSource(filename=cert_path),
            private_key=base_pb2.DataSource(filename=key_path),
        ),
    )


def root_secret_from_file(roots_path: str, *, name: str = "ROOTCA") -> secret_pb2.Secret:
    """A `validation_context` secret whose trusted CA Envoy reads from a file."""
    return secret_pb2.Secret(
        name=name,
        validation_context=common_pb2.CertificateValidationContext(
            trusted_ca=base_pb2.DataSource(filename=roots_path),
        ),
    )
