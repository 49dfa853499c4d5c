"""jwks/resolve.py: key sources of a model, keys filled in, mesh names resolved to pods."""

from __future__ import annotations

from meshward.config import load_text
from meshward.jwks import resolve
from meshward.jwks.key_sets import Source
from meshward.model import allocate, build, ir, replicas

MESH = """\
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: idp, namespace: auth, labels: {app: idp}}
spec: {sidecar: false, ports: [{name: http, port: 9443}], command: [python]}
---
apiVersion: v1
kind: Service
metadata: {name: idp, namespace: auth}
spec: {selector: {app: idp}, ports: [{name: http, port: 9443}]}
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {ports: [{name: http, port: 8000}], command: [python]}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: users, namespace: shop}
spec:
  jwtRules:
  - {issuer: "http://idp.auth.svc.cluster.local:9443", timeout: 2s}
  - {issuer: "https://other", jwksUri: "https://other/keys"}
  - {issuer: "https://inline", jwks: '{"keys": [{"kty": "EC"}]}'}
"""


def _model() -> ir.MeshModel:
    config = load_text(MESH)
    assert not config.diagnostics
    return build(config, allocate(replicas(config.workloads), {}))[0]


def test_sources_and_filled_keys() -> None:
    model = _model()
    discovery = "http://idp.auth.svc.cluster.local:9443/.well-known/openid-configuration"
    assert resolve.sources(model) == [
        Source(discovery, True, 2.0),
        Source("https://other/keys", False, 5.0),
    ]
    fetched = {discovery: '{"keys":[1]}'}
    filled = resolve.resolve(model, lambda url: fetched.get(url, ""))
    web = next(p for p in filled.proxies if p.pod.key.workload == "web")
    assert [r.jwks for r in web.jwt_rules] == ['{"keys":[1]}', "", '{"keys": [{"kty": "EC"}]}']


def test_mesh_names_resolve_to_their_pods() -> None:
    model = _model()
    idp = next(p for p in model.pods if p.key.workload == "idp").address.pod_ip
    asked: list[str] = []
    resolver = resolve.mesh_resolver(model, lambda host, port: asked.append(host) or ["1.2.3.4"])
    assert [
        list(resolver(name, 9443))
        for name in ("idp.auth.svc.cluster.local", "IDP.auth.svc", "idp.auth", "idp.example.com")
    ] == [[idp], [idp], [idp], ["1.2.3.4"]]
    assert asked == ["idp.example.com"]
