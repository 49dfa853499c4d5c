"""Check: PERMISSIVE or DISABLE mTLS in force on a sidecar port (MW0501, MW0502).

Reference: the seeds' first common mistake ("permissive instead of strict mTLS"); Istio's
PeerAuthentication reference (nothing set anywhere is PERMISSIVE). Called from the check table
in analyze/analysis.py. One finding per workload port (replicas share it), pointing at the
PeerAuthentication that decided the mode — or the MeshConfig when no policy applies.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from meshward.analyze.facts import Facts, at, finding
from meshward.diagnostics import Diagnostic, Location

# model/peer_authn.py writes the deciding policy as `PeerAuthentication ns/name [(port N)]`.
_SOURCE = re.compile(r"^(PeerAuthentication \S+)(?: \(port (\d+)\))?$")

_CODE = {"PERMISSIVE": "MW0501", "DISABLE": "MW0502"}


def source_location(facts: Facts, source: str) -> Location | None:
    """Where the deciding PeerAuthentication's mode is written; None for the default."""
    match = _SOURCE.match(source)
    if match is None:
        return None
    ref, port = match.groups()
    field = f"spec.portLevelMtls.{port}.mode" if port else "spec.mtls.mode"
    return at(facts.meta(ref), field)


def plaintext_accepted(facts: Facts) -> Iterator[Diagnostic]:
    """MW0501/MW0502: every sidecar port that is not STRICT."""
    for proxy in facts.sidecars():
        key = proxy.pod.key
        for port in proxy.inbound:
            if port.mtls == "STRICT":
                continue
            location = source_location(facts, port.mtls_source)
            if location is None:
                _, location = facts.mesh_resource()
                if not location.file:
                    location = at(facts.workload_meta(key))
            yield finding(
                _CODE[port.mtls],
                f"Workload {key.namespace}/{key.workload}",
                location,
                f"port {port.port} is {port.mtls} (decided by {port.mtls_source})",
            )
