"""Istio's `WorkloadSelector` (`{matchLabels: {...}}`), shared by the policy kinds.

Called by `peer_authentication` (`spec.selector`) and `destination_rule`
(`spec.workloadSelector`). Istio treats a selector with no labels as no selector at all
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
