"""Benchmark-only PKI: an EC P-256 root and two leaf certificates with SPIFFE URI SANs.

Used by bench/dataplane.py so that the Envoy pair, the nginx pair and (later) the meshward pair
all do mTLS with the same keys and chain length. Not the mesh CA (`meshward.ca`): no CSR, no
rotation, throwaway keys written next to the proxy configs. Each leaf also carries a DNS SAN
because nginx can verify an upstream certificate only by host name, not by URI SAN.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TRUST_DOMAIN = "cluster.local"


@dataclass(frozen=True, slots=True)
class Leaf:
    """One workload's certificate files and names."""

    cert: Path
    key: Path
    spiffe_id: str
    dns_name: str


@dataclass(frozen=True, slots=True)
class Pki:
    root: Path
    client: Leaf
    server: Leaf


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _leaf(
    directory: Path,
    stem: str,
    service_account: str,
    issuer: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
) -> Leaf:
    key = ec.generate_private_key(ec.SECP256R1())
    spiffe_id = f"spiffe://{TRUST_DOMAIN}/ns/bench/sa/{service_account}"
    dns_name = f"{service_account}.bench.svc.{TRUST_DOMAIN}"
    cert = (
        x509.CertificateBuilder()
        # SPIFFE X509-SVID §2: the identity is the URI SAN; the subject carries nothing.
        .subject_name(x509.Name([]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(spiffe_id), x509.DNSName(dns_name)]
            ),
            critical=True,  # RFC 5280 §4.2.1.6: critical when the subject is empty
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return Leaf(cert_path, key_path, spiffe_id, dns_name)


def write_pki(directory: Path) -> Pki:
    """Generate the root and the `client` and `server` leaves into `directory`."""
    now = datetime.datetime.now(datetime.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("meshward bench root"))
        .issuer_name(_name("meshward bench root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    root_path = directory / "root.pem"
    root_path.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    return Pki(
        root=root_path,
        client=_leaf(directory, "client", "client", root, root_key, now),
        server=_leaf(directory, "server", "server", root, root_key, now),
    )
