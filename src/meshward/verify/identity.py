"""The verifier's own credentials: an SVID from the mesh CA, and one from a foreign CA.

The verifier is an operator tool reading the state directory, so it signs its probe identity
with the mesh CA directly (`spiffe://<td>/ns/<root-ns>/sa/meshward-verifier`, short-lived);
the foreign CA is a fresh root made for each run — a client the mesh must not trust.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from meshward.agent.keys import csr_for, key_pem, new_private_key
from meshward.ca.authority import CertificateAuthority
from meshward.identity import SpiffeId
from meshward.state.records import write_bytes

PROBE_TTL = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class ProbeCredential:
    identity: SpiffeId
    cert_path: Path  # chain, leaf first
    key_path: Path


def issue(ca: CertificateAuthority, identity: SpiffeId, directory: Path) -> ProbeCredential:
    key = new_private_key()
    issued = ca.sign(csr_for(key), identity, ttl=PROBE_TTL, now=datetime.now(UTC))
    cert_path = directory / f"{identity.service_account}.crt"
    key_path = directory / f"{identity.service_account}.key"
    write_bytes(cert_path, issued.chain_pem, mode=0o600)
    write_bytes(key_path, key_pem(key), mode=0o600)
    return ProbeCredential(identity, cert_path, key_path)


def foreign(trust_domain: str, namespace: str, directory: Path) -> ProbeCredential:
    """A client certificate for a plausible identity, signed by a root the mesh never saw."""
    rogue = CertificateAuthority.load_or_create(
        directory / "foreign-ca", trust_domain=trust_domain, now=datetime.now(UTC)
    )
    return issue(rogue, SpiffeId(trust_domain, namespace, "impostor"), directory)
