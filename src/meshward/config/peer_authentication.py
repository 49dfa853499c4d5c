"""`security.istio.io/v1` (and v1beta1) PeerAuthentication → `resources.PeerAuthentication`.

Called by `meshward.config.kind`. Follows the Istio API reference
(istio.io/latest/docs/reference/config/security/peer_authentication/): `selector`,
`mtls.mode` and `portLevelMtls` (a map from workload port number to `{mode}`).

Istio ignores `portLevelMtls` on a policy without a selector (it logs and moves on); a
silently ignored security setting is unsafe, so meshward rejects it (MW0121).
"""

from __future__ import annotations

from typing import cast

from meshward.config import selector as workload_selector
from meshward.config.fields import Fields, open_mapping
from meshward.config.resources import Labels, Meta, MtlsMode, PeerAuthentication

MODES: tuple[MtlsMode, ...] = ("UNSET", "DISABLE", "PERMISSIVE", "STRICT")


def parse(spec: Fields, meta: Meta, labels: Labels) -> PeerAuthentication | None:
    """The PeerAuthentication, or None if any field was reported as an error."""
    del labels
    selector = workload_selector.parse(spec, "selector")
    mode = _mode(spec.mapping("mtls"))
    port_level = _port_level(spec)
    if port_level and selector is None:
        spec.disallow(
            "portLevelMtls",
            "portLevelMtls applies to workload ports and needs a selector with matchLabels",
            code="MW0121",
        )
    spec.finish()
    if spec.report.failed:
        return None
    return PeerAuthentication(meta, selector, mode, port_level)


def _mode(mtls: Fields | None) -> MtlsMode | None:
    """None when `mtls` is absent; an `mtls` without `mode` is UNSET (the proto default)."""
    if mtls is None:
        return None
    mode = mtls.choice("mode", MODES)
    mtls.finish()
    return cast(MtlsMode, mode or "UNSET")


def _port_level(spec: Fields) -> tuple[tuple[int, MtlsMode], ...]:
    entries = spec.entries("portLevelMtls")
    if entries is None:
        return ()
    levels: list[tuple[int, MtlsMode]] = []
    for entry in entries:
        path = f"{spec.field('portLevelMtls')}.{entry.key}"
        # Keys are port numbers; YAML may write them bare (8080) or quoted ("8080").
        port = int(entry.key) if entry.key.isdigit() else None
        if port is None:
            spec.report.add("MW0108", entry.line, path, f"{entry.key!r} is not a port number")
        elif not 1 <= port <= 65535:
            spec.report.add("MW0113", entry.line, path, f"port {port} is outside 1-65535")
            port = None
        mtls = open_mapping(entry.value, path, spec.report)
        mode = _mode(mtls)
        if port is not None and mode is not None:
            levels.append((port, mode))
    return tuple(sorted(levels))
