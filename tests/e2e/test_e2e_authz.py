"""Workload authorization on a running mesh, through real Envoy: apply, enforce, explain,
check the live configuration, refuse bad input, and dry-run."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshward.verify import access_log
from meshward.xds.access_log import denial, shadow_decisions
from tests.e2e.conftest import start_mesh, stop_mesh
from tests.e2e.meshctl import Mesh, get_via_sidecar, write_yaml

pytestmark = pytest.mark.e2e

POLICIES = """\
# strict: only the client may call httpbin, and only GET /get or /headers
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: httpbin-readers, namespace: strict}
spec:
  selector: {matchLabels: {app: httpbin}}
  rules:
  - from: [{source: {principals: ["e2e.test/ns/open/sa/client"]}}]
    to: [{operation: {methods: ["GET"], paths: ["/get", "/headers"]}}]
---
# strict: explicit deny wins over allow. (Selected to httpbin: namespace-wide, the rule would
# also apply to redis's TCP port, where its HTTP-only fields are removed and it denies all.)
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-secrets, namespace: strict}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/headers"]}}]
    when: [{key: "request.headers[x-secret]", values: ["*"]}]
---
# redis (TCP) only from httpbin's identity: the client is refused
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: redis-from-httpbin, namespace: strict}
spec:
  selector: {matchLabels: {app: redis}}
  rules:
  - from: [{source: {principals: ["e2e.test/ns/strict/sa/httpbin"]}}]
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    running = start_mesh(tmp_path_factory.mktemp("authz"))
    try:
        policies = write_yaml(tmp_path_factory.mktemp("policies"), "authz.yaml", POLICIES)
        result = running.cli("apply", "-f", str(policies))
        assert result.returncode == 0, result.stdout + result.stderr
        yield running
    finally:
        stop_mesh(running)


def last_entry(mesh: Mesh, workload: str, namespace: str, probe: str) -> access_log.Entry:
    pod = mesh.pod(workload, namespace)
    entry = access_log.wait_for(
        [mesh.state.sidecar_log(namespace, pod.pod)], lambda e: e.get("probe") == probe
    )
    assert entry is not None, f"no access-log entry for probe {probe}"
    return entry


def test_allowed_and_denied_http_with_the_deciding_rule_in_the_log(mesh: Mesh) -> None:
    client = mesh.pod("client", "open")
    status, _ = get_via_sidecar(client, "httpbin.strict:8000", "/get", {"x-meshward-probe": "a1"})
    assert status == 200
    status, _ = get_via_sidecar(client, "httpbin.strict:8000", "/ip", {"x-meshward-probe": "a2"})
    assert status == 403
    assert denial(last_entry(mesh, "httpbin", "strict", "a2")) == ("", "ALLOW", None)
    status, _ = get_via_sidecar(
        client, "httpbin.strict:8000", "/headers", {"x-meshward-probe": "a3", "x-secret": "1"}
    )
    assert status == 403
    assert denial(last_entry(mesh, "httpbin", "strict", "a3")) == ("strict/no-secrets", "DENY", 0)


def test_tcp_denial_closes_the_connection_and_names_no_allow_match(mesh: Mesh) -> None:
    client = mesh.pod("client", "open")
    host, port = dict(client.env)["MESHWARD_SVC_STRICT_REDIS_6379"].rsplit(":", 1)
    started = time.time() - 1
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        sock.settimeout(3)
        assert sock.recv(16) == b""  # closed by the server's RBAC filter
    redis = mesh.pod("redis", "strict")
    entry = access_log.wait_for(
        [mesh.state.sidecar_log("strict", redis.pod)],
        lambda e: float(e.get("start") or 0) >= started and denial(e) is not None,
    )
    assert entry is not None
    assert entry["peer"] == "spiffe://e2e.test/ns/open/sa/client"
    assert denial(entry) == ("", "ALLOW", None)


def test_explain_agrees_with_what_envoy_did(mesh: Mesh) -> None:
    result = mesh.cli(
        "authz",
        "explain",
        "--from",
        "client",
        "-n",
        "open",
        "--to",
        "httpbin.strict:8000",
        "--path",
        "/headers",
        "--header",
        "x-secret=1",
        "--exit-code",
    )
    assert result.returncode == 1
    assert "by:       DENY policy strict/no-secrets rule[0]" in result.stdout
    assert "mTLS:     STRICT" in result.stdout


def test_check_lists_the_policies_in_force_in_the_live_config(mesh: Mesh) -> None:
    result = mesh.cli("authz", "check", "httpbin", "-n", "strict")
    assert result.returncode == 0, result.stdout
    assert "ns[strict]-policy[httpbin-readers]-rule[0]" in result.stdout
    assert "ns[strict]-policy[no-secrets]-rule[0]" in result.stdout
    assert "NOT IN SYNC" not in result.stdout


def test_bad_policy_is_refused_and_the_old_one_stays(mesh: Mesh, tmp_path: Path) -> None:
    bad = write_yaml(
        tmp_path,
        "bad.yaml",
        POLICIES.split("---", maxsplit=1)[0]
        .replace('["e2e.test/ns/open/sa/client"]', '["10.0.0.0/33"]')
        .replace("principals", "ipBlocks"),
    )
    result = mesh.cli("apply", "-f", str(bad))
    assert result.returncode == 1
    assert "MW0133" in result.stderr
    client = mesh.pod("client", "open")
    assert get_via_sidecar(client, "httpbin.strict:8000", "/get")[0] == 200


def test_dry_run_is_recorded_not_enforced(mesh: Mesh, tmp_path: Path) -> None:
    policy = write_yaml(
        tmp_path,
        "dry.yaml",
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        "metadata:\n  name: deny-get\n  namespace: open\n"
        "  annotations: {istio.io/dry-run: 'true'}\n"
        "spec:\n  action: DENY\n  rules: [{to: [{operation: {methods: [GET]}}]}]\n",
    )
    assert mesh.cli("apply", "-f", str(policy)).returncode == 0
    caller = mesh.pod("httpbin", "strict")
    status, _ = get_via_sidecar(caller, "client.open:8000", "/get", {"x-meshward-probe": "d1"})
    assert status == 200
    shadows = shadow_decisions(last_entry(mesh, "client", "open", "d1"))
    assert [(s.policy, s.rule, s.would_allow) for s in shadows] == [("open/deny-get", 0, False)]


def test_verify_probes_every_policy(mesh: Mesh) -> None:
    result = mesh.cli("verify", "--json")
    report = json.loads(result.stdout)
    failed = [p for p in report["probes"] if not p["passed"]]
    assert result.returncode == 0, failed
    authz = [p for p in report["probes"] if p["check"] == "authz"]
    assert any("denied" in p["expected"] for p in authz)
    assert any(p["expected"].startswith("allowed") for p in authz)
