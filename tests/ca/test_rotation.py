"""Rotation decisions at injected instants."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from ca_testkit import CA_SPEC, NOW, Keys, make_cert

from meshward.ca import rotation

DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("lifetime", "elapsed", "due"),
    [
        (DAY, timedelta(0), False),
        (DAY, timedelta(hours=11, minutes=59, seconds=59), False),
        (DAY, timedelta(hours=12), True),
        (DAY, timedelta(hours=23), True),
        (DAY, timedelta(days=2), True),  # already expired: certainly due
        (timedelta(minutes=2), timedelta(seconds=59), False),
        (timedelta(minutes=2), timedelta(seconds=60), True),
        (timedelta(days=90), timedelta(days=44), False),
        (timedelta(days=90), timedelta(days=45), True),
    ],
)
def test_rotation_due_at_half_life(lifetime: timedelta, elapsed: timedelta, due: bool) -> None:
    assert rotation.rotation_due(NOW, NOW + lifetime, NOW + elapsed) is due


def test_next_rotation_is_the_midpoint() -> None:
    assert rotation.next_rotation(NOW, NOW + DAY) == NOW + timedelta(hours=12)


@pytest.mark.parametrize(
    ("left", "window", "expected"),
    [
        (timedelta(days=31), timedelta(days=30), False),
        (timedelta(days=30), timedelta(days=30), True),
        (timedelta(days=1), timedelta(days=30), True),
        (-timedelta(days=1), timedelta(0), True),
    ],
)
def test_expires_within(keys: Keys, left: timedelta, window: timedelta, expected: bool) -> None:
    cert = make_cert(
        replace(CA_SPEC, not_before=NOW - DAY, not_after=NOW + left), keys.root, None, keys.root
    )
    assert rotation.expires_within(cert, NOW, window) is expected
