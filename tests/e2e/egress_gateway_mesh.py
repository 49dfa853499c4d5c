"""The egress gateway mesh of the end-to-end tests, shaped like Istio's egress gateway tasks,
shared by tests/netns/test_netns_egress_gateway.py (netns mode) and
tests/e2e/test_e2e_egress_gateway.py (loopback mode) so both prove the same YAML.

Four outside servers (meshward.samples.outside, their certificates from a test CA, their
`hostnames` the outside world's DNS: maps and bank are DNS-resolved ServiceEntries as in
Istio's tasks, pay and vault STATIC at the address the runner places them) stand for external
APIs; every call leaves through the egress gateway `istio-system/egressgateway`:

  * api.maps.example — the app speaks HTTP; its sidecar sends it over mesh mTLS to the
    gateway, which originates TLS (DestinationRule SIMPLE, server verified);
  * bank.example — the same, with mTLS origination at the gateway (MUTUAL, credentialName
    `bank-client`: `Source.create_secret` before `up`), only at the gateway (the rule's
    workloadSelector: no sidecar holds the credential, MW0527);
  * pay.example — the app's own TLS, routed by SNI through sidecar and gateway (PASSTHROUGH);
  * vault.example — the app's own TLS wrapped in mesh mTLS to the gateway (tcp route), so the
    gateway's AuthorizationPolicy knows the caller;
  * shop/sleep may use every host; shop/intruder, which the gateway's policy does not name,
    only pay.example (no identity behind passthrough).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from meshward.samples.edge_pki import Ca
from tests.e2e.meshctl import Mesh, write_yaml

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
  workloadSelector: {{matchLabels: {{istio: egressgateway}}}}  # bank-client stays at the gateway
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


@dataclass(frozen=True)
class World:
    """A running mesh of this source, and the CA its apps verify the outside servers with."""

    mesh: Mesh
    server_ca: Path


@dataclass(frozen=True)
class Source:
    """The mesh's config directory and the PKI of its outside world."""

    config: Path
    server_ca: Path  # signs the outside servers' certificates
    client_cert: Path  # the `bank-client` credential (CLIENT_URI), issued by another CA
    client_key: Path

    def create_secret(self, mesh: Mesh) -> None:
        """`meshward secret create tls bank-client` in the mesh's state directory."""
        created = mesh.cli(
            "secret", "create", "tls", "bank-client", "--cert", str(self.client_cert),
            "--key", str(self.client_key), "--cacert", str(self.server_ca),
        )  # fmt: skip
        assert created.returncode == 0, created.stderr


def write_source(root: Path, outside: Mapping[str, str]) -> Source:
    """The config directory `root/config` and the PKI under `root/pki`; `outside` maps "pay"
    and "vault" to the addresses the runner gives those outside workloads (namespace ext,
    numbered from .2 in name order: bank, maps, pay, vault)."""
    pki = root / "pki"
    servers, clients = Ca("servers", pki), Ca("bank-customers", pki)
    servers_yaml = []
    for name, host in HOSTS.items():
        cert, key, _ = servers.issue(name, dns=host)
        servers_yaml.append(
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
            outside="".join(servers_yaml),
            routes="".join(routes),
            server_ca=servers.cert_file,
            pay=outside["pay"],
            vault=outside["vault"],
        ),
    )
    client_cert, client_key, _ = clients.issue("shop", uri=CLIENT_URI)
    return Source(config, servers.cert_file, client_cert, client_key)


# What `meshward verify` must find for this mesh, in either network mode.
VERIFIED = [
    ("egress-gateway", "shop/sleep-0 → api.maps.example:80", True),
    ("egress-gateway", "shop/sleep-0 → bank.example:80", True),
    ("egress-gateway-denied", "shop/intruder-0 → api.maps.example:80", True),
    ("egress-gateway-denied", "shop/intruder-0 → bank.example:80", True),
    ("egress-gateway-denied", "shop/intruder-0 → vault.example:443", True),
    ("tls-passthrough", "shop/intruder-0 → pay.example:443", True),
    ("tls-passthrough", "shop/sleep-0 → pay.example:443", True),
    ("tls-passthrough", "shop/sleep-0 → vault.example:443", True),
]


def assert_verified(mesh: Mesh) -> None:
    """`meshward verify --json`: the egress gateway probes are VERIFIED, and nothing fails."""
    result = mesh.cli("verify", "--json", timeout=120)
    report = json.loads(result.stdout)
    egress = sorted(
        (r["check"], r["target"].split(" via ")[0], r["passed"])
        for r in report["probes"]
        if r["check"] in ("egress-gateway", "egress-gateway-denied", "tls-passthrough")
    )
    assert egress == VERIFIED
    failed = [r for r in report["probes"] if not r["passed"]]
    assert failed == [] and result.returncode == 0
