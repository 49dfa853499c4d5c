"""Checks: certificate lifetimes — the CA's own certificates (MW0420/MW0421 from
`CertificateAuthority.health`, MW0533) and the workload certificate TTL (MW0532).

References: Istio plug-in CA guidance (rotate the root and intermediates before they expire;
RFC 5280 §6: a chain is only valid while every certificate on it is) and SPIFFE X509-SVID
(short-lived workload certificates; Istio's default workload TTL is 24h). `ca_health` reads
the CA directory (I/O) and is called by the CLI; the table checks stay pure.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from meshward.analyze.facts import Facts, at, finding
from meshward.ca import plugin
from meshward.ca.authority import EXPIRY_WARNING, CertificateAuthority
from meshward.ca.credentials import WorkloadTokens
from meshward.diagnostics import Diagnostic, Location
from meshward.errors import CertificateError


def ca_health(
    directory: Path, *, trust_domain: str, now: datetime, window: timedelta = EXPIRY_WARNING
) -> tuple[Diagnostic, ...]:
    """MW0420/MW0421 for the plug-in CA files in `directory` (none there: nothing to say);
    MW0533 when they cannot be loaded (incomplete, mismatched or already expired)."""
    try:
        material = plugin.load(directory, now=now)
    except CertificateError as error:
        return (finding("MW0533", "CA", Location(file=str(directory)), str(error)),)
    if material is None:
        return ()
    # health() needs a whole CertificateAuthority; the token key plays no part in it, and
    # load_or_create would write one into the user's CA directory, so use a throwaway key.
    tokens = WorkloadTokens(ec.generate_private_key(ec.SECP256R1()))
    authority = CertificateAuthority(trust_domain, material, tokens, directory)
    return authority.health(now, window)


def ca_expiry(facts: Facts) -> Iterator[Diagnostic]:
    """The CA findings the caller read (`Facts.ca_health`)."""
    yield from facts.ca_health


def workload_cert_ttl(facts: Facts) -> Iterator[Diagnostic]:
    """MW0532 when MeshConfig's workloadCertTTL exceeds the allowed maximum."""
    ttl = facts.config.mesh.cert_ttl_seconds
    if ttl <= facts.max_cert_ttl_seconds:
        return
    resource, _ = facts.mesh_resource()
    yield finding(
        "MW0532",
        resource,
        at(facts.config.mesh.meta, "spec.workloadCertTTL"),
        f"workload certificates live {timedelta(seconds=ttl)}, above the maximum "
        f"{timedelta(seconds=facts.max_cert_ttl_seconds)}",
    )
