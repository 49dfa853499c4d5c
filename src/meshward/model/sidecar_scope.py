"""Sidecar scope: which Sidecar resource applies to a proxy, which services it lets the proxy
see, and the findings about Sidecars that apply to nobody (MW0241, MW0242).

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
from meshward.diagnostics import Diagnostic
from meshward.model import ir, upstream_tls
from meshward.model.finding import finding


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


def diagnose(sidecars: Sequence[Sidecar], pods: Sequence[ir.Pod]) -> tuple[Diagnostic, ...]:
    """MW0241 (a selector that matches no sidecar pod of its namespace) and MW0242 (a second
    Sidecar without selector in one namespace: only the oldest applies, as in Istio)."""
    found: list[Diagnostic] = []
    defaults: dict[str, Sidecar] = {}
    for sidecar in sorted(sidecars, key=lambda s: s.meta.order):
        namespace, selector = sidecar.meta.namespace, sidecar.workload_selector
        if selector is None:
            first = defaults.setdefault(namespace, sidecar)
            if first is not sidecar:
                found.append(
                    finding(
                        "MW0242",
                        sidecar.meta,
                        "spec",
                        f"{first.meta.ref} is older and also has no workloadSelector; "
                        "it is the namespace's default, this one is ignored",
                    )
                )
        elif not any(
            p.has_sidecar and p.key.namespace == namespace and selector_matches(selector, p.labels)
            for p in pods
        ):
            found.append(
                finding(
                    "MW0241",
                    sidecar.meta,
                    "spec.workloadSelector",
                    f"workloadSelector {dict(selector)} matches no workload with a sidecar "
                    f"in namespace {namespace}",
                )
            )
    return tuple(found)
