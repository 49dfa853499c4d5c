"""A real mesh in netns mode: capture, names, bypass attempts, outbound policy, verify.

One mesh for the module (pool 127.172 → pods on 198.18.172.0/24). Every claim is checked on
the wire or in the server sidecar's own access log, never by reading our own config back.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshward.netns import enter
from meshward.netns.fabric import Fabric
from meshward.netns.naming import MeshNet
from meshward.state.records import read_json
from meshward.verify import access_log, dial
from tests.e2e.meshctl import Mesh, write_yaml
from tests.netns.conftest import netns_mesh

pytestmark = pytest.mark.netns

MESH_DIR = Path(__file__).parent / "mesh"
POOL = "127.172.0.0/16"
OUTSIDE_PORT = 18090


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    yield from netns_mesh(tmp_path_factory.mktemp("netns"), MESH_DIR, POOL)


def _net(mesh: Mesh) -> MeshNet:
    net = MeshNet.from_runner(read_json(mesh.state.runner) or {})
    assert net is not None
    return net


def _exec(
    mesh: Mesh, workload: str, namespace: str, *argv: str
) -> subprocess.CompletedProcess[str]:
    return mesh.cli("exec", workload, "-n", namespace, "--", *argv, timeout=30)


def test_status_shows_pod_addresses_and_vips(mesh: Mesh) -> None:
    status = mesh.status()
    assert status["network"] == "netns"
    assert status["xds"].startswith("198.18.172.1:")
    pods = {f"{p['namespace']}/{p['pod']}": p["pod_ip"] for p in status["pods"]}
    assert pods == {
        "front/client-0": "198.18.172.2",
        "legacy/old-0": "198.18.172.3",
        "shop/cache-0": "198.18.172.4",
        "shop/web-0": "198.18.172.5",
        "ext/partner-0": "198.19.172.2",  # outside: true — on the outside network
    }
    assert status["vips"] == [
        {"namespace": "shop", "service": "cache", "vip": "198.18.255.1"},
        {"namespace": "shop", "service": "web", "vip": "198.18.255.2"},
    ]


@pytest.mark.parametrize(
    ("namespace", "workload", "name", "resolves"),
    [
        ("front", "client", "web.shop", "198.18.255.2"),
        ("front", "client", "web.shop.svc.cluster.local", "198.18.255.2"),
        ("front", "client", "web", None),  # the short name only from the service's namespace
        ("shop", "cache", "web", "198.18.255.2"),
        ("legacy", "old", "cache.shop.svc", "198.18.255.1"),
    ],
)
def test_service_names_resolve_to_vips_inside_pods(
    mesh: Mesh, namespace: str, workload: str, name: str, resolves: str | None
) -> None:
    result = _exec(mesh, workload, namespace, "getent", "hosts", name)
    found = result.stdout.split()[0] if result.returncode == 0 else None
    assert found == resolves


def test_service_env_is_vip_and_no_proxy(mesh: Mesh) -> None:
    env = dict(mesh.pod("client", "front").env)
    assert env["MESHWARD_SVC_SHOP_WEB_80"] == "198.18.255.2:80"
    assert env["MESHWARD_SVC_SHOP_CACHE_6379"] == "198.18.255.1:6379"
    assert "http_proxy" not in env and "HTTP_PROXY" not in env


def test_app_traffic_is_captured_into_both_sidecars(mesh: Mesh) -> None:
    """The client's plaintext GET by name leaves as mTLS: the server's sidecar logs it with
    the client's SPIFFE ID, and the app sees the caller in X-Forwarded-Client-Cert."""
    probe = uuid.uuid4().hex
    result = _exec(
        mesh,
        "client",
        "front",
        "curl",
        "-s",
        "-m",
        "5",
        "-H",
        f"X-Meshward-Probe: {probe}",
        "http://web.shop/headers",
    )
    assert result.returncode == 0, result.stderr
    headers = json.loads(result.stdout)["headers"]
    assert "URI=spiffe://netns.test/ns/front/sa/client" in headers["X-Forwarded-Client-Cert"]
    log = mesh.state.sidecar_log("shop", "web-0")
    entry = access_log.wait_for([log], lambda e: e.get("probe") == probe)
    assert entry is not None
    assert (entry["direction"], entry["peer"], entry["local"]) == (
        "inbound",
        "spiffe://netns.test/ns/front/sa/client",
        f"{mesh.pod('web', 'shop').pod_ip}:8000",
    )
    assert str(entry["tls"]).startswith("TLS")


def test_tcp_service_through_the_vip(mesh: Mesh) -> None:
    client = mesh.pod("client", "front")
    route = dial.direct(("198.18.255.1", 6379), client.netns)
    assert dial.tcp_exchange(route) == "open: b'+PONG\\r\\n'"


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("client", "pod"),  # from a sidecar pod: captured, passed through in plaintext, refused
        ("legacy", "pod"),  # from a pod with no sidecar: plaintext, refused by STRICT
        ("host", "pod"),  # from the root namespace (the bridge): captured inbound, refused
        ("legacy", "vip"),  # the legacy pod's DNAT to the endpoint: still plaintext, refused
    ],
)
def test_plaintext_to_strict_app_port_is_refused_by_any_route(
    mesh: Mesh, source: str, target: str
) -> None:
    web = mesh.pod("web", "shop")
    address = (web.pod_ip, 8000) if target == "pod" else ("198.18.255.2", 80)
    netns = {"client": mesh.pod("client", "front").netns, "legacy": mesh.pod("old", "legacy").netns}
    route = dial.direct(address, netns.get(source, ""))
    assert dial.http_request(route, "GET", "web", "/get", {}, timeout=3) is None


def test_app_cannot_undo_its_capture(mesh: Mesh) -> None:
    """Apps run without CAP_NET_ADMIN: flushing the pod's nat table fails, the rules stay."""
    result = _exec(mesh, "client", "front", "iptables", "-t", "nat", "-F")
    assert result.returncode != 0
    rules = subprocess.run(
        ["ip", "netns", "exec", mesh.pod("client", "front").netns, "iptables-save", "-t", "nat"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "-A MESHWARD_REDIRECT -p tcp -j REDIRECT --to-ports 15001" in rules


@pytest.mark.parametrize(
    "argv",
    [
        # setgid(2) to the sidecar's GID would make the app's traffic look like Envoy's.
        (sys.executable, "-c", "import os; os.setgid(1337)"),
        (sys.executable, "-c", "import os; os.setgroups([1337])"),
        ("setpriv", "--regid", "1337", "--clear-groups", "true"),
        # a set-group-ID copy of a program, group 1337: no_new_privs keeps the app's GID.
        (
            "sh",
            "-c",
            "cp /usr/bin/id /tmp/mw-sgid-id && chgrp 1337 /tmp/mw-sgid-id"
            " && chmod g+s /tmp/mw-sgid-id && /tmp/mw-sgid-id -g; s=$?; rm -f /tmp/mw-sgid-id;"
            " exit $s",
        ),
    ],
)
def test_app_cannot_take_the_sidecars_group(mesh: Mesh, argv: tuple[str, ...]) -> None:
    """The capture lets GID 1337 (Envoy) out uncaptured; an app must not become it."""
    result = _exec(mesh, "client", "front", *argv)
    became = result.returncode == 0 and result.stdout.strip() in ("", "1337")
    assert not became, (result.returncode, result.stdout, result.stderr)


@contextlib.contextmanager
def _outside_server(mesh: Mesh) -> Iterator[tuple[str, list[str]]]:
    """A TCP server on the outside network (198.19.172.200), recording who connects."""
    fabric = Fabric(_net(mesh))
    netns, ip = fabric.add_outside_host("ext", 200)
    server = enter.listen(netns, ("0.0.0.0", OUTSIDE_PORT))
    server.settimeout(0.2)
    seen: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, peer = server.accept()
            except TimeoutError:
                continue
            seen.append(peer[0])
            # Read the client's line first: closing with unread data would send a reset.
            connection.settimeout(2.0)
            connection.recv(64)
            connection.sendall(b"outside\r\n")
            connection.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield ip, seen
    finally:
        stop.set()
        thread.join()
        server.close()
        fabric.remove_pod(netns)
        fabric.remove_link(_net(mesh).outside_link(ip))


def _set_policy(mesh: Mesh, tmp_path: Path, mode: str) -> None:
    change = write_yaml(
        tmp_path,
        "mesh.yaml",
        "apiVersion: meshward.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\n"
        f"spec: {{trustDomain: netns.test, outboundTrafficPolicy: {{mode: {mode}}}}}\n",
    )
    result = mesh.cli("apply", "-f", str(change))
    assert result.returncode == 0, result.stderr


def test_declared_outside_host_is_reached_in_plaintext_under_allow_any(mesh: Mesh) -> None:
    """`outside: true` runs on the outside network; a pod's call to it passes through its
    sidecar (PassthroughCluster) and arrives from the pod's address."""
    partner = mesh.pod("partner", "ext")
    assert (partner.outside, partner.sidecar, partner.netns.endswith(".outside.ext.partner-0")) == (
        True,
        False,
        True,
    )
    result = _exec(
        mesh, "client", "front", "curl", "-s", "-m", "5", f"http://{partner.pod_ip}:9000/ip"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["origin"] == mesh.pod("client", "front").pod_ip


def test_outbound_policy_allow_any_then_registry_only(mesh: Mesh, tmp_path: Path) -> None:
    client = mesh.pod("client", "front")
    with _outside_server(mesh) as (ip, seen):
        route = dial.direct((ip, OUTSIDE_PORT), client.netns)
        assert dial.tcp_exchange(route) == "open: b'outside\\r\\n'"
        assert seen == [client.pod_ip]  # passed through, from the pod's own address
        _set_policy(mesh, tmp_path, "REGISTRY_ONLY")
        try:
            # BlackHoleCluster closes the accepted connection; whether our PING was already
            # written decides between a close and a reset.
            assert dial.tcp_exchange(route) in (
                "closed by the server",
                "refused: [Errno 104] Connection reset by peer",
            )
            assert seen == [client.pod_ip]  # the outside host never saw the second one
            # Registered services still work under REGISTRY_ONLY.
            assert dial.tcp_exchange(dial.direct(("198.18.255.1", 6379), client.netns)) == (
                "open: b'+PONG\\r\\n'"
            )
        finally:
            _set_policy(mesh, tmp_path, "ALLOW_ANY")


def test_verify_runs_the_netns_probes_and_all_hold(mesh: Mesh) -> None:
    result = mesh.cli("verify", "--json", timeout=120)
    report = json.loads(result.stdout)
    checks = {r["check"] for r in report["probes"]}
    assert {"no-bypass", "outside-through-sidecar", "egress-policy"} <= checks
    failed = [r for r in report["probes"] if not r["passed"]]
    assert result.returncode == 0 and failed == []


def test_a_pod_attached_to_the_outside_network_is_reachable_there(mesh: Mesh) -> None:
    """The gateway API: `attach_outside` gives a pod eth1 on the outside network; an outside
    host reaches a listener on that address (and nothing else changes for the pod)."""
    fabric, net = Fabric(_net(mesh)), _net(mesh)
    old = mesh.pod("old", "legacy")
    ip = fabric.attach_outside(old.netns, old.pod_ip)
    assert ip == "198.19.172.3"  # the pod's host part on the outside subnet
    outside, _ = fabric.add_outside_host("gwtest", 201)
    listener = enter.listen(old.netns, (ip, 18091))
    try:
        with enter.connect(outside, (ip, 18091), timeout=3) as client:
            accepted, peer = listener.accept()
            accepted.close()
            assert peer[0] == "198.19.172.201" and client.fileno() > 0
    finally:
        listener.close()
        fabric.remove_pod(outside)
        fabric.remove_link(net.outside_link("198.19.172.201"))
        fabric.remove_link(net.gateway_link(old.pod_ip))
