"""`networking.istio.io/v1` (and v1beta1, v1alpha3) Sidecar → `resources.Sidecar`.

Called by `meshward.config.kind`. Follows the Istio API reference
(istio.io/latest/docs/reference/config/networking/sidecar/): `workloadSelector.labels`,
`egress[].hosts` (`namespace/dnsName`; `.` is the Sidecar's namespace, `*` any, `~` none;
dnsName `*`, `*.suffix` or a name) and `outboundTrafficPolicy.mode`. Hosts of every egress
listener are merged: meshward has no per-port egress listeners, so an egress `port`, `bind`
or `captureMode` is refused (MW0168), as are `ingress` listeners (MW0167) — refused rather
than ignored, since ignoring them would route or listen differently from what was written.
A malformed host is MW0159.
"""

from __future__ import annotations

from meshward.config import names
from meshward.config.fields import Fields
from meshward.config.resources import Labels, Meta, OutboundPolicy, Sidecar, SidecarEgressHost

_POLICIES = ("ALLOW_ANY", "REGISTRY_ONLY")


def _host(value: str, namespace: str) -> SidecarEgressHost | None:
    ns, slash, host = value.partition("/")
    if not slash or not host:
        return None
    if ns not in ("*", ".", "~") and not names.is_dns_label(ns):
        return None
    name = host[2:] if host.startswith("*.") else host
    if host != "*" and not names.is_dns_subdomain(name.lower()):
        return None
    return SidecarEgressHost(namespace if ns == "." else ns, host)


def parse(spec: Fields, meta: Meta, labels: Labels) -> Sidecar | None:
    """The Sidecar, or None if any field was reported as an error."""
    del labels
    selector = None
    workload = spec.mapping("workloadSelector")
    if workload is not None:
        selector = workload.labels("labels") or None
        workload.finish()
    hosts: list[SidecarEgressHost] | None = None
    for item in spec.items("egress") or ():
        hosts = hosts if hosts is not None else []
        for value in item.strings("hosts", required=True) or ():
            host = _host(value, meta.namespace)
            if host is None:
                item.disallow("hosts", f"{value!r} is not namespace/dnsName", code="MW0159")
            else:
                hosts.append(host)
        for key in ("port", "bind", "captureMode", "defaultEndpoint"):
            if item.take(key) is not None:
                item.disallow(key, f"egress {key} is not supported; refused", code="MW0168")
        item.finish()
    if spec.take("ingress") is not None:
        spec.disallow("ingress", "Sidecar ingress listeners are not supported", code="MW0167")
    policy: OutboundPolicy | None = None
    outbound = spec.mapping("outboundTrafficPolicy")
    if outbound is not None:
        mode = outbound.choice("mode", _POLICIES)
        if outbound.take("egressProxy") is not None:
            outbound.disallow("egressProxy", "egressProxy is not supported", code="MW0168")
        outbound.finish()
        policy = "REGISTRY_ONLY" if mode == "REGISTRY_ONLY" else "ALLOW_ANY" if mode else None
    for key in ("inboundConnectionPool",):
        if spec.take(key) is not None:
            spec.disallow(key, f"{key} is not enforced yet; accepted and ignored", "MW0126")
    spec.finish()
    if spec.report.failed:
        return None
    return Sidecar(meta, selector, None if hosts is None else tuple(hosts), policy)
