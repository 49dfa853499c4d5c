"""The inbound access-log filter (xds/access_log.py `inbound_filter`) on a real Envoy.

One server sidecar built by the translator (a PERMISSIVE HTTP port, so plaintext requests
reach the same HCM an mTLS one does) in front of a tiny app. With the success sampling set
to 0% through its runtime key, exactly the requests the readers need are logged: denials,
failures, probes, AUDIT matches and dry-run denials; an ordinary success is not. At 100%
every request is. Also: the outbound listener keeps logging failures only.
"""

from __future__ import annotations

import http.client
import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import xds_cases
from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from static_envoy import free_port, http_apps, static_envoy
from xds_pki import Pki

from meshward.model import ir
from meshward.model.authorization import (
    AuthzPolicy,
    AuthzRule,
    OperationMatch,
    PortAuthz,
    StringMatch,
)
from meshward.xds import access_log, bootstrap, listener, translate

pytestmark = pytest.mark.e2e

SERVER_IP, SERVER_APP_IP = "127.0.42.1", "127.0.42.2"
SERVER_URI = "spiffe://cluster.local/ns/default/sa/web"


def _on(path: str) -> tuple[OperationMatch, ...]:
    return (OperationMatch(paths=(StringMatch("exact", path),)),)


AUTHZ = PortAuthz(
    (
        AuthzPolicy("default", "no-admin", "DENY", (AuthzRule(0, operations=_on("/admin")),)),
        AuthzPolicy(
            "default", "dry", "DENY", (AuthzRule(0, operations=_on("/dry")),), dry_run=True
        ),
        AuthzPolicy("default", "audit", "AUDIT", (AuthzRule(0, operations=_on("/audited")),)),
    )
)

# request id → (path, with X-Meshward-Probe, status, logged at 0%)
REQUESTS: dict[str, tuple[str, bool, int, bool]] = {
    "ordinary": ("/ok", False, 200, False),
    "probe": ("/ok", True, 200, True),
    "denied": ("/admin", False, 403, True),
    "failed": ("/missing", False, 404, True),
    "dry-run-denial": ("/dry", False, 200, True),
    "audited": ("/audited", False, 200, True),
}


class _App(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404 if self.path == "/missing" else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass


def _get(port: int, path: str, request_id: str, *, probe: bool) -> int:
    headers = {"X-Request-Id": request_id}
    if probe:
        headers["X-Meshward-Probe"] = request_id
    connection = http.client.HTTPConnection(SERVER_IP, port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.parametrize("percent", [0, 100])
def test_inbound_log_keeps_what_readers_need(pki: Pki, tmp_path: Path, percent: int) -> None:
    port = free_port(SERVER_IP)
    server = xds_cases.proxy(
        xds_cases.pod("web", SERVER_IP, SERVER_APP_IP),
        inbound=(ir.InboundPort(port, "HTTP", "PERMISSIVE", "test", AUTHZ),),
    )
    admin = (SERVER_IP, free_port(SERVER_IP))
    config = bootstrap.static_bootstrap(
        translate.proxy_snapshot(server),
        admin=admin,
        node_id=server.node_id,
        secrets_dir=pki.leaf_dir(SERVER_URI),
    )
    config["layered_runtime"] = {
        "layers": [
            {"name": "test", "static_layer": {access_log.INBOUND_SAMPLING_RUNTIME_KEY: percent}}
        ]
    }
    log_file = tmp_path / "web.log"
    with http_apps(SERVER_APP_IP, [port], _App), static_envoy(config, log_file, admin):
        statuses = {
            request_id: _get(port, path, request_id, probe=probe)
            for request_id, (path, probe, _, _) in REQUESTS.items()
        }
    entries = [
        json.loads(line)
        for line in log_file.read_text().splitlines()
        if '"meshward-access"' in line
    ]

    assert statuses == {request_id: status for request_id, (_, _, status, _) in REQUESTS.items()}
    assert sorted(e["request_id"] for e in entries) == sorted(
        request_id for request_id, (_, _, _, always) in REQUESTS.items() if always or percent == 100
    )
    by_id = {e["request_id"]: e for e in entries}
    # What the readers take from them is still there.
    assert access_log.denial(by_id["denied"]) == ("default/no-admin", "DENY", 0)
    assert access_log.shadow_decisions(by_id["dry-run-denial"]) == (
        access_log.ShadowDecision("default/dry", 0, would_allow=False),
    )
    assert (by_id["audited"]["audit"], by_id["probe"]["probe"]) == (True, "probe")


def _log_filter(built: listener_pb2.Listener) -> accesslog_pb2.AccessLogFilter:
    manager = hcm_pb2.HttpConnectionManager()
    built.filter_chains[0].filters[0].typed_config.Unpack(manager)
    (log,) = manager.access_log
    return log.filter


def test_log_filter_by_direction() -> None:
    server = xds_cases.proxy(
        xds_cases.pod("web", SERVER_IP, SERVER_APP_IP),
        inbound=(ir.InboundPort(8080, "HTTP", "STRICT", "test", AUTHZ),),
    )
    inbound = listener.inbound_listener(server.inbound[0], server.pod, server.trust_domain)
    assert (_log_filter(inbound), _log_filter(listener.outbound_http_listener(server))) == (
        access_log.inbound_filter(["meshward_dryrun_default_dry_"]),
        access_log.failures_only(),
    )
