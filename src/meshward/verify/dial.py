"""How a probe reaches a service *as a caller's app would*, through the caller's sidecar.

Used by verify/probes.py and verify/authz_probes.py. Loopback mode: HTTP through the
sidecar's outbound HTTP listener (absolute-form request target), TCP through its local
listener for the service. netns mode: from inside the caller's pod (netns/enter.py) to the
service's VIP:port, which the pod's capture rules hand to its sidecar — the very path the
app's own connections take.
"""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass

from meshward.model.ir import Network, OutboundService, ProxyModel, is_http
from meshward.netns import enter


@dataclass(frozen=True, slots=True)
class Route:
    netns: str  # "" dials from the root namespace
    address: tuple[str, int]
    absolute: bool  # an HTTP request target in absolute form (a proxy listener)


def via_sidecar(network: Network, caller: ProxyModel, service: OutboundService) -> Route | None:
    """The route `caller`'s app takes to `service` (None: this sidecar has no way there)."""
    mine = caller.outbound_to(service) or service
    if caller.capture:
        if not mine.vip:
            return None
        return Route(network.netns(caller.pod.key), (mine.vip, mine.port), False)
    if is_http(mine.protocol):
        return Route("", (caller.pod.address.pod_ip, caller.outbound_http_port), True)
    if mine.tcp_bind is None:
        return None
    return Route("", mine.tcp_bind, False)


def direct(address: tuple[str, int], netns: str = "") -> Route:
    """A plain connection to `address` (from inside `netns` when given)."""
    return Route(netns, address, False)


def open_socket(route: Route, timeout: float) -> socket.socket:
    if route.netns:
        return enter.connect(route.netns, route.address, timeout)
    return socket.create_connection(route.address, timeout=timeout)


def http_request(
    route: Route,
    method: str,
    host: str,
    path: str,
    headers: dict[str, str],
    timeout: float = 5,
    *,
    body: bytes = b"",
) -> int | None:
    """Send one request on `route`; its status, or None if no HTTP answer came."""
    return http_exchange(route, method, host, path, headers, timeout, body=body)[0]


def http_exchange(
    route: Route,
    method: str,
    host: str,
    path: str,
    headers: dict[str, str],
    timeout: float = 5,
    *,
    body: bytes = b"",
) -> tuple[int | None, bytes]:
    """Send one request on `route`; (status, body), or (None, b"") if no HTTP answer came."""
    connection = http.client.HTTPConnection(*route.address, timeout=timeout)
    target = f"http://{host}{path}" if route.absolute else path
    try:
        connection.sock = open_socket(route, timeout)
        connection.request(method, target, body=body or None, headers={"Host": host, **headers})
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None, b""
    finally:
        connection.close()


def tcp_exchange(route: Route, timeout: float = 3) -> str:
    """ "open..." if the connection was accepted and stayed usable, else what happened."""
    try:
        with open_socket(route, timeout) as sock:
            sock.sendall(b"PING\r\n")
            sock.settimeout(1.0)
            try:
                data = sock.recv(64)
            except TimeoutError:
                return "open (no answer yet)"
            if data[:2] == b"\x15\x03":  # a TLS alert record: the port speaks only TLS
                return "refused: TLS alert (the port accepts only TLS)"
            return f"open: {data[:20]!r}" if data else "closed by the server"
    except OSError as error:
        return f"refused: {error}"
