"""Probes for TLS origination by DestinationRule (issue 7 item 8): the target sees TLS.

Called by verify/probes.py. For every service port a DestinationRule makes a sidecar
originate TLS to (SIMPLE/MUTUAL), one request from one such caller's app, through its
sidecar, in plaintext HTTP as the app sends it — to a mesh service or to a ServiceEntry
host (Istio's "egress TLS origination"). A server that reports what it saw (the
outside test server, `meshward.samples.outside`: JSON with `tls_version`, `sni`,
`client_cert`) is checked whole: TLS, the SNI the rule decided, and for MUTUAL the client
certificate from the rule's credential (or file). Any other server passes when it answers at
all (Envoy answers 503 itself when the handshake or verification fails). TCP ports are not
probed: the bytes are the app's, there is nothing to ask the server.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from cryptography import x509

from meshward.model.ir import MeshModel, Origination, OutboundService, ProxyModel, is_http
from meshward.state import secrets
from meshward.state.layout import StateDir
from meshward.verify import dial
from meshward.verify.probe import ProbeResult


def origination_probes(state: StateDir, model: MeshModel) -> list[ProbeResult]:
    """One probe per (deciding rule, service port) with HTTP origination."""
    results = []
    seen: set[tuple[str, str, int]] = set()
    for proxy in model.proxies:
        for service in proxy.outbound:
            origination = service.origination
            key = (service.tls_source, service.fqdn, service.port)
            if origination is None or not is_http(service.protocol) or key in seen:
                continue
            # A ServiceEntry port's upstream is `external` (its endpoints, or for NONE the
            # address the app dials); a mesh service without endpoints has nothing to ask.
            if (not service.endpoints and service.external is None) or proxy.pod.gateway:
                continue
            seen.add(key)
            results.append(_probe(state, model, proxy, service, origination))
    return results


def expected_client_sans(state: StateDir, origination: Origination) -> tuple[str, ...] | None:
    """The client certificate's SANs as the outside server reports them (`URI:...`,
    `DNS:...`), from the credential or the certificate file; None when not readable here."""
    pem = b""
    if origination.credential:
        stored = secrets.load(state, origination.credential)
        pem = stored.cert if stored is not None else b""
    elif origination.cert_file and Path(origination.cert_file).is_file():
        pem = Path(origination.cert_file).read_bytes()
    if not pem:
        return None
    leaf = x509.load_pem_x509_certificate(pem)
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    uris = [f"URI:{v}" for v in names.get_values_for_type(x509.UniformResourceIdentifier)]
    dns = [f"DNS:{v}" for v in names.get_values_for_type(x509.DNSName)]
    # ssl lists SANs in the certificate's order; compare as sets via sorting.
    return tuple(sorted(uris + dns))


def _probe(
    state: StateDir,
    model: MeshModel,
    caller: ProxyModel,
    service: OutboundService,
    origination: Origination,
) -> ProbeResult:
    target = f"{caller.pod.key} → {service.fqdn}:{service.port} ({service.tls_source})"
    mutual = origination.mode == "MUTUAL"
    expected = f"{origination.mode} TLS with SNI {origination.sni}" + (
        ", the client certificate presented" if mutual else ""
    )
    route = dial.via_sidecar(model.network, caller, service)
    if route is None:
        return ProbeResult("tls-origination", target, expected, "no route", False)
    host = f"{service.fqdn}:{service.port}"
    status, body = dial.http_exchange(
        route, "GET", host, "/", {"X-Meshward-Probe": uuid.uuid4().hex}
    )
    if status is None or status == 503:
        return ProbeResult("tls-origination", target, expected, f"HTTP {status}", False)
    try:
        view = json.loads(body)
    except ValueError:
        view = None
    if not isinstance(view, dict) or "tls_version" not in view:
        observed = f"HTTP {status} (the server does not report its TLS view)"
        return ProbeResult("tls-origination", target, expected, observed, True)
    return _judge(state, target, expected, origination, view)


def _judge(
    state: StateDir,
    target: str,
    expected: str,
    origination: Origination,
    view: dict[str, object],
) -> ProbeResult:
    client = view.get("client_cert")
    sans = sorted(client.get("sans", ())) if isinstance(client, dict) else None
    observed = (
        f"server saw {view.get('tls_version')} with SNI {view.get('sni')}, client certificate "
        + (f"{client.get('subject')} {sans}" if isinstance(client, dict) else "none")
    )
    ok = bool(view.get("tls_version")) and view.get("sni") == origination.sni
    if origination.mode == "MUTUAL":
        wanted = expected_client_sans(state, origination)
        ok = ok and sans is not None and (wanted is None or tuple(sans) == wanted)
    return ProbeResult("tls-origination", target, expected, observed, ok)
