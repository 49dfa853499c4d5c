"""Check: a DestinationRule's client TLS contradicting the callee's inbound mTLS (MW0520,
MW0521, MW0525).

Reference: Kiali KIA0207/KIA0208 (DestinationRule and PeerAuthentication mTLS disagree),
KIA0501 and KIA0505 (mesh/namespace mTLS vs. a DestinationRule's mode). A DestinationRule
that sets `tls.mode` overrides auto-mTLS (Istio DestinationRule reference), so:
DISABLE towards a STRICT port → the callee refuses plaintext; ISTIO_MUTUAL towards a pod
without a sidecar or a DISABLE port → the callee cannot terminate mTLS. Either way traffic
fails. SIMPLE/MUTUAL (TLS origination) replaces Istio mTLS too, so towards a STRICT sidecar
the callee gets a handshake without a mesh certificate and refuses it (MW0525; origination is
meant for servers that terminate TLS themselves). Uses the model's per-caller outbound
decisions (`tls_source` names the rule); one finding per (rule, service port). Called from
the check table in analyze/analysis.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from meshward.analyze.facts import Facts, at, finding
from meshward.diagnostics import Diagnostic
from meshward.model.ir import EffectiveMtls, OutboundService, PodKey

# model/upstream_tls.py writes the deciding rule as `DestinationRule ns/name [(port N)]`.
_SOURCE = re.compile(r"^(DestinationRule \S+)(?: \(port (\d+)\))?$")


def deciding_rule(service: OutboundService) -> tuple[str, str] | None:
    """(`DestinationRule ns/name`, the field that decided) for a service port whose TLS a
    rule set, else None (auto-mTLS)."""
    match = _SOURCE.match(service.tls_source)
    if match is None:
        return None
    ref, port_level = match.groups()
    return ref, "spec.trafficPolicy.portLevelSettings" if port_level else "spec.trafficPolicy.tls"


def _inbound_modes(facts: Facts) -> dict[tuple[PodKey, int], EffectiveMtls]:
    return {
        (proxy.pod.key, port.port): port.mtls
        for proxy in facts.model.proxies
        for port in proxy.inbound
    }


def tls_contradictions(facts: Facts) -> Iterator[Diagnostic]:
    """MW0520/MW0521/MW0525 for every service port a DestinationRule sets TLS for."""
    modes = _inbound_modes(facts)
    sidecar = {pod.key: pod.has_sidecar for pod in facts.model.pods}
    seen: set[tuple[str, str, int]] = set()
    for proxy in facts.model.proxies:
        for service in proxy.outbound:
            rule = deciding_rule(service)
            if rule is None or service.tls == "AUTO":
                continue
            ref, field = rule
            if (ref, service.fqdn, service.port) in seen:
                continue
            problem = _problem(service, modes, sidecar)
            if problem is None:
                continue
            seen.add((ref, service.fqdn, service.port))
            code = _CODES.get(service.tls, "MW0521")
            yield finding(
                code,
                ref,
                at(facts.meta(ref), field),
                f"{service.tls} to {service.fqdn}:{service.port}, but {problem}",
            )


_CODES = {"DISABLE": "MW0520", "ISTIO_MUTUAL": "MW0521", "SIMPLE": "MW0525", "MUTUAL": "MW0525"}


def _problem(
    service: OutboundService,
    modes: dict[tuple[PodKey, int], EffectiveMtls],
    sidecar: dict[PodKey, bool],
) -> str | None:
    """Why `service`'s TLS setting fails for its first endpoint that refuses it, or None."""
    for endpoint in service.endpoints:
        where = f"pod {endpoint.pod} port {endpoint.port}"
        mode = modes.get((endpoint.pod, endpoint.port))
        if service.tls == "DISABLE" and mode == "STRICT":
            return f"{where} is STRICT (refuses plaintext)"
        if service.tls in ("SIMPLE", "MUTUAL") and sidecar.get(endpoint.pod) and mode == "STRICT":
            return f"{where} has a STRICT sidecar (wants Istio mTLS, not the rule's certificates)"
        if service.tls == "ISTIO_MUTUAL":
            if not sidecar.get(endpoint.pod, False):
                return f"{where} has no sidecar (cannot terminate mTLS)"
            if mode == "DISABLE":
                return f"{where} has mTLS DISABLEd"
    return None
