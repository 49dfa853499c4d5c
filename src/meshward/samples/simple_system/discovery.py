"""How the sample apps find mesh services: the runner's `MESHWARD_SVC_*` environment contract.

The runner exports `MESHWARD_SVC_<NAMESPACE>_<NAME>_<PORT>` (upper-cased, `-` → `_`) for every
service port: for a TCP port the caller's local sidecar listener (`host:port`), for an HTTP port
`<name>.<ns>.svc.cluster.local:<port>`, reached through the sidecar's HTTP proxy that the runner
exports in `http_proxy`. Called by user_service at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping


class MissingServiceError(LookupError):
    """The environment does not name an address for a service the app needs."""


def variable(namespace: str, name: str, port: int) -> str:
    """`variable("geo", "location-service", 8081)` → `MESHWARD_SVC_GEO_LOCATION_SERVICE_8081`."""
    return f"MESHWARD_SVC_{namespace}_{name}_{port}".upper().replace("-", "_")


def address(environ: Mapping[str, str], namespace: str, name: str, port: int) -> str:
    """The `host:port` the runner exported for a service port."""
    key = variable(namespace, name, port)
    value = environ.get(key, "").strip()
    if not value:
        raise MissingServiceError(f"{key} is not set: is {name}.{namespace} in the mesh?")
    return value


def split(host_port: str) -> tuple[str, int]:
    """`"127.0.0.5:6379"` → `("127.0.0.5", 6379)`; brackets around an IPv6 host are removed."""
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"not host:port: {host_port!r}")
    return host.strip("[]"), int(port)
