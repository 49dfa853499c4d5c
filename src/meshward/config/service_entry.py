"""`networking.istio.io/v1` (and v1beta1, v1alpha3) ServiceEntry → `resources.ServiceEntry`.

Called by `meshward.config.kind`. Follows the Istio API reference
(istio.io/latest/docs/reference/config/networking/service-entry/) and the checks of pilot's
`ValidateServiceEntry`:
  * hosts: at least one; each a DNS name or a `*.`-prefixed wildcard, never `*` alone (MW0152);
  * addresses: IPs or CIDR blocks (MW0153), and CIDRs only with resolution NONE or STATIC;
  * ports: at least one, numbers and names unique, a protocol Istio knows (MW0157);
  * resolution NONE takes no endpoints; STATIC needs endpoints, each an IP address; DNS with
    no endpoints resolves the hosts themselves, so none may be a wildcard; DNS endpoints are
    host names or IPs (MW0154); DNS_ROUND_ROBIN is read as DNS (both resolve the name and
    connect to what it answers);
  * an endpoint's `ports` names ports of the entry (MW0155);
  * exportTo: `.`, `*` or namespace names (MW0158).
`workloadSelector` (mesh workloads as the entry's endpoints) is refused (MW0156): an entry
meshward would apply to no endpoint must not look as if it did.
"""

from __future__ import annotations

import ipaddress

from meshward.config import document, names
from meshward.config.fields import Fields, UniqueValues
from meshward.config.resources import (
    Labels,
    Meta,
    SeLocation,
    SeResolution,
    ServiceEntry,
    ServiceEntryEndpoint,
    ServiceEntryPort,
)

# Istio `protocol.Parse` names (case-insensitive), those a ServiceEntry port may use.
PROTOCOLS = ("HTTP", "HTTPS", "HTTP2", "GRPC", "GRPC-WEB", "TCP", "TLS", "MONGO", "REDIS", "MYSQL")
RESOLUTIONS = ("NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN")
LOCATIONS = ("MESH_EXTERNAL", "MESH_INTERNAL")


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_cidr(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        return False
    return "/" in value


def is_host(value: str) -> bool:
    """A DNS name, or `*.` followed by one (Istio `ValidateWildcardDomain`)."""
    name = value[2:] if value.startswith("*.") else value
    return bool(name) and names.is_dns_subdomain(name.lower()) and not is_ip(name)


def parse(spec: Fields, meta: Meta, labels: Labels) -> ServiceEntry | None:
    """The ServiceEntry, or None if any field was reported as an error."""
    del labels
    hosts = spec.strings("hosts", required=True)
    if hosts == ():
        spec.disallow("hosts", "hosts needs at least one item", code="MW0107")
    hosts = hosts or ()
    for host in hosts:
        if host == "*" or not is_host(host):
            spec.disallow("hosts", f"host {host!r} is not a DNS name or *.wildcard", "MW0152")
    addresses = spec.strings("addresses") or ()
    ports = _ports(spec)
    resolution = _resolution(spec)
    location = spec.choice("location", LOCATIONS)
    for address in addresses:
        if _is_cidr(address) and resolution == "DNS":
            spec.disallow(
                "addresses", f"CIDR {address} needs resolution NONE or STATIC", code="MW0153"
            )
        elif not (is_ip(address) or _is_cidr(address)):
            spec.disallow("addresses", f"{address!r} is not an IP address or CIDR", "MW0153")
    endpoints = _endpoints(spec, resolution, {p.name for p in ports if p.name})
    _check_resolution(spec, resolution, hosts, endpoints)
    if spec.take("workloadSelector") is not None:
        spec.disallow(
            "workloadSelector",
            "workloadSelector is not supported; list the endpoints instead (the entry is "
            "refused rather than applied to no endpoint)",
            code="MW0156",
        )
    export_to = spec.strings("exportTo") or ()
    for target in export_to:
        if target not in (".", "*") and not names.is_dns_label(target):
            spec.disallow("exportTo", f"{target!r} is not '.', '*' or a namespace", "MW0158")
    spec.accept("subjectAltNames")  # checked by the client's DestinationRule, not the entry
    spec.finish()
    if spec.report.failed:
        return None
    return ServiceEntry(
        meta=meta,
        hosts=hosts,
        addresses=addresses,
        ports=ports,
        resolution=resolution,
        location=_location(location),
        endpoints=endpoints,
        export_to=export_to,
    )


def _location(value: str | None) -> SeLocation:
    return "MESH_INTERNAL" if value == "MESH_INTERNAL" else "MESH_EXTERNAL"


def _resolution(spec: Fields) -> SeResolution:
    value = spec.choice("resolution", RESOLUTIONS)
    if value in ("DNS", "DNS_ROUND_ROBIN"):
        return "DNS"
    return "STATIC" if value == "STATIC" else "NONE"  # NONE is the proto default


def _ports(spec: Fields) -> tuple[ServiceEntryPort, ...]:
    numbers, port_names = UniqueValues(), UniqueValues()
    ports: list[ServiceEntryPort] = []
    for item in spec.items("ports", required=True) or ():
        number = item.port("number", required=True)
        protocol = item.string("protocol", required=True)
        if protocol is not None and protocol.upper() not in PROTOCOLS:
            item.disallow(
                "protocol", f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}", "MW0157"
            )
        name = item.string("name")
        if name and not names.is_port_name(name):
            item.disallow("name", f"port name {name!r} is not an IANA service name")
        target = item.port("targetPort")
        item.finish()
        numbers.check(item, "number", number)
        port_names.check(item, "name", name)
        if number is not None and protocol is not None:
            ports.append(ServiceEntryPort(number, protocol.upper(), name or "", target or 0))
    return tuple(ports)


def _endpoints(
    spec: Fields, resolution: SeResolution, port_names: set[str]
) -> tuple[ServiceEntryEndpoint, ...]:
    endpoints: list[ServiceEntryEndpoint] = []
    for item in spec.items("endpoints") or ():
        address = item.string("address", required=True)
        if address is not None:
            if resolution == "STATIC" and not is_ip(address):
                item.disallow(
                    "address", f"{address!r} is not an IP address (resolution STATIC)", "MW0154"
                )
            elif resolution == "DNS" and not (is_ip(address) or is_host(address)):
                item.disallow("address", f"{address!r} is not a host name or IP", "MW0154")
        ports: list[tuple[str, int]] = []
        for entry in item.entries("ports") or ():
            value = entry.value.value if isinstance(entry.value, document.Scalar) else None
            if entry.key not in port_names:
                item.disallow("ports", f"port {entry.key!r} is not a port of the entry", "MW0155")
            elif type(value) is not int or not 1 <= value <= 65535:
                item.disallow("ports", f"port {entry.key} must be a number 1-65535", "MW0113")
            else:
                ports.append((entry.key, value))
        endpoint_labels = item.labels("labels")
        item.accept("network", "locality", "weight", "serviceAccount")
        item.finish()
        if address is not None:
            endpoints.append(ServiceEntryEndpoint(address, tuple(ports), endpoint_labels or ()))
    return tuple(endpoints)


def _check_resolution(
    spec: Fields,
    resolution: SeResolution,
    hosts: tuple[str, ...],
    endpoints: tuple[ServiceEntryEndpoint, ...],
) -> None:
    if resolution == "NONE" and endpoints:
        spec.disallow("endpoints", "resolution NONE takes no endpoints", "MW0154")
    if resolution == "STATIC" and not endpoints and not spec.has("workloadSelector"):
        spec.disallow("endpoints", "resolution STATIC needs at least one endpoint", "MW0154")
    if resolution == "DNS" and not endpoints:
        for host in hosts:
            if host.startswith("*.") and is_host(host):
                spec.disallow(
                    "hosts",
                    f"wildcard host {host} cannot be resolved by DNS; give endpoints",
                    "MW0154",
                )
