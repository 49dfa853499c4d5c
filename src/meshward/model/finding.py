"""Model findings: how model/ turns a problem between resources into a coded Diagnostic.

Called by every model/ module that reports (services, peer_authn, upstream_tls). The level
comes from the catalog, so a code's severity is decided in one place.
"""

from __future__ import annotations

from meshward.config.resources import Meta
from meshward.diagnostics import Diagnostic, Location, catalog


def finding(code: str, meta: Meta, field: str, message: str) -> Diagnostic:
    """A diagnostic `code` against the resource `meta`, pointing at `field` of it."""
    return Diagnostic(
        code=code,
        level=catalog.lookup(code).level,
        resource=meta.ref,
        location=Location(file=meta.file, line=meta.line, field=field),
        message=message,
    )
