"""CA test kit: a fixed clock, key and PKI holders, and a certificate maker that builds
X.509 certificates by hand (not through meshward.ca.template), so validator tests
can change one field at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshward.identity import SpiffeId

NOW = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)
ALICE = SpiffeId("cluster.local", "shop", "alice")


@dataclass(frozen=True)
class Keys:
    """Pre-generated P-256 keys, by role."""

    root: ec.EllipticCurvePrivateKey
    other_root: ec.EllipticCurvePrivateKey
    intermediate: ec.EllipticCurvePrivateKey
    leaf: ec.EllipticCurvePrivateKey
    other_leaf: ec.EllipticCurvePrivateKey
    token: ec.EllipticCurvePrivateKey
    other_token: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class CertSpec:
    """Every field a test may change about a certificate; defaults make a valid SVID leaf."""

    subject: str = "leaf"
    uris: tuple[str, ...] = (ALICE.uri,)
    dns: tuple[str, ...] = ()
    ca: bool | None = False
    digital_signature: bool = True
    key_cert_sign: bool = False
    crl_sign: bool = False
    not_before: datetime = NOW - timedelta(hours=1)
    not_after: datetime = NOW + timedelta(hours=1)
    with_key_ids: bool = True
    extra: tuple[x509.ExtensionType, ...] = field(default=())


CA_SPEC = CertSpec(
    uris=(),
    ca=True,
    digital_signature=False,
    key_cert_sign=True,
    crl_sign=True,
    not_before=NOW - timedelta(days=30),
    not_after=NOW + timedelta(days=365),
)


def make_cert(
    spec: CertSpec,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    """A certificate for `key` per `spec`, signed by `issuer_key` (self-signed if no issuer)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, spec.subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name if issuer is None else issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(spec.not_before)
        .not_valid_after(spec.not_after)
        .add_extension(
            x509.KeyUsage(
                digital_signature=spec.digital_signature,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=spec.key_cert_sign,
                crl_sign=spec.crl_sign,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if spec.ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=spec.ca, path_length=None), critical=True
        )
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in spec.uris]
    names += [x509.DNSName(d) for d in spec.dns]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if not spec.ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    if spec.with_key_ids:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        ).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    for extension in spec.extra:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class Pki:
    """A test root, an intermediate under it, and an unrelated root."""

    root: x509.Certificate
    intermediate: x509.Certificate
    other_root: x509.Certificate
