"""End-user tokens at the edge, through a real ingress gateway: a RequestAuthentication that
selects the gateway validates tokens there (401 for a forged one, no identity without one),
and a VirtualService routes on a verified claim (`@request.auth.claims.groups`), Istio's
claim-based routing. Which backend answered is read from `X-Forwarded-Client-Cert`: its
`By=` names the identity of the sidecar that received the request."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshward.samples.idp import attacks, keys, tokens
from tests.e2e.conftest import start_mesh, stop_mesh
from tests.e2e.meshctl import Mesh, answered_by, keyed_source

pytestmark = pytest.mark.e2e

POOL = "127.146.0.0/16"
ISSUER = "https://idp.edge.test"

MESH = """\
apiVersion: meshward.io/v1alpha1
kind: MeshConfig
metadata: {{name: mesh}}
spec: {{trustDomain: e2e.test, rootNamespace: meshward-system}}
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {{name: ingressgateway, namespace: istio-system, labels: {{istio: ingressgateway}}}}
spec: {{gateway: ingress, serviceAccount: ingressgateway}}
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {{name: web, namespace: shop, labels: {{app: web}}}}
spec:
  serviceAccount: web
  ports: [{{name: http, port: 8000}}]
  command: ["python", "-m", "meshward.samples.httpbin"]
  args: ["--host", "$(MESHWARD_APP_HOST)", "--port", "8000"]
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: shop}}
spec: {{selector: {{app: web}}, ports: [{{name: http, port: 8000}}]}}
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {{name: web-admin, namespace: shop, labels: {{app: web-admin}}}}
spec:
  serviceAccount: web-admin
  ports: [{{name: http, port: 8000}}]
  command: ["python", "-m", "meshward.samples.httpbin"]
  args: ["--host", "$(MESHWARD_APP_HOST)", "--port", "8000"]
---
apiVersion: v1
kind: Service
metadata: {{name: web-admin, namespace: shop}}
spec: {{selector: {{app: web-admin}}, ports: [{{name: http, port: 8000}}]}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: edge, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 8080, name: http, protocol: HTTP}}
    hosts: ["shop/*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: shop, namespace: shop}}
spec:
  hosts: ["*"]
  gateways: [istio-system/edge]
  http:
  - match: [{{headers: {{"@request.auth.claims.groups": {{exact: admin}}}}}}]
    route: [{{destination: {{host: web-admin, port: {{number: 8000}}}}}}]
  - route: [{{destination: {{host: web, port: {{number: 8000}}}}}}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: edge-users, namespace: istio-system}}
spec:
  selector: {{matchLabels: {{istio: ingressgateway}}}}
  jwtRules:
  - issuer: {issuer}
    jwks: '{jwks}'
"""


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mesh, keys.KeyStore]]:
    root = tmp_path_factory.mktemp("jwt-edge")
    source, store = keyed_source(root, MESH, ISSUER)
    mesh = start_mesh(root, source, pool=POOL)
    try:
        yield mesh, store
    finally:
        stop_mesh(mesh)


def _get(mesh: Mesh, headers: dict[str, str]) -> tuple[int, str]:
    """GET /headers at the gateway: the status and the answering backend's identity."""
    gateway = mesh.pod("ingressgateway", "istio-system").pod_ip
    connection = http.client.HTTPConnection(gateway, 8080, timeout=10)
    try:
        connection.request("GET", "/headers", headers={"Host": "shop.example.com", **headers})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        return response.status, ""
    return 200, answered_by(body)


def test_tokens_checked_and_routed_by_claim_at_the_gateway(
    edge: tuple[Mesh, keys.KeyStore],
) -> None:
    mesh, store = edge

    def bearer(**claims: object) -> dict[str, str]:
        token = tokens.issue(
            store, issuer=ISSUER, subject="alice", now=time.time(), ttl_seconds=300, claims=claims
        )
        return {"Authorization": f"Bearer {token}"}

    deadline = time.monotonic() + 20
    while _get(mesh, {}) != (200, "web"):
        assert time.monotonic() < deadline, "the gateway never routed"
        time.sleep(0.2)
    forged = attacks.forged(store, issuer=ISSUER, subject="alice", now=time.time())
    assert {
        "no token": _get(mesh, {}),
        "groups admin": _get(mesh, bearer(groups="admin")),
        "groups [dev, admin]": _get(mesh, bearer(groups=["dev", "admin"])),
        "groups dev": _get(mesh, bearer(groups="dev")),
        # A forged claim never routes: the token is refused before any route is used.
        "alg none": _get(mesh, {"Authorization": f"Bearer {forged['alg-none']}"}),
        "tampered": _get(mesh, {"Authorization": f"Bearer {forged['tampered-payload']}"}),
        "expired": _get(mesh, {"Authorization": f"Bearer {forged['expired']}"}),
        # A header of that name cannot even be sent: `@` is no HTTP token character.
        "header spoof": _get(mesh, {"@request.auth.claims.groups": "admin"}),
    } == {
        "no token": (200, "web"),
        "groups admin": (200, "web-admin"),
        "groups [dev, admin]": (200, "web-admin"),
        "groups dev": (200, "web"),
        "alg none": (401, ""),
        "tampered": (401, ""),
        "expired": (401, ""),
        "header spoof": (400, ""),
    }


def test_inline_keys_need_no_fetch(edge: tuple[Mesh, keys.KeyStore]) -> None:
    """An inline `jwks` is used as written: the control plane tracks no key source."""
    mesh, _ = edge
    status = json.loads(Path(mesh.state.control_plane).read_text())
    assert status["jwks"] == []  # inline keys: nothing to fetch
