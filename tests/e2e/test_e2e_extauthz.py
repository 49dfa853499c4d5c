"""External authorization (CUSTOM + extensionProviders) through real Envoy sidecars, with
`meshward extauthz` as the provider workload (gRPC and HTTP front ends, rules plugin).

Each target workload has one CUSTOM policy (Istio: one provider per workload) on `/headers`
only, so every test can check that other paths never reach the provider. Provider calls are
counted in the server's decision log.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshward.runner.network import unused_pool
from meshward.state.mesh import PodRecord
from meshward.verify import access_log
from meshward.xds.access_log import denial
from tests.e2e.conftest import start_mesh, stop_mesh
from tests.e2e.meshctl import Mesh

pytestmark = pytest.mark.e2e

# This slice's addresses are 127.160-169.x.x. Every checkout's suite runs this module, so
# each run takes a /16 no other mesh is using, starting from one derived from the checkout.
POOL_OCTETS = tuple(range(160, 170))


def free_pool() -> str:
    start = zlib.crc32(str(Path(__file__).resolve()).encode()) % len(POOL_OCTETS)
    return unused_pool(POOL_OCTETS, first=start)


RULES = """\
rules:
- name: users
  headers: {x-user: "*"}
  allow: true
  headersToUpstream: {x-checked-by: extauthz-rules}
- name: tcp-clients
  principals: ["e2e.test/ns/shop/sa/tcp-client"]
  allow: true
- name: strangers
  allow: false
  status: 401
  body: "who are you?"
  headersToDownstream: {x-denied-by: extauthz-rules}
"""

MESH = """\
apiVersion: meshward.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  trustDomain: e2e.test
  extensionProviders:
  - name: ext-grpc
    envoyExtAuthzGrpc: {service: extauthz.auth.svc.cluster.local, port: 9000, timeout: 2s}
  - name: ext-http
    envoyExtAuthzHttp:
      service: extauthz.auth
      port: 9001
      timeout: 2s
      includeRequestHeadersInCheck: [x-user]
      headersToUpstreamOnAllow: [x-checked-by]
      headersToDownstreamOnDeny: [x-denied-by]
  - name: ext-down
    envoyExtAuthzGrpc: {service: extauthz.auth, port: 9002, timeout: 1s}
  - name: ext-oauth
    envoyExtAuthzGrpc: {service: oauth.auth, port: 9000, timeout: 3s}
  - name: ext-down-open
    envoyExtAuthzGrpc: {service: extauthz.auth, port: 9002, timeout: 1s, failOpen: true}
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: extauthz, namespace: auth, labels: {app: extauthz}}
spec:
  serviceAccount: extauthz
  # 9002 is a port nobody listens on: the provider that is down.
  ports: [{name: grpc, port: 9000}, {name: http, port: 9001}, {name: grpc-down, port: 9002}]
  command: ["python", "-m", "meshward.cli.main", "extauthz"]
  args: ["--listen", "$(MESHWARD_APP_HOST):9000", "--http-listen", "$(MESHWARD_APP_HOST):9001",
         "--plugin", "rules", "--rules", "RULES_FILE", "--decision-log", "LOG_FILE"]
---
apiVersion: v1
kind: Service
metadata: {name: extauthz, namespace: auth}
spec:
  selector: {app: extauthz}
  ports: [{name: grpc, port: 9000}, {name: http, port: 9001}, {name: grpc-down, port: 9002}]
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: client, namespace: shop, labels: {app: client}}
spec:
  serviceAccount: client
  ports: [{name: http, port: 8000}]
  command: ["python", "-m", "meshward.samples.httpbin"]
  args: ["--host", "$(MESHWARD_APP_HOST)", "--port", "8000"]
---
apiVersion: v1
kind: Service
metadata: {name: client, namespace: shop}
spec: {selector: {app: client}, ports: [{name: http, port: 8000}]}
"""

# A TCP port (httpbin as opaque bytes): only a gRPC provider can be asked there, once per
# connection; `tcp-client` is allowed by principal, `client` is not.
TCP = """\
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: tcp-client, namespace: shop, labels: {app: tcp-client}}
spec:
  serviceAccount: tcp-client
  ports: [{name: http, port: 8000}]
  command: ["python", "-m", "meshward.samples.httpbin"]
  args: ["--host", "$(MESHWARD_APP_HOST)", "--port", "8000"]
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: via-tcp, namespace: shop, labels: {app: via-tcp}}
spec:
  serviceAccount: via-tcp
  ports: [{name: tcp-web, port: 8000}]
  command: ["python", "-m", "meshward.samples.httpbin"]
  args: ["--host", "$(MESHWARD_APP_HOST)", "--port", "8000"]
---
apiVersion: v1
kind: Service
metadata: {name: via-tcp, namespace: shop}
spec: {selector: {app: via-tcp}, ports: [{name: tcp-web, port: 8000}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: via-tcp-ext, namespace: shop}
spec:
  selector: {matchLabels: {app: via-tcp}}
  action: CUSTOM
  provider: {name: ext-grpc}
  rules:
  - from: [{source: {ipBlocks: ["127.0.0.0/8"]}}]
"""

# OAuth 2.0 token introspection (RFC 7662) against the IdP sample: `oauth` runs the
# introspection plugin and reaches the IdP (no sidecar) through its own sidecar.
OAUTH = """\
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: idp, namespace: auth, labels: {app: idp}}
spec:
  sidecar: false
  ports: [{name: http, port: 9443}]
  command: ["python", "-m", "meshward.samples.idp"]
  args: ["--host", "$(MESHWARD_APP_HOST)", "--port", "9443",
         "--issuer", "http://idp.auth.svc.cluster.local:9443"]
---
apiVersion: v1
kind: Service
metadata: {name: idp, namespace: auth}
spec: {selector: {app: idp}, ports: [{name: http, port: 9443}]}
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: oauth, namespace: auth, labels: {app: oauth}}
spec:
  serviceAccount: oauth
  ports: [{name: grpc, port: 9000}]
  command: ["python", "-m", "meshward.cli.main", "extauthz"]
  args: ["--listen", "$(MESHWARD_APP_HOST):9000", "--plugin", "introspection",
         "--introspection-url", "http://idp.auth.svc.cluster.local:9443/introspect",
         "--client-id", "meshward-dev", "--client-secret", "meshward-dev-secret",
         "--require-claim", "team=blue"]
---
apiVersion: v1
kind: Service
metadata: {name: oauth, namespace: auth}
spec: {selector: {app: oauth}, ports: [{name: grpc, port: 9000}]}
"""

# An ingress gateway consults the provider too (same connection manager as a sidecar's).
GATEWAY = """\
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: ingressgateway, namespace: istio-system, labels: {istio: ingressgateway}}
spec: {gateway: ingress, serviceAccount: ingressgateway}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["shop/www.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: www, namespace: shop}
spec:
  hosts: [www.example.com]
  gateways: [istio-system/public]
  http: [{route: [{destination: {host: client, port: {number: 8000}}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: edge-ext, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: CUSTOM
  provider: {name: ext-grpc}
  rules:
  - to: [{operation: {paths: ["/headers"]}}]
"""

TARGET = """\
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
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}-ext, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  action: CUSTOM
  provider: {{name: {provider}}}
  rules:
  - to: [{{operation: {{paths: ["/headers"]}}}}]
"""

# target workload → the provider its CUSTOM policy names
TARGETS = {
    "via-grpc": "ext-grpc",
    "via-http": "ext-http",
    "via-down": "ext-down",
    "via-down-open": "ext-down-open",
    "via-missing": "ext-missing",
    "via-oauth": "ext-oauth",
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("extauthz")
    rules = root / "rules.yaml"
    rules.write_text(RULES)
    log = root / "decisions.jsonl"
    source = root / "mesh"
    source.mkdir()
    text = MESH.replace("RULES_FILE", str(rules)).replace("LOG_FILE", str(log))
    text += "".join(TARGET.format(name=n, provider=p) for n, p in TARGETS.items())
    text += TCP + GATEWAY + OAUTH
    (source / "mesh.yaml").write_text(text)
    return source, log


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, files: tuple[Path, Path]) -> Iterator[Mesh]:
    running = start_mesh(tmp_path_factory.mktemp("extauthz-mesh"), files[0], free_pool())
    try:
        # Ready means sidecars ready; the provider app (a Python gRPC server) may still be
        # starting, and until it listens every CUSTOM request would fail closed.
        provider = running.pod("extauthz", "auth")
        for port in (9000, 9001):
            wait_listening(provider.app_ip, port)
        wait_listening(running.pod("oauth", "auth").app_ip, 9000)
        wait_listening(running.pod("idp", "auth").app_ip, 9443)
        yield running
    finally:
        stop_mesh(running)


def wait_listening(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def call(
    client: PodRecord, target: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """GET http://<target>.shop:8000<path> through the client's sidecar."""
    connection = http.client.HTTPConnection(client.pod_ip, 15001, timeout=10)
    host = f"{target}.shop:8000"
    try:
        connection.request("GET", f"http://{host}{path}", headers={"Host": host, **(headers or {})})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def decisions(log: Path) -> list[dict[str, object]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def wait_for_decisions(log: Path, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = decisions(log)
        if len(found) >= count:
            return found
        time.sleep(0.05)
    return decisions(log)


@pytest.mark.parametrize("target", ["via-grpc", "via-http"])
def test_only_matching_requests_reach_the_provider_which_allows_and_denies(
    mesh: Mesh, files: tuple[Path, Path], target: str
) -> None:
    log = files[1]
    client = mesh.pod("client", "shop")
    before = len(decisions(log))
    # Not matched by the CUSTOM rule: the provider is never asked.
    status, _, _ = call(client, target, "/get")
    assert status == 200
    # Matched and allowed: the provider's header reaches the app (httpbin echoes headers).
    status, _, body = call(client, target, "/headers", {"x-user": "alice"})
    assert status == 200
    assert json.loads(body)["headers"]["X-Checked-By"] == "extauthz-rules"
    # Matched and denied: the provider's status, body and header reach the client, and the
    # target's access log names the CUSTOM rule that sent the request to the provider.
    probe = f"ext-{target}"
    status, headers, body = call(client, target, "/headers", {"x-meshward-probe": probe})
    assert (status, body, headers["x-denied-by"]) == (401, b"who are you?", "extauthz-rules")
    pod = mesh.pod(target, "shop")
    entry = access_log.wait_for(
        [mesh.state.sidecar_log("shop", pod.pod)], lambda e: e.get("probe") == probe
    )
    assert entry is not None
    assert (entry.get("details"), denial(entry)) == (
        "ext_authz_denied",
        (f"shop/{target}-ext", "CUSTOM", 0),
    )
    found = wait_for_decisions(log, before + 2)[before:]
    assert [(d["path"], d["decision"], d["status"]) for d in found] == [
        ("/headers", "allow", 200),
        ("/headers", "deny", 401),
    ]
    # gRPC carries the caller's mTLS identity (the client's sidecar called the target's).
    principal = "e2e.test/ns/shop/sa/client" if target == "via-grpc" else ""
    assert {d["principal"] for d in found} == {principal}


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("via-down", 403),  # provider unreachable: Envoy's status_on_error (Istio: 403)
        ("via-down-open", 200),  # failOpen: the request goes on
        ("via-missing", 403),  # no such provider: the CUSTOM rule denies (RBAC)
    ],
)
def test_unusable_providers_fail_closed_unless_fail_open(
    mesh: Mesh, target: str, expected: int
) -> None:
    client = mesh.pod("client", "shop")
    assert call(client, target, "/get")[0] == 200  # unmatched requests are unaffected
    status, _, body = call(client, target, "/headers", {"x-user": "alice"})
    assert status == expected, body
    if target == "via-missing":
        assert body == b"RBAC: access denied"


def test_explain_names_the_provider(mesh: Mesh) -> None:
    result = mesh.cli(
        "authz", "explain", "--from", "client", "-n", "shop", "--to", "via-grpc.shop:8000",
        "--path", "/headers",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "CUSTOM provider 'ext-grpc' would be consulted" in result.stdout


def test_check_shows_the_provider_engine_in_the_live_config(mesh: Mesh) -> None:
    result = mesh.cli("authz", "check", "via-grpc", "-n", "shop")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CUSTOM provider ns[shop]-policy[via-grpc-ext]-rule[0]" in result.stdout


def tcp_get(caller: PodRecord) -> bytes:
    """An HTTP request as opaque bytes through `caller`'s local TCP listener for via-tcp."""
    host, _, port = dict(caller.env)["MESHWARD_SVC_SHOP_VIA_TCP_8000"].rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /get HTTP/1.1\r\nHost: via-tcp\r\nConnection: close\r\n\r\n")
        received = b""
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except ConnectionResetError:
            pass
        return received


def test_tcp_connections_ask_a_grpc_provider_once_each(
    mesh: Mesh, files: tuple[Path, Path]
) -> None:
    log = files[1]
    before = len(decisions(log))
    assert tcp_get(mesh.pod("tcp-client", "shop")).startswith(b"HTTP/1.1 200")
    assert tcp_get(mesh.pod("client", "shop")) == b""  # denied: the connection is closed
    found = wait_for_decisions(log, before + 2)[before:]
    assert [(d["principal"], d["path"], d["decision"]) for d in found] == [
        ("e2e.test/ns/shop/sa/tcp-client", "", "allow"),
        ("e2e.test/ns/shop/sa/client", "", "deny"),
    ]


def test_the_ingress_gateway_consults_the_provider(mesh: Mesh, files: tuple[Path, Path]) -> None:
    log = files[1]
    gateway = mesh.pod("ingressgateway", "istio-system")
    before = len(decisions(log))

    def get(path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(gateway.pod_ip, 8080, timeout=10)
        try:
            connection.request("GET", path, headers={"Host": "www.example.com", **headers})
            response = connection.getresponse()
            found = {k.lower(): v for k, v in response.getheaders()}
            return response.status, found, response.read()
        finally:
            connection.close()

    assert get("/get", {})[0] == 200  # not matched: the provider is not asked
    status, _, body = get("/headers", {"x-user": "alice"})
    assert status == 200
    assert json.loads(body)["headers"]["X-Checked-By"] == "extauthz-rules"
    status, headers, body = get("/headers", {})
    assert (status, body, headers["x-denied-by"]) == (401, b"who are you?", "extauthz-rules")
    found = wait_for_decisions(log, before + 2)[before:]
    # A client at the edge has no mesh identity: the provider sees no principal.
    assert [(d["principal"], d["path"], d["decision"]) for d in found] == [
        ("", "/headers", "allow"),
        ("", "/headers", "deny"),
    ]


def idp_token(mesh: Mesh, claims: dict[str, str]) -> str:
    """A token from the IdP sample's development token endpoint (Basic client auth)."""
    idp = mesh.pod("idp", "auth")
    connection = http.client.HTTPConnection(idp.app_ip, 9443, timeout=10)
    secret = base64.b64encode(b"meshward-dev:meshward-dev-secret").decode()
    try:
        connection.request(
            "POST",
            "/token",
            body=json.dumps({"sub": "alice", "ttl": 300, "claims": claims}),
            headers={"Authorization": f"Basic {secret}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        assert response.status == 200
        token: str = json.loads(response.read())["access_token"]
        return token
    finally:
        connection.close()


def test_token_introspection_against_the_idp(mesh: Mesh) -> None:
    client = mesh.pod("client", "shop")
    good = idp_token(mesh, {"team": "blue"})
    status, _, body = call(client, "via-oauth", "/headers", {"authorization": f"Bearer {good}"})
    assert status == 200, body
    assert json.loads(body)["headers"]["X-Auth-Subject"] == "alice"
    # Active, but without the required claim: 403; not a token the IdP issued: 401.
    other = idp_token(mesh, {"team": "red"})
    status, _, body = call(client, "via-oauth", "/headers", {"authorization": f"Bearer {other}"})
    assert (status, body) == (403, b"claim team is not 'blue'\n")
    status, headers, _ = call(client, "via-oauth", "/headers", {"authorization": "Bearer forged"})
    assert (status, headers["www-authenticate"]) == (401, 'Bearer error="invalid_token"')
    status, headers, _ = call(client, "via-oauth", "/headers")
    assert (status, headers["www-authenticate"]) == (401, "Bearer")
