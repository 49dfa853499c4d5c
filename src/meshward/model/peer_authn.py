"""PeerAuthentication: the effective inbound mTLS mode of every pod port, as Istio decides it.

Called by `meshward.model.mesh.build` (inbound ports) and model/upstream_tls.py (auto-mTLS
needs the destination's mode). Semantics copied from Istio (istio.io reference
"PeerAuthentication" and concept "Authentication policy"; pilot `ComposePeerAuthentication`):

- mesh level: a policy without selector in the root namespace; namespace level: a policy
  without selector (an empty `matchLabels` counts as none) in the workload's namespace;
  workload level: a policy in the workload's namespace whose selector matches its labels.
  A policy with a selector in the root namespace is ignored ("PeerAuthentication policies with
  workload selectors are ignored when deployed in the root namespace").
- Precedence workload > namespace > mesh; at one level the oldest policy (smallest
  `Meta.order`) wins. UNSET or absent `mtls` inherits from the level above; nothing set
  anywhere is PERMISSIVE.
- `portLevelMtls` of the winning workload policy applies to the workload (target) port: a
  mode other than UNSET overrides for that port; UNSET takes the workload's resolved mode.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from meshward.config.resources import Labels, MtlsMode, PeerAuthentication, selector_matches
from meshward.diagnostics import Diagnostic
from meshward.model import ir
from meshward.model.finding import finding

DEFAULT_SOURCE = "default (no PeerAuthentication)"

# What each written mode means at a level: None inherits from the level above.
_MODE: dict[MtlsMode, ir.EffectiveMtls | None] = {
    "UNSET": None,
    "STRICT": "STRICT",
    "PERMISSIVE": "PERMISSIVE",
    "DISABLE": "DISABLE",
}


@dataclass(frozen=True, slots=True)
class Decision:
    """An effective mode and the policy that decided it (for status and explain output)."""

    mode: ir.EffectiveMtls
    source: str


@dataclass(frozen=True, slots=True)
class PeerAuthnIndex:
    """The policies sorted into levels, each level's candidates oldest first."""

    root_namespace: str
    mesh: tuple[PeerAuthentication, ...]
    namespace: tuple[PeerAuthentication, ...]
    workload: tuple[PeerAuthentication, ...]
    ignored: tuple[PeerAuthentication, ...]  # selector policies in the root namespace


def _has_selector(policy: PeerAuthentication) -> bool:
    return bool(policy.selector)


def index(policies: Iterable[PeerAuthentication], root_namespace: str) -> PeerAuthnIndex:
    """Sort `policies` into mesh / namespace / workload levels (oldest first in each)."""
    ordered = sorted(policies, key=lambda p: p.meta.order)
    return PeerAuthnIndex(
        root_namespace=root_namespace,
        mesh=tuple(
            p for p in ordered if not _has_selector(p) and p.meta.namespace == root_namespace
        ),
        namespace=tuple(
            p for p in ordered if not _has_selector(p) and p.meta.namespace != root_namespace
        ),
        workload=tuple(
            p for p in ordered if _has_selector(p) and p.meta.namespace != root_namespace
        ),
        ignored=tuple(
            p for p in ordered if _has_selector(p) and p.meta.namespace == root_namespace
        ),
    )


def _selects(policy: PeerAuthentication, namespace: str, labels: Labels) -> bool:
    return (
        policy.meta.namespace == namespace
        and policy.selector is not None
        and selector_matches(policy.selector, labels)
    )


def applicable(
    idx: PeerAuthnIndex, namespace: str, labels: Labels
) -> tuple[tuple[PeerAuthentication, ...], ...]:
    """The candidates at (mesh, namespace, workload) level for one workload, oldest first."""
    return (
        idx.mesh,
        tuple(p for p in idx.namespace if p.meta.namespace == namespace),
        tuple(p for p in idx.workload if _selects(p, namespace, labels)),
    )


def _source(policy: PeerAuthentication) -> str:
    return f"PeerAuthentication {policy.meta.namespace}/{policy.meta.name}"


def decide(idx: PeerAuthnIndex, namespace: str, labels: Labels, port: int) -> Decision:
    """The effective mTLS mode of `port` (a workload port) of a workload in `namespace`."""
    decision = Decision("PERMISSIVE", DEFAULT_SOURCE)
    levels = applicable(idx, namespace, labels)
    # Mesh, then namespace, then workload: each set mode overrides its parent, UNSET inherits.
    for candidates in levels:
        if candidates:
            mode = _MODE[candidates[0].mode or "UNSET"]
            if mode is not None:
                decision = Decision(mode, _source(candidates[0]))
    workload = levels[2]
    if workload:
        port_mode = dict(workload[0].port_level).get(port)
        resolved = _MODE[port_mode] if port_mode is not None else None
        if resolved is not None:
            decision = Decision(resolved, f"{_source(workload[0])} (port {port})")
    return decision


def diagnose(idx: PeerAuthnIndex, pods: Iterable[ir.Pod]) -> tuple[Diagnostic, ...]:
    """MW0205/MW0206/MW0207/MW0209 findings for the policies of `idx` against `pods`."""
    sidecars = [p for p in pods if p.has_sidecar]
    found = [
        finding(
            "MW0209",
            policy.meta,
            "spec.selector",
            "a PeerAuthentication with a selector in the root namespace is ignored; put it "
            "in the workload's namespace",
        )
        for policy in idx.ignored
    ]
    losers: dict[str, tuple[PeerAuthentication, PeerAuthentication]] = {}

    def lose(group: tuple[PeerAuthentication, ...]) -> None:
        for policy in group[1:]:
            losers.setdefault(policy.meta.ref, (policy, group[0]))

    lose(idx.mesh)
    for namespace in sorted({p.meta.namespace for p in idx.namespace}):
        lose(tuple(p for p in idx.namespace if p.meta.namespace == namespace))
    for pod in sidecars:
        lose(tuple(p for p in idx.workload if _selects(p, pod.key.namespace, pod.labels)))
    for policy in idx.workload:
        selected = [pod for pod in sidecars if _selects(policy, pod.key.namespace, pod.labels)]
        if not selected:
            found.append(
                finding(
                    "MW0205",
                    policy.meta,
                    "spec.selector",
                    f"selector {dict(policy.selector or ())} matches no workload with a "
                    f"sidecar in namespace {policy.meta.namespace}",
                )
            )
            continue
        ports = {port.port for pod in selected for port in pod.ports}
        for port, _mode in policy.port_level:
            if port not in ports:
                found.append(
                    finding(
                        "MW0206",
                        policy.meta,
                        f"spec.portLevelMtls.{port}",
                        f"port {port} is not a port of any selected workload "
                        f"(ports: {sorted(ports)}); Istio ignores it",
                    )
                )
    found.extend(
        finding(
            "MW0207",
            policy.meta,
            "metadata.creationTimestamp",
            f"{winner.meta.ref} is older and applies at the same level; this policy is "
            "not used where both apply",
        )
        for policy, winner in losers.values()
    )
    return tuple(found)
