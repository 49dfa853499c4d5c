"""Raw probes on a socket: a plaintext attempt, and a TLS handshake with a chosen identity.

Used by verify/probes.py. Each function returns what it observed as data; deciding whether
that is a pass is the caller's business (the expectation comes from the effective config).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class PlaintextOutcome:
    accepted: bool  # bytes came back, or the server kept the connection open waiting for more
    detail: str


def plaintext_attempt(host: str, port: int, *, http: bool) -> PlaintextOutcome:
    """Send a plaintext request as a client outside the mesh would.

    HTTP ports get `GET / HTTP/1.1`; accepted means an HTTP status line came back. TCP ports
    get a line of text; accepted means the server answered or kept the connection open
    (a STRICT listener expects a TLS ClientHello and closes on anything else).
    """
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
            payload = (
                f"GET / HTTP/1.1\r\nHost: {host}\r\nX-Meshward-Probe: plaintext\r\n"
                "Connection: close\r\n\r\n"
                if http
                else "PING\r\n"
            )
            sock.sendall(payload.encode())
            sock.settimeout(0.5 if not http else TIMEOUT)
            try:
                data = sock.recv(256)
            except TimeoutError:
                return PlaintextOutcome(not http, "connection held open, no answer")
            if not data:
                return PlaintextOutcome(False, "connection closed without an answer")
            if data[:2] == b"\x15\x03":  # a TLS alert record: the port speaks only TLS
                return PlaintextOutcome(False, "TLS alert: the port accepts only TLS")
            first = data.split(b"\r\n", 1)[0].decode(errors="replace")
            if http and not first.startswith("HTTP/"):
                return PlaintextOutcome(False, f"non-HTTP answer {first[:40]!r}")
            return PlaintextOutcome(True, f"answered {first[:60]!r}")
    except ConnectionResetError:
        return PlaintextOutcome(False, "connection reset")
    except OSError as error:
        return PlaintextOutcome(False, f"connection failed: {error}")


@dataclass(frozen=True, slots=True)
class HandshakeOutcome:
    completed: bool
    peer_der: bytes  # the server's leaf certificate (DER), empty if none was received
    detail: str


def tls_handshake(
    host: str,
    port: int,
    *,
    root_pem_path: Path | None,
    client_cert: Path | None,
    client_key: Path | None,
    send_probe: bool = True,
    server_name: str | None = None,
) -> HandshakeOutcome:
    """Complete a TLS handshake as a client with the given certificate (or none).

    The server chain is verified against the mesh root; host names are not checked (SPIFFE
    identities are checked by the caller on the URI SAN, as Envoy does). With TLS 1.3 a server
    that rejects the client certificate says so after the handshake, so a byte is exchanged
    before declaring success. `root_pem_path` None: the server's certificate is not verified
    (the caller compares it, as the gateway probes do); `server_name` is sent as SNI.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    if root_pem_path is None:
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_verify_locations(cafile=str(root_pem_path))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_cert is not None and client_key is not None:
        context.load_cert_chain(str(client_cert), str(client_key))
    try:
        with (
            socket.create_connection((host, port), timeout=TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            peer = tls.getpeercert(binary_form=True) or b""
            if send_probe:
                tls.settimeout(0.5)
                try:
                    tls.sendall(b"GET / HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
                    data = tls.recv(64)
                except TimeoutError:
                    data = b"(open)"
                except (ssl.SSLError, ConnectionResetError) as error:
                    return HandshakeOutcome(False, peer, f"rejected after handshake: {error}")
                if not data:
                    return HandshakeOutcome(False, peer, "closed right after the handshake")
            return HandshakeOutcome(True, peer, f"{tls.version()} completed")
    except ssl.SSLError as error:
        return HandshakeOutcome(False, b"", f"TLS refused: {error.reason or error}")
    except OSError as error:
        return HandshakeOutcome(False, b"", f"connection failed: {error}")
