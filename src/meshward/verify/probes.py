"""Probes derived from the effective configuration of the running mesh (not hand-listed).

Called by `meshward verify` and the demo. For every sidecar port the expectation follows
from its effective PeerAuthentication mode; for every service port reachable with mTLS the
verifier sends a request through a client sidecar and reads the server sidecar's access log
to see which identity the server authenticated. Later capabilities add their probes here.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from meshward.ca.authority import CertificateAuthority
from meshward.ca.validator import validate_svid
from meshward.config import load
from meshward.errors import CertificateError
from meshward.identity import SpiffeId
from meshward.model import build
from meshward.model.authz_eval import Request, evaluate
from meshward.model.ir import MeshModel, OutboundService, Pod, ProxyModel, is_http
from meshward.netns.naming import MeshNet
from meshward.state.layout import StateDir
from meshward.state.mesh import read_mesh
from meshward.state.records import read_json
from meshward.verify import access_log, dial
from meshward.verify.authz_probes import authz_probes
from meshward.verify.connect import plaintext_attempt, tls_handshake
from meshward.verify.egress_probes import egress_probes
from meshward.verify.gateway_probes import gateway_probes
from meshward.verify.identity import ProbeCredential, foreign, issue
from meshward.verify.jwt_probes import jwt_probes
from meshward.verify.netns_probes import netns_probes
from meshward.verify.origination_probes import origination_probes
from meshward.verify.probe import ProbeResult

# A served certificate with less than this share of its lifetime left means rotation (at
# half-life) is not happening.
MIN_REMAINING_SHARE = 0.25


GRPC_PROBE_PATH = "/meshward.verify.Probe/Ping"


def run_probes(state: StateDir) -> list[ProbeResult]:
    mesh = read_mesh(state)
    if mesh is None:
        return []
    config = load([state.config])
    model = build(config, mesh.addresses(), mesh.model_network())[0]
    ca = CertificateAuthority.load_or_create(
        state.ca, trust_domain=model.trust_domain, now=datetime.now(UTC)
    )
    with tempfile.TemporaryDirectory(prefix="meshward-verify-") as scratch:
        directory = Path(scratch)
        root_path = directory / "root.pem"
        root_path.write_bytes(ca.trust_bundle_pem)
        verifier = issue(
            ca, SpiffeId(model.trust_domain, model.root_namespace, "meshward-verifier"), directory
        )
        rogue = foreign(model.trust_domain, model.root_namespace, directory)
        results: list[ProbeResult] = []
        for proxy in model.proxies:
            results += _port_probes(proxy, model, ca, root_path, verifier, rogue)
            results += gateway_probes(state, proxy, rogue)
        results += _traffic_probes(state, model)
        results += authz_probes(state, model)
        results += jwt_probes(state, model)
        results += origination_probes(state, model)
        results += egress_probes(state, model)
        net = MeshNet.from_runner(read_json(state.runner) or {})
        if net is not None:
            results += netns_probes(state, model, net)
    return results


def _port_probes(
    proxy: ProxyModel,
    model: MeshModel,
    ca: CertificateAuthority,
    root_path: Path,
    verifier: ProbeCredential,
    rogue: ProbeCredential,
) -> list[ProbeResult]:
    results = []
    pod = proxy.pod
    host = pod.address.pod_ip
    for port in proxy.inbound:
        target = f"{pod.key} port {port.port} ({port.mtls}, {port.mtls_source})"
        plain = plaintext_attempt(host, port.port, http=is_http(port.protocol))
        if port.mtls == "STRICT":
            results.append(
                ProbeResult(
                    "plaintext-refused", target, "refused", plain.detail, not plain.accepted
                )
            )
        else:
            results.append(
                ProbeResult("plaintext-accepted", target, "accepted", plain.detail, plain.accepted)
            )
        if port.mtls == "DISABLE":
            continue
        shake = tls_handshake(
            host,
            port.port,
            root_pem_path=root_path,
            client_cert=verifier.cert_path,
            client_key=verifier.key_path,
        )
        results.append(_served_svid(target, pod, shake.peer_der, shake.detail, ca, model))
        if port.mtls == "STRICT":
            refused = tls_handshake(
                host,
                port.port,
                root_pem_path=root_path,
                client_cert=rogue.cert_path,
                client_key=rogue.key_path,
            )
            results.append(
                ProbeResult(
                    "foreign-ca-refused",
                    target,
                    "client certificate from another CA refused",
                    refused.detail,
                    not refused.completed,
                )
            )
    return results


def _served_svid(
    target: str,
    pod: Pod,
    peer_der: bytes,
    detail: str,
    ca: CertificateAuthority,
    model: MeshModel,
) -> ProbeResult:
    expected = f"SVID {pod.identity.uri if pod.identity else '?'} chaining to the mesh root"
    if not peer_der or pod.identity is None:
        return ProbeResult("served-svid", target, expected, f"no certificate: {detail}", False)
    leaf = x509.load_der_x509_certificate(peer_der)
    now = datetime.now(UTC)
    # The handshake yields the leaf only; the CA's chain holds the intermediates (no root).
    intermediates = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in ca.chain)
    chain = leaf.public_bytes(serialization.Encoding.PEM) + intermediates
    try:
        validate_svid(chain, trust_bundle_pem=ca.trust_bundle_pem, expected=pod.identity, now=now)
    except CertificateError as error:
        return ProbeResult("served-svid", target, expected, str(error), False)
    lifetime = (leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds()
    remaining = (leaf.not_valid_after_utc - now).total_seconds()
    fresh = remaining > lifetime * MIN_REMAINING_SHARE
    observed = f"{pod.identity.uri}, expires {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC" + (
        "" if fresh else " (about to expire: is rotation failing?)"
    )
    return ProbeResult("served-svid", target, expected, observed, fresh)


def _traffic_probes(state: StateDir, model: MeshModel) -> list[ProbeResult]:
    """One request (or connection) per service port, from a client sidecar, checked on the
    server side's access log."""
    results = []
    pods = {p.key: p for p in model.pods}
    for service_out in _service_ports(model):
        client = _client_for(model, service_out)
        if client is None:
            continue
        if not service_out.endpoints or service_out.origination is not None:
            continue  # a DestinationRule originates TLS: origination_probes checks it
        if any(pods[e.pod].gateway for e in service_out.endpoints):
            continue  # a gateway's Service: gateway_probes and egress_probes check it
        mtls_endpoints = [e for e in service_out.endpoints if e.mtls]
        target = f"{client.pod.key} → {service_out.fqdn}:{service_out.port}"
        if not mtls_endpoints:
            results.append(_legacy_probe(model, client, service_out, target))
            continue
        logs = [
            state.sidecar_log(e.pod.namespace, e.pod.pod_name)
            for e in mtls_endpoints
            if pods[e.pod].has_sidecar
        ]
        results.append(_mtls_probe(model, client, service_out, target, logs))
    return results


def _service_ports(model: MeshModel) -> list[OutboundService]:
    if not model.proxies:
        return []
    return list(model.proxies[0].outbound)


def _client_for(model: MeshModel, service: OutboundService) -> ProxyModel | None:
    """A sidecar outside the service that authorization lets through (the mTLS hop is what
    is probed here; denials have their own probes), from another namespace first."""
    backing = {e.pod for e in service.endpoints}
    ranked = sorted(
        (p for p in model.proxies if p.pod.key not in backing),
        key=lambda p: (
            not _allowed(model, p, service),
            p.pod.key.namespace == service.namespace,
            p.pod.key,
        ),
    )
    return ranked[0] if ranked else None


def _allowed(model: MeshModel, client: ProxyModel, service: OutboundService) -> bool:
    """Would a plain request from `client` to the service's first sidecar endpoint pass?"""
    for endpoint in service.endpoints:
        server = next((p for p in model.proxies if p.pod.key == endpoint.pod), None)
        port = (
            next((i for i in server.inbound if i.port == endpoint.port), None) if server else None
        )
        if port is None or client.pod.identity is None:
            continue
        request = Request(
            source_principal=client.pod.identity.principal,
            source_ip=client.pod.address.pod_ip,
            destination_ip=endpoint.address,
            destination_port=endpoint.port,
            host=f"{service.fqdn}:{service.port}",
            method="GET",
            path="/",
            is_http=is_http(service.protocol),
        )
        return evaluate(port.authz, request).allowed
    return True


def _client_outbound(client: ProxyModel, service: OutboundService) -> OutboundService:
    mine = client.outbound_to(service)
    assert mine is not None, "every sidecar sees every mesh service port"
    return mine


def _mtls_probe(
    model: MeshModel,
    client: ProxyModel,
    service: OutboundService,
    target: str,
    logs: list[Path],
) -> ProbeResult:
    assert client.pod.identity is not None
    expected_peer = client.pod.identity.uri
    expected = f"mTLS; server authenticates {expected_peer}"
    probe_id = uuid.uuid4().hex
    started = time.time() - 1
    route = dial.via_sidecar(model.network, client, service)
    if route is None:
        return ProbeResult("mtls-between-sidecars", target, expected, "no route", False)
    if is_http(service.protocol):
        status = _http_via_sidecar(route, service, probe_id)
        if status is None or status == 503:
            return ProbeResult("mtls-between-sidecars", target, expected, f"HTTP {status}", False)

        def match(entry: access_log.Entry) -> bool:
            return entry.get("probe") == probe_id

    else:
        dial.tcp_exchange(route)
        ports = {str(e.port) for e in service.endpoints}

        def match(entry: access_log.Entry) -> bool:
            local = str(entry.get("local", ""))
            return (
                float(entry.get("start") or 0) >= started
                and local.rsplit(":", 1)[-1] in ports
                and entry.get("peer") == expected_peer
            )

    entry = access_log.wait_for(logs, match)
    if entry is None:
        return ProbeResult(
            "mtls-between-sidecars", target, expected, "no server-side record of the call", False
        )
    peer = entry.get("peer") or "(none)"
    tls = entry.get("tls") or "(plaintext)"
    ok = peer == expected_peer and str(tls).startswith("TLS")
    return ProbeResult(
        "mtls-between-sidecars", target, expected, f"server saw {peer} over {tls}", ok
    )


def _legacy_probe(
    model: MeshModel, client: ProxyModel, service: OutboundService, target: str
) -> ProbeResult:
    expected = "reachable in plaintext (destination has no sidecar: auto-mTLS sends plaintext)"
    route = dial.via_sidecar(model.network, client, service)
    if route is None:
        return ProbeResult("plaintext-to-legacy", target, expected, "no route", False)
    if is_http(service.protocol):
        status = _http_via_sidecar(route, service, uuid.uuid4().hex)
        ok = status is not None and status != 503
        return ProbeResult("plaintext-to-legacy", target, expected, f"HTTP {status}", ok)
    opened = dial.tcp_exchange(route)
    return ProbeResult("plaintext-to-legacy", target, expected, opened, opened.startswith("open"))


def _http_via_sidecar(route: dial.Route, service: OutboundService, probe_id: str) -> int | None:
    """GET / through the client's sidecar, as the client app would. A gRPC port gets a
    gRPC-shaped call instead (POST, `application/grpc`) to a method no server has: a gRPC
    server answers it UNIMPLEMENTED with HTTP 200 (gRPC over HTTP/2, "Responses"), where a
    plain GET is reset, which would read as a broken hop."""
    headers = {"X-Meshward-Probe": probe_id}
    method, path, body = "GET", "/", b""
    if service.protocol == "GRPC":
        method, path = "POST", GRPC_PROBE_PATH
        headers |= {"Content-Type": "application/grpc", "TE": "trailers"}
        body = b"\x00\x00\x00\x00\x00"  # one empty, uncompressed message (length-prefixed)
    host = f"{service.fqdn}:{service.port}"
    return dial.http_request(route, method, host, path, headers, body=body)
