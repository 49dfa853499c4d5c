"""The exception tree of meshward.

User mistakes are data (`meshward.diagnostics.Diagnostic`), not exceptions. Exceptions are for
bugs and for operational failures a caller must handle:

    MeshwardError
    ├── ConfigError            a config set with errors was asked to become a model
    ├── CertificateError       the CA refused to sign or its validator rejected a certificate
    │   └── AuthenticationError  a CSR caller presented no valid credential
    ├── SnapshotError          a snapshot failed its consistency check (a translator bug)
    ├── StateError             the state directory is missing, locked or corrupt
    ├── ProcessError           a supervised process (Envoy, an app) failed to start or died
    └── JwksFetchError         a JWKS or OIDC discovery fetch failed (the last good keys stay)
"""

from __future__ import annotations


class MeshwardError(Exception):
    """Root of every exception meshward raises on purpose."""


class ConfigError(MeshwardError):
    """A config set with error-level diagnostics was used where a valid one is required."""


class CertificateError(MeshwardError):
    """The CA could not issue a certificate, or an issued certificate failed validation."""


class AuthenticationError(CertificateError):
    """The caller of the CSR API did not present a valid credential."""


class SnapshotError(MeshwardError):
    """A snapshot refers to a resource it does not contain (a translator bug)."""


class StateError(MeshwardError):
    """The runner's state directory is missing, locked by another mesh, or unreadable."""


class ProcessError(MeshwardError):
    """A supervised process failed to start, or exited when it should be running."""


class JwksFetchError(MeshwardError):
    """Fetching a key set failed: unreachable, blocked address, not a JWK Set, HTTP error."""
