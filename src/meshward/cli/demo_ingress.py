"""The demo's ingress part: a throwaway outside-world PKI, the gateway credentials made from
it, and one request from a user over TLS and one from the mobile app over mTLS.

Called by `meshward.cli.demo` when the example has a Gateway. The certificates are what a
public CA and a mobile-app CA would issue (meshward.samples.edge_pki); they are stored with
the same checks as `meshward secret create tls` before the mesh starts, so the gateway serves
them from its first handshake.
"""

from __future__ import annotations

import json
import socket
import ssl
from datetime import UTC, datetime
from pathlib import Path

from meshward.samples import edge_pki
from meshward.state import secrets
from meshward.state.layout import StateDir
from meshward.state.mesh import read_mesh

HTTPS_PORT = 8443  # examples/simple-system/ingress.yaml


def prepare(state: StateDir) -> edge_pki.ExamplePki:
    """Make the example's PKI under the state directory (`<state>/example-pki`, where the
    example's outside servers read their certificates) and store its three credentials."""
    pki = edge_pki.example(state.root / "example-pki")
    for name, (cert, key), ca in (
        ("users-cert", pki.users, b""),
        ("mobile-cert", pki.mobile, pki.app_ca.read_bytes()),
        # the egress gateway's client certificate for the maps API (examples' egress.yaml)
        ("maps-client", pki.maps_client, pki.partner_ca.read_bytes()),
    ):
        secret = secrets.TlsSecret(name, cert.read_bytes(), key.read_bytes(), ca)
        problems = secrets.check(secret, datetime.now(UTC))
        if problems:  # a bug in edge_pki, never the user's input
            raise RuntimeError(f"demo credential {name}: {problems}")
        secrets.store(state, secret)
    return pki


def _get(
    ip: str,
    host: str,
    path: str,
    ca: Path,
    client: tuple[Path, Path] | None,
    headers: dict[str, str],
) -> str:
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(*client)
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    request = "\r\n".join([*lines, *(f"{k}: {v}" for k, v in headers.items())]) + "\r\n\r\n"
    try:
        with (
            socket.create_connection((ip, HTTPS_PORT), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.sendall(request.encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
            version = tls.version()
    except (OSError, ssl.SSLError) as error:
        return f"failed: {error}"
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    status = head.split("\r\n", 1)[0]
    try:
        shown = json.dumps(json.loads(body))
    except json.JSONDecodeError:
        shown = body[:200]
    return f"{status} over {version}\n    {shown[:300]}"


def show(state: StateDir, pki: edge_pki.ExamplePki, headers: dict[str, str]) -> None:
    """The requests, with `headers` (the API key and the end user's token user-service wants)."""
    mesh = read_mesh(state)
    gateways = [p for p in mesh.pods if p.gateway == "ingress"] if mesh else []
    if not gateways:
        return
    ip = gateways[0].pod_ip
    print("\nIngress: a user outside the mesh calls user-service through the ingress gateway")
    print(f"({gateways[0].namespace}/{gateways[0].pod}, {gateways[0].identity}).")
    print(
        f"  TLS (SIMPLE, credential users-cert): GET https://users.example.com:{HTTPS_PORT}/users/1"
    )
    print("    " + _get(ip, "users.example.com", "/users/1", pki.server_ca, None, headers))
    print(f"  mTLS (MUTUAL, mobile app's client certificate {edge_pki.MOBILE_APP_URI}):")
    print("    " + _get(ip, "mobile.example.com", "/users/1", pki.server_ca, pki.app, headers))
    print("  Without a client certificate the mobile host refuses the handshake:")
    print("    " + _get(ip, "mobile.example.com", "/users/1", pki.server_ca, None, headers))
