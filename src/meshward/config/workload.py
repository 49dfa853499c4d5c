"""`meshward.io/v1alpha1` Workload → `resources.Workload`.

Called by `meshward.config.kind` for each Workload document. A Workload is meshward's
stand-in for a Kubernetes Deployment: the app's command line (Kubernetes container `command`,
`args`, `env`, with `$(VAR)` expansion left to the runner), its ports (`containerPort`s), the
service account its SPIFFE identity is issued for, and how many replicas to run.
`gateway: ingress` or `gateway: egress` makes the workload a gateway pod (docs: README
"Ingress", docs/egress.md): an Envoy with the workload's identity and no app, programmed by
the Gateways selecting it; the two roles are built alike, the name says which way traffic
goes (an egress gateway's routes lead to ServiceEntry hosts). `outside:
true` puts it on the outside network instead of in the mesh (no sidecar; MW0151 if one is
asked for); its `hostnames` are the outside world's DNS names for it: a ServiceEntry with
resolution DNS resolves them to its address (docs/egress.md).
"""

from __future__ import annotations

from meshward.config import names
from meshward.config.fields import Fields, UniqueValues
from meshward.config.resources import Labels, Meta, Workload, WorkloadPort
from meshward.config.service_entry import is_host

MAX_REPLICAS = 20  # each replica is a process pair on one machine; keep a demo mesh small


def parse(spec: Fields, meta: Meta, labels: Labels) -> Workload | None:
    """The Workload, or None if any field was reported as an error."""
    account = spec.string("serviceAccount")
    if account is not None and not names.is_dns_label(account):
        spec.disallow("serviceAccount", f"{account!r} is not a DNS-1123 label", code="MW0120")
    replicas = spec.integer("replicas")
    if replicas is not None and not 1 <= replicas <= MAX_REPLICAS:
        spec.disallow("replicas", f"replicas {replicas} is outside 1-{MAX_REPLICAS}")
    sidecar = spec.boolean("sidecar")
    gateway = spec.choice("gateway", ("ingress", "egress"))
    outside = spec.boolean("outside")
    if outside and gateway is not None:
        spec.disallow(
            "outside", "a gateway is a mesh pod; attach it to the outside network", code="MW0151"
        )
    if outside and sidecar:
        spec.disallow(
            "sidecar", "an outside workload is not in the mesh: it has no sidecar", code="MW0151"
        )
    ports = _ports(spec)
    hostnames = spec.strings("hostnames") or ()
    for host in hostnames:
        if host.startswith("*") or not is_host(host):
            spec.disallow("hostnames", f"{host!r} is not a DNS name", code="MW0189")
    if hostnames and not outside:
        spec.disallow(
            "hostnames",
            "hostnames name a host of the outside world; only an `outside: true` workload has "
            "them (mesh workloads are reached by their Services)",
            code="MW0189",
        )
    command = spec.strings("command", required=gateway is None)
    if command == () and gateway is None:
        spec.disallow("command", "command needs at least one item", code="MW0107")
    if gateway is not None:
        _check_gateway(spec, sidecar=sidecar, command=command, ports=ports)
    args = spec.strings("args")
    env = _env(spec)
    spec.finish()
    if spec.report.failed or (command is None and gateway is None):
        return None
    return Workload(
        meta=meta,
        labels=labels,
        service_account=account or "default",
        ports=ports,
        command=command or (),
        args=args or (),
        env=env,
        replicas=1 if replicas is None else replicas,
        sidecar=not outside if sidecar is None else sidecar,
        gateway="ingress" if gateway == "ingress" else "egress" if gateway == "egress" else "",
        outside=bool(outside),
        hostnames=hostnames,
    )


def _check_gateway(
    spec: Fields,
    *,
    sidecar: bool | None,
    command: tuple[str, ...] | None,
    ports: tuple[WorkloadPort, ...],
) -> None:
    """A gateway pod is its Envoy alone: no app process, no app ports, never sidecar-less
    (its identity is what the mesh's policies name)."""
    for key, present in (("command", command), ("ports", ports), ("sidecar", sidecar is False)):
        if present:
            spec.disallow(key, f"a gateway workload has no {key}: its Envoy is the pod", "MW0187")


def _ports(spec: Fields) -> tuple[WorkloadPort, ...]:
    numbers, port_names = UniqueValues(), UniqueValues()
    ports: list[WorkloadPort] = []
    for item in spec.items("ports") or ():
        name = item.string("name")
        if name and not names.is_port_name(name):
            item.disallow("name", f"port name {name!r} is not an IANA service name")
        port = item.port("port", required=True)
        item.finish()
        numbers.check(item, "port", port)
        port_names.check(item, "name", name)
        if port is not None:
            ports.append(WorkloadPort(name or "", port))
    return tuple(ports)


def _env(spec: Fields) -> tuple[tuple[str, str], ...]:
    env: list[tuple[str, str]] = []
    for item in spec.items("env") or ():
        name = item.string("name", required=True)
        if name is not None and not names.is_env_name(name):
            item.disallow("name", f"{name!r} is not a valid environment variable name")
        value = item.string("value")  # Kubernetes: an absent value is ""
        item.finish()
        if name is not None:
            env.append((name, value or ""))
    return tuple(env)
