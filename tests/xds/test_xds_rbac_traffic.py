"""AuthorizationPolicies enforced by two real Envoys built from translated snapshots.

client app → client sidecar → mTLS → server sidecar (RBAC filters from xds/rbac.py) → a tiny
app. Proves that a denial names its rule in the server's access log (`details` for HTTP,
`termination` for TCP), that no ALLOW match denies with `[none]`, that a matching ALLOW rule
(by SPIFFE principal and path) lets the request through, that a dry-run DENY rule only
records its decision, and that an AUDIT rule marks the request — read back with the same
`access_log.denial` / `shadow_decisions` the CLI and verifier use.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import xds_cases
from static_envoy import free_port, http_apps, static_envoy
from xds_pki import Pki

from meshward.model import ir
from meshward.model.authorization import (
    AuthzPolicy,
    AuthzRule,
    OperationMatch,
    PortAuthz,
    SourceMatch,
    StringMatch,
)
from meshward.xds import access_log, bootstrap, translate

pytestmark = pytest.mark.e2e

CLIENT_IP, CLIENT_APP_IP = "127.0.40.1", "127.0.40.2"
SERVER_IP, SERVER_APP_IP = "127.0.41.1", "127.0.41.2"
CLIENT_URI = "spiffe://cluster.local/ns/default/sa/client"
SERVER_URI = "spiffe://cluster.local/ns/default/sa/web"
_CLIENT = SourceMatch(principals=(StringMatch("exact", "cluster.local/ns/default/sa/client"),))


def _paths(kind: str, value: str) -> OperationMatch:
    return OperationMatch(paths=(StringMatch(kind, value),))  # type: ignore[arg-type]


HTTP_AUTHZ = PortAuthz(
    (
        # CUSTOM fails closed (no external authorizer yet): what it would send is denied.
        AuthzPolicy(
            "default",
            "ext",
            "CUSTOM",
            (AuthzRule(0, operations=(_paths("prefix", "/api/ext"),)),),
            provider="opa",
        ),
        AuthzPolicy(
            "default",
            "no-admin",
            "DENY",
            (
                AuthzRule(0, operations=(_paths("prefix", "/admin"),)),
                # Denies every caller but the client: proves principal matching both ways.
                AuthzRule(1, sources=(SourceMatch(not_principals=_CLIENT.principals),)),
            ),
        ),
        AuthzPolicy(
            "default",
            "dry-deny",
            "DENY",
            (AuthzRule(0, operations=(_paths("exact", "/api/dry"),)),),
            dry_run=True,
        ),
        AuthzPolicy(
            "default",
            "api",
            "ALLOW",
            (AuthzRule(0, sources=(_CLIENT,), operations=(_paths("prefix", "/api/"),)),),
        ),
        AuthzPolicy(
            "default",
            "audit",
            "AUDIT",
            (AuthzRule(0, operations=(_paths("prefix", "/api/audited"),)),),
        ),
    )
)
# An ALLOW policy without rules allows nothing (Istio), even the client.
NOTHING_AUTHZ = PortAuthz((AuthzPolicy("default", "allow-nothing", "ALLOW", ()),))
TCP_AUTHZ = PortAuthz(
    (AuthzPolicy("default", "deny-tcp", "DENY", (AuthzRule(0, sources=(_CLIENT,)),)),)
)


def _distinct(count: int, *ips: str) -> list[int]:
    """`count` different free ports (a port is released once picked, so it may come again)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(*ips)
        if port not in ports:
            ports.append(port)
    return ports


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass


@contextlib.contextmanager
def _envoy(proxy: ir.ProxyModel, secrets: Path, log_file: Path) -> Iterator[tuple[str, int]]:
    """A running Envoy for `proxy` (yields its admin address), stopped by PID on exit. Envoy
    buffers its stdout access log, so `log_file` is complete only once the context exited."""
    admin = (proxy.pod.address.pod_ip, free_port(proxy.pod.address.pod_ip))
    config = bootstrap.static_bootstrap(
        translate.proxy_snapshot(proxy), admin=admin, node_id=proxy.node_id, secrets_dir=secrets
    )
    with static_envoy(config, log_file, admin):
        yield admin
    assert "deprecated" not in log_file.read_text()


def _get(proxy_port: int, url: str, probe: str) -> int:
    connection = http.client.HTTPConnection(CLIENT_IP, proxy_port, timeout=10)
    try:
        connection.request("GET", url, headers={"X-Meshward-Probe": probe})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _tcp_exchange(port: int) -> bytes:
    """Send an HTTP request through the client's TCP port; what came back before close."""
    with socket.create_connection((CLIENT_IP, port), timeout=5) as raw:
        raw.sendall(b"GET /tcp HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        reply = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := raw.recv(4096):
                reply += chunk
    return reply


def _rbac_stats(admin: tuple[str, int], prefix: str) -> dict[str, int]:
    """Envoy's counters under `prefix` (prefix removed), from the admin `/stats` page."""
    connection = http.client.HTTPConnection(*admin, timeout=5)
    try:
        connection.request("GET", "/stats?usedonly")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if name.startswith(prefix) and value.isdigit():
            found[name[len(prefix) :]] = int(value)
    return found


def _entries(log_file: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in log_file.read_text().splitlines()
        if line.startswith("{") and '"meshward-access"' in line
    ]


def test_policies_enforced_and_explained(pki: Pki, tmp_path: Path) -> None:
    http_port, tcp_port, nothing_port = _distinct(3, SERVER_IP, SERVER_APP_IP)
    proxy_port, tcp_local = _distinct(2, CLIENT_IP)
    server_pod = xds_cases.pod("web", SERVER_IP, SERVER_APP_IP)
    server = xds_cases.proxy(
        server_pod,
        inbound=(
            ir.InboundPort(http_port, "HTTP", "STRICT", "test", HTTP_AUTHZ),
            ir.InboundPort(tcp_port, "TCP", "STRICT", "test", TCP_AUTHZ),
            ir.InboundPort(nothing_port, "HTTP", "STRICT", "test", NOTHING_AUTHZ),
        ),
    )
    client = xds_cases.proxy(
        xds_cases.pod("client", CLIENT_IP, CLIENT_APP_IP),
        outbound=(
            xds_cases.service(
                "web",
                http_port,
                "HTTP",
                (xds_cases.endpoint(server_pod, http_port, mtls=True),),
                sans=(SERVER_URI,),
            ),
            xds_cases.service(
                "webtcp",
                tcp_port,
                "TCP",
                (xds_cases.endpoint(server_pod, tcp_port, mtls=True),),
                sans=(SERVER_URI,),
                tcp_bind=(CLIENT_IP, tcp_local),
            ),
            xds_cases.service(
                "nothing",
                nothing_port,
                "HTTP",
                (xds_cases.endpoint(server_pod, nothing_port, mtls=True),),
                sans=(SERVER_URI,),
            ),
        ),
        outbound_http_port=proxy_port,
    )
    requests = {
        "admin": "/admin/users",
        # Normalised (RFC 3986 §6) before RBAC sees it: still the admin rule.
        "dotted": "/api/../admin/users",
        "unmatched": "/other",
        "allowed": "/api/items",
        "dry": "/api/dry",
        "custom": "/api/ext/call",
        "audited": "/api/audited",
    }
    server_log = tmp_path / "web.log"
    with (
        http_apps(SERVER_APP_IP, [http_port, tcp_port, nothing_port], _Ok),
        _envoy(server, pki.leaf_dir(SERVER_URI), server_log) as admin,
        _envoy(client, pki.leaf_dir(CLIENT_URI), tmp_path / "client.log"),
    ):
        statuses = {
            probe: _get(proxy_port, f"http://web:{http_port}{path}", probe)
            for probe, path in requests.items()
        }
        tcp_reply = _tcp_exchange(tcp_local)
        nothing = _get(proxy_port, f"http://nothing:{nothing_port}/api/items", "nothing")
        stats = _rbac_stats(admin, f"http.inbound_{http_port}.rbac.")

    assert statuses == {
        "admin": 403,
        "dotted": 403,
        "unmatched": 403,
        "allowed": 200,
        "dry": 200,
        "custom": 403,
        "audited": 200,
    }
    assert (tcp_reply, nothing) == (b"", 403)
    entries = _entries(server_log)
    by_probe = {e["probe"]: e for e in entries if e.get("probe") not in (None, "-")}
    assert {probe: access_log.denial(by_probe[probe]) for probe in requests} == {
        "admin": ("default/no-admin", "DENY", 0),
        "dotted": ("default/no-admin", "DENY", 0),
        "unmatched": ("", "ALLOW", None),
        "custom": ("default/ext", "CUSTOM", 0),
        "allowed": None,
        "dry": None,
        "audited": None,
    }
    assert by_probe["admin"]["details"] == (
        "rbac_access_denied_matched_policy[ns[default]-policy[no-admin]-rule[0]]"
    )
    assert by_probe["unmatched"]["details"] == "rbac_access_denied_matched_policy[none]"
    assert by_probe["nothing"]["details"] == "rbac_access_denied_matched_policy[none]"
    # Every request is shadow-evaluated (shadow filters run first), denied ones included.
    assert {probe: access_log.shadow_decisions(by_probe[probe]) for probe in requests} == {
        probe: (
            access_log.ShadowDecision(
                "default/dry-deny", 0 if probe == "dry" else None, would_allow=probe != "dry"
            ),
        )
        for probe in requests
    }
    assert {probe: by_probe[probe]["audit"] for probe in requests} == {
        "admin": False,
        "dotted": False,
        "unmatched": False,
        "allowed": False,
        "dry": False,
        "custom": False,
        "audited": True,
    }
    (tcp_entry,) = [e for e in entries if e["local"].endswith(f":{tcp_port}")]
    assert tcp_entry["termination"] == (
        "rbac_access_denied_matched_policy[ns[default]-policy[deny-tcp]-rule[0]]"
    )
    assert access_log.denial(tcp_entry) == ("default/deny-tcp", "DENY", 0)
    # Metrics per engine and per rule: the dry-run rule would have denied one request.
    dry, deny = "meshward_dryrun_default_dry-deny_", "meshward_deny_"
    assert {
        key: stats.get(key)
        for key in (
            f"{dry}.shadow_denied",
            f"{dry}.policy.ns[default]-policy[dry-deny]-rule[0].shadow_denied",
            f"{deny}.denied",
            f"{deny}.policy.ns[default]-policy[no-admin]-rule[0].denied",
            "meshward_allow_.denied",
            "meshward_allow_.allowed",
        )
    } == {
        f"{dry}.shadow_denied": 1,
        f"{dry}.policy.ns[default]-policy[dry-deny]-rule[0].shadow_denied": 1,
        f"{deny}.denied": 2,
        f"{deny}.policy.ns[default]-policy[no-admin]-rule[0].denied": 2,
        "meshward_allow_.denied": 1,
        "meshward_allow_.allowed": 3,
    }
