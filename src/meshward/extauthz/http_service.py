"""The HTTP front end: Envoy's HTTP ext_authz protocol (envoyExtAuthzHttp providers).

Started by `server.serve`. Envoy sends the original request's method and headers (those the
provider's `includeRequestHeadersInCheck` allows) to `<pathPrefix><original path>`, without
the body unless configured. A 200 answer allows, and its headers named in
`headersToUpstreamOnAllow` are added to the request; any other status denies, and Envoy
sends that status, the body and the headers named in `headersToDownstreamOnDeny` to the
client (ext_authz v3 reference, HTTP service). The HTTP protocol carries no caller identity,
so `Facts.principal` is "" here: principal rules need the gRPC front end.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from meshward.extauthz.decision_log import DecisionLog
from meshward.extauthz.grpc_service import decide
from meshward.extauthz.plugin import Facts, Plugin


class HttpAuthorizationServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], plugin: Plugin, log: DecisionLog, path_prefix: str = ""
    ) -> None:
        super().__init__(address, _Handler)
        self.plugin = plugin
        self.log = log
        self.path_prefix = path_prefix


class _Handler(BaseHTTPRequestHandler):
    server: HttpAuthorizationServer
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path
        prefix = self.server.path_prefix
        if prefix and path.startswith(prefix):
            path = path[len(prefix) :] or "/"
        headers = tuple(sorted((k.lower(), v) for k, v in self.headers.items()))
        facts = Facts(
            request_id=self.headers.get("x-request-id", ""),
            method=self.command,
            path=path,
            host=self.headers.get("host", ""),
            headers=headers,
            source_address=self.client_address[0],
        )
        decision = decide(self.server.plugin, self.server.log, facts)
        body = decision.body.encode()
        self.send_response(200 if decision.allow else decision.status)
        pairs = decision.headers_to_upstream if decision.allow else ()
        for name, value in (*pairs, *decision.headers_to_downstream):
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        del format, args  # the decision log records every check
