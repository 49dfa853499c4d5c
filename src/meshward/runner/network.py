"""Network modes of the runner (DESIGN.md): how pods get addresses and how traffic is caught.

`NetworkMode` is the seam; `Loopback` is the default (no root, any Linux): every pod gets its
own 127/8 addresses, apps reach the mesh through their sidecar by convention (proxy env vars
and local ports), so an app *could* bypass its sidecar — `limitations` says so, and the
verifier and `status` print it.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Protocol

from meshward.errors import StateError

DEFAULT_POOL = "127.77.0.0/16"


class NetworkMode(Protocol):
    name: str

    def check(self) -> None:
        """Raise StateError if this machine cannot run the mode."""

    def limitations(self) -> tuple[str, ...]:
        """What this mode does not enforce, in one line each (shown to the user)."""


class Loopback:
    name = "loopback"

    def __init__(self, pool: str = DEFAULT_POOL) -> None:
        network = ipaddress.IPv4Network(pool)
        if network.prefixlen != 16 or not network.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
            raise StateError(f"address pool {pool} must be a /16 inside 127.0.0.0/8")
        if network.network_address.packed[1] >= 254:
            raise StateError(f"address pool {pool}: second octet must be below 254")
        self.pool = pool

    def check(self) -> None:
        # Linux routes all of 127/8 to lo; macOS needs aliases per address. Try one bind.
        probe = str(ipaddress.IPv4Network(self.pool).network_address + 2)
        with socket.socket() as sock:
            try:
                sock.bind((probe, 0))
            except OSError as error:
                raise StateError(
                    f"cannot bind {probe}: loopback mode needs the whole 127.0.0.0/8 on lo "
                    f"(on macOS add aliases: ifconfig lo0 alias {probe})"
                ) from error

    def limitations(self) -> tuple[str, ...]:
        return (
            "loopback mode: apps reach the mesh through their sidecar by convention; an app "
            "could connect to another pod's app address directly and bypass mTLS "
            "(use --network netns for enforced capture)",
        )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
