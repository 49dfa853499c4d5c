"""ServiceEntries → the external hosts pods resolve and the outbound services sidecars route.

Called by `meshward.model.mesh.build` (`hosts`, for the runner's hosts files and the model) and
by model/proxies.py (`Registry.outbound`, per caller namespace). Semantics follow Istio's
"Service Entry" reference:
- every host of an entry, on every port, is an outbound service named by the host itself
  (cluster `outbound|<port>||<host>`), visible to the namespaces in `exportTo` (`.` = the
  entry's own, `*` or absent = all);
- resolution STATIC: the endpoints' addresses; DNS: the endpoints' names (or the host itself
  when none are given), resolved by Envoy — unless every name is an outside workload's
  `hostnames` entry (the outside world's DNS, `outside_dns`): then the model resolves them
  to where the runner placed those hosts (any mode, any address pool); NONE: the address
  the app dialled (ORIGINAL_DST), which only exists for captured traffic (netns mode) —
  through loopback mode's HTTP proxy the dialled address is the proxy itself, so there a
  NONE port has no endpoints (503);
- an endpoint's `ports` map overrides the port's `targetPort`, which overrides its number;
- HTTP ports are routed by Host (`host` and `host:port`, the port-less form on port 80 or the
  entry's lowest HTTP port, as for Services); TCP/TLS ports by address and port;
- in netns mode a host resolves in pods to the entry's first IP address, else to a VIP the
  runner allocates for it (Istio's DNS auto-allocation) — never for a wildcard, nor for
  resolution NONE, whose upstream is the address the app dialled (a VIP would be dialled and
  lead nowhere; Istio's `autoAllocateIPs` skips both); a CIDR address is captured as a whole
  range (`OutboundService.vip` holds it) and gives no name; a TLS port without an address is
  matched by SNI (xds/listener.py `sni_routed`);
- MESH_EXTERNAL: no Istio mTLS is originated; the app's own bytes leave unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from meshward.config.resources import ServiceEntry, ServiceEntryPort, Workload
from meshward.model import ir, protocol

_HTTP_DEFAULT_PORT = 80
_TLS_PROTOCOLS = ("TLS", "HTTPS")


def export_to(entry: ServiceEntry) -> tuple[str, ...]:
    """The namespaces that see `entry`; () means every namespace."""
    targets = entry.export_to
    if not targets or "*" in targets:
        return ()
    return tuple(sorted({entry.meta.namespace if t == "." else t for t in targets}))


def _single_ip(entry: ServiceEntry) -> str:
    return next((a for a in entry.addresses if "/" not in a), "")


def _allocated(entry: ServiceEntry, host: str) -> bool:
    """Whether `host` of `entry` gets an auto-allocated VIP when the entry has no address:
    never a wildcard, never resolution NONE (module docstring)."""
    return not host.startswith("*") and entry.resolution != "NONE"


def hosts(entries: Sequence[ServiceEntry], network: ir.Network) -> tuple[ir.ExternalHost, ...]:
    """The names pods resolve (netns mode; loopback mode has no per-pod names)."""
    if network.mode != "netns":
        return ()
    found = []
    for entry in entries:
        for host in entry.hosts:
            if host.startswith("*"):
                continue  # a wildcard is no name a hosts file can hold
            allocated = network.vip(entry.meta.namespace, host) if _allocated(entry, host) else ""
            vip = _single_ip(entry) or allocated
            if vip:
                found.append(ir.ExternalHost(entry.meta.namespace, host, vip, export_to(entry)))
    return tuple(found)


def auto_allocated(entries: Sequence[ServiceEntry]) -> list[tuple[str, str]]:
    """The (namespace, host) pairs that need a VIP from the runner: hosts of entries without
    an address of their own (Istio's auto-allocation), wildcards and NONE excepted."""
    return [
        (entry.meta.namespace, host)
        for entry in entries
        if not _single_ip(entry)
        for host in entry.hosts
        if _allocated(entry, host)
    ]


def _portless(entry: ServiceEntry) -> int | None:
    http = [p.number for p in entry.ports if ir.is_http(_protocol(p))]
    if not http:
        return None
    return _HTTP_DEFAULT_PORT if _HTTP_DEFAULT_PORT in http else min(http)


def _protocol(port: ServiceEntryPort) -> ir.Protocol:
    return protocol.infer(port.name, port.protocol)


def _endpoints(
    entry: ServiceEntry, host: str, port: ServiceEntryPort
) -> tuple[tuple[str, int], ...]:
    target = port.target_port or port.number
    if entry.resolution == "NONE":
        return ()
    if not entry.endpoints:
        return ((host, target),) if entry.resolution == "DNS" else ()
    return tuple((e.address, dict(e.ports).get(port.name, target)) for e in entry.endpoints)


def _vip(entry: ServiceEntry, host: str, network: ir.Network) -> str:
    if network.mode != "netns":
        return ""
    if entry.addresses:
        return entry.addresses[0]
    return network.vip(entry.meta.namespace, host) if _allocated(entry, host) else ""


def outside_dns(workloads: Sequence[Workload], network: ir.Network) -> dict[str, tuple[str, ...]]:
    """The outside world's DNS: each `hostnames` name of an outside workload → the addresses
    the runner placed its replicas at (sorted)."""
    placed: dict[tuple[str, str], set[str]] = {}
    for key, ip in network.outside:
        placed.setdefault((key.namespace, key.workload), set()).add(ip)
    found: dict[str, set[str]] = {}
    for workload in workloads:
        ips = placed.get((workload.meta.namespace, workload.meta.name))
        if not workload.outside or not ips:
            continue
        for name in workload.hostnames:
            found.setdefault(name.lower(), set()).update(ips)
    return {name: tuple(sorted(ips)) for name, ips in found.items()}


class Registry:
    """The outbound services of every entry, built once per caller namespace. `dns`: the
    outside world's names (`outside_dns`), which DNS resolution resolves at build time."""

    def __init__(
        self,
        entries: Sequence[ServiceEntry],
        network: ir.Network,
        dns: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self._entries = sorted(entries, key=lambda e: e.meta.order)
        self._network = network
        self._dns = dict(dns or {})
        self._by_namespace: dict[str, tuple[ir.OutboundService, ...]] = {}

    def outbound(self, namespace: str) -> tuple[ir.OutboundService, ...]:
        """The ServiceEntry ports a caller in `namespace` sees, in entry order."""
        found = self._by_namespace.get(namespace)
        if found is None:
            found = self._by_namespace[namespace] = tuple(
                service
                for entry in self._entries
                if not export_to(entry) or namespace in export_to(entry)
                for service in self._services(entry)
            )
        return found

    def _services(self, entry: ServiceEntry) -> list[ir.OutboundService]:
        source = f"ServiceEntry {entry.meta.namespace}/{entry.meta.name}"
        captured = self._network.mode == "netns"
        # NONE needs the dialled address: only a captured connection has it (module docstring).
        resolution: ir.ExternalResolution = (
            "STATIC" if entry.resolution == "NONE" and not captured else entry.resolution
        )
        portless = _portless(entry)
        services = []
        for host in entry.hosts:
            for port in sorted(entry.ports, key=lambda p: p.number):
                proto = _protocol(port)
                domains: tuple[str, ...] = ()
                if ir.is_http(proto):
                    with_port = f"{host}:{port.number}"
                    domains = (host, with_port) if port.number == portless else (with_port,)
                endpoints = _endpoints(entry, host, port)
                kind = resolution
                if resolution == "DNS" and all(name.lower() in self._dns for name, _ in endpoints):
                    # Names of outside hosts: resolved here, as the outside world's DNS would.
                    kind = "STATIC"
                    endpoints = tuple(
                        (ip, target) for name, target in endpoints for ip in self._dns[name.lower()]
                    )
                upstream = ir.ExternalUpstream(
                    source=source,
                    resolution=kind,
                    location=entry.location,
                    endpoints=endpoints,
                    tls_port=port.protocol in _TLS_PROTOCOLS,
                )
                services.append(
                    ir.OutboundService(
                        namespace=entry.meta.namespace,
                        name=host,
                        port=port.number,
                        protocol=proto,
                        endpoints=(),
                        tls="DISABLE",
                        tls_source=f"{source} ({entry.location})",
                        subject_alt_names=(),
                        http_domains=domains,
                        tcp_bind=None,
                        vip=_vip(entry, host, self._network),
                        external=upstream,
                    )
                )
        return services
