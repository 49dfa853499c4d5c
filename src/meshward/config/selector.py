"""Istio's `WorkloadSelector` (`{matchLabels: {...}}`), shared by the policy kinds.

Called by `peer_authentication` (`spec.selector`) and `destination_rule`
(`spec.workloadSelector`); `refuse_target_ref` by the policy kinds that Istio also lets attach
by `targetRef`. Istio treats a selector with no labels as no selector at all
(pilot `model.PolicyMatcher`: an empty `matchLabels` selects the whole namespace), so both
absent and empty give None.
"""

from __future__ import annotations

from meshward.config.fields import Fields
from meshward.config.resources import Labels


def parse(spec: Fields, key: str) -> Labels | None:
    """The selector's labels, or None when absent or empty."""
    selector = spec.mapping(key)
    if selector is None:
        return None
    match = selector.labels("matchLabels")
    selector.finish()
    return match or None


def refuse_target_ref(spec: Fields, code: str) -> None:
    """`targetRef`/`targetRefs` (Istio's attachment to a Gateway or Service) are refused with
    `code`: a policy meshward cannot attach that way is refused rather than applied to
    nothing, so it never silently protects less than its author meant."""
    for key in ("targetRef", "targetRefs"):
        if spec.take(key) is not None:
            spec.disallow(
                key,
                f"{key} (attaching to a Gateway or Service) is not supported; use `selector` "
                "(the policy is refused rather than applied to nothing)",
                code=code,
            )
