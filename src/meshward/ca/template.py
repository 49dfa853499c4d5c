"""Certificate templates: what the CA puts in a root, a workload SVID and its serving cert.

Called by `meshward.ca.authority`, which signs a template and then hands the result to the
independent `meshward.ca.validator`. Every field choice cites the spec it follows; the
validator re-derives the same rules on its own, so a mistake here is caught there.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from ipaddress import IPv4Address, IPv6Address

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshward.errors import CertificateError
from meshward.identity import SpiffeId

# Keys the CA will certify or sign with (RFC 5480 curves Envoy/BoringSSL accept; RSA ≥ 2048 per
# NIST SP 800-131A).
CertifiableKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

ROOT_LIFETIME = timedelta(days=3650)
CLOCK_SKEW = timedelta(minutes=1)
_ORG = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshward")])

# RFC 5280 §4.2.1.3 KeyUsage flags, spelled out once so a template reads as a sentence.
_CA_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)
_LEAF_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=True,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
_LEAF_EKU = x509.ExtendedKeyUsage(
    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
)


def serial_number() -> int:
    """A random positive 128-bit serial (RFC 5280 §4.1.2.2: unique, positive, ≤ 20 octets)."""
    return secrets.randbits(128) or 1


def root(key: SigningKey, *, trust_domain: str, now: datetime) -> x509.Certificate:
    """A self-signed root for `trust_domain`, valid for ten years from `now`."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "meshward"),
            x509.NameAttribute(NameOID.COMMON_NAME, "meshward root CA"),
        ]
    )
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + ROOT_LIFETIME)
        # X509-SVID §4.1/§4.3: signing certificates are CA:true with keyCertSign.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        # X509-SVID §3.2: a signing certificate MAY carry the trust domain's SPIFFE ID.
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(f"spiffe://{trust_domain}")]
            ),
            critical=False,
        )
    )
    return sign(builder, key)


def leaf(
    public: CertifiableKey,
    *,
    identity: SpiffeId,
    issuer: x509.Certificate,
    not_before: datetime,
    not_after: datetime,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[IPv4Address | IPv6Address] = (),
) -> x509.CertificateBuilder:
    """An end-entity template: one URI SAN (the identity), CA:false, TLS client+server use.

    Workload SVIDs pass no DNS names or IPs; only the control plane's serving certificate does.
    """
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.uri)]
    names += [x509.DNSName(name) for name in dns_names]
    names += [x509.IPAddress(address) for address in ip_addresses]
    return (
        x509.CertificateBuilder()
        .subject_name(_ORG)
        .issuer_name(issuer.subject)
        .public_key(public)
        .serial_number(serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        # X509-SVID §2: the SPIFFE ID is the single URI SAN.
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        # X509-SVID §4.1: leaf is CA:false; §4.3: digitalSignature, no cert/CRL signing.
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_LEAF_USAGE, critical=True)
        # X509-SVID §4.4: serverAuth and clientAuth, so one SVID serves both ends of mTLS.
        .add_extension(_LEAF_EKU, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(_authority_key_id(issuer), critical=False)
    )


def _authority_key_id(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    # RFC 5280 §4.2.1.1: AKI equals the issuer's SKI when it has one.
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(_certifiable(issuer.public_key()))
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _certifiable(key: object) -> CertifiableKey:
    if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return key
    raise CertificateError(f"unsupported key type {type(key).__name__}")


def sign(builder: x509.CertificateBuilder, key: SigningKey) -> x509.Certificate:
    """Sign with a hash matching the key's strength (SHA-384 for P-384, else SHA-256)."""
    digest: hashes.SHA256 | hashes.SHA384 = hashes.SHA256()
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        digest = hashes.SHA384()
    return builder.sign(key, digest)
