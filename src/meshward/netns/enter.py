"""Doing things inside a pod's network namespace, from the root namespace.

`argv` wraps a command line in `ip netns exec` (which also bind-mounts /etc/netns/<ns>/hosts
over /etc/hosts, so the command resolves service names like the pod's app does); `connect`
opens a TCP connection from inside a namespace without a subprocess: a short-lived thread
joins the namespace (setns(2) changes only the calling thread) and creates the socket there;
a socket stays in the namespace it was made in, so the caller can use it from any thread.
Used by the CLI (`exec`), the agent (Envoy in its pod), the runner (apps) and the verifier.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
_CLONE_NEWNET = 0x40000000
# Apps (and `meshward exec`) run without the capabilities that would let them undo their
# pod's capture: CAP_NET_ADMIN (iptables, routes), CAP_NET_RAW, CAP_SYS_ADMIN (setns into
# another namespace), module loading and ptrace (of the sidecar), dropped from the bounding
# set so no exec regains them. They keep UID 0 (examples read root-owned interpreters) but
# must never get the sidecar's GID/UID 1337, whose traffic the capture lets out uncaptured:
# so CAP_SETGID/CAP_SETUID/CAP_SETPCAP go too (no setgid(1337), no setgroups), and
# no_new_privs stops a set-group-ID executable (chown :1337 + chmod g+s) from granting it.
CONFINED = (
    *("-net_admin", "-net_raw", "-sys_admin", "-sys_module", "-sys_ptrace"),
    *("-setgid", "-setuid", "-setpcap"),
)
NETNS_DIR = "/var/run/netns"


def argv(netns: str, command: Sequence[str], *, confined: bool = False) -> tuple[str, ...]:
    """`ip netns exec NETNS [setpriv ...] COMMAND`; `confined` drops the `CONFINED`
    capabilities (setpriv(1)) as for an app."""
    prefix: tuple[str, ...] = ("ip", "netns", "exec", netns)
    if confined:
        prefix += ("setpriv", f"--bounding-set={','.join(CONFINED)}", "--inh-caps=-all")
        prefix += ("--no-new-privs", "--")
    return (*prefix, *command)


def run_in(netns: str, work: Callable[[], T]) -> T:
    """`work()` run by a thread that joined `netns` (setns(2) affects only that thread);
    its result or its exception comes back to the caller's thread."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def thread() -> None:
        try:
            fd = os.open(os.path.join(NETNS_DIR, netns), os.O_RDONLY)
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    errno = ctypes.get_errno()
                    raise OSError(errno, f"setns {netns}: {os.strerror(errno)}")
            finally:
                os.close(fd)
            outcome.append(work())
        except BaseException as error:  # handed to the caller's thread
            failure.append(error)

    worker = threading.Thread(target=thread, name=f"netns {netns}")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return outcome[0]


def connect(netns: str, address: tuple[str, int], timeout: float) -> socket.socket:
    """A TCP connection to `address` made from inside `netns`; raises OSError as
    socket.create_connection does."""
    return run_in(netns, lambda: socket.create_connection(address, timeout=timeout))


def listen(netns: str, address: tuple[str, int]) -> socket.socket:
    """A listening TCP socket bound to `address` inside `netns`."""

    def make() -> socket.socket:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(address)
        server.listen(16)
        return server

    return run_in(netns, make)
