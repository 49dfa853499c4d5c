"""No input makes the loader raise: every problem is a catalogued diagnostic (bugs only raise)."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from meshward.config import load_text
from meshward.diagnostics.catalog import CATALOG

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(allow_nan=False),
    st.text(max_size=8),
)
_KEYS = st.sampled_from(
    ["apiVersion", "kind", "metadata", "name", "namespace", "spec", "ports", "port", "mtls",
     "mode", "selector", "matchLabels", "portLevelMtls", "trafficPolicy", "tls", "host",
     "command", "labels", "8080", "x"]
)  # fmt: skip
_TREES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)
_HEADS = st.sampled_from(
    [
        {"apiVersion": "v1", "kind": "Service"},
        {"apiVersion": "meshward.io/v1alpha1", "kind": "Workload"},
        {"apiVersion": "meshward.io/v1alpha1", "kind": "MeshConfig"},
        {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication"},
        {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule"},
    ]
)


def _check(text: str) -> None:
    result = load_text(text, "fuzz.yaml")
    for diagnostic in result.diagnostics:
        assert diagnostic.code in CATALOG
        assert diagnostic.level is CATALOG[diagnostic.code].level


@settings(max_examples=150, deadline=None)
@given(head=_HEADS, metadata=_TREES, spec=_TREES)
def test_random_resources_never_raise(head: dict[str, str], metadata: Any, spec: Any) -> None:
    _check(yaml.safe_dump({**head, "metadata": metadata, "spec": spec}))


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet=" \n\t:-[]{}&*!|>'\"#%@`,?abc019", max_size=40))
def test_random_text_never_raises(text: str) -> None:
    _check(text)
