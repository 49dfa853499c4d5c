"""The result of one probe: what was tried, what was expected, what was seen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Check = Literal[
    "plaintext-refused",
    "plaintext-accepted",
    "foreign-ca-refused",
    "served-svid",
    "mtls-between-sidecars",
    "plaintext-to-legacy",
    "authz",
    "authz-dry-run",
    "authz-custom",
    "jwt",
    "jwks",
    "no-bypass",
    "outside-through-sidecar",
    "egress-policy",
    "registered-egress",
    "gateway-certificate",
    "gateway-mutual-refused",
    "gateway-min-version",
    "gateway-passthrough",
    "tls-origination",
    "egress-gateway",
    "egress-gateway-denied",
    "tls-passthrough",
]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    check: Check
    target: str  # e.g. "core/user-service-0 port 8080"
    expected: str
    observed: str
    passed: bool
