"""Go-style durations ("24h", "90m", "1h30m", "1.5h", "45s"), as Istio's API writes them.

Called by `meshward.config.mesh_config` for `workloadCertTTL`. Follows Go's
`time.ParseDuration`: a sequence of decimal numbers with a unit each (ns, us, µs, ms, s, m, h),
an optional leading sign; "0" alone is zero. Days are not a Go unit, so "1d" is invalid.
"""

from __future__ import annotations

import re
from fractions import Fraction

_UNITS: dict[str, Fraction] = {
    "ns": Fraction(1, 1_000_000_000),
    "us": Fraction(1, 1_000_000),
    "µs": Fraction(1, 1_000_000),  # U+00B5 micro sign
    "μs": Fraction(1, 1_000_000),  # U+03BC greek mu
    "ms": Fraction(1, 1000),
    "s": Fraction(1),
    "m": Fraction(60),
    "h": Fraction(3600),
}
# Longest units first so "ms" is not read as "m" followed by "s".
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> Fraction | None:
    """The duration in seconds, or None if `text` is not a Go duration."""
    body = text[1:] if text[:1] in "+-" else text
    negative = text.startswith("-")
    if body == "0":
        return Fraction(0)
    if not body:
        return None
    total = Fraction(0)
    position = 0
    while position < len(body):
        match = _PART.match(body, position)
        if match is None:
            return None
        total += Fraction(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    return -total if negative else total
