"""Workload private keys and their CSRs, made on the node (the key never leaves it).

Called by the agent's sidecar loop before every (re)issue: `new_private_key`, `csr_for`, then
`key_pem` for the SDS `default` secret handed to Envoy.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def new_private_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 key (Istio's default workload key type with ECC enabled)."""
    return ec.generate_private_key(ec.SECP256R1())


def csr_for(key: ec.EllipticCurvePrivateKey, identity_hint: str | None = None) -> bytes:
    """A PKCS#10 CSR (PEM) signed by `key`, its proof of possession.

    `identity_hint` (a SPIFFE URI) is put in the CSR as a URI SAN for readability only: the CA
    ignores every name in a CSR and certifies the identity of the authenticated caller.
    """
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshward")])
    )
    if identity_hint is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity_hint)]),
            critical=False,
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """`key` as unencrypted PKCS#8 PEM, the form Envoy's SDS `private_key` accepts."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
