"""Checks: mesh-wide traffic capture and egress (MW0530, MW0531).

References: Istio `outboundTrafficPolicy` (ALLOW_ANY vs REGISTRY_ONLY; IST0134-style
egress hardening) and the seeds' warning that sidecars must not be bypassable. ALLOW_ANY
(the default) is reported once per mesh as info; REGISTRY_ONLY is quiet (it is enforced in
the netns network mode, where traffic cannot bypass the sidecar). Loopback mode (runner.json
`network`) captures nothing: an app can connect to another pod's app address directly;
reported with `--live` only, because only a running mesh has a mode. Called from the check
table in analyze/analysis.py.
"""

from __future__ import annotations

from collections.abc import Iterator

from meshward.analyze.facts import Facts, finding
from meshward.diagnostics import Diagnostic, Location


def outbound_unrestricted(facts: Facts) -> Iterator[Diagnostic]:
    """MW0530 once, when the mesh has at least one sidecar and allows any destination."""
    if not facts.model.proxies or facts.model.outbound_policy != "ALLOW_ANY":
        return
    resource, location = facts.mesh_resource()
    yield finding(
        "MW0530",
        resource,
        location,
        "sidecars pass outbound traffic to any destination (outboundTrafficPolicy ALLOW_ANY)",
    )


def loopback_mode(facts: Facts) -> Iterator[Diagnostic]:
    """MW0531 when the running mesh uses loopback networking."""
    if facts.live is None or facts.live.network != "loopback":
        return
    yield finding(
        "MW0531",
        "mesh",
        Location(file=facts.live.source, field="network"),
        "network mode loopback: apps reach the mesh through their sidecar by convention; "
        "an app can connect to another pod's app address directly and bypass mTLS",
    )
