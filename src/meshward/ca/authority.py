"""The certificate authority: turns an authenticated CSR into a validated X.509-SVID.

Called by the CSR API (`meshward.server.ca_service`) and by the runner, which creates or loads
the CA directory. SPIRE's shape: build a template (`meshward.ca.template`), sign it, then run
the independent validator (`meshward.ca.validator`) before anything is returned, so the CA
never hands out a certificate that a relying party would reject. Time (`now`) and keys are
always injected.

The identity in a certificate comes from the authenticated caller, never from the CSR: the CSR
contributes its public key and its proof of possession (its signature), nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from meshward.ca import plugin, rotation, template, validator
from meshward.ca.credentials import WorkloadTokens
from meshward.diagnostics import Diagnostic, Level, Location
from meshward.errors import CertificateError
from meshward.identity import SpiffeId

log = logging.getLogger("meshward.ca")

MIN_TTL = timedelta(seconds=60)
MAX_TTL = timedelta(days=90)
# Warn this long before a CA certificate lapses: a root rotation needs every workload to
# receive the new bundle first, which takes at least one full leaf rotation cycle.
EXPIRY_WARNING = timedelta(days=30)
_CURVES = ("secp256r1", "secp384r1")
_MIN_RSA_BITS = 2048


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """What a caller receives: leaf + intermediates (PEM), the root (PEM) and the validity."""

    chain_pem: bytes
    root_pem: bytes
    not_after: datetime
    not_before: datetime


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)


@dataclass(frozen=True, slots=True, repr=False)
class CertificateAuthority:
    """A loaded CA: signing material for `trust_domain` plus the workload-token key."""

    trust_domain: str
    material: plugin.SigningMaterial
    tokens: WorkloadTokens
    directory: Path

    def __repr__(self) -> str:
        subject = self.material.cert.subject.rfc4514_string()
        return f"CertificateAuthority(trust_domain={self.trust_domain!r}, signer={subject!r})"

    @classmethod
    def load_or_create(
        cls,
        directory: Path,
        *,
        trust_domain: str,
        now: datetime,
        key: template.SigningKey | None = None,
        token_key: ec.EllipticCurvePrivateKey | None = None,
    ) -> CertificateAuthority:
        """Use the Istio plug-in files in `directory`, or create a self-signed root there.

        `key`/`token_key` are used only when new keys are needed (tests inject them).
        Raises CertificateError for incomplete, mismatched, unlinked or expired plug-in files.
        """
        material = plugin.load(directory, now=now)
        if material is None:
            material = plugin.create(
                directory,
                trust_domain=trust_domain,
                now=now,
                key=key or ec.generate_private_key(ec.SECP256R1()),
            )
        tokens = WorkloadTokens.load_or_create(directory, key=token_key)
        return cls(trust_domain, material, tokens, directory)

    @property
    def trust_bundle_pem(self) -> bytes:
        """The root certificate (PEM) every workload trusts (Envoy's `ROOTCA` secret)."""
        return _pem(self.material.root)

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """The certificates sent after a leaf: ca-cert and its issuers, root excluded."""
        return self.material.intermediates

    def sign(
        self, csr_pem: bytes, identity: SpiffeId, *, ttl: timedelta, now: datetime
    ) -> IssuedCertificate:
        """An X.509-SVID for `identity` (the authenticated caller) over the CSR's public key."""
        if identity.trust_domain != self.trust_domain:
            raise CertificateError(
                f"identity {identity.uri} is outside trust domain {self.trust_domain!r}"
            )
        public = _csr_public_key(csr_pem)
        not_before, not_after = self._validity(ttl, now)
        builder = template.leaf(
            public,
            identity=identity,
            issuer=self.material.cert,
            not_before=not_before,
            not_after=not_after,
        )
        leaf = template.sign(builder, self.material.key)
        issued = self._issued(leaf)
        validator.validate_svid(
            issued.chain_pem, trust_bundle_pem=issued.root_pem, expected=identity, now=now
        )
        log.info("issued %s serial=%x not_after=%s", identity.uri, leaf.serial_number, not_after)
        return issued

    def issue_server_cert(
        self,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        *,
        identity: SpiffeId,
        dns_names: Sequence[str],
        ip_addresses: Sequence[IPv4Address | IPv6Address] = (),
        ttl: timedelta,
        now: datetime,
    ) -> IssuedCertificate:
        """The control plane's own TLS serving certificate: the SPIFFE identity plus the DNS
        names and IPs agents dial. Never used for workloads (their SVIDs carry no DNS SAN)."""
        if not dns_names:
            raise CertificateError("a serving certificate needs at least one DNS name")
        _check_public_key(public_key)
        not_before, not_after = self._validity(ttl, now)
        builder = template.leaf(
            public_key,
            identity=identity,
            issuer=self.material.cert,
            not_before=not_before,
            not_after=not_after,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
        )
        leaf = template.sign(builder, self.material.key)
        issued = self._issued(leaf)
        validator.validate_serving_certificate(
            issued.chain_pem,
            trust_bundle_pem=issued.root_pem,
            expected=identity,
            dns_name=dns_names[0],
            now=now,
        )
        log.info(
            "issued serving cert %s %s serial=%x not_after=%s",
            identity.uri,
            list(dns_names),
            leaf.serial_number,
            not_after,
        )
        return issued

    def health(self, now: datetime, window: timedelta = EXPIRY_WARNING) -> tuple[Diagnostic, ...]:
        """MW0420/MW0421 for CA certificates that expire within `window` or have expired."""
        found: list[Diagnostic] = []
        for cert in (*self.material.intermediates, self.material.root):
            if not rotation.expires_within(cert, now, window):
                continue
            expired = cert.not_valid_after_utc <= now
            found.append(
                Diagnostic(
                    code="MW0421" if expired else "MW0420",
                    level=Level.ERROR if expired else Level.WARNING,
                    resource=f"CA {cert.subject.rfc4514_string()}",
                    location=Location(file=str(self.directory)),
                    message=f"expires {cert.not_valid_after_utc.isoformat()}",
                )
            )
        return tuple(found)

    def _validity(self, ttl: timedelta, now: datetime) -> tuple[datetime, datetime]:
        if not MIN_TTL <= ttl <= MAX_TTL:
            raise CertificateError(f"TTL {ttl} outside {MIN_TTL} .. {MAX_TTL}")
        # A leaf must not outlive any certificate above it (RFC 5280 §6: the whole path must be
        # valid), so cap at the earliest expiry on the path.
        ceiling = min(c.not_valid_after_utc for c in (self.material.cert, self.material.root))
        ceiling = min([ceiling, *(c.not_valid_after_utc for c in self.material.intermediates)])
        not_after = min(now + ttl, ceiling)
        if not_after <= now:
            raise CertificateError(f"CA certificate expired at {ceiling.isoformat()}")
        # One minute of back-dating absorbs clock skew between the CA and relying parties.
        return now - template.CLOCK_SKEW, not_after

    def _issued(self, leaf: x509.Certificate) -> IssuedCertificate:
        return IssuedCertificate(
            chain_pem=_pem(leaf, *self.material.intermediates),
            root_pem=self.trust_bundle_pem,
            not_after=leaf.not_valid_after_utc,
            not_before=leaf.not_valid_before_utc,
        )


def _csr_public_key(csr_pem: bytes) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as error:
        raise CertificateError(f"malformed CSR: {error}") from error
    # PKCS#10 (RFC 2986 §3): the signature proves the requester holds the private key.
    if not csr.is_signature_valid:
        raise CertificateError("CSR signature does not verify (no proof of possession)")
    public = csr.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise CertificateError(f"CSR key type {type(public).__name__} not accepted")
    _check_public_key(public)
    return public


def _check_public_key(public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> None:
    if isinstance(public, rsa.RSAPublicKey):
        if public.key_size < _MIN_RSA_BITS:
            raise CertificateError(f"RSA key of {public.key_size} bits: at least 2048 required")
    elif public.curve.name not in _CURVES:
        raise CertificateError(f"EC curve {public.curve.name} not accepted: P-256 or P-384")
