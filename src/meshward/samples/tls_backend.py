"""A service that terminates TLS itself: `python -m meshward.samples.tls_backend --host H
--port N --server-name vault.example.com [--cert-out FILE]`.

The backend of the PASSTHROUGH example and tests: the ingress gateway routes on SNI without
decrypting, so the client must see *this* process's certificate, never the gateway's. It makes
its own key and self-signed certificate at start (CN and DNS SAN = `--server-name`; the key
never leaves the process) and writes the certificate to `--cert-out` so a client or the
verifier can pin it. Every HTTPS request gets a small JSON answer naming the server.
"""

from __future__ import annotations

import argparse
import datetime
import json
import socket
import ssl
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(server_name: str) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for `server_name`, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(server_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--server-name", default="localhost")
    parser.add_argument("--cert-out", type=Path, help="write the certificate (PEM) here")
    args = parser.parse_args()
    cert_pem, key_pem = self_signed(args.server_name)
    if args.cert_out is not None:
        args.cert_out.parent.mkdir(parents=True, exist_ok=True)
        args.cert_out.write_bytes(cert_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory() as folder:
        # ssl loads keys only from files; the directory is private and removed at once.
        cert_file, key_file = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        key_file.chmod(0o600)
        context.load_cert_chain(cert_file, key_file)
    body = json.dumps({"server": args.server_name, "tls": "terminated by the backend"}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *values: object) -> None:
            return

    TlsServer(context, (args.host, args.port), Handler).serve_forever()


class TlsServer(ThreadingHTTPServer):
    """Handshakes in the connection's own thread (a slow client never blocks accept), and
    answers a client that does not speak TLS with one plaintext line instead of a reset, as
    nginx does ("plain HTTP request was sent to HTTPS port"): a probe that sends plaintext
    through the mesh's TCP path then sees that the port is reachable."""

    def __init__(
        self,
        context: ssl.SSLContext,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
    ) -> None:
        super().__init__(address, handler)
        self.context = context

    def finish_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        request.settimeout(5)
        try:
            first = request.recv(1, socket.MSG_PEEK)
            if first != b"\x16":  # not a TLS handshake record (RFC 8446 §5.1)
                request.sendall(b"this port speaks TLS only\n")
                return
            secure = self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        super().finish_request(secure, client_address)


if __name__ == "__main__":
    main()
