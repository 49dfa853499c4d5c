"""The egress gateway on the wire (issue 7 items 3-6), netns mode under REGISTRY_ONLY, shaped
like Istio's egress gateway tasks. Four outside servers (meshward.samples.outside, their
certificates from a test CA, their `hostnames` the outside world's DNS: maps and bank are
DNS-resolved ServiceEntries as in Istio's tasks, pay and vault STATIC) stand for external
APIs; every call leaves through the egress gateway, and each server reports what it saw
(peer address, TLS version, SNI, client cert):

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
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshward.samples.edge_pki import Ca
from meshward.verify import dial
from tests.e2e.meshctl import Mesh, write_yaml
from tests.netns.conftest import netns_mesh

pytestmark = pytest.mark.netns

POOL = "127.173.0.0/16"
# Outside hosts are numbered from .2 in (namespace, name) order.
OUTSIDE = {"bank": "198.19.173.2", "maps": "198.19.173.3", "pay": "198.19.173.4"}
OUTSIDE["vault"] = "198.19.173.5"
TRUST = "egress-gw.test"
CLIENT_URI = "spiffe://bank-customers.example/shop"

MESH = """\
apiVersion: meshward.io/v1alpha1
kind: MeshConfig
metadata: {{name: mesh}}
spec: {{trustDomain: {trust}, outboundTrafficPolicy: {{mode: REGISTRY_ONLY}}}}
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {{name: sleep, namespace: shop, labels: {{app: sleep}}}}
spec:
  serviceAccount: sleep
  ports: [{{name: http, port: 8000}}]
  command: ["python", "-m", "meshward.samples.httpbin"]
  args: ["--host", "$(MESHWARD_APP_HOST)", "--port", "8000"]
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {{name: intruder, namespace: shop, labels: {{app: intruder}}}}
spec:
  serviceAccount: intruder
  ports: [{{name: http, port: 8000}}]
  command: ["python", "-m", "meshward.samples.httpbin"]
  args: ["--host", "$(MESHWARD_APP_HOST)", "--port", "8000"]
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {{name: egressgateway, namespace: istio-system, labels: {{istio: egressgateway}}}}
spec: {{gateway: egress, serviceAccount: egressgateway}}
---
apiVersion: v1
kind: Service
metadata: {{name: egressgateway, namespace: istio-system}}
spec:
  selector: {{istio: egressgateway}}
  ports:
  - {{name: http, port: 80}}
  - {{name: tls, port: 443, appProtocol: tls}}
  - {{name: tls-wrapped, port: 8443, appProtocol: tls}}
{outside}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: apis, namespace: istio-system}}
spec:
  hosts: [api.maps.example]
  ports:
  - {{number: 80, name: http, protocol: HTTP}}
  - {{number: 443, name: https, protocol: HTTPS, targetPort: 9443}}
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: bank, namespace: istio-system}}
spec:
  hosts: [bank.example]
  ports:
  - {{number: 80, name: http, protocol: HTTP}}
  - {{number: 443, name: https, protocol: HTTPS, targetPort: 9444}}
  resolution: DNS
  endpoints: [{{address: bank.example}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: pay, namespace: istio-system}}
spec:
  hosts: [pay.example]
  ports: [{{number: 443, name: tls, protocol: TLS, targetPort: 9443}}]
  resolution: STATIC
  endpoints: [{{address: {pay}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: vault, namespace: istio-system}}
spec:
  hosts: [vault.example]
  ports: [{{number: 443, name: tls, protocol: TLS, targetPort: 9443}}]
  resolution: STATIC
  endpoints: [{{address: {vault}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: egress, namespace: istio-system}}
spec:
  selector: {{istio: egressgateway}}
  servers:
  - port: {{number: 80, name: https-apis, protocol: HTTPS}}
    hosts: [api.maps.example, bank.example]
    tls: {{mode: ISTIO_MUTUAL}}
  - port: {{number: 443, name: tls, protocol: TLS}}
    hosts: [pay.example]
    tls: {{mode: PASSTHROUGH}}
  - port: {{number: 8443, name: tls-wrapped, protocol: TLS}}
    hosts: [vault.example]
    tls: {{mode: ISTIO_MUTUAL}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: egressgateway, namespace: istio-system}}
spec:
  host: egressgateway.istio-system.svc.cluster.local
  trafficPolicy:
    portLevelSettings:
    - port: {{number: 80}}
      tls: {{mode: ISTIO_MUTUAL, sni: api.maps.example}}
    - port: {{number: 8443}}
      tls: {{mode: ISTIO_MUTUAL, sni: vault.example}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: maps-tls, namespace: istio-system}}
spec:
  host: api.maps.example
  trafficPolicy:
    portLevelSettings:
    - port: {{number: 443}}
      tls: {{mode: SIMPLE, caCertificates: "{server_ca}", subjectAltNames: [api.maps.example]}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: bank-mtls, namespace: istio-system}}
spec:
  host: bank.example
  trafficPolicy:
    portLevelSettings:
    - port: {{number: 443}}
      tls: {{mode: MUTUAL, credentialName: bank-client}}
{routes}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: egress-callers, namespace: istio-system}}
spec:
  selector: {{matchLabels: {{istio: egressgateway}}}}
  rules:
  - from: [{{source: {{principals: [{trust}/ns/shop/sa/sleep]}}}}]
    to: [{{operation: {{hosts: [api.maps.example, bank.example], ports: ["80"]}}}}]
  - from: [{{source: {{principals: [{trust}/ns/shop/sa/sleep]}}}}]
    to: [{{operation: {{ports: ["8443"]}}}}]
  - to: [{{operation: {{ports: ["443"]}}}}]
"""
OUTSIDE_SERVER = """\
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {{name: {name}, namespace: ext, labels: {{app: {name}}}}}
spec:
  outside: true
  hostnames: [{host}]
  ports: [{{name: https, port: 9443}}, {{name: mtls, port: 9444}}]
  command: ["python", "-m", "meshward.samples.outside"]
  args: ["--host", "$(MESHWARD_APP_HOST)", "--https-port", "9443", "--mtls-port", "9444",
         "--client-ca", "{client_ca}", "--cert", "{cert}", "--key", "{key}",
         "--server-name", "{host}"]
"""
HTTP_ROUTE = """\
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: istio-system}}
spec:
  hosts: [{host}]
  gateways: [mesh, istio-system/egress]
  http:
  - match: [{{gateways: [mesh], port: 80}}]
    route: [{{destination: {{host: egressgateway.istio-system, port: {{number: 80}}}}}}]
  - match: [{{gateways: [istio-system/egress], port: 80}}]
    route: [{{destination: {{host: {host}, port: {{number: 443}}}}}}]
"""
TLS_ROUTE = """\
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: istio-system}}
spec:
  hosts: [{host}]
  gateways: [mesh, istio-system/egress]
  tls:
  - match: [{{gateways: [mesh], port: 443, sniHosts: [{host}]}}]
    route: [{{destination: {{host: egressgateway.istio-system, port: {{number: {port}}}}}}}]
{gateway}"""
# The gateway's way on: by SNI (PASSTHROUGH), or as bytes once the mesh mTLS is off (tcp).
BY_SNI = """\
  - match: [{{gateways: [istio-system/egress], port: 443, sniHosts: [{host}]}}]
    route: [{{destination: {{host: {host}, port: {{number: 443}}}}}}]
"""
BY_TCP = """\
  tcp:
  - match: [{{gateways: [istio-system/egress], port: 8443}}]
    route: [{{destination: {{host: {host}, port: {{number: 443}}}}}}]
"""
HOSTS = {
    "maps": "api.maps.example",
    "bank": "bank.example",
    "pay": "pay.example",
    "vault": "vault.example",
}


@dataclass
class World:
    mesh: Mesh
    server_ca: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("netns-egress-gateway")
    pki = root / "pki"
    servers, clients = Ca("servers", pki), Ca("bank-customers", pki)
    outside = []
    for name, host in HOSTS.items():
        cert, key, _ = servers.issue(name, dns=host)
        outside.append(
            OUTSIDE_SERVER.format(
                name=name, host=host, cert=cert, key=key, client_ca=clients.cert_file
            )
        )
    routes = [
        HTTP_ROUTE.format(name="maps", host=HOSTS["maps"]),
        HTTP_ROUTE.format(name="bank", host=HOSTS["bank"]),
        TLS_ROUTE.format(
            name="pay", host=HOSTS["pay"], port=443, gateway=BY_SNI.format(host=HOSTS["pay"])
        ),
        TLS_ROUTE.format(
            name="vault", host=HOSTS["vault"], port=8443, gateway=BY_TCP.format(host=HOSTS["vault"])
        ),
    ]
    config = root / "config"
    config.mkdir()
    write_yaml(
        config,
        "mesh.yaml",
        MESH.format(
            trust=TRUST,
            outside="".join(outside),
            routes="".join(routes),
            server_ca=servers.cert_file,
            **OUTSIDE,
        ),
    )
    client_cert, client_key, _ = clients.issue("shop", uri=CLIENT_URI)

    def secret(mesh: Mesh) -> None:
        created = mesh.cli(
            "secret", "create", "tls", "bank-client", "--cert", str(client_cert),
            "--key", str(client_key), "--cacert", str(servers.cert_file),
        )  # fmt: skip
        assert created.returncode == 0, created.stderr

    for mesh in netns_mesh(root, config, POOL, before=secret):
        yield World(mesh, servers.cert_file)


def _curl(world: World, workload: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return world.mesh.cli("exec", workload, "-n", "shop", "--", "curl", "-s", "-m", "5", *argv)


def _gateway_ip(world: World) -> str:
    return world.mesh.pod("egressgateway", "istio-system").pod_ip


def test_http_leaves_as_verified_tls_originated_at_the_gateway(world: World) -> None:
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


def test_mtls_origination_at_the_gateway_presents_the_credential(world: World) -> None:
    result = _curl(world, "sleep", "http://bank.example/seen")
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert (seen["listener"], seen["peer"]) == ("mtls", _gateway_ip(world))
    assert seen["client_cert"] == {"subject": "CN=shop", "sans": [f"URI:{CLIENT_URI}"]}


def test_a_workload_the_gateway_policy_does_not_name_gets_403(world: World) -> None:
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


def test_wrapped_tls_is_authorized_by_the_callers_identity(world: World) -> None:
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
    result = world.mesh.cli("verify", "--json", timeout=120)
    report = json.loads(result.stdout)
    egress = sorted(
        (r["check"], r["target"].split(" via ")[0], r["passed"])
        for r in report["probes"]
        if r["check"] in ("egress-gateway", "egress-gateway-denied", "tls-passthrough")
    )
    assert egress == [
        ("egress-gateway", "shop/sleep-0 → api.maps.example:80", True),
        ("egress-gateway", "shop/sleep-0 → bank.example:80", True),
        ("egress-gateway-denied", "shop/intruder-0 → api.maps.example:80", True),
        ("egress-gateway-denied", "shop/intruder-0 → bank.example:80", True),
        ("egress-gateway-denied", "shop/intruder-0 → vault.example:443", True),
        ("tls-passthrough", "shop/intruder-0 → pay.example:443", True),
        ("tls-passthrough", "shop/sleep-0 → pay.example:443", True),
        ("tls-passthrough", "shop/sleep-0 → vault.example:443", True),
    ]
    failed = [r for r in report["probes"] if not r["passed"]]
    assert failed == [] and result.returncode == 0
