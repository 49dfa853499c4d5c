"""A small mesh with an ingress gateway, as YAML, for the gateway tests (model, xds, envoy)."""

from __future__ import annotations

from meshward.config import load_text
from meshward.config.resources import ConfigSet
from meshward.diagnostics import Diagnostic
from meshward.model import allocate, build, ir, replicas

MESH = """\
apiVersion: v1
kind: Service
metadata: {name: users, namespace: core}
spec:
  selector: {app: users}
  ports: [{name: http, port: 8000}]
---
apiVersion: v1
kind: Service
metadata: {name: vault, namespace: core}
spec:
  selector: {app: vault}
  ports: [{name: tls, port: 8443, appProtocol: tcp}]
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: users, namespace: core, labels: {app: users}}
spec:
  serviceAccount: users
  ports: [{name: http, port: 8000}]
  command: [python, -m, meshward.samples.httpbin]
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: vault, namespace: core, labels: {app: vault}}
spec:
  serviceAccount: vault
  ports: [{name: tls, port: 8443}]
  command: [python, -m, meshward.samples.tls_backend]
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: ingressgateway, namespace: istio-system, labels: {istio: ingressgateway}}
spec:
  gateway: ingress
  serviceAccount: ingressgateway
"""

GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*/users.example.com"]
    tls: {httpsRedirect: true}
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: ["core/users.example.com"]
    tls: {mode: SIMPLE, credentialName: users-cert}
  - port: {number: 8443, name: https-mobile, protocol: HTTPS}
    hosts: ["core/mobile.example.com"]
    tls:
      mode: MUTUAL
      credentialName: mobile-cert
      subjectAltNames: [spiffe://mobile.example.com/app]
  - port: {number: 9443, name: tls, protocol: TLS}
    hosts: ["core/vault.example.com"]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: users, namespace: core}
spec:
  hosts: [users.example.com, mobile.example.com]
  gateways: [istio-system/public]
  http:
  - match: [{uri: {prefix: /users}}, {uri: {exact: /status/200}, method: {exact: GET}}]
    route: [{destination: {host: users, port: {number: 8000}}}]
    headers: {request: {set: {x-via: ingress}}}
    timeout: 5s
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /users, redirectCode: 302}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vault, namespace: core}
spec:
  hosts: [vault.example.com]
  gateways: [istio-system/public]
  tls:
  - match: [{sniHosts: [vault.example.com]}]
    route: [{destination: {host: vault.core.svc.cluster.local}}]
"""

POOL = "127.150.0.0/16"


def config(extra: str = "") -> ConfigSet:
    loaded = load_text(MESH + "---\n" + GATEWAY + extra, "gw.yaml")
    assert [d for d in loaded.diagnostics if d.level.name == "ERROR"] == []
    return loaded


def model(extra: str = "", pool: str = POOL) -> tuple[ir.MeshModel, tuple[Diagnostic, ...]]:
    loaded = config(extra)
    addresses = allocate(replicas(loaded.workloads), {}, pool)
    return build(loaded, addresses)


def gateway_proxy(mesh: ir.MeshModel) -> ir.ProxyModel:
    return next(p for p in mesh.proxies if p.gateway is not None)
