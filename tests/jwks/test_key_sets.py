"""KeySets: last good keys stay, backoff, refresh interval, unknown-kid trigger, status."""

from __future__ import annotations

import pytest

from meshward.errors import JwksFetchError
from meshward.jwks.key_sets import KeySets, Source

SOURCE = Source("http://idp/jwks", discovery=False, timeout=5.0)
KEYS_A = '{"keys":[{"kid":"a"}]}'
KEYS_B = '{"keys":[{"kid":"a"},{"kid":"b"}]}'


class Script:
    """A fetcher answering from a list: a string is a key set, an exception is raised."""

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, url: str, **_: object) -> str:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _sets(*answers: str | Exception) -> tuple[KeySets, Script]:
    script = Script(*answers)
    sets = KeySets(refresh_seconds=600, blocked=(), fetcher=script)
    sets.track([SOURCE])
    return sets, script


def test_failure_keeps_last_good_keys_and_backs_off() -> None:
    sets, _ = _sets(KEYS_A, JwksFetchError("down"), JwksFetchError("down"), KEYS_B)
    assert sets.due(0) == [SOURCE]
    assert [s["state"] for s in sets.status()] == ["pending"]
    assert sets.fetch(SOURCE, 0) is True
    assert sets.due(599) == [] and sets.due(600) == [SOURCE]
    assert sets.fetch(SOURCE, 600) is False
    assert sets.keys(SOURCE.url) == KEYS_A  # last good stays in force
    status = sets.status()[0]
    assert (status["state"], status["code"], status["error"], status["failures"]) == (
        "stale",
        "MW0440",
        "down",
        1,
    )
    assert sets.due(600.9) == [] and sets.due(601) == [SOURCE]  # backoff 1 s
    sets.fetch(SOURCE, 601)
    assert sets.due(602.9) == [] and sets.due(603) == [SOURCE]  # then 2 s
    assert sets.fetch(SOURCE, 603) is True
    status = sets.status()[0]
    assert (status["state"], status["kids"], status["failures"], status["changes"]) == (
        "ok",
        ["a", "b"],
        0,
        2,
    )


def test_never_fetched_source_has_no_keys() -> None:
    sets, _ = _sets(JwksFetchError("refused"))
    sets.fetch(SOURCE, 0)
    assert sets.keys(SOURCE.url) == ""
    assert (sets.status()[0]["state"], sets.status()[0]["code"]) == ("no-keys", "MW0441")


@pytest.mark.parametrize(
    ("last_attempt", "now", "due_at"),
    [(0, 100, 100), (99, 100, 101)],  # at most every UNKNOWN_KID_MIN_GAP (2 s)
)
def test_unknown_kid_brings_refresh_forward(last_attempt: float, now: float, due_at: float) -> None:
    sets, _ = _sets(KEYS_A)
    sets.fetch(SOURCE, last_attempt)
    assert sets.unknown_kid(now) == 1
    assert sets.due(due_at - 0.01) == [] and sets.due(due_at) == [SOURCE]


def test_unknown_kid_leaves_failing_sources_to_their_backoff() -> None:
    sets, _ = _sets(JwksFetchError("down"))
    sets.fetch(SOURCE, 0)
    assert sets.unknown_kid(0.5) == 0


def test_track_drops_unused_and_keeps_known_keys() -> None:
    sets, _ = _sets(KEYS_A)
    sets.fetch(SOURCE, 0)
    other = Source("http://other/.well-known/openid-configuration", True, 1.0)
    sets.track([SOURCE, other])
    assert sets.keys(SOURCE.url) == KEYS_A and sets.due(1) == [other]
    sets.track([other])
    assert sets.keys(SOURCE.url) == "" and [s["source"] for s in sets.status()] == [other.url]
