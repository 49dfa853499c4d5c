"""VirtualService routing at sidecars (`gateways` omitted: Istio's default `mesh`), through
real sidecars in loopback mode: a client pod calls `svc` through its own sidecar, whose
routes come from the VirtualService — a verified JWT claim (`@request.auth.claims.group`)
routes to `svc-v2`, so does a plain header; a header splits traffic by weight; a path no
route matches gets 404. The caller's sidecar verifies the token with the keys of the
RequestAuthentication selecting `svc` and never rejects: a forged or foreign token just does
not match the claim route, and `svc`'s own sidecar answers 401 to it. Which backend answered
is read from `X-Forwarded-Client-Cert` `By=` (the identity of the receiving sidecar)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshward.runner.network import unused_pool
from meshward.samples.idp import keys
from tests.e2e.conftest import start_mesh, stop_mesh
from tests.e2e.meshctl import Mesh, answered_by, get_via_sidecar, keyed_source

pytestmark = pytest.mark.e2e

# This slice's addresses are 127.180-189.x.x; each run takes a /16 no other mesh is using.
POOL_OCTETS = tuple(range(180, 190))
ISSUER = "https://idp.routes.test"

_APP = """\
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {{name: {name}, namespace: shop, labels: {{app: {name}}}}}
spec:
  serviceAccount: {name}
  ports: [{{name: http, port: 8000}}]
  command: ["python", "-m", "meshward.samples.httpbin"]
  args: ["--host", "$(MESHWARD_APP_HOST)", "--port", "8000"]
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: shop}}
spec: {{selector: {{app: {name}}}, ports: [{{name: http, port: 8000}}]}}
"""
MESH = (
    """\
apiVersion: meshward.io/v1alpha1
kind: MeshConfig
metadata: {{name: mesh}}
spec: {{trustDomain: e2e.test, rootNamespace: meshward-system}}
"""
    + """\
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: svc, namespace: shop}}
spec:
  hosts: [svc]
  http:
  - match: [{{headers: {{"@request.auth.claims.group": {{exact: beta}}}}}}]
    route: [{{destination: {{host: svc-v2}}}}]
  - match: [{{headers: {{x-canary: {{exact: "yes"}}}}}}]
    route: [{{destination: {{host: svc-v2.shop}}}}]
  - match: [{{headers: {{x-split: {{exact: "yes"}}}}}}]
    route:
    - {{destination: {{host: svc}}, weight: 50}}
    - {{destination: {{host: svc-v2.shop.svc.cluster.local}}, weight: 50}}
  - match: [{{uri: {{prefix: /headers}}}}]
    route: [{{destination: {{host: svc, port: {{number: 8000}}}}}}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: svc-users, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: svc}}}}
  jwtRules:
  - issuer: {issuer}
    jwks: '{jwks}'
"""
)


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mesh, Path]]:
    root = tmp_path_factory.mktemp("vs-mesh")
    apps = "".join(_APP.format(name=n) for n in ("client", "svc", "svc-v2"))
    source, store = keyed_source(root, MESH + apps.replace("{", "{{").replace("}", "}}"), ISSUER)
    start = zlib.crc32(str(Path(__file__).resolve()).encode()) % len(POOL_OCTETS)
    mesh = start_mesh(root, source, pool=unused_pool(POOL_OCTETS, first=start))
    try:
        yield mesh, store.directory
    finally:
        stop_mesh(mesh)


def _token(key_dir: Path, *claims: str) -> str:
    """A token from `meshward token issue` (the CLI a user runs)."""
    done = subprocess.run(
        [sys.executable, "-m", "meshward.cli.main", "token", "issue", "--issuer", ISSUER]
        + ["--sub", "alice", "--key-dir", str(key_dir), "--ttl", "5m"]
        + [arg for claim in claims for arg in ("--claim", claim)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def _tampered(token: str, **claims: object) -> str:
    """`token` with claims changed in its payload, the signature left as it was."""
    head, body, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    changed = base64.urlsafe_b64encode(json.dumps(payload | claims).encode()).rstrip(b"=")
    return f"{head}.{changed.decode()}.{signature}"


def _get(mesh: Mesh, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """GET `svc` through the client's sidecar: the status and the answering backend."""
    client = mesh.pod("client", "shop")
    status, body = get_via_sidecar(client, "svc.shop:8000", path, headers)
    if status != 200:
        return status, ""
    return 200, answered_by(body)


def test_sidecar_routes_by_virtual_service(routed: tuple[Mesh, Path]) -> None:
    mesh, key_dir = routed
    deadline = time.monotonic() + 20
    while _get(mesh, "/headers", {}) != (200, "svc"):
        assert time.monotonic() < deadline, "the client's sidecar never routed"
        time.sleep(0.2)
    beta = _token(key_dir, "group=beta")
    alpha = _token(key_dir, "group=alpha")
    both = _token(key_dir, "group=alpha", "group=beta")
    foreign_dir = key_dir.parent / "foreign-idp"
    keys.KeyStore(foreign_dir).ensure(time.time())
    foreign = _token(foreign_dir, "group=beta")  # the right issuer, another key

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    assert {
        "no token": _get(mesh, "/headers", {}),
        "group beta": _get(mesh, "/headers", bearer(beta)),
        "group [alpha, beta]": _get(mesh, "/headers", bearer(both)),
        "group alpha": _get(mesh, "/headers", bearer(alpha)),
        # Not routed by claim: it reaches svc, whose sidecar refuses the token.
        "tampered to beta": _get(mesh, "/headers", bearer(_tampered(alpha, group="beta"))),
        "foreign key, beta": _get(mesh, "/headers", bearer(foreign)),
        "header x-canary": _get(mesh, "/headers", {"x-canary": "yes"}),
        # No route matches (httpbin would answer 200): the caller's sidecar says 404.
        "unrouted path": _get(mesh, "/status/200", {}),
    } == {
        "no token": (200, "svc"),
        "group beta": (200, "svc-v2"),
        "group [alpha, beta]": (200, "svc-v2"),
        "group alpha": (200, "svc"),
        "tampered to beta": (401, ""),
        "foreign key, beta": (401, ""),
        "header x-canary": (200, "svc-v2"),
        "unrouted path": (404, ""),
    }


def test_weights_split_traffic(routed: tuple[Mesh, Path]) -> None:
    mesh, _ = routed
    seen = [_get(mesh, "/headers", {"x-split": "yes"}) for _ in range(40)]
    counts = {name: seen.count((200, name)) for name in ("svc", "svc-v2")}
    assert sum(counts.values()) == 40, seen
    # 50/50: each side at least 8 of 40 (binomial, p < 1e-4 of failing by chance).
    assert min(counts.values()) >= 8, counts
