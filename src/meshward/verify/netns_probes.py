"""Probes only the netns network mode can make: nothing bypasses the sidecars.

Called by verify/probes.py when the mesh record says netns. Three checks:

- `no-bypass`: from inside a sidecar pod (a process with the app's view: captured, no
  sidecar GID), a plaintext connection to another pod's STRICT port by pod IP, by service
  VIP and by service name. Passes when the connection is refused, or when the server's
  sidecar recorded it arriving over mTLS from the caller's identity (the caller's sidecar
  upgraded it) — never when plaintext reached the app.
- `outside-through-sidecar`: a client on the outside network (a namespace the verifier
  makes and removes) connects to every sidecar port directly. STRICT ports refuse it;
  PERMISSIVE/DISABLE ports answer, and the server's sidecar recorded the probe: it went
  through the sidecar, not around it.
- `egress-policy`: a raw TCP connection from a sidecar pod to a host on the outside network
  (not in the registry). REGISTRY_ONLY: the outside server never sees it; ALLOW_ANY: it
  arrives, from the pod's address.
- `registered-egress`: for every ServiceEntry port a sidecar pod sees at an address of its
  own, a request (HTTP) or line (TCP) from inside that pod to the host's address is answered,
  and the pod's sidecar logged it to the entry's cluster: a registered host is reached, under
  either policy, and through the sidecar. HTTP ports a DestinationRule originates TLS on are
  left to `tls-origination` (verify/origination_probes.py), which checks what the server saw.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from meshward.model.ir import InboundPort, MeshModel, OutboundService, ProxyModel, is_http
from meshward.netns import enter
from meshward.netns.fabric import Fabric
from meshward.netns.naming import MeshNet
from meshward.state.layout import StateDir
from meshward.verify import access_log, dial
from meshward.verify.probe import ProbeResult

VERIFIER_HOST_PART = 250  # the verifier's own outside host, 198.19.N.250
OUTSIDE_PORT = 18080


def netns_probes(state: StateDir, model: MeshModel, net: MeshNet) -> list[ProbeResult]:
    results = _no_bypass(state, model)
    with _outside_host(net) as (netns, ip):
        results += _outside(state, model, netns)
        results += _egress(model, netns, ip)
    return results + _registered(state, model)


@contextlib.contextmanager
def _outside_host(net: MeshNet) -> Iterator[tuple[str, str]]:
    fabric = Fabric(net)
    netns = net.outside_netns("verify")
    fabric.remove_pod(netns)  # a verifier that was killed may have left it
    netns, ip = fabric.add_outside_host("verify", VERIFIER_HOST_PART)
    try:
        yield netns, ip
    finally:
        fabric.remove_pod(netns)
        fabric.remove_link(net.outside_link(ip))


def _log(state: StateDir, proxy: ProxyModel) -> Path:
    return state.sidecar_log(proxy.pod.key.namespace, proxy.pod.key.pod_name)


def _attempt(route: dial.Route, port: InboundPort, probe_id: str) -> str:
    """A plaintext request (HTTP) or line (TCP); what came back, or "refused: ..."."""
    if is_http(port.protocol):
        status = dial.http_request(route, "GET", "probe", "/", {"X-Meshward-Probe": probe_id}, 3)
        return "refused: no HTTP answer" if status is None else f"HTTP {status}"
    return dial.tcp_exchange(route)


def _recorded(
    log: Path, port: InboundPort, probe_id: str, started: float, peer: str | None = None
) -> access_log.Entry | None:
    """The server sidecar's record of the probe: by its probe header (HTTP), or a connection
    to the port since `started` (TCP), from `peer` over TLS when given."""

    def match(entry: access_log.Entry) -> bool:
        if is_http(port.protocol):
            mine = entry.get("probe") == probe_id
        else:
            mine = float(entry.get("start") or 0) >= started and str(
                entry.get("local", "")
            ).endswith(f":{port.port}")
        if peer is not None:
            mine = mine and entry.get("peer") == peer and bool(entry.get("tls"))
        return mine

    return access_log.wait_for([log], match, timeout=1.5)


def _no_bypass(state: StateDir, model: MeshModel) -> list[ProbeResult]:
    results = []
    for server in model.proxies:
        strict = [p for p in server.inbound if p.mtls == "STRICT"]
        caller = next((p for p in model.proxies if p.pod.key != server.pod.key), None)
        if not strict or caller is None or caller.pod.identity is None:
            continue
        netns = model.network.netns(caller.pod.key)
        for port in strict:
            for how, address in _routes(model, server, port, netns):
                target = f"{caller.pod.key} → {server.pod.key}:{port.port} by {how}"
                expected = "refused, or upgraded to mTLS by the caller's sidecar"
                if address is None:
                    results.append(ProbeResult("no-bypass", target, expected, "no route", False))
                    continue
                probe_id, started = uuid.uuid4().hex, time.time() - 0.05
                seen = _attempt(dial.direct(address, netns), port, probe_id)
                identity = caller.pod.identity.uri
                upgraded = (
                    _recorded(_log(state, server), port, probe_id, started, identity) is not None
                )
                refused = seen.startswith("refused") or seen == "closed by the server"
                ok = refused or upgraded
                record = "mTLS from the caller" if upgraded else "no plaintext record"
                observed = f"{seen}; server log: {record}"
                results.append(ProbeResult("no-bypass", target, expected, observed, ok))
    return results


def _routes(
    model: MeshModel, server: ProxyModel, port: InboundPort, netns: str
) -> list[tuple[str, tuple[str, int] | None]]:
    """(how, address) for the pod IP and, for each service port in front of the pod port,
    its VIP and its name as resolved inside the caller's pod."""
    routes: list[tuple[str, tuple[str, int] | None]] = [
        ("pod IP", (server.pod.address.pod_ip, port.port))
    ]
    for service in model.services:
        if server.pod.key not in service.pods:
            continue
        for service_port in service.ports:
            if service_port.target_port != port.port:
                continue
            routes.append(("VIP", (service.vip, service_port.port)))
            name = f"{service.name}.{service.namespace}"
            resolved = _resolve(netns, name)
            routes.append(
                (f"name {name}", None if resolved is None else (resolved, service_port.port))
            )
    return routes


def _resolve(netns: str, name: str) -> str | None:
    """`name` looked up inside the pod (its /etc/netns hosts file, as its apps see it)."""
    done = subprocess.run(
        enter.argv(netns, ("getent", "hosts", name)), capture_output=True, text=True, check=False
    )
    words = done.stdout.split()
    return words[0] if done.returncode == 0 and words else None


def _outside(state: StateDir, model: MeshModel, netns: str) -> list[ProbeResult]:
    results = []
    for server in model.proxies:
        for port in server.inbound:
            target = f"outside host → {server.pod.key}:{port.port} ({port.mtls})"
            probe_id, started = uuid.uuid4().hex, time.time() - 1
            seen = _attempt(
                dial.direct((server.pod.address.pod_ip, port.port), netns), port, probe_id
            )
            refused = seen.startswith("refused") or seen == "closed by the server"
            if port.mtls == "STRICT":
                expected = "refused by the sidecar (STRICT)"
                results.append(
                    ProbeResult("outside-through-sidecar", target, expected, seen, refused)
                )
                continue
            expected = "answered by way of the sidecar (its access log has the call)"
            entry = _recorded(_log(state, server), port, probe_id, started)
            observed = f"{seen}; sidecar log: {'has it' if entry else 'nothing'}"
            ok = entry is not None
            results.append(ProbeResult("outside-through-sidecar", target, expected, observed, ok))
    return results


def _egress(model: MeshModel, netns: str, ip: str) -> list[ProbeResult]:
    # A captured pod: a gateway pod is the mesh's way out by design, with no app to bypass.
    caller = next((p for p in model.proxies if p.capture), None)
    if caller is None:
        return []
    server = enter.listen(netns, ("0.0.0.0", OUTSIDE_PORT))
    server.settimeout(2.0)
    arrivals: list[str] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            connection, peer = server.accept()
            arrivals.append(peer[0])
            # Read the client's line first: closing with unread data would send a reset.
            connection.settimeout(2.0)
            connection.recv(64)
            connection.sendall(b"outside\r\n")
            connection.close()

    thread = threading.Thread(target=accept)
    thread.start()
    route = dial.direct((ip, OUTSIDE_PORT), model.network.netns(caller.pod.key))
    seen = dial.tcp_exchange(route)
    thread.join()
    server.close()
    policy = caller.outbound_policy  # MeshConfig's, or a Sidecar's for this pod
    target = f"{caller.pod.key} → outside {ip}:{OUTSIDE_PORT} (not registered), raw TCP"
    if policy == "REGISTRY_ONLY":
        expected = "REGISTRY_ONLY: never reaches the outside host"
        ok = not arrivals
    else:
        expected = f"ALLOW_ANY: reaches the outside host from {caller.pod.address.pod_ip}"
        ok = arrivals == [caller.pod.address.pod_ip]
    observed = f"{seen}; outside host saw {arrivals or 'nothing'}"
    return [ProbeResult("egress-policy", target, expected, observed, ok)]


def _registered(state: StateDir, model: MeshModel) -> list[ProbeResult]:
    results = []
    tried: set[str] = set()
    for caller in model.proxies:
        if not caller.capture:
            continue
        for service in caller.outbound:
            if service.external is None or not service.vip or "/" in service.vip:
                continue
            if service.origination is not None and is_http(service.protocol):
                continue  # a DestinationRule originates TLS: origination_probes checks it
            if service.vs_routes is not None or service.tcp_routes is not None:
                continue  # routed elsewhere (an egress gateway): egress_probes checks it
            if service.cluster_name not in tried:  # one caller per entry port proves the path
                tried.add(service.cluster_name)
                results.append(_reach(state, model, caller, service))
    return results


def _reach(
    state: StateDir, model: MeshModel, caller: ProxyModel, service: OutboundService
) -> ProbeResult:
    probe_id, started = uuid.uuid4().hex, time.time() - 1
    route = dial.direct((service.vip, service.port), model.network.netns(caller.pod.key))
    if is_http(service.protocol):
        status = dial.http_request(
            route, "GET", service.name, "/", {"X-Meshward-Probe": probe_id}, 3
        )
        seen = "no HTTP answer" if status is None else f"HTTP {status}"
        answered = status is not None and status < 500
    else:
        seen = dial.tcp_exchange(route)
        answered = seen.startswith("open")

    def match(entry: access_log.Entry) -> bool:
        if entry.get("upstream_cluster") != service.cluster_name:
            return False
        if is_http(service.protocol):
            return bool(entry.get("probe") == probe_id)
        return float(entry.get("start") or 0) >= started

    entry = access_log.wait_for([_log(state, caller)], match, timeout=1.5)
    target = f"{caller.pod.key} → {service.name}:{service.port} ({service.tls_source})"
    expected = "answered, and the caller's sidecar logged it to the entry's cluster"
    observed = f"{seen}; sidecar log: {'has it' if entry else 'nothing'}"
    return ProbeResult("registered-egress", target, expected, observed, answered and bool(entry))
