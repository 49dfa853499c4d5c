"""Pod addressing: which addresses each pod gets, in loopback or netns network mode.

Called by the runner (and `apply`) before `meshward.model.build`, with the addresses of the
previous run, so a pod keeps its address for as long as it exists. Pure and deterministic.

A pool is an IPv4 /16 `127.N.0.0/16` (N < 255). A pod's `pod_ip` is `127.N.x.y`; a sidecar
pod's app binds the same host part one /16 up, `127.(N+1).x.y`, so the sidecar can own
`pod_ip:port` while the app listens on `app_ip:port`. A legacy pod (no sidecar) has one
address. Host parts ending in .0 or .255 are skipped (they read as network/broadcast to
people and some tools) and `127.N.0.1` is left free for the runner itself.

A netns pool is `198.18.N.0/24` (netns/naming.py): each pod is a network namespace with one
address `198.18.N.x` (x in 2..253; .1 is the host, .254 the router), used by the sidecar's
captured listeners and the app alike, so `app_ip == pod_ip`. `allocate` picks the scheme
from the pool. Service VIPs (`vips`) come from `198.18.255.0/24`, kept across applies too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from typing import TypeVar

from meshward.model.ir import PodAddress, PodKey

DEFAULT_POOL = "127.77.0.0/16"
NETNS_SPACE = ipaddress.IPv4Network("198.18.0.0/16")
VIP_RANGE = ipaddress.IPv4Network("198.18.255.0/24")
K = TypeVar("K")
_FIRST = (0, 2)  # the first host part handed out: 127.N.0.2


def _second_octet(pool: str) -> int:
    """N of `127.N.0.0/16`; ValueError for anything else (a caller bug, not user input)."""
    try:
        network = ipaddress.IPv4Network(pool)
    except ValueError as error:
        raise ValueError(f"address pool {pool!r} is not an IPv4 network: {error}") from None
    if network.prefixlen != 16 or not network.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
        raise ValueError(f"address pool must be a /16 inside 127.0.0.0/8, got {pool!r}")
    second = int(network.network_address.packed[1])
    if second >= 255:
        raise ValueError(f"address pool {pool!r} leaves no room for app addresses (127.N+1)")
    return second


def _host_parts() -> Iterator[tuple[int, int]]:
    """Every usable (x, y) host part in ascending order."""
    for x in range(256):
        for y in range(1, 255):
            if (x, y) >= _FIRST:
                yield x, y


def _host_part(ip: str, second: int) -> tuple[int, int] | None:
    """The (x, y) of `ip` if it is a usable pod address of the pool, else None."""
    try:
        octets = ipaddress.IPv4Address(ip).packed
    except ValueError:
        return None
    part = (int(octets[2]), int(octets[3]))
    if octets[0] != 127 or octets[1] != second or part < _FIRST or part[1] in (0, 255):
        return None
    return part


def _address(second: int, part: tuple[int, int], sidecar: bool) -> PodAddress:
    pod_ip = f"127.{second}.{part[0]}.{part[1]}"
    app_ip = f"127.{second + 1}.{part[0]}.{part[1]}" if sidecar else pod_ip
    return PodAddress(pod_ip=pod_ip, app_ip=app_ip)


def allocate(
    pods: Iterable[tuple[PodKey, bool]],
    previous: Mapping[PodKey, PodAddress],
    pool: str = DEFAULT_POOL,
) -> dict[PodKey, PodAddress]:
    """Addresses for `pods` (key, has-sidecar): previous ones kept, new ones lowest-free.

    Pods absent from `pods` lose their address. A previous address outside `pool` (the pool
    changed) is given up. `app_ip` always follows the pod's current sidecar flag.
    """
    if is_netns_pool(pool):
        return _allocate_subnet(pods, previous, ipaddress.IPv4Network(pool))
    second = _second_octet(pool)
    wanted = dict(sorted(pods))
    taken: dict[tuple[int, int], PodKey] = {}
    for key in wanted:
        old = previous.get(key)
        part = None if old is None else _host_part(old.pod_ip, second)
        if part is not None and part not in taken:
            taken[part] = key
    kept = {key: part for part, key in taken.items()}
    free = (part for part in _host_parts() if part not in taken)
    result: dict[PodKey, PodAddress] = {}
    for key, sidecar in wanted.items():
        part = kept.get(key)
        if part is None:
            part = next(free, None)
            if part is None:
                raise ValueError(f"address pool {pool} is exhausted at pod {key}")
        result[key] = _address(second, part, sidecar)
    return result


def is_netns_pool(pool: str) -> bool:
    """True for a netns pod subnet `198.18.N.0/24` (N < 255)."""
    try:
        network = ipaddress.IPv4Network(pool)
    except ValueError:
        return False
    return network.prefixlen == 24 and network.subnet_of(NETNS_SPACE) and network != VIP_RANGE


def _lowest_free(
    wanted: Iterable[K],
    previous: Mapping[K, str],
    network: ipaddress.IPv4Network,
    first: int,
    last: int,
) -> dict[K, str]:
    """One address `network.<first..last>` per key of `wanted`: previous kept, new lowest."""
    keys = list(wanted)
    taken: dict[str, K] = {}
    for key in keys:
        old = previous.get(key)
        if (
            old is not None
            and ipaddress.IPv4Address(old) in network
            and old not in taken
            and first <= int(ipaddress.IPv4Address(old).packed[3]) <= last
        ):
            taken[old] = key
    kept = {key: ip for ip, key in taken.items()}
    free = (
        str(network.network_address + part)
        for part in range(first, last + 1)
        if str(network.network_address + part) not in taken
    )
    result: dict[K, str] = {}
    for key in keys:
        ip = kept.get(key) or next(free, None)
        if ip is None:
            raise ValueError(f"address range {network} is exhausted at {key}")
        result[key] = ip
    return result


def _allocate_subnet(
    pods: Iterable[tuple[PodKey, bool]],
    previous: Mapping[PodKey, PodAddress],
    network: ipaddress.IPv4Network,
) -> dict[PodKey, PodAddress]:
    wanted = dict(sorted(pods))
    old = {key: address.pod_ip for key, address in previous.items()}
    placed = _lowest_free(wanted, old, network, 2, 253)
    return {key: PodAddress(pod_ip=ip, app_ip=ip) for key, ip in placed.items()}


def vips(
    services: Iterable[tuple[str, str]], previous: Mapping[tuple[str, str], str]
) -> dict[tuple[str, str], str]:
    """A VIP in 198.18.255.0/24 for each (namespace, name): previous kept, new lowest-free."""
    return _lowest_free(sorted(services), previous, VIP_RANGE, 1, 254)
