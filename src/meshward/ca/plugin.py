"""The CA's signing material on disk, in Istio's "plug in CA certificates" layout.

Called by `meshward.ca.authority.CertificateAuthority.load_or_create`. The four files mean what
they mean in Istio (istio.io, "Plug in CA Certificates"):

    ca-cert.pem     the certificate the CA signs with (an intermediate, or the root itself)
    ca-key.pem      its private key (0600)
    cert-chain.pem  ca-cert.pem followed by its issuers up to the root
    root-cert.pem   the trust anchor every workload is given

An operator may drop in their own four files (an intermediate under a corporate root); when the
directory holds none, a self-signed root is created and written in the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from meshward.ca import pemfile, template
from meshward.errors import CertificateError

CA_CERT = "ca-cert.pem"
CA_KEY = "ca-key.pem"
CERT_CHAIN = "cert-chain.pem"
ROOT_CERT = "root-cert.pem"
FILES = (CA_CERT, CA_KEY, CERT_CHAIN, ROOT_CERT)


@dataclass(frozen=True, slots=True)
class SigningMaterial:
    """A checked signing key and certificate, the certificates between it and the root
    (`intermediates`: ca-cert first, root excluded; empty for a self-signed root), and the root.
    """

    key: template.SigningKey
    cert: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]
    root: x509.Certificate


def load(directory: Path, *, now: datetime) -> SigningMaterial | None:
    """The plug-in material in `directory`, checked; None if none of the four files exist."""
    present = [name for name in FILES if (directory / name).exists()]
    if not present:
        return None
    missing = [name for name in FILES if name not in present]
    if missing:
        raise CertificateError(f"plug-in CA in {directory} is incomplete: missing {missing}")
    try:
        cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
        chain = x509.load_pem_x509_certificates((directory / CERT_CHAIN).read_bytes())
        root = x509.load_pem_x509_certificate((directory / ROOT_CERT).read_bytes())
        key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), None)
    except ValueError as error:
        raise CertificateError(f"plug-in CA in {directory} is unreadable: {error}") from error
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertificateError(f"{CA_KEY}: unsupported key type {type(key).__name__}")
    material = SigningMaterial(key, cert, _intermediates(cert, chain, root), root)
    check(material, now=now)
    return material


def _intermediates(
    cert: x509.Certificate, chain: list[x509.Certificate], root: x509.Certificate
) -> tuple[x509.Certificate, ...]:
    if chain[0] != cert:
        raise CertificateError(f"{CERT_CHAIN} does not start with {CA_CERT}")
    # Istio's cert-chain.pem usually ends with the root; a chain that stops below it is also
    # accepted. Either way what follows a leaf is everything except the root.
    return tuple(link for link in chain if link != root)


def check(material: SigningMaterial, *, now: datetime) -> None:
    """Refuse material a CA must not sign with: RFC 5280 §6 path rules applied to the CA's own
    chain, plus the key-matches-certificate check."""
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if material.key.public_key().public_bytes(der, spki) != material.cert.public_key().public_bytes(
        der, spki
    ):
        raise CertificateError(f"{CA_KEY} does not match {CA_CERT}")
    path = (*material.intermediates, material.root)
    for child, parent in zip(path, (*path[1:], material.root), strict=True):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature) as error:
            raise CertificateError(
                f"{CERT_CHAIN}: {child.subject.rfc4514_string()} is not issued by "
                f"{parent.subject.rfc4514_string()}"
            ) from error
    for cert in path:
        _check_ca(cert, now=now)


def _check_ca(cert: x509.Certificate, *, now: datetime) -> None:
    name = cert.subject.rfc4514_string()
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as error:
        raise CertificateError(f"{name}: missing CA extension ({error})") from error
    if not constraints.ca or not usage.key_cert_sign:
        raise CertificateError(f"{name}: not a CA certificate (cA and keyCertSign required)")
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise CertificateError(
            f"{name}: outside its validity {cert.not_valid_before_utc.isoformat()} .. "
            f"{cert.not_valid_after_utc.isoformat()}"
        )


def create(
    directory: Path, *, trust_domain: str, now: datetime, key: template.SigningKey
) -> SigningMaterial:
    """Make a self-signed root with `key` and write the four files (ca-cert == root-cert)."""
    root = template.root(key, trust_domain=trust_domain, now=now)
    cert_pem = root.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    directory.mkdir(parents=True, exist_ok=True)
    # The key first and the root last: a crash in between leaves an incomplete set, which
    # `load` refuses loudly instead of silently minting a second root.
    pemfile.write_atomic(directory / CA_KEY, key_pem, mode=pemfile.PRIVATE)
    pemfile.write_atomic(directory / CA_CERT, cert_pem, mode=pemfile.PUBLIC)
    pemfile.write_atomic(directory / CERT_CHAIN, cert_pem, mode=pemfile.PUBLIC)
    pemfile.write_atomic(directory / ROOT_CERT, cert_pem, mode=pemfile.PUBLIC)
    return SigningMaterial(key, root, (), root)
