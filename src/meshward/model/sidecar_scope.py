"""Sidecar scope: which Sidecar resource applies to a proxy, and which services it lets the
proxy see.

Called by model/proxies.py for every sidecar pod. Istio's rules (istio.io reference "Sidecar";
pilot `SidecarScope`):
- a Sidecar with a `workloadSelector` applies to the matching workloads of its own namespace
  and wins over the namespace's default (the Sidecar without selector); among several, the
  oldest wins; without either, the root namespace's default Sidecar applies mesh-wide;
- `egress[].hosts` lists `namespace/dnsName` patterns; a service (mesh Service by its FQDN,
  ServiceEntry by its host, in the namespace it is declared in) is visible when one matches:
  namespace `*` or equal, dnsName `*`, `*.suffix` or equal; `~` matches nothing;
- a Sidecar without `egress` limits nothing; its `outboundTrafficPolicy` replaces
  MeshConfig's for the proxies it applies to.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshward.config.resources import Labels, Sidecar, selector_matches
from meshward.model import ir, upstream_tls


def select(
    sidecars: Sequence[Sidecar], root_namespace: str, namespace: str, labels: Labels
) -> Sidecar | None:
    """The Sidecar that applies to a proxy in `namespace` with `labels`, or None."""
    ordered = sorted(sidecars, key=lambda s: s.meta.order)
    for sidecar in ordered:
        selector = sidecar.workload_selector
        if sidecar.meta.namespace == namespace and selector and selector_matches(selector, labels):
            return sidecar
    for ns in (namespace, root_namespace):
        for sidecar in ordered:
            if sidecar.meta.namespace == ns and not sidecar.workload_selector:
                return sidecar
    return None


def visible(sidecar: Sidecar | None, service: ir.OutboundService) -> bool:
    """Whether `sidecar`'s egress hosts let its proxies see `service`."""
    if sidecar is None or sidecar.egress_hosts is None:
        return True
    return any(
        host.namespace in ("*", service.namespace)
        and upstream_tls.host_matches(host.host, service.fqdn)
        for host in sidecar.egress_hosts
    )
