"""End-user authentication on a running mesh, through real Envoy sidecars.

The IdP sample runs as its own process (stopped by PID); a RequestAuthentication on
`strict/httpbin` names only its issuer, so the control plane finds the keys by OIDC
discovery. Proves: keys fetched and shown in status; no token → no identity (403 where a
principal is required, 200 elsewhere); a valid token → 200 and its claim reaches the app;
every attack token → 401; a rotated IdP key → refused at first, then accepted within seconds
with no apply (the unknown-kid trigger); the IdP going away → the last good keys stay in
force and status says the fetch failed.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshward.samples.idp import attacks, keys, tokens
from meshward.samples.idp.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from tests.e2e.conftest import start_mesh, stop_mesh
from tests.e2e.meshctl import Mesh, get_via_sidecar, write_yaml
from tests.xds.static_envoy import free_port

pytestmark = pytest.mark.e2e

POOL = "127.142.0.0/16"
IDP_IP = "127.143.0.1"

POLICIES = """\
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt, namespace: strict}}
spec:
  selector: {{matchLabels: {{app: httpbin}}}}
  jwtRules:
  - issuer: "{issuer}"
    audiences: [httpbin]
    outputClaimToHeaders: [{{header: x-jwt-sub, claim: sub}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: httpbin-users, namespace: strict}}
spec:
  selector: {{matchLabels: {{app: httpbin}}}}
  rules:
  - to: [{{operation: {{paths: ["/get"]}}}}]
  - from: [{{source: {{requestPrincipals: ["{issuer}/*"]}}}}]
    to: [{{operation: {{paths: ["/headers"]}}}}]
"""


@contextlib.contextmanager
def _idp(key_dir: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "meshward.samples.idp", "--host", IDP_IP, "--port", str(port)]
            + ["--key-dir", str(key_dir), "--grace", "300"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 15
        while _idp_get(port, "/jwks") is None:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


def _idp_get(port: int, path: str) -> Any:
    connection = http.client.HTTPConnection(IDP_IP, port, timeout=2)
    try:
        connection.request("GET", path)
        return json.loads(connection.getresponse().read())
    except OSError:
        return None
    finally:
        connection.close()


def _rotate(port: int) -> str:
    credentials = base64.b64encode(f"{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}".encode())
    connection = http.client.HTTPConnection(IDP_IP, port, timeout=5)
    try:
        connection.request("POST", "/rotate", headers={"Authorization": b"Basic " + credentials})
        response = connection.getresponse()
        assert response.status == 200
        return str(json.loads(response.read())["kid"])
    finally:
        connection.close()


def _jwks_status(mesh: Mesh) -> list[dict[str, Any]]:
    plane = json.loads(mesh.state.control_plane.read_text())
    return list(plane.get("jwks") or [])


def _wait_status(mesh: Mesh, state: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        sources = _jwks_status(mesh)
        if sources and sources[0]["state"] == state:
            return sources[0]
        assert time.monotonic() < deadline, f"jwks never {state}: {sources}"
        time.sleep(0.1)


def test_end_user_authentication(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("jwt")
    key_dir = root / "idp"
    store = keys.KeyStore(key_dir)
    store.ensure(time.time())
    port = free_port(IDP_IP)
    issuer = f"http://{IDP_IP}:{port}"
    with _idp(key_dir, port, root / "idp.log") as idp:
        mesh = start_mesh(root, pool=POOL)
        try:
            policies = write_yaml(root, "jwt.yaml", POLICIES.format(issuer=issuer))
            result = mesh.cli("apply", "-f", str(policies))
            assert result.returncode == 0, result.stdout + result.stderr
            _run(mesh, store, issuer, port, idp)
        finally:
            stop_mesh(mesh)


def _run(
    mesh: Mesh, store: keys.KeyStore, issuer: str, port: int, idp: subprocess.Popen[bytes]
) -> None:
    first = _wait_status(mesh, "ok")
    assert (first["source"], first["discovery"], first["kids"]) == (
        f"{issuer}/.well-known/openid-configuration",
        True,
        [e.kid for e in store.entries()],
    )
    client = mesh.pod("client", "open")

    def token(now: float | None = None) -> str:
        return tokens.issue(
            store,
            issuer=issuer,
            subject="alice",
            now=now or time.time(),
            ttl_seconds=300,
            audiences=("httpbin",),
        )

    def get(path: str, bearer: str | None = None) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return get_via_sidecar(client, "httpbin.strict:8000", path, headers)

    # The policies reach the sidecar with the keys: poll until a valid token is accepted.
    deadline = time.monotonic() + 15
    while get("/headers", token())[0] != 200:
        assert time.monotonic() < deadline, "a valid token was never accepted"
        time.sleep(0.2)
    status, body = get("/headers", token())
    assert status == 200
    assert json.loads(body)["headers"]["X-Jwt-Sub"] == "alice"
    assert [get("/get")[0], get("/headers")[0]] == [200, 403]

    forged = attacks.forged(
        store, issuer=issuer, subject="alice", now=time.time(), audiences=("httpbin",)
    )
    assert {name: get("/get", t)[0] for name, t in forged.items()} == dict.fromkeys(forged, 401)
    elsewhere = get_via_sidecar(
        client, "httpbin.strict:8000", "/headers", {attacks.ELSEWHERE_HEADER: token()}
    )
    assert elsewhere[0] == 403

    # `meshward verify` forges tokens from public information and expects 401 for each.
    verified = mesh.cli("verify", "--json")
    assert verified.returncode == 0, verified.stdout[-3000:]
    probes = json.loads(verified.stdout)["probes"]
    jwt_probes = sorted(p["target"].split(":")[0] for p in probes if p["check"] == "jwt")
    assert jwt_probes == sorted(
        [
            "alg-none",
            "bad-signature",
            "expired",
            "hs256-public-key",
            "not-yet-valid",
            "unknown-kid",
            "wrong-audience",
            "wrong-issuer",
        ]
    )
    assert [p["passed"] for p in probes if p["check"] in ("jwt", "jwks")] == [True] * 9

    # Rotation: a token with the new kid is refused first, then accepted without an apply.
    # (First let a refresh the verifier's unknown-kid probes brought forward run.)
    deadline = time.monotonic() + 10
    while _jwks_status(mesh)[0]["next_at"] < time.time() + 60:
        assert time.monotonic() < deadline, _jwks_status(mesh)
        time.sleep(0.2)
    before = _jwks_status(mesh)[0]["changes"]
    new_kid = _rotate(port)
    rotated = token()
    assert store.entries()[-1].kid == new_kid
    assert get("/headers", rotated)[0] == 401
    started = time.monotonic()
    while get("/headers", rotated)[0] != 200:
        assert time.monotonic() - started < 10, f"new key never accepted: {_jwks_status(mesh)}"
        time.sleep(0.2)
    after = _jwks_status(mesh)[0]
    assert after["changes"] == before + 1 and new_kid in after["kids"]

    # `authz explain --jwt` checks the token against the fetched keys, like the sidecar.
    explain = ("authz", "explain", "--from", "client", "-n", "open", "--to", "httpbin.strict:8000")
    valid = mesh.cli(*explain, "--path", "/headers", "--jwt", rotated)
    assert valid.returncode == 0, valid.stderr
    assert f"  principal: {issuer}/alice" in valid.stdout
    assert "  decision: ALLOW" in valid.stdout
    assert "  by:       ALLOW policy strict/httpbin-users rule[1]" in valid.stdout
    expired = mesh.cli(*explain, "--path", "/get", "--jwt", forged["expired"], "--exit-code")
    assert expired.returncode == 1
    assert "  jwt:      INVALID: Jwt is expired" in expired.stdout
    assert "  decision: REFUSED (401)" in expired.stdout

    # The IdP goes away: a refresh fails, the last good keys stay, status says so.
    idp.terminate()
    idp.wait(timeout=10)
    assert get("/get", forged["unknown-kid"])[0] == 401  # triggers a refresh, which fails
    stale = _wait_status(mesh, "stale")
    assert "openid-configuration" in stale["error"] and stale["failures"] >= 1
    assert get("/headers", rotated)[0] == 200
    shown = mesh.cli("status")
    assert (
        f"jwks: MW0440 discovery {issuer}/.well-known/openid-configuration: stale" in shown.stdout
    )
