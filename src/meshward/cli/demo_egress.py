"""The demo's egress part (examples/simple-system/egress.yaml): calls to the outside world as
apps make them, through their sidecars and the egress gateway.

Called by `meshward.cli.demo` when the example has an egress gateway. location-service asks
the maps API for a tile (the API reports what it saw: mTLS from the gateway's address with
the maps-client certificate); user-service, which the gateway's policy does not name, gets
403; user-service opens TLS to payments.example itself and verifies the server's own
certificate (the partners' CA from the demo's PKI): sidecar and gateway routed it by SNI.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path

from cryptography import x509

from meshward.cli import app_client
from meshward.state.layout import StateDir
from meshward.state.mesh import PodRecord, read_mesh

MAPS = ("MESHWARD_SVC_ISTIO_SYSTEM_API_MAPS_EXAMPLE_80", "api.maps.example", "/tiles/london")
PAYMENTS = ("MESHWARD_SVC_ISTIO_SYSTEM_PAYMENTS_EXAMPLE_443", "payments.example")


def show(state: StateDir, partner_ca: Path) -> None:
    mesh = read_mesh(state)
    if mesh is None or not any(p.gateway == "egress" for p in mesh.pods):
        return
    gateway = next(p for p in mesh.pods if p.gateway == "egress")
    location = next(iter(mesh.find("location-service", "geo")), None)
    user = next(iter(mesh.find("user-service", "core")), None)
    if location is None or user is None:
        return
    print("\nEgress: nothing leaves the mesh but through the egress gateway")
    print(f"({gateway.namespace}/{gateway.pod}, {gateway.identity}), and only where its")
    print("policy says (REGISTRY_ONLY; ServiceEntries for api.maps.example, payments.example).")
    print("  geo/location-service → GET http://api.maps.example/tiles/london (the app's HTTP):")
    _maps(location, gateway.pod_ip)
    print("  core/user-service → the same (the gateway's policy names only location-service):")
    _maps(user, gateway.pod_ip)
    print(
        "  core/user-service → TLS to payments.example itself (passthrough, verified by the app):"
    )
    print("    " + _payments(user, partner_ca))


def _maps(caller: PodRecord, gateway_ip: str) -> None:
    variable, host, path = MAPS
    answer = app_client.get(caller, variable, host, path, {})
    if answer is None:
        return
    status, _, body = answer
    try:
        seen = json.loads(body)
    except json.JSONDecodeError:
        print(f"    HTTP {status}: {body.strip()[:120]}")
        return
    client = seen.get("client_cert") or {}
    # In loopback mode every process dials from 127.0.0.1: the address proves nothing there.
    via = f" from {seen.get('peer')}" if caller.netns else ""
    if caller.netns and seen.get("peer") == gateway_ip:
        via = " from the egress gateway's address"
    print(
        f"    HTTP {status}; the maps API saw {seen.get('tls_version')}{via}, "
        f"SNI {seen.get('sni')}, client certificate {client.get('sans')}"
    )


def _payments(caller: PodRecord, partner_ca: Path) -> str:
    variable, host = PAYMENTS
    address, _, port = dict(caller.env).get(variable, "").rpartition(":")
    context = ssl.create_default_context(cafile=str(partner_ca))  # checks the name, too
    try:
        with (
            app_client.connect(caller, address, int(port)) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True) or b""
            version = tls.version()
            tls.sendall(f"GET /pay HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    except (OSError, ValueError, ssl.SSLError) as error:
        return f"failed: {error}"
    subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    head = data.decode(errors="replace").split("\r\n", 1)[0]
    return (
        f"{head} over {version}; certificate {subject} verified by the app against the "
        "partners' CA — its own TLS, end to end"
    )
