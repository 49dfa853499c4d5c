"""A server on the outside network that reports what it saw: `python -m meshward.samples.outside
--host H [--http-port N] [--tcp-port N] [--https-port N] [--mtls-port N --client-ca FILE]
[--server-name NAME] [--cert FILE --key FILE | --cert-out FILE]`.

The target of the egress examples, tests and probes (issue 7): a registered external host that
REGISTRY_ONLY lets through, an unregistered one it refuses, and the upstream whose view proves
TLS and mTLS origination. Every HTTP answer is JSON naming what this process saw:

    {"server": NAME, "listener": "http"|"https"|"mtls", "tls_version": "TLSv1.3" | null,
     "sni": "api.example.com" | null, "client_cert": {"subject": "CN=...", "sans": ["URI:..."]}
     | null, "method": "GET", "path": "/x", "host": "<Host header>", "peer": "<client IP>"}

The HTTPS listener takes any client; the mTLS listener requires a client certificate that
chains to `--client-ca` (the handshake fails otherwise). The TCP listener echoes bytes back.
Without `--cert/--key` the server makes its own key and a self-signed certificate for
`--server-name` at start (the key never leaves the process) and writes it to `--cert-out`, so a
DestinationRule's `caCertificates` can pin it. Runs as an `outside: true` Workload or directly.
"""

from __future__ import annotations

import argparse
import json
import socketserver
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from meshward.samples import tls_backend


def client_cert_view(cert: dict[str, Any] | None) -> dict[str, object] | None:
    """The peer certificate as the JSON reports it: subject as `K=V,...` in the certificate's
    order, SANs as `TYPE:value` (`URI:spiffe://...`, `DNS:...`); None without one."""
    if not cert:
        return None
    subject = ",".join(
        f"{_SHORT.get(key, key)}={value}" for rdn in cert.get("subject", ()) for key, value in rdn
    )
    sans = [f"{kind}:{value}" for kind, value in cert.get("subjectAltName", ())]
    return {"subject": subject, "sans": sans}


# ssl reports long attribute names; the JSON uses the RFC 4514 short forms.
_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU"}


def server_context(cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
    """A TLS 1.2+ server context; with `client_ca`, a client certificate chaining to it is
    required (the handshake fails without one)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(client_ca))

    def remember_sni(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: object) -> None:
        # ssl offers SNI only to this callback; keep it on the connection for the handler.
        sock.meshward_sni = name  # type: ignore[union-attr]

    context.sni_callback = remember_sni
    return context


def handler_for(server_name: str, listener: str) -> type[BaseHTTPRequestHandler]:
    """A request handler answering GET and POST with the JSON view described above."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            conn = self.connection
            secure = isinstance(conn, ssl.SSLSocket)
            view = {
                "server": server_name,
                "listener": listener,
                "tls_version": conn.version() if secure else None,
                "sni": getattr(conn, "meshward_sni", None) if secure else None,
                "client_cert": client_cert_view(conn.getpeercert()) if secure else None,
                "method": self.command,
                "path": self.path,
                "host": self.headers.get("Host", ""),
                "peer": self.client_address[0],
            }
            body = (json.dumps(view, sort_keys=True) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def log_message(self, format: str, *values: object) -> None:
            return

    return Handler


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def _credentials(args: argparse.Namespace, folder: Path) -> tuple[Path, Path]:
    if args.cert is not None:
        return args.cert, args.key
    cert_pem, key_pem = tls_backend.self_signed(args.server_name)
    if args.cert_out is not None:
        args.cert_out.parent.mkdir(parents=True, exist_ok=True)
        args.cert_out.write_bytes(cert_pem)
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert_pem)
    key_file.touch(0o600)
    key_file.write_bytes(key_pem)
    return cert_file, key_file


def parser() -> argparse.ArgumentParser:
    """The command line (stable: the egress tests and examples depend on it)."""
    p = argparse.ArgumentParser(
        prog="python -m meshward.samples.outside", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind every listener to")
    p.add_argument("--http-port", type=int, help="plaintext HTTP listener")
    p.add_argument("--tcp-port", type=int, help="plaintext TCP echo listener")
    p.add_argument("--https-port", type=int, help="HTTPS listener (any client)")
    p.add_argument("--mtls-port", type=int, help="HTTPS listener requiring a client certificate")
    p.add_argument("--client-ca", type=Path, help="CA (PEM) client certificates must chain to")
    p.add_argument("--server-name", default="localhost", help="CN/DNS SAN of a made certificate")
    p.add_argument("--cert", type=Path, help="server certificate chain (PEM) to use")
    p.add_argument("--key", type=Path, help="its private key (PEM)")
    p.add_argument("--cert-out", type=Path, help="write the made certificate (PEM) here")
    return p


def main(argv: list[str] | None = None) -> None:
    p = parser()
    args = p.parse_args(argv)
    if (args.cert is None) != (args.key is None):
        p.error("--cert and --key go together")
    if args.mtls_port is not None and args.client_ca is None:
        p.error("--mtls-port needs --client-ca")
    if not any((args.http_port, args.tcp_port, args.https_port, args.mtls_port)):
        p.error("give at least one of --http-port, --tcp-port, --https-port, --mtls-port")
    servers: list[socketserver.BaseServer] = []
    if args.http_port:
        servers.append(
            ThreadingHTTPServer((args.host, args.http_port), handler_for(args.server_name, "http"))
        )
    if args.tcp_port:
        servers.append(_EchoServer((args.host, args.tcp_port), _Echo))
    with tempfile.TemporaryDirectory() as folder:
        # ssl loads keys only from files; the directory is private and removed at once.
        cert, key = _credentials(args, Path(folder))
        for port, listener, ca in (
            (args.https_port, "https", None),
            (args.mtls_port, "mtls", args.client_ca),
        ):
            if port:
                context = server_context(cert, key, ca)
                handler = handler_for(args.server_name, listener)
                servers.append(tls_backend.TlsServer(context, (args.host, port), handler))
    for srv in servers[1:]:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(f"outside {args.server_name} listening on {args.host}", flush=True)
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
