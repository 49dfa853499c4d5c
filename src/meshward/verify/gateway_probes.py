"""Ingress gateway probes, derived from the gateway listeners in the effective model.

Called by verify/probes.py for every gateway pod. For each TLS-terminating server chain:
the handshake with that SNI presents the expected certificate (the credential in the secret
store, or the certificate file the Gateway names; ISTIO_MUTUAL: the gateway's SVID is checked
by the mesh probes); MUTUAL refuses a client with no certificate and one from a foreign CA;
a ClientHello offering only the version below `minProtocolVersion` is refused. For each
PASSTHROUGH chain: the handshake completes end to end and the certificate presented is the
backend's own — none of the gateway's credentials.

The version probe writes its ClientHello by hand (RFC 5246 §7.4.1.2 record and handshake
layout, no supported_versions extension): Python's ssl module refuses to offer TLS 1.0/1.1
itself, and a hand-written hello shows what the *server* accepts.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from meshward.model.ir import GatewayChain, GatewayListener, ProxyModel, ServerTls
from meshward.state import secrets
from meshward.state.layout import StateDir
from meshward.verify import connect
from meshward.verify.identity import ProbeCredential
from meshward.verify.probe import ProbeResult

TIMEOUT = 2.0
# The version just below each minimum: what the probe offers (TLS 1.2 default minimum → 1.1).
_BELOW = {"TLS_AUTO": 0x0302, "TLSV1_2": 0x0302, "TLSV1_3": 0x0303, "TLSV1_1": 0x0301}
_VERSION_NAMES = {0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2"}
# TLS_AUTO is translated to TLS 1.2 at the gateway (xds/gateway.py): say so, not "TLS_AUTO".
_MINIMUM_NAMES = {
    "TLS_AUTO": "TLS 1.2, the default",
    "TLSV1_1": "TLS 1.1",
    "TLSV1_2": "TLS 1.2",
    "TLSV1_3": "TLS 1.3",
}
# ECDHE suites every TLS 1.0-1.2 server can choose from (CBC ones included: an old client's
# hello offers them; the server must refuse on the version, not for lack of a cipher).
_OLD_SUITES = (0xC02B, 0xC02F, 0xC009, 0xC013, 0xC00A, 0xC014, 0x002F, 0x0035)


@dataclass(frozen=True, slots=True)
class Shake:
    completed: bool
    leaf: x509.Certificate | None
    detail: str


def handshake(host: str, port: int, sni: str, *, client: ProbeCredential | None = None) -> Shake:
    """A TLS handshake with SNI `sni` (certificate not verified: the caller compares it)."""
    outcome = connect.tls_handshake(
        host,
        port,
        root_pem_path=None,
        client_cert=client.cert_path if client else None,
        client_key=client.key_path if client else None,
        server_name=sni,
    )
    leaf = x509.load_der_x509_certificate(outcome.peer_der) if outcome.peer_der else None
    return Shake(outcome.completed, leaf, outcome.detail)


def client_hello(version: int, sni: str) -> bytes:
    """A ClientHello record offering only `version` (0x0301-0x0303), with SNI."""
    name = sni.encode()
    server_name = struct.pack("!BH", 0, len(name)) + name
    sni_ext = struct.pack("!HHH", 0, len(server_name) + 2, len(server_name)) + server_name
    groups = struct.pack("!HHH", 10, 4, 2) + struct.pack("!H", 23)  # secp256r1
    points = struct.pack("!HHB", 11, 2, 1) + b"\x00"
    algorithms = struct.pack("!HHH", 13, 6, 4) + struct.pack("!HH", 0x0403, 0x0401)
    extensions = sni_ext + groups + points + algorithms
    suites = b"".join(struct.pack("!H", s) for s in _OLD_SUITES)
    body = (
        struct.pack("!H", version)
        + os.urandom(32)
        + b"\x00"  # no session id
        + struct.pack("!H", len(suites))
        + suites
        + b"\x01\x00"  # null compression only
        + struct.pack("!H", len(extensions))
        + extensions
    )
    handshake_msg = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return struct.pack("!BHH", 0x16, 0x0301, len(handshake_msg)) + handshake_msg


def offers_old_version(host: str, port: int, sni: str, version: int) -> tuple[bool, str]:
    """(accepted, detail): accepted when the server answers with a ServerHello."""
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
            sock.sendall(client_hello(version, sni))
            data = sock.recv(16)
    except ConnectionResetError:
        return False, "connection reset"
    except OSError as error:
        return False, f"connection failed: {error}"
    if len(data) >= 6 and data[0] == 0x16 and data[5] == 0x02:
        return True, f"ServerHello for {_VERSION_NAMES[version]}"
    if data[:1] == b"\x15":
        return False, f"TLS alert {data[-1] if len(data) >= 7 else '?'}"
    return False, "closed without a ServerHello"


def _expected_leaf(state: StateDir, tls: ServerTls) -> x509.Certificate | None:
    if tls.credential:
        stored = secrets.load(state, tls.credential)
        return None if stored is None else x509.load_pem_x509_certificates(stored.cert)[0]
    cert_file = Path(tls.files[0])
    if tls.files[0] and cert_file.exists():
        return x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
    return None


def _sni(chain: GatewayChain) -> str:
    # A wildcard server name is probed with a concrete name under it.
    name = chain.server_names[0] if chain.server_names else "probe.invalid"
    return "probe" + name[1:] if name.startswith("*.") else name


def gateway_probes(state: StateDir, proxy: ProxyModel, rogue: ProbeCredential) -> list[ProbeResult]:
    """Every probe of one gateway pod."""
    if proxy.gateway is None:
        return []
    results: list[ProbeResult] = []
    for listener in proxy.gateway.listeners:
        for chain in listener.chains:
            if chain.kind in ("TERMINATE", "TERMINATE_TCP") and chain.tls is not None:
                results += _terminating(state, proxy, listener, chain, chain.tls, rogue)
            elif chain.kind == "PASSTHROUGH":
                results.append(_passthrough(state, proxy, listener, chain))
    return results


def _target(proxy: ProxyModel, listener: GatewayListener, sni: str) -> str:
    return f"{proxy.pod.key} port {listener.port} SNI {sni}"


def _terminating(
    state: StateDir,
    proxy: ProxyModel,
    listener: GatewayListener,
    chain: GatewayChain,
    tls: ServerTls,
    rogue: ProbeCredential,
) -> list[ProbeResult]:
    host, sni = proxy.pod.address.pod_ip, _sni(chain)
    target = _target(proxy, listener, sni)
    results = []
    if tls.mode != "ISTIO_MUTUAL":
        expected = _expected_leaf(state, tls)
        shake = handshake(host, listener.port, sni)
        seen = shake.leaf
        want = (
            f"certificate serial {expected.serial_number:x} ({tls.credential or tls.files[0]})"
            if expected is not None
            else f"credential {tls.credential} (not in the secret store)"
        )
        got = f"serial {seen.serial_number:x}" if seen is not None else shake.detail
        # MUTUAL: the certificate is seen in the ServerHello even though the handshake then
        # fails for want of a client certificate, so the comparison holds for every mode.
        ok = expected is not None and seen is not None and seen == expected
        results.append(ProbeResult("gateway-certificate", target, want, got, ok))
    if tls.mode in ("MUTUAL", "ISTIO_MUTUAL"):
        for who, client in (("no client certificate", None), ("another CA", rogue)):
            shake = handshake(host, listener.port, sni, client=client)
            results.append(
                ProbeResult(
                    "gateway-mutual-refused",
                    target,
                    f"client with {who} refused",
                    shake.detail,
                    not shake.completed,
                )
            )
    version = _BELOW.get(tls.min_version)
    if version is not None:
        accepted, detail = offers_old_version(host, listener.port, sni, version)
        results.append(
            ProbeResult(
                "gateway-min-version",
                target,
                f"{_VERSION_NAMES[version]} refused (minimum {_MINIMUM_NAMES[tls.min_version]})",
                detail,
                not accepted,
            )
        )
    return results


def _passthrough(
    state: StateDir, proxy: ProxyModel, listener: GatewayListener, chain: GatewayChain
) -> ProbeResult:
    host, sni = proxy.pod.address.pod_ip, _sni(chain)
    own = {
        x509.load_pem_x509_certificates(stored.cert)[0]
        for name in secrets.names_in(state)
        if (stored := secrets.load(state, name)) is not None
    }
    shake = handshake(host, listener.port, sni)
    leaf = shake.leaf
    names: list[str] = []
    if leaf is not None:
        try:
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = san.get_values_for_type(x509.DNSName)
        except x509.ExtensionNotFound:
            names = []
    ok = shake.completed and leaf is not None and leaf not in own and sni in names
    observed = (
        f"{leaf.subject.rfc4514_string()} (DNS {', '.join(names) or 'none'}), {shake.detail}"
        if leaf is not None
        else shake.detail
    )
    return ProbeResult(
        "gateway-passthrough",
        _target(proxy, listener, sni),
        "the backend's own certificate for the SNI, not a gateway credential",
        observed,
        ok,
    )
