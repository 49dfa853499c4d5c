"""The egress gateway on the wire (issue 7 items 3-6), netns mode under REGISTRY_ONLY: the mesh
of tests/e2e/egress_gateway_mesh.py (Istio's egress gateway tasks; loopback mode runs the same
YAML in tests/e2e/test_e2e_egress_gateway.py). Every call leaves through the egress gateway,
and each outside server reports what it saw (peer address, TLS version, SNI, client cert):

  * api.maps.example — the app speaks HTTP; its sidecar sends it over mesh mTLS to the
    gateway, which originates TLS (DestinationRule SIMPLE, server verified);
  * bank.example — the same, with mTLS origination at the gateway (MUTUAL, credentialName);
  * pay.example — the app's own TLS, routed by SNI through sidecar and gateway (PASSTHROUGH):
    the app verifies the server's own certificate, nothing in between can read it;
  * vault.example — the app's own TLS wrapped in mesh mTLS to the gateway, so the gateway's
    AuthorizationPolicy knows the caller;
  * `intruder`, a workload the gateway's policy does not name, gets 403 (HTTP) or a closed
    connection (wrapped TLS); a raw socket to the servers' addresses goes nowhere.

One mesh for the module (pool 127.173 → pods 198.18.173.0/24, outside 198.19.173.0/24).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from meshward.verify import dial
from tests.e2e import egress_gateway_mesh
from tests.e2e.egress_gateway_mesh import World
from tests.netns.conftest import netns_mesh

pytestmark = pytest.mark.netns

POOL = "127.173.0.0/16"
# Outside hosts are numbered from .2 in (namespace, name) order.
OUTSIDE = {"bank": "198.19.173.2", "maps": "198.19.173.3", "pay": "198.19.173.4"}
OUTSIDE["vault"] = "198.19.173.5"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    source = egress_gateway_mesh.write_source(
        tmp_path_factory.mktemp("netns-egress-gateway"), OUTSIDE
    )
    root = source.config.parent
    for mesh in netns_mesh(root, source.config, POOL, before=source.create_secret):
        yield World(mesh, source.server_ca)


def _curl(world: World, workload: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return world.mesh.cli("exec", workload, "-n", "shop", "--", "curl", "-s", "-m", "5", *argv)


def _gateway_ip(world: World) -> str:
    return world.mesh.pod("egressgateway", "istio-system").pod_ip


def test_http_leaves_as_verified_tls_originated_at_the_gateway(
    world: World,
) -> None:
    result = _curl(world, "sleep", "http://api.maps.example/seen")
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert {k: seen[k] for k in ("listener", "tls_version", "sni", "client_cert", "peer")} == {
        "listener": "https",
        "tls_version": "TLSv1.3",
        "sni": "api.maps.example",  # the host, as Istio sends when the rule names none
        "client_cert": None,
        "peer": _gateway_ip(world),  # the gateway, not the app's pod, is who leaves the mesh
    }


def test_mtls_origination_at_the_gateway_presents_the_credential(
    world: World,
) -> None:
    result = _curl(world, "sleep", "http://bank.example/seen")
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert (seen["listener"], seen["peer"]) == ("mtls", _gateway_ip(world))
    assert seen["client_cert"] == {
        "subject": "CN=shop",
        "sans": [f"URI:{egress_gateway_mesh.CLIENT_URI}"],
    }


def test_a_workload_the_gateway_policy_does_not_name_gets_403(
    world: World,
) -> None:
    for host in ("api.maps.example", "bank.example"):
        result = _curl(
            world, "intruder", "-o", "/dev/null", "-w", "%{http_code}", f"http://{host}/seen"
        )
        assert result.stdout == "403", (host, result.stdout, result.stderr)


def test_passthrough_keeps_the_apps_own_tls_end_to_end(world: World) -> None:
    # The app verifies pay.example's own certificate: only the server holds its key.
    result = _curl(world, "sleep", "--cacert", str(world.server_ca), "https://pay.example/seen")
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert {k: seen[k] for k in ("listener", "sni", "peer")} == {
        "listener": "https",
        "sni": "pay.example",
        "peer": _gateway_ip(world),
    }


def test_wrapped_tls_is_authorized_by_the_callers_identity(
    world: World,
) -> None:
    ok = _curl(world, "sleep", "--cacert", str(world.server_ca), "https://vault.example/seen")
    assert ok.returncode == 0, ok.stderr
    seen = json.loads(ok.stdout)
    assert (seen["listener"], seen["sni"], seen["peer"]) == (
        "https",
        "vault.example",
        _gateway_ip(world),
    )
    refused = _curl(
        world, "intruder", "--cacert", str(world.server_ca), "https://vault.example/seen"
    )
    assert refused.returncode != 0 and refused.stdout == ""


@pytest.mark.parametrize("server", sorted(OUTSIDE))
def test_no_way_around_the_gateway(world: World, server: str) -> None:
    # REGISTRY_ONLY and capture: the servers' own addresses are not registered destinations.
    route = dial.direct((OUTSIDE[server], 9443), world.mesh.pod("sleep", "shop").netns)
    assert dial.tcp_exchange(route) in (
        "closed by the server",
        "refused: [Errno 104] Connection reset by peer",
    )


def test_verify_proves_the_egress_gateway(world: World) -> None:
    egress_gateway_mesh.assert_verified(world.mesh)
