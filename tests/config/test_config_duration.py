"""Go-style durations, as Go's time.ParseDuration reads them."""

from __future__ import annotations

from fractions import Fraction

import pytest

from meshward.config.duration import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("24h", Fraction(86400)),
        ("90m", Fraction(5400)),
        ("1h30m", Fraction(5400)),
        ("1.5h", Fraction(5400)),
        ("45s", Fraction(45)),
        ("300ms", Fraction(3, 10)),
        ("1h0m0.5s", Fraction(7201, 2)),
        (".5s", Fraction(1, 2)),
        ("10us", Fraction(1, 100_000)),
        ("10µs", Fraction(1, 100_000)),
        ("0", Fraction(0)),
        ("+2m", Fraction(120)),
        ("-1s", Fraction(-1)),
    ],
)
def test_valid(text: str, seconds: Fraction) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1d", "h", "10", "1h 30m", "1H", "1.h.5", "-", "s1"])
def test_invalid(text: str) -> None:
    assert parse_duration(text) is None
