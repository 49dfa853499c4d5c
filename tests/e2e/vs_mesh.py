"""The mesh, tokens and expected answers of the sidecar VirtualService routing tests, shared
by the loopback e2e test (tests/e2e/test_e2e_vs_mesh.py) and the netns one
(tests/netns/test_netns_vs_mesh.py): one table, two network modes."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from meshward.samples.idp import keys
from tests.e2e.meshctl import answered_by, keyed_source

ISSUER = "https://idp.routes.test"

APP = """\
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
_TEMPLATE = (
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


def source(root: Path) -> tuple[Path, Path]:
    """The mesh source dir under `root` and the key dir of its issuer."""
    apps = "".join(APP.format(name=n) for n in ("client", "svc", "svc-v2"))
    braced = apps.replace("{", "{{").replace("}", "}}")
    directory, store = keyed_source(root, _TEMPLATE + braced, ISSUER)
    return directory, store.directory


def token(key_dir: Path, *claims: str) -> str:
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


def tampered(signed: str, **claims: object) -> str:
    """`signed` with claims changed in its payload, the signature left as it was."""
    head, body, signature = signed.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    changed = base64.urlsafe_b64encode(json.dumps(payload | claims).encode()).rstrip(b"=")
    return f"{head}.{changed.decode()}.{signature}"


Get = Callable[[str, dict[str, str]], tuple[int, str]]

EXPECTED = {
    "no token": (200, "svc"),
    # The token travels on: the caller's sidecar verifies it but does not strip it (svc-v2
    # has no RequestAuthentication, so its app sees it)...
    "group beta": (200, "svc-v2 +token"),
    "group [alpha, beta]": (200, "svc-v2 +token"),
    # ...and svc's own sidecar validates it and strips it (forwardOriginalToken: false).
    "group alpha": (200, "svc"),
    "tampered to beta": (401, ""),
    "foreign key, beta": (401, ""),
    "header x-canary": (200, "svc-v2"),
    "unrouted path": (404, ""),
}


def answer(status: int, body: bytes) -> tuple[int, str]:
    """(status, the workload that answered an httpbin `/headers` request, `+token` when the
    request reached it with its Authorization header)."""
    if status != 200:
        return status, ""
    token = " +token" if "Authorization" in json.loads(body)["headers"] else ""
    return 200, answered_by(body) + token


def wait_routed(get: Get) -> None:
    deadline = time.monotonic() + 20
    while (last := get("/headers", {})) != (200, "svc"):
        assert time.monotonic() < deadline, f"the client's sidecar never routed: {last}"
        time.sleep(0.2)


def answers(get: Get, key_dir: Path) -> dict[str, tuple[int, str]]:
    """`get(path, headers)` → (status, answering workload) for each case of EXPECTED."""
    beta = token(key_dir, "group=beta")
    alpha = token(key_dir, "group=alpha")
    both = token(key_dir, "group=alpha", "group=beta")
    foreign_dir = key_dir.parent / "foreign-idp"
    keys.KeyStore(foreign_dir).ensure(time.time())
    foreign = token(foreign_dir, "group=beta")  # the right issuer, another key

    def bearer(value: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {value}"}

    return {
        "no token": get("/headers", {}),
        "group beta": get("/headers", bearer(beta)),
        "group [alpha, beta]": get("/headers", bearer(both)),
        "group alpha": get("/headers", bearer(alpha)),
        # Not routed by claim: it reaches svc, whose sidecar refuses the token.
        "tampered to beta": get("/headers", bearer(tampered(alpha, group="beta"))),
        "foreign key, beta": get("/headers", bearer(foreign)),
        "header x-canary": get("/headers", {"x-canary": "yes"}),
        # No route matches (httpbin would answer 200): the caller's sidecar says 404.
        "unrouted path": get("/status/200", {}),
    }
