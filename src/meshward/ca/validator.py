"""The independent X.509-SVID validator: the CA's last check before it returns a certificate.

Called by `meshward.ca.authority` after every signature (SPIRE's shape: template, sign, then
validate with code that shares nothing with the signer), and usable by anyone holding a chain
and a trust bundle (the agent, verify/). It is written from the specs, not from the signer:

- SPIFFE X509-SVID §2: exactly one URI SAN, and it is the SPIFFE ID.
- X509-SVID §4.1 / RFC 5280 §4.2.1.9: a leaf asserts CA:false; signing certs assert CA:true.
- X509-SVID §4.3 / RFC 5280 §4.2.1.3: a leaf has digitalSignature and neither keyCertSign nor
  cRLSign; signing certs have keyCertSign.
- X509-SVID §5.1 / RFC 5280 §6: the chain verifies signature by signature to a bundle root and
  every certificate is inside its validity window at the validation time.

Every rejection raises `CertificateError("<rule>: <detail>")`. The rule names below are stable
(tests and operators match on them); the detail is prose.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.x509 import verification

from meshward.errors import CertificateError
from meshward.identity import SpiffeId

# Stable rule names, one per check, in the order the checks run.
RULE_PARSE = "chain-parse"
RULE_URI_SAN_COUNT = "uri-san-count"
RULE_SPIFFE_ID = "spiffe-id-syntax"
RULE_TRUST_DOMAIN = "trust-domain"
RULE_URI_SAN_MATCH = "uri-san-match"
RULE_NO_DNS_SAN = "no-dns-san"
RULE_DNS_SAN = "dns-san"
RULE_LEAF_NOT_CA = "leaf-not-ca"
RULE_LEAF_DIGITAL_SIGNATURE = "leaf-digital-signature"
RULE_LEAF_NO_CERT_SIGN = "leaf-no-cert-sign"
RULE_NOT_YET_VALID = "not-yet-valid"
RULE_EXPIRED = "expired"
RULE_INTERMEDIATE_CA = "intermediate-ca"
RULE_INTERMEDIATE_KEY_CERT_SIGN = "intermediate-key-cert-sign"
RULE_CHAIN = "chain-verify"


def validate_svid(
    chain_pem: bytes, *, trust_bundle_pem: bytes, expected: SpiffeId, now: datetime
) -> None:
    """Accept `chain_pem` (leaf first, then intermediates) as the X509-SVID of `expected`.

    meshward's workload profile is stricter than the SPIFFE spec in one place: the spec allows
    DNS SANs on an SVID (§2), but the mesh CA never issues one, so a workload SVID carrying a
    DNS SAN was not made by it and is refused (`no-dns-san`).
    """
    leaf, intermediates, roots = _parse(chain_pem, trust_bundle_pem)
    _check_spiffe_uri(leaf, expected)
    if _dns_names(leaf):
        _reject(RULE_NO_DNS_SAN, f"workload SVID carries DNS SANs {_dns_names(leaf)}")
    _check_path(leaf, intermediates, roots, now)


def validate_serving_certificate(
    chain_pem: bytes,
    *,
    trust_bundle_pem: bytes,
    expected: SpiffeId,
    dns_name: str,
    now: datetime,
) -> None:
    """Accept `chain_pem` as the control plane's own TLS serving certificate.

    The same path, leaf and validity rules as an SVID, exactly one URI SAN equal to `expected`,
    and `dns_name` among its DNS SANs (RFC 6125 reference identity the agents dial).
    """
    leaf, intermediates, roots = _parse(chain_pem, trust_bundle_pem)
    _check_spiffe_uri(leaf, expected)
    if dns_name not in _dns_names(leaf):
        _reject(RULE_DNS_SAN, f"DNS SAN {dns_name!r} missing (has {_dns_names(leaf)})")
    _check_path(leaf, intermediates, roots, now)


def _reject(rule: str, detail: str) -> None:
    raise CertificateError(f"{rule}: {detail}")


def _parse(
    chain_pem: bytes, trust_bundle_pem: bytes
) -> tuple[x509.Certificate, list[x509.Certificate], list[x509.Certificate]]:
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
        roots = x509.load_pem_x509_certificates(trust_bundle_pem)
    except ValueError as error:
        raise CertificateError(f"{RULE_PARSE}: {error}") from error
    return chain[0], chain[1:], roots


def _san(cert: x509.Certificate) -> x509.SubjectAlternativeName | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def _dns_names(cert: x509.Certificate) -> list[str]:
    san = _san(cert)
    return [] if san is None else san.get_values_for_type(x509.DNSName)


def _check_spiffe_uri(leaf: x509.Certificate, expected: SpiffeId) -> None:
    san = _san(leaf)
    uris = [] if san is None else san.get_values_for_type(x509.UniformResourceIdentifier)
    # X509-SVID §2: "Validators encountering an SVID containing more than one URI SAN MUST
    # reject the SVID"; none at all means there is no SPIFFE ID.
    if len(uris) != 1:
        _reject(RULE_URI_SAN_COUNT, f"leaf has {len(uris)} URI SANs, want exactly 1: {uris}")
    try:
        presented = SpiffeId.parse(uris[0])
    except ValueError as error:
        raise CertificateError(f"{RULE_SPIFFE_ID}: {error}") from error
    # X509-SVID §5.2 ties the leaf to the trust domain of the bundle it was checked against.
    if presented.trust_domain != expected.trust_domain:
        _reject(
            RULE_TRUST_DOMAIN,
            f"leaf is in trust domain {presented.trust_domain!r}, want {expected.trust_domain!r}",
        )
    if presented != expected:
        _reject(RULE_URI_SAN_MATCH, f"leaf is {presented.uri}, want {expected.uri}")


def _check_leaf_usage(leaf: x509.Certificate) -> None:
    try:
        constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    # X509-SVID §4.1: leaf certificates MUST set cA to false.
    if constraints is not None and constraints.ca:
        _reject(RULE_LEAF_NOT_CA, "leaf asserts basicConstraints cA=true")
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        _reject(RULE_LEAF_DIGITAL_SIGNATURE, "leaf has no keyUsage extension")
        return
    # X509-SVID §4.3: digitalSignature MUST be set; keyCertSign and cRLSign MUST NOT be.
    if not usage.digital_signature:
        _reject(RULE_LEAF_DIGITAL_SIGNATURE, "leaf keyUsage lacks digitalSignature")
    if usage.key_cert_sign or usage.crl_sign:
        _reject(RULE_LEAF_NO_CERT_SIGN, "leaf keyUsage asserts keyCertSign or cRLSign")


def _check_signing_cert(cert: x509.Certificate) -> None:
    # X509-SVID §4.1 and §4.3: signing certificates MUST set cA and keyCertSign.
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        _reject(RULE_INTERMEDIATE_CA, f"signing cert {cert.subject.rfc4514_string()} is not a CA")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or not usage.key_cert_sign:
        _reject(
            RULE_INTERMEDIATE_KEY_CERT_SIGN,
            f"signing cert {cert.subject.rfc4514_string()} lacks keyCertSign",
        )


def _check_validity(cert: x509.Certificate, now: datetime) -> None:
    # RFC 5280 §6.1.3 (a)(2): each certificate in the path must be valid at the current time.
    name = cert.subject.rfc4514_string() or "leaf"
    if now < cert.not_valid_before_utc:
        _reject(RULE_NOT_YET_VALID, f"{name} valid from {cert.not_valid_before_utc.isoformat()}")
    if now > cert.not_valid_after_utc:
        _reject(RULE_EXPIRED, f"{name} expired at {cert.not_valid_after_utc.isoformat()}")


def _check_path(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    roots: list[x509.Certificate],
    now: datetime,
) -> None:
    _check_leaf_usage(leaf)
    for cert in (leaf, *intermediates):
        _check_validity(cert, now)
    for cert in intermediates:
        _check_signing_cert(cert)
    # Path building and signature checks (RFC 5280 §6) come from cryptography's verifier:
    # WebPKI rules for the CA certificates, while the leaf's extensions were checked above
    # against the SPIFFE profile (which WebPKI's end-entity defaults do not describe).
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(roots))
        .time(now)
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=verification.ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(leaf, intermediates)
    except verification.VerificationError as error:
        raise CertificateError(f"{RULE_CHAIN}: {error}") from error
    # The path found must use every intermediate sent: a stray certificate means the sender's
    # chain is not the one it claims to be.
    used = set(verified.chain)
    stray = [cert.subject.rfc4514_string() for cert in intermediates if cert not in used]
    if stray:
        _reject(RULE_CHAIN, f"intermediates not on the path to the root: {stray}")
