"""Calls as a pod's app makes them, through its sidecar, for the demo's walkthrough.

Used by cli/demo.py and cli/demo_egress.py. loopback: the caller's sidecar is its HTTP proxy
(absolute-form request target); netns: the connection is opened from inside the caller's pod
to the address the runner gave the app (a service VIP), and the pod's capture hands it to its
sidecar — the very path the app's own calls take.
"""

from __future__ import annotations

import http.client
import socket

from meshward.netns import enter
from meshward.state.mesh import PodRecord


def get(
    caller: PodRecord, variable: str, authority: str, path: str, headers: dict[str, str]
) -> tuple[int, str, str] | None:
    """GET `path` of `authority` as the caller's app would, through its sidecar: status,
    WWW-Authenticate, body. loopback: the caller's sidecar as HTTP proxy; netns: from inside
    the caller's pod to the address in the runner's `variable` (a VIP), captured by its
    sidecar."""
    connection = http.client.HTTPConnection(caller.pod_ip, 15001, timeout=10)
    target = f"http://{authority}{path}"
    try:
        if caller.netns:
            host, _, port = dict(caller.env).get(variable, "").rpartition(":")
            connection.sock = connect(caller, host, int(port))
            target = path
        connection.request("GET", target, headers={"Host": authority, **headers})
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
    except (OSError, ValueError) as error:
        print(f"  failed: {error}")
        return None
    finally:
        connection.close()
    return response.status, response.getheader("www-authenticate") or "-", body


def connect(caller: PodRecord, host: str, port: int) -> socket.socket:
    """A connection as `caller`'s app would open it (from inside its pod in netns mode)."""
    if caller.netns:
        return enter.connect(caller.netns, (host, port), timeout=3)
    return socket.create_connection((host, port), timeout=3)
