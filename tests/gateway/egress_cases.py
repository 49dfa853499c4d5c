"""A small mesh with an egress gateway, as YAML, shaped like Istio's egress gateway tasks
(for the egress model, xds and Envoy tests):

  * api.maps.example — the app speaks HTTP on port 80; its sidecar sends it over mesh mTLS
    (DestinationRule ISTIO_MUTUAL, sni api.maps.example) to the gateway's ISTIO_MUTUAL HTTPS
    server on 80, which originates TLS to the host's port 443 (DestinationRule SIMPLE);
  * pay.example — the app's own TLS on 443 goes by SNI to the gateway's PASSTHROUGH server;
  * bank.example — the app's own TLS, wrapped in mesh mTLS, to the gateway's ISTIO_MUTUAL TLS
    server on 8443 (terminated there, the app's bytes forwarded by a tcp route);
  * an AuthorizationPolicy at the gateway: only shop/sleep may use api.maps.example and
    bank.example; pay.example (no identity behind passthrough) is open.
"""

from __future__ import annotations

from meshward.config import load_text
from meshward.config.resources import ConfigSet
from meshward.diagnostics import Diagnostic
from meshward.model import allocate, build, ir, replicas

GW_FQDN = "egressgateway.istio-system.svc.cluster.local"

MESH = f"""\
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {{name: sleep, namespace: shop, labels: {{app: sleep}}}}
spec:
  serviceAccount: sleep
  ports: [{{name: http, port: 8000}}]
  command: [python, -m, meshward.samples.httpbin]
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
  - {{name: tls-mtls, port: 8443, appProtocol: tls}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: maps, namespace: shop}}
spec:
  hosts: [api.maps.example]
  ports:
  - {{number: 80, name: http, protocol: HTTP}}
  - {{number: 443, name: https, protocol: HTTPS}}
  resolution: STATIC
  endpoints: [{{address: 198.19.9.5}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: pay, namespace: shop}}
spec:
  hosts: [pay.example, bank.example]
  ports: [{{number: 443, name: tls, protocol: TLS}}]
  resolution: STATIC
  endpoints: [{{address: 198.19.9.6}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: egress, namespace: istio-system}}
spec:
  selector: {{istio: egressgateway}}
  servers:
  - port: {{number: 80, name: https-maps, protocol: HTTPS}}
    hosts: [api.maps.example]
    tls: {{mode: ISTIO_MUTUAL}}
  - port: {{number: 443, name: tls, protocol: TLS}}
    hosts: [pay.example]
    tls: {{mode: PASSTHROUGH}}
  - port: {{number: 8443, name: tls-bank, protocol: TLS}}
    hosts: [bank.example]
    tls: {{mode: ISTIO_MUTUAL}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: egressgateway, namespace: istio-system}}
spec:
  host: {GW_FQDN}
  trafficPolicy:
    portLevelSettings:
    - port: {{number: 80}}
      tls: {{mode: ISTIO_MUTUAL, sni: api.maps.example}}
    - port: {{number: 8443}}
      tls: {{mode: ISTIO_MUTUAL, sni: bank.example}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: maps-tls, namespace: shop}}
spec:
  host: api.maps.example
  trafficPolicy:
    portLevelSettings:
    - port: {{number: 443}}
      tls:
        mode: SIMPLE
        caCertificates: /etc/ssl/certs/ca-certificates.crt
        sni: api.maps.example
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: maps-through-egress, namespace: shop}}
spec:
  hosts: [api.maps.example]
  gateways: [mesh, istio-system/egress]
  http:
  - match: [{{gateways: [mesh], port: 80}}]
    route: [{{destination: {{host: {GW_FQDN}, port: {{number: 80}}}}}}]
  - match: [{{gateways: [istio-system/egress], port: 80}}]
    route: [{{destination: {{host: api.maps.example, port: {{number: 443}}}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: pay-through-egress, namespace: shop}}
spec:
  hosts: [pay.example]
  gateways: [mesh, istio-system/egress]
  tls:
  - match: [{{gateways: [mesh], port: 443, sniHosts: [pay.example]}}]
    route: [{{destination: {{host: {GW_FQDN}, port: {{number: 443}}}}}}]
  - match: [{{gateways: [istio-system/egress], port: 443, sniHosts: [pay.example]}}]
    route: [{{destination: {{host: pay.example, port: {{number: 443}}}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: bank-through-egress, namespace: shop}}
spec:
  hosts: [bank.example]
  gateways: [mesh, istio-system/egress]
  tls:
  - match: [{{gateways: [mesh], port: 443, sniHosts: [bank.example]}}]
    route: [{{destination: {{host: {GW_FQDN}, port: {{number: 8443}}}}}}]
  tcp:
  - match: [{{gateways: [istio-system/egress], port: 8443}}]
    route: [{{destination: {{host: bank.example, port: {{number: 443}}}}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: egress-callers, namespace: istio-system}}
spec:
  selector: {{matchLabels: {{istio: egressgateway}}}}
  rules:
  - from: [{{source: {{principals: [cluster.local/ns/shop/sa/sleep]}}}}]
    to: [{{operation: {{hosts: [api.maps.example], ports: ["80"]}}}}]
  - from: [{{source: {{principals: [cluster.local/ns/shop/sa/sleep]}}}}]
    to: [{{operation: {{ports: ["8443"]}}}}]
  - to: [{{operation: {{ports: ["443"]}}}}]
"""

POOL = "127.151.0.0/16"


def config(extra: str = "", *, base: str = MESH) -> ConfigSet:
    """The mesh (`base`: MESH or a variation of it) with `extra` documents."""
    loaded = load_text(base + extra, "egress.yaml")
    assert [d for d in loaded.diagnostics if d.level.name == "ERROR"] == []
    return loaded


def model(
    extra: str = "", pool: str = POOL, network: ir.Network = ir.LOOPBACK, *, base: str = MESH
) -> tuple[ir.MeshModel, tuple[Diagnostic, ...]]:
    loaded = config(extra, base=base)
    addresses = allocate(replicas(loaded.workloads), {}, pool)
    return build(loaded, addresses, network)


def proxy(mesh: ir.MeshModel, workload: str) -> ir.ProxyModel:
    return next(p for p in mesh.proxies if p.pod.key.workload == workload)


def outbound(mesh: ir.MeshModel, workload: str, name: str, port: int) -> ir.OutboundService:
    return next(s for s in proxy(mesh, workload).outbound if (s.name, s.port) == (name, port))
