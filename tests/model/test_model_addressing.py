"""Loopback addressing: lowest free, stable across applies, legacy pods single-addressed."""

from __future__ import annotations

import pytest

from meshward.model import allocate
from meshward.model.ir import PodAddress, PodKey


def key(name: str, replica: int = 0, namespace: str = "core") -> PodKey:
    return PodKey(namespace, name, replica)


def side(host: str, pool: int = 77) -> PodAddress:
    return PodAddress(f"127.{pool}.{host}", f"127.{pool + 1}.{host}")


def legacy(host: str, pool: int = 77) -> PodAddress:
    return PodAddress(f"127.{pool}.{host}", f"127.{pool}.{host}")


def test_first_allocation_is_lowest_first_in_key_order() -> None:
    pods = [(key("web"), True), (key("api"), True), (key("db"), False)]
    assert allocate(pods, {}) == {
        key("api"): side("0.2"),
        key("db"): legacy("0.3"),
        key("web"): side("0.4"),
    }


CASES: list[
    tuple[str, list[tuple[PodKey, bool]], dict[PodKey, PodAddress], dict[PodKey, PodAddress]]
] = [
    (
        "previous addresses are kept, a new pod takes the lowest free",
        [(key("api"), True), (key("web"), True), (key("new"), True)],
        {key("api"): side("0.9"), key("web"): side("0.3")},
        {key("api"): side("0.9"), key("new"): side("0.2"), key("web"): side("0.3")},
    ),
    (
        "a removed pod's address is dropped and reused",
        [(key("web"), True), (key("zzz"), True)],
        {key("gone"): side("0.2"), key("web"): side("0.3")},
        {key("web"): side("0.3"), key("zzz"): side("0.2")},
    ),
    (
        "sidecar flag change keeps pod_ip and recomputes app_ip",
        [(key("api"), False), (key("web"), True)],
        {key("api"): side("0.2"), key("web"): legacy("0.3")},
        {key("api"): legacy("0.2"), key("web"): side("0.3")},
    ),
    (
        "an address outside the pool is given up",
        [(key("api"), True)],
        {key("api"): side("0.5", pool=10)},
        {key("api"): side("0.2")},
    ),
    (
        "a previous address on a skipped host part is given up",
        [(key("api"), True), (key("web"), True)],
        {key("api"): side("0.255"), key("web"): side("0.1")},
        {key("api"): side("0.2"), key("web"): side("0.3")},
    ),
    (
        "two pods claiming one address: the first by key keeps it",
        [(key("a"), True), (key("b"), True)],
        {key("a"): side("0.7"), key("b"): side("0.7")},
        {key("a"): side("0.7"), key("b"): side("0.2")},
    ),
]


@pytest.mark.parametrize(
    ("pods", "previous", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_allocate(
    pods: list[tuple[PodKey, bool]],
    previous: dict[PodKey, PodAddress],
    expected: dict[PodKey, PodAddress],
) -> None:
    assert allocate(pods, previous) == expected


def test_host_parts_skip_0_and_255_and_cross_into_the_next_third_octet() -> None:
    pods = [(key("p", i), True) for i in range(256)]
    result = allocate(pods, {})
    ips = [result[key("p", i)].pod_ip for i in range(256)]
    assert ips[0] == "127.77.0.2"
    assert ips[252] == "127.77.0.254"
    assert ips[253] == "127.77.1.1"
    assert ips[255] == "127.77.1.3"
    assert len(set(ips)) == 256


def test_stable_across_applies_with_reordered_input() -> None:
    first = allocate([(key(f"p{i}"), True) for i in range(10)], {})
    shuffled = [(key(f"p{i}"), True) for i in (7, 3, 9, 0, 1, 2, 4, 5, 6, 8)]
    assert allocate(shuffled, first) == first
    assert allocate(shuffled, {}) == first


def test_other_pool() -> None:
    assert allocate([(key("a"), True)], {}, pool="127.10.0.0/16") == {key("a"): side("0.2", 10)}


@pytest.mark.parametrize(
    "pool", ["127.255.0.0/16", "10.0.0.0/16", "127.77.0.0/24", "127.0.0.0/8", "bogus"]
)
def test_bad_pool_is_a_caller_bug(pool: str) -> None:
    with pytest.raises(ValueError, match="pool"):
        allocate([(key("a"), True)], {}, pool=pool)
