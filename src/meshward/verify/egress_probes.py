"""Egress gateway probes (issue 7 item 8), derived from the effective model.

Called by verify/probes.py. For every sidecar workload whose outbound service for an external
host (a ServiceEntry port) is routed by a `mesh` VirtualService to a gateway pod, one probe
from one replica's app, through its sidecar — the path the app's own calls take:

  * HTTP ports: a GET for the host. The gateway's AuthorizationPolicies on the listener port
    the call arrives at decide its fate (predicted with model/authz_eval for the caller's
    identity, which the gateway knows when the sidecar's hop is mesh mTLS). Allowed
    (`egress-gateway`): answered, and the gateway's access log has the probe forwarded to
    the host's cluster; where the server reports what it saw (the outside test server), in
    netns mode it saw the gateway's address, and where the gateway originates TLS it saw TLS
    with the rule's SNI and, for MUTUAL, the credential's client certificate. Denied
    (`egress-gateway-denied`): 403 from the gateway.
  * TLS ports (tls/tcp routes to a PASSTHROUGH or TERMINATE_TCP chain): a TLS handshake with
    SNI = the host (`tls-passthrough`): the certificate must be the server's own — a DNS SAN
    naming the host, issued by no mesh CA — so nothing on the path terminated the app's TLS;
    a caller the gateway's policy refuses sees the connection closed.

And in loopback mode, for one sidecar under REGISTRY_ONLY (`egress-policy`; netns mode has its
raw-socket form in netns_probes.py): a request for a name nothing registers, through the
sidecar's HTTP proxy, is answered 502 by the sidecar itself (Istio's `block_all` route) and
logged there — it never leaves.
"""

from __future__ import annotations

import json
import ssl
import uuid
from dataclasses import dataclass

from cryptography import x509

from meshward.model import authz_eval, gateway_hops
from meshward.model.ir import (
    GatewayChain,
    GatewayListener,
    MeshModel,
    OutboundService,
    ProxyModel,
    is_http,
)
from meshward.state.layout import StateDir
from meshward.verify import access_log, dial
from meshward.verify.origination_probes import expected_client_sans
from meshward.verify.probe import ProbeResult
from meshward.xds.access_log import PROBE_HEADER

TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class Hop:
    """Where a caller's call for an external host meets the gateway, and the chain taking it."""

    caller: ProxyModel
    service: OutboundService  # the caller's outbound service for the external host
    via: gateway_hops.GatewayHop
    chain: GatewayChain

    @property
    def gateway(self) -> ProxyModel:
        return self.via.gateway

    @property
    def listener(self) -> GatewayListener:
        return self.via.listener


def egress_probes(state: StateDir, model: MeshModel) -> list[ProbeResult]:
    """One probe per (caller workload, external host port) routed through a gateway."""
    results = _unregistered(state, model)
    seen: set[tuple[str, str, str, int]] = set()
    for caller in model.proxies:
        if caller.gateway is not None:
            continue
        for service in caller.outbound:
            key = (caller.pod.key.namespace, caller.pod.key.workload, service.name, service.port)
            if service.external is None or key in seen:
                continue
            hop = _hop(model, caller, service)
            if hop is None:
                continue
            seen.add(key)
            if is_http(service.protocol):
                results.append(_http_probe(state, model, hop))
            else:
                results.append(_tls_probe(model, hop))
    return results


UNREGISTERED = "unregistered.meshward.invalid"  # RFC 6761: .invalid is never a real name


def _unregistered(state: StateDir, model: MeshModel) -> list[ProbeResult]:
    caller = next(
        (p for p in model.proxies if p.gateway is None and not p.capture),
        None,
    )
    if caller is None or caller.outbound_policy != "REGISTRY_ONLY":
        return []
    target = f"{caller.pod.key} → http://{UNREGISTERED}/ through its sidecar (not registered)"
    expected = "REGISTRY_ONLY: 502 from the sidecar itself, logged there, never forwarded"
    route = dial.Route("", (caller.pod.address.pod_ip, caller.outbound_http_port), True)
    probe_id = uuid.uuid4().hex
    status, _ = dial.http_exchange(route, "GET", UNREGISTERED, "/", {PROBE_HEADER: probe_id})
    log = state.sidecar_log(caller.pod.key.namespace, caller.pod.key.pod_name)
    entry = access_log.wait_for([log], lambda e: e.get("probe") == probe_id)
    ok = (
        status == 502
        and entry is not None
        and entry.get("details") == "direct_response"
        and entry.get("upstream_cluster") in (None, "", "-")
    )
    observed = f"HTTP {status}; sidecar log: " + (
        f"{entry.get('code')} {entry.get('details')}, upstream {entry.get('upstream_cluster')}"
        if entry
        else "nothing"
    )
    return [ProbeResult("egress-policy", target, expected, observed, ok)]


def _hop(model: MeshModel, caller: ProxyModel, service: OutboundService) -> Hop | None:
    if len(gateway_hops.routed_clusters(service)) != 1:
        return None  # split or no routes: which gateway answers is not one answer
    found = gateway_hops.gateway_hops(model, caller, service)
    if not found or found[0].endpoint != found[0].to_gateway.endpoints[0]:
        return None
    hop = found[0]
    chain = gateway_hops.chain_for(hop, service)
    if chain is None:
        return None
    return Hop(caller, service, hop, chain)


def _decision(hop: Hop) -> authz_eval.Decision:
    request = gateway_hops.gateway_request(hop.via, hop.chain, hop.service, hop.caller)
    return authz_eval.evaluate(hop.listener.authz, request)


def _target(hop: Hop) -> str:
    return (
        f"{hop.caller.pod.key} → {hop.service.name}:{hop.service.port} via "
        f"{hop.gateway.pod.key}:{hop.listener.port}"
    )


def _http_probe(state: StateDir, model: MeshModel, hop: Hop) -> ProbeResult:
    decision = _decision(hop)
    target = _target(hop)
    route = dial.via_sidecar(model.network, hop.caller, hop.service)
    probe_id = uuid.uuid4().hex
    status, body = (
        dial.http_exchange(route, "GET", hop.service.name, "/", {PROBE_HEADER: probe_id})
        if route is not None
        else (None, b"")
    )
    if not decision.allowed:
        expected = f"403 from the gateway ({decision.reason})"
        return ProbeResult(
            "egress-gateway-denied", target, expected, f"HTTP {status}", status == 403
        )
    clusters = gateway_hops.route_clusters(hop.chain, hop.service.name)
    leaving = next((s for s in hop.gateway.outbound if s.cluster_name in clusters), None)
    origination = leaving.origination if leaving is not None else None
    leaving_cluster = leaving.cluster_name if leaving is not None else "?"
    expected = f"answered, forwarded by the gateway to {leaving_cluster}" + (
        f", {origination.mode} TLS with SNI {origination.sni} originated there"
        if origination is not None
        else ""
    )
    if status is None or status >= 500 or status == 403:
        return ProbeResult("egress-gateway", target, expected, f"HTTP {status}", False)
    # The gateway logs every probe: proof the call left through it, in either network mode.
    log = state.sidecar_log(hop.gateway.pod.key.namespace, hop.gateway.pod.key.pod_name)
    entry = access_log.wait_for([log], lambda e: e.get("probe") == probe_id)
    forwarded = entry is not None and entry.get("upstream_cluster") == leaving_cluster
    observed = f"HTTP {status}; gateway log: " + (
        f"{entry.get('code')} via {entry.get('upstream_cluster')}" if entry else "nothing"
    )
    try:
        view = json.loads(body)
    except ValueError:
        view = None
    if not isinstance(view, dict) or "peer" not in view:
        observed += " (the server does not report what it saw)"
        return ProbeResult("egress-gateway", target, expected, observed, forwarded)
    ok = forwarded
    if hop.caller.capture:  # netns: the gateway's own address is the one that leaves
        ok = ok and view.get("peer") == hop.gateway.pod.address.pod_ip
        observed += f"; server saw peer {view.get('peer')}"
    if origination is not None:
        client = view.get("client_cert")
        sans = sorted(client.get("sans", ())) if isinstance(client, dict) else None
        observed += f", {view.get('tls_version')} with SNI {view.get('sni')}"
        ok = ok and bool(view.get("tls_version")) and view.get("sni") == origination.sni
        if origination.mode == "MUTUAL":
            wanted = expected_client_sans(state, origination)
            observed += f", client certificate {sans}"
            ok = ok and sans is not None and (wanted is None or tuple(sans) == wanted)
    return ProbeResult("egress-gateway", target, expected, observed, ok)


def _tls_probe(model: MeshModel, hop: Hop) -> ProbeResult:
    decision = _decision(hop)
    target = _target(hop)
    route = dial.via_sidecar(model.network, hop.caller, hop.service)
    host = hop.service.name
    if not decision.allowed:
        expected = f"connection closed by the gateway ({decision.reason})"
        observed = _handshake(route, host).detail if route is not None else "no route"
        return ProbeResult(
            "egress-gateway-denied", target, expected, observed, not observed.startswith("TLS")
        )
    expected = f"the server's own certificate for {host} (the app's TLS end to end)"
    if route is None:
        return ProbeResult("tls-passthrough", target, expected, "no route", False)
    shake = _handshake(route, host)
    names = shake.dns_names
    ok = shake.leaf is not None and host in names and not _mesh_issued(shake.leaf, model)
    return ProbeResult("tls-passthrough", target, expected, shake.detail, ok)


@dataclass(frozen=True, slots=True)
class _Shake:
    leaf: x509.Certificate | None
    detail: str

    @property
    def dns_names(self) -> list[str]:
        if self.leaf is None:
            return []
        try:
            san = self.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return []
        return san.value.get_values_for_type(x509.DNSName)


def _handshake(route: dial.Route, host: str) -> _Shake:
    """The app's TLS through its sidecar: SNI `host`, the certificate kept for comparison."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # compared below, not trusted
    try:
        with (
            dial.open_socket(route, TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            version = tls.version()
    except (OSError, ssl.SSLError) as error:
        return _Shake(None, f"no TLS session: {error}")
    if not der:
        return _Shake(None, f"{version}: no certificate")
    leaf = x509.load_der_x509_certificate(der)
    shake = _Shake(leaf, "")
    names = ", ".join(shake.dns_names) or "no DNS name"
    return _Shake(leaf, f"{version}: {leaf.subject.rfc4514_string()} ({names})")


def _mesh_issued(leaf: x509.Certificate, model: MeshModel) -> bool:
    """A certificate with a SPIFFE URI of the mesh's trust domain: a proxy's, not the app's."""
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return False
    prefix = f"spiffe://{model.trust_domain}/"
    return any(
        u.startswith(prefix) for u in san.value.get_values_for_type(x509.UniformResourceIdentifier)
    )
