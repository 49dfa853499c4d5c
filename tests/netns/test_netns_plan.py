"""The pure parts of the netns mode (no root needed): capture rules, names and subnets,
addresses and VIPs, MeshConfig outboundTrafficPolicy, the model and the apps' environment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meshward.config import load
from meshward.errors import StateError
from meshward.model import allocate, build, replicas
from meshward.model.addressing import vips
from meshward.model.ir import Network, PodAddress, PodKey
from meshward.netns import capture
from meshward.netns.naming import MeshNet, hosts_file, subnet_index
from meshward.runner.network import Loopback
from meshward.runner.plan import outside_keys, plan_outside, plan_pods
from meshward.xds import listener

MESH_DIR = Path(__file__).parent / "mesh"


def test_sidecar_capture_rules(golden: Callable[[str, Any], None]) -> None:
    golden("netns/sidecar-rules.txt", capture.sidecar_rules())


def test_inbound_bind_is_the_address_the_rules_let_pass() -> None:
    assert listener.INBOUND_BIND == capture.INBOUND_PASSTHROUGH_BIND


def test_legacy_rules_dnat_each_vip_port_to_its_endpoint() -> None:
    rules = capture.legacy_rules(
        [("198.18.255.2", 80, "198.18.7.3", 8000), ("198.18.255.1", 6379, "198.18.7.4", 6379)]
    )
    assert rules.splitlines()[5:] == [
        "-A OUTPUT -d 198.18.255.1/32 -p tcp --dport 6379 -j DNAT --to-destination 198.18.7.4:6379",
        "-A OUTPUT -d 198.18.255.2/32 -p tcp --dport 80 -j DNAT --to-destination 198.18.7.3:8000",
        "COMMIT",
    ]


@pytest.mark.parametrize(
    ("pool", "index"),
    [
        ("127.172.0.0/16", 172),
        ("198.18.9.0/24", 9),
        ("127.0.0.0/16", None),  # N must be 1..253
        ("198.18.255.0/24", None),  # the VIP range
        ("198.19.3.0/24", None),  # the outside network
        ("10.0.0.0/24", None),
        ("127.5.0.0/24", None),
        ("not-a-pool", None),
    ],
)
def test_subnet_index(pool: str, index: int | None) -> None:
    if index is None:
        with pytest.raises(StateError):
            subnet_index(pool)
    else:
        assert subnet_index(pool) == index


def test_names_and_addresses_of_one_mesh() -> None:
    net = MeshNet(prefix="mw1a2b", index=172)
    assert (net.pod_subnet, net.outside_subnet, net.host_ip, net.router_pod_ip) == (
        "198.18.172.0/24",
        "198.19.172.0/24",
        "198.18.172.1",
        "198.18.172.254",
    )
    assert net.pod_netns("shop", "web-0") == "mw1a2b.shop.web-0"
    links = [
        net.pod_bridge,
        net.outside_bridge,
        net.pod_link("198.18.172.253"),
        net.outside_link("198.19.172.250"),
        net.gateway_link("198.18.172.253"),
    ]
    assert links == ["mw1a2b-br", "mw1a2b-bo", "mw1a2b-p253", "mw1a2b-o250", "mw1a2b-g253"]
    assert max(len(link) for link in links) <= 15  # IFNAMSIZ - 1
    assert all(net.owns_link(link) for link in links)
    assert not net.owns_link("mw1a2c-br") and not net.owns_netns("mw1a2bx.shop.web-0")
    runner = {"network": "netns", "netns": {"prefix": "mw1a2b", "index": 172}}
    assert MeshNet.from_runner(runner) == net
    assert MeshNet.from_runner({"network": "loopback"}) is None


def test_hosts_file() -> None:
    text = hosts_file({"198.18.255.2": ("web.shop.svc.cluster.local", "web")}, "198.18.7.3", "a-0")
    assert text == (
        "127.0.0.1\tlocalhost\n198.18.7.3\ta-0\n198.18.255.2\tweb.shop.svc.cluster.local web\n"
    )


def test_netns_addresses_keep_previous_and_fill_lowest() -> None:
    a, b, c = (PodKey("ns", w, 0) for w in ("a", "b", "c"))
    previous = {b: PodAddress("198.18.9.2", "198.18.9.2")}
    placed = allocate([(a, True), (b, True), (c, False)], previous, "198.18.9.0/24")
    assert placed == {
        a: PodAddress("198.18.9.3", "198.18.9.3"),
        b: PodAddress("198.18.9.2", "198.18.9.2"),
        c: PodAddress("198.18.9.4", "198.18.9.4"),
    }


def test_vips_keep_previous_and_fill_lowest() -> None:
    assert vips([("a", "x"), ("b", "y"), ("a", "z")], {("b", "y"): "198.18.255.1"}) == {
        ("a", "x"): "198.18.255.2",
        ("a", "z"): "198.18.255.3",
        ("b", "y"): "198.18.255.1",
    }


@pytest.mark.parametrize(
    ("policy", "codes", "mode"),
    [
        ("", [], "ALLOW_ANY"),
        ("outboundTrafficPolicy: {mode: REGISTRY_ONLY}", [], "REGISTRY_ONLY"),
        ("outboundTrafficPolicy: {mode: ALLOW_ANY}", [], "ALLOW_ANY"),
        ("outboundTrafficPolicy: {mode: DENY_ALL}", ["MW0150"], None),
        ("outboundTrafficPolicy: {mode: REGISTRY_ONLY, egressProxy: {}}", ["MW0106"], None),
    ],
)
def test_outbound_traffic_policy(
    tmp_path: Path, policy: str, codes: list[str], mode: str | None
) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(
        "apiVersion: meshward.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: m}\n"
        f"spec: {{{policy}}}\n"
    )
    config = load([path])
    assert [d.code for d in config.diagnostics] == codes
    if mode is not None:
        assert config.mesh.outbound_traffic_policy == mode


def test_netns_model_and_app_environment() -> None:
    config = load([MESH_DIR])
    addresses = allocate(replicas(config.workloads), {}, "198.18.9.0/24")
    network = Network(
        "netns",
        ((("shop", "cache"), "198.18.255.1"), (("shop", "web"), "198.18.255.2")),
        "mwtest",
    )
    model, _ = build(config, addresses, network)
    client = next(p for p in model.proxies if p.pod.key.workload == "client")
    assert client.capture and client.outbound_policy == "ALLOW_ANY"
    assert [(s.name, s.vip, s.tcp_bind) for s in client.outbound] == [
        ("cache", "198.18.255.1", None),
        ("web", "198.18.255.2", None),
    ]
    assert network.netns(client.pod.key) == "mwtest.front.client-0"
    plans = {p.pod: dict(p.env) for p in plan_pods(config, model)}
    for env in plans.values():
        assert "http_proxy" not in env
    assert plans["old-0"]["MESHWARD_SVC_SHOP_WEB_80"] == "198.18.255.2:80"
    assert plans["client-0"]["MESHWARD_SVC_SHOP_CACHE_6379"] == "198.18.255.1:6379"
    assert plans["client-0"]["MESHWARD_APP_HOST"] == client.pod.address.pod_ip


def test_outside_workloads_are_hosts_not_pods() -> None:
    """`outside: true`: no pod, no sidecar, no service endpoint; the runner plans it on the
    outside network with its own address and nothing of the mesh in its environment."""
    config = load([MESH_DIR])
    partner = next(w for w in config.workloads if w.meta.name == "partner")
    assert (partner.outside, partner.sidecar) == (True, False)
    assert all(key.workload != "partner" for key, _ in replicas(config.workloads))
    key = PodKey("ext", "partner", 0)
    assert outside_keys(config) == (key,)
    assert Loopback("127.172.0.0/16").place_outside([key]) == {key: ("", "127.172.250.2")}
    (plan,) = plan_outside(config, {key: "198.19.9.2"}, "/var/mesh")
    assert (plan.pod, plan.sidecar, plan.pod_ip) == ("partner-0", False, "198.19.9.2")
    assert dict(plan.env) == {
        "MESHWARD_APP_HOST": "198.19.9.2",
        "MESHWARD_NAMESPACE": "ext",
        "MESHWARD_POD_IP": "198.19.9.2",
        "MESHWARD_POD_NAME": "partner-0",
        "MESHWARD_STATE_DIR": "/var/mesh",  # where the demo's outside-world PKI is
    }
    assert plan.argv[-4:] == ("--host", "198.19.9.2", "--port", "9000")
