"""The egress gateway on the wire in loopback mode (no root), under REGISTRY_ONLY: the mesh of
tests/e2e/egress_gateway_mesh.py (Istio's egress gateway tasks), the same scenarios as
tests/netns/test_netns_egress_gateway.py, real traffic through real Envoys.

Apps reach an external HTTP port through their sidecar's HTTP proxy (by Host, as with
http_proxy) and a TLS port through the local listener in their `MESHWARD_SVC_*` variable. In
loopback every process dials from 127.0.0.1, so the servers' `peer` proves nothing here: the
egress gateway's own access log does — the caller's SPIFFE identity it authenticated over
mesh mTLS (`peer`) and the host's cluster it forwarded to. Loopback mode cannot stop an app
that dials an outside address itself (MW0531); the netns test proves the enforced mode.

One mesh for the module, in this slice's pools 127.211-214 (one /16 per running checkout).
"""

from __future__ import annotations

import json
import socket
import ssl
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshward.runner.network import unused_pool
from meshward.runner.plan import env_name
from meshward.state.layout import StateDir
from meshward.verify import access_log
from tests.e2e import egress_gateway_mesh
from tests.e2e.conftest import start_mesh, stop_mesh
from tests.e2e.egress_gateway_mesh import World
from tests.e2e.meshctl import Mesh, get_via_sidecar

pytestmark = pytest.mark.e2e

POOL_OCTETS = tuple(range(211, 215))
SLEEP = f"spiffe://{egress_gateway_mesh.TRUST}/ns/shop/sa/sleep"
INTRUDER = f"spiffe://{egress_gateway_mesh.TRUST}/ns/shop/sa/intruder"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    start = zlib.crc32(str(Path(__file__).resolve()).encode()) % len(POOL_OCTETS)
    pool = unused_pool(POOL_OCTETS, first=start)
    second = pool.split(".")[1]
    # Loopback outside hosts are 127.<pool>.250.2.. in (namespace, name) order: bank, maps,
    # pay, vault.
    outside = {"pay": f"127.{second}.250.4", "vault": f"127.{second}.250.5"}
    source = egress_gateway_mesh.write_source(tmp_path_factory.mktemp("egress-gateway"), outside)
    source.create_secret(Mesh(StateDir(source.config.parent / "state"), pool))
    running = start_mesh(source.config.parent, source.config, pool)
    try:
        yield World(running, source.server_ca)
    finally:
        stop_mesh(running)


def _gateway_log(world: World, match: access_log.Match) -> dict[str, Any] | None:
    gateway = world.mesh.pod("egressgateway", "istio-system")
    log = world.mesh.state.sidecar_log(gateway.namespace, gateway.pod)
    return access_log.wait_for([log], match)


def _get(world: World, workload: str, host: str) -> tuple[int, bytes, dict[str, Any] | None]:
    """GET http://<host>/seen from `workload`'s app, and the gateway's log entry for it."""
    probe = uuid.uuid4().hex
    status, body = get_via_sidecar(
        world.mesh.pod(workload, "shop"), host, "/seen", {"X-Meshward-Probe": probe}
    )
    return status, body, _gateway_log(world, lambda e: e.get("probe") == probe)


KEYS = ("peer", "code", "authority", "upstream_cluster")


def _logged(entry: dict[str, Any] | None, keys: tuple[str, ...] = KEYS) -> dict[str, Any]:
    assert entry is not None, "the gateway logged nothing"
    return {k: entry.get(k) for k in keys}


def test_http_leaves_as_verified_tls_originated_at_the_gateway(
    world: World,
) -> None:
    status, body, entry = _get(world, "sleep", "api.maps.example")
    assert status == 200, body
    seen = json.loads(body)
    assert {k: seen[k] for k in ("listener", "tls_version", "sni", "client_cert", "path")} == {
        "listener": "https",
        "tls_version": "TLSv1.3",
        "sni": "api.maps.example",  # the host, as Istio sends when the rule names none
        "client_cert": None,
        "path": "/seen",
    }
    # The gateway authenticated the app's sidecar and sent the call to the host's TLS port.
    assert _logged(entry) == {
        "peer": SLEEP,
        "code": 200,
        "authority": "api.maps.example",
        "upstream_cluster": "outbound|443||api.maps.example",
    }


def test_mtls_origination_at_the_gateway_presents_the_credential(
    world: World,
) -> None:
    status, body, entry = _get(world, "sleep", "bank.example")
    assert status == 200, body
    seen = json.loads(body)
    assert (seen["listener"], seen["sni"], seen["client_cert"]) == (
        "mtls",
        "bank.example",
        {"subject": "CN=shop", "sans": [f"URI:{egress_gateway_mesh.CLIENT_URI}"]},
    )
    assert _logged(entry) == {
        "peer": SLEEP,
        "code": 200,
        "authority": "bank.example",
        "upstream_cluster": "outbound|443||bank.example",
    }


def test_the_gateways_client_credential_is_no_way_around_it(world: World) -> None:
    # bank.example:443 is the gateway's way out, and every sidecar sees it too. The rule that
    # originates mTLS with bank-client selects the gateway only: the intruder's sidecar holds
    # no credential, so its call to the port goes out as the app's plain bytes, which the
    # bank's mTLS port refuses (without the selector it would answer 200 to bank-client).
    intruder = world.mesh.pod("intruder", "shop")
    assert intruder.credentials == ()
    address, _, port = dict(intruder.env)[env_name("istio-system", "bank.example", 443)].rpartition(
        ":"
    )
    with socket.create_connection((address, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /seen HTTP/1.1\r\nHost: bank.example\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer == b"this port speaks TLS only\n"


@pytest.mark.parametrize("host", ["api.maps.example", "bank.example"])
def test_a_workload_the_gateway_policy_does_not_name_gets_403(world: World, host: str) -> None:
    status, _, entry = _get(world, "intruder", host)
    assert status == 403
    # The gateway refused it (no rule names shop/intruder): nothing was dialled upstream.
    assert _logged(entry, ("peer", "code", "details", "upstream_host")) == {
        "peer": INTRUDER,
        "code": 403,
        "details": "rbac_access_denied_matched_policy[none]",
        "upstream_host": None,
    }


def _tls_get(world: World, workload: str, host: str) -> tuple[str, dict[str, Any] | str]:
    """The app's own TLS to `host`:443 through its sidecar's local listener, verifying the
    server's certificate for `host` against the servers' CA: (certificate subject, the
    server's JSON view), or ("", why it failed)."""
    pod = world.mesh.pod(workload, "shop")
    address, _, port = dict(pod.env)[env_name("istio-system", host, 443)].rpartition(":")
    context = ssl.create_default_context(cafile=str(world.server_ca))
    try:
        with (
            socket.create_connection((address, int(port)), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True) or b""
            tls.sendall(f"GET /seen HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    except (OSError, ssl.SSLError) as error:
        return "", f"{type(error).__name__}: {error}"
    subject = ssl.DER_cert_to_PEM_cert(der)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer
    return subject, json.loads(body)


def _tcp_entry(world: World, cluster: str, since: float) -> dict[str, Any] | None:
    """The gateway's log of a connection it forwarded to `cluster` that began after `since`
    (TCP chains log each connection when it closes)."""
    return _gateway_log(
        world,
        lambda e: e.get("upstream_cluster") == cluster and float(e.get("start") or 0) >= since,
    )


def test_passthrough_keeps_the_apps_own_tls_end_to_end(world: World) -> None:
    since = time.time() - 0.01
    subject, seen = _tls_get(world, "sleep", "pay.example")
    assert subject, seen  # verified by the app: only the server holds the key for pay.example
    assert isinstance(seen, dict)
    assert (seen["listener"], seen["sni"], seen["tls_version"]) == (
        "https",
        "pay.example",
        "TLSv1.3",
    )
    # The gateway routed the app's TLS by SNI without terminating it: no caller identity.
    entry = _tcp_entry(world, "outbound|443||pay.example", since)
    assert _logged(entry, ("direction", "peer", "tls", "upstream_cluster")) == {
        "direction": "inbound",
        "peer": None,
        "tls": None,
        "upstream_cluster": "outbound|443||pay.example",
    }


def test_wrapped_tls_is_authorized_by_the_callers_identity(
    world: World,
) -> None:
    since = time.time() - 0.01
    subject, seen = _tls_get(world, "sleep", "vault.example")
    assert subject, seen
    assert isinstance(seen, dict)
    assert (seen["listener"], seen["sni"]) == ("https", "vault.example")
    # The gateway ended the sidecar's mesh mTLS (Envoy's client default tops out at TLS 1.2)
    # and knew the caller; the app's own TLS 1.3 inside went on to the server as bytes.
    entry = _tcp_entry(world, "outbound|443||vault.example", since)
    assert _logged(entry, ("peer", "tls", "upstream_cluster")) == {
        "peer": SLEEP,
        "tls": "TLSv1.2",
        "upstream_cluster": "outbound|443||vault.example",
    }
    refused_at = time.time() - 0.01
    subject, why = _tls_get(world, "intruder", "vault.example")
    assert subject == "", why  # the gateway closed the connection before any TLS of the app's
    denied = _gateway_log(
        world, lambda e: e.get("peer") == INTRUDER and float(e.get("start") or 0) >= refused_at
    )
    # Envoy's tcp_proxy dials the upstream as the connection is accepted; the RBAC filter
    # before it closes the connection at the first bytes, which never reach tcp_proxy.
    assert _logged(denied, ("peer", "termination", "bytes_sent")) == {
        "peer": INTRUDER,
        "termination": "rbac_access_denied_matched_policy[none]",
        "bytes_sent": 0,  # the app got nothing back
    }


@pytest.mark.parametrize(
    ("workload", "to", "decision"),
    [
        ("sleep", "api.maps.example:80", "ALLOW"),
        ("intruder", "bank.example:80", "DENY (403)"),
        ("intruder", "vault.example:443", "DENY (connection closed)"),
        ("intruder", "pay.example:443", "ALLOW"),
    ],
)
def test_authz_explain_gives_the_gateways_decision(
    world: World, workload: str, to: str, decision: str
) -> None:
    # What the tests above saw on the wire, predicted from the config at the gateway.
    explained = world.mesh.cli("authz", "explain", "--from", workload, "-n", "shop", "--to", to)
    assert explained.returncode == 0, explained.stderr
    lines = explained.stdout.splitlines()
    assert [line for line in lines if line.startswith("  decision:")] == [f"  decision: {decision}"]


def test_verify_proves_the_egress_gateway(world: World) -> None:
    egress_gateway_mesh.assert_verified(world.mesh)
