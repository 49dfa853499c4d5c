"""`v1` Service → `resources.Service`.

Called by `meshward.config.kind` for each Service document. Reads the subset of the Kubernetes
Service API a mesh needs (selector and ports). Kubernetes rules kept: at least one port; every
port named when there are several; port numbers and names unique in the list; targetPort
defaults to port. Not yet supported, and so rejected rather than guessed: a named targetPort,
UDP/SCTP ports (the data plane proxies TCP only) and Service types other than ClusterIP.
"""

from __future__ import annotations

from meshward.config import document, names
from meshward.config.fields import Fields, UniqueValues
from meshward.config.resources import Labels, Meta, Service, ServicePort

# Fields of a `kubectl get -o yaml` Service that describe cluster networking, not the mesh:
# accepted so exported YAML loads, and ignored.
_CLUSTER_FIELDS = (
    "clusterIP",
    "clusterIPs",
    "ipFamilies",
    "ipFamilyPolicy",
    "internalTrafficPolicy",
    "sessionAffinity",
)


def parse(spec: Fields, meta: Meta, labels: Labels) -> Service | None:
    """The Service, or None if any field was reported as an error."""
    del labels  # a Service's own labels select nothing
    selector = spec.labels("selector")
    spec.choice("type", ("ClusterIP",))
    spec.accept(*_CLUSTER_FIELDS)
    items = spec.items("ports", required=True) or ()
    numbers, port_names = UniqueValues(), UniqueValues()
    ports: list[ServicePort] = []
    for item in items:
        port = _port(item, several=len(items) > 1)
        if port is not None:
            numbers.check(item, "port", port.port)
            port_names.check(item, "name", port.name)
            ports.append(port)
    spec.finish()
    if spec.report.failed:
        return None
    return Service(meta, selector or (), tuple(ports))


def _port(item: Fields, *, several: bool) -> ServicePort | None:
    # Kubernetes: "when there is more than one port, each must have a name".
    name = item.string("name", required=several)
    if name and not names.is_port_name(name):
        item.disallow("name", f"port name {name!r} is not an IANA service name")
    port = item.port("port", required=True)
    target = _target_port(item)
    app_protocol = item.string("appProtocol")
    protocol = item.string("protocol")
    if protocol is not None and protocol != "TCP":
        item.disallow("protocol", f"protocol {protocol!r} is not supported; use TCP")
    item.finish()
    if port is None:
        return None
    return ServicePort(name or "", port, target or port, app_protocol or "")


def _target_port(item: Fields) -> int | None:
    entry = item.take("targetPort")
    if entry is None:
        return None
    value = entry.value.value if isinstance(entry.value, document.Scalar) else None
    if isinstance(value, str):
        # Kubernetes allows a container port name here; resolving it needs the workload's
        # named ports, which model/ owns. Until then a named targetPort is refused.
        item.disallow("targetPort", f"named targetPort {value!r} is not supported yet")
        return None
    if type(value) is not int:
        item.wrong_type(entry, "an integer")
        return None
    if not 1 <= value <= 65535:
        item.disallow("targetPort", f"port {value} is outside 1-65535", code="MW0113")
        return None
    return value
