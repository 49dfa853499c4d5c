"""SPIFFE identities: the one identity type every layer shares.

A workload's identity is `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>` (Istio's
form of a SPIFFE ID, carried in the URI SAN of an X.509-SVID). Used by the CA (what it signs),
the model (who a workload is) and the translator (which SANs a client accepts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# SPIFFE ID spec §2.1: trust domain is lowercase letters, digits, dots, dashes, underscores.
_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]{1,255}$")
# Kubernetes DNS-1123 label, the shape of namespaces and service-account names.
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_URI = re.compile(r"^spiffe://([^/]+)/ns/([^/]+)/sa/([^/]+)$")


def is_trust_domain(value: str) -> bool:
    """True if `value` is a valid SPIFFE trust domain name."""
    return bool(_TRUST_DOMAIN.match(value))


def is_dns_label(value: str) -> bool:
    """True if `value` is a DNS-1123 label (namespace, service account, service name)."""
    return bool(_LABEL.match(value))


@dataclass(frozen=True, slots=True, order=True)
class SpiffeId:
    """`spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>`."""

    trust_domain: str
    namespace: str
    service_account: str

    def __post_init__(self) -> None:
        if not is_trust_domain(self.trust_domain):
            raise ValueError(f"invalid SPIFFE trust domain {self.trust_domain!r}")
        for part in (self.namespace, self.service_account):
            if not is_dns_label(part):
                raise ValueError(f"invalid SPIFFE path segment {part!r}")

    @property
    def uri(self) -> str:
        return f"spiffe://{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    @property
    def principal(self) -> str:
        """Istio's principal form (the URI without the scheme), used in AuthorizationPolicy."""
        return self.uri.removeprefix("spiffe://")

    @classmethod
    def parse(cls, uri: str) -> SpiffeId:
        """Parse the Istio form of a SPIFFE ID; raises ValueError on anything else."""
        match = _URI.match(uri)
        if match is None:
            raise ValueError(f"not an Istio SPIFFE ID: {uri!r}")
        return cls(match.group(1), match.group(2), match.group(3))

    def __str__(self) -> str:
        return self.uri
