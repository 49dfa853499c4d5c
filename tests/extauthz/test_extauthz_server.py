"""`meshward extauthz` front ends with the rules plugin: a real gRPC Check call and real HTTP
requests in, whole responses and decision-log lines out; the rules plugin's matching table;
a failing plugin denies; the CLI refuses a bad rule file with its code."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2

from meshward.config import extauthz_rules
from meshward.extauthz.decision_log import DecisionLog
from meshward.extauthz.plugin import Decision, Facts
from meshward.extauthz.rules import RulesPlugin
from meshward.extauthz.server import Running, serve

RULES = """\
rules:
- name: admin-from-ops
  paths: ["/admin*"]
  principals: ["td/ns/ops/sa/*"]
  allow: true
  headersToUpstream: {x-checked-by: rules}
- name: admin
  paths: ["/admin*"]
  allow: false
  status: 418
  body: "not for you"
  headersToDownstream: {x-denied-by: rules}
- name: readers
  methods: [GET, HEAD]
  headers: {x-user: "*"}
  allow: true
"""


def rules_plugin() -> RulesPlugin:
    rules, found = extauthz_rules.load(RULES, "rules.yaml")
    assert found == () and rules is not None
    return RulesPlugin(rules)


DENIED = Decision(False, 403, "rule default denies", body="denied by extauthz rules")
TABLE: list[tuple[str, Facts, Decision]] = [
    (
        "admin from ops",
        Facts("1", "POST", "/admin/x?y=1", principal="td/ns/ops/sa/deployer"),
        Decision(True, 200, "rule admin-from-ops allows", (("x-checked-by", "rules"),)),
    ),
    (
        "admin from elsewhere",
        Facts("2", "GET", "/admin", principal="td/ns/web/sa/app", headers=(("x-user", "a"),)),
        Decision(False, 418, "rule admin denies", (), (("x-denied-by", "rules"),), "not for you"),
    ),
    (
        "admin without identity",
        Facts("3", "GET", "/admin"),
        Decision(False, 418, "rule admin denies", (), (("x-denied-by", "rules"),), "not for you"),
    ),
    (
        "reader",
        Facts("4", "GET", "/data", headers=(("x-user", "a"),)),
        Decision(True, 200, "rule readers allows"),
    ),
    ("reader writes", Facts("5", "POST", "/data", headers=(("x-user", "a"),)), DENIED),
    ("nobody", Facts("6", "GET", "/data"), DENIED),
]


@pytest.mark.parametrize(("facts", "expected"), [c[1:] for c in TABLE], ids=[c[0] for c in TABLE])
def test_rules_plugin(facts: Facts, expected: Decision) -> None:
    assert rules_plugin().check(facts) == expected


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Running, Path]]:
    log = tmp_path / "decisions.jsonl"
    server = serve(rules_plugin(), DecisionLog(log), ("127.0.0.1", 0), ("127.0.0.1", 0), "/check")
    try:
        yield server, log
    finally:
        server.stop()


def check(port: int, method: str, path: str, principal: str) -> external_auth_pb2.CheckResponse:
    request = external_auth_pb2.CheckRequest()
    request.attributes.source.principal = principal
    http_request = request.attributes.request.http
    http_request.id, http_request.method, http_request.path = "req-1", method, path
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        response: external_auth_pb2.CheckResponse = stub.Check(request, timeout=5)
        return response


def test_grpc_check_allows_and_denies(running: tuple[Running, Path]) -> None:
    server, log = running
    assert server.grpc_port is not None
    overwrite = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    allowed = check(server.grpc_port, "GET", "/admin", "spiffe://td/ns/ops/sa/deployer")
    assert allowed == external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code_pb2.OK),
        ok_response=external_auth_pb2.OkHttpResponse(
            headers=[
                base_pb2.HeaderValueOption(
                    header=base_pb2.HeaderValue(key="x-checked-by", value="rules"),
                    append_action=overwrite,
                )
            ]
        ),
    )
    denied = check(server.grpc_port, "GET", "/admin", "spiffe://td/ns/web/sa/app")
    assert denied == external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code_pb2.PERMISSION_DENIED, message="rule admin denies"),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=418),
            headers=[
                base_pb2.HeaderValueOption(
                    header=base_pb2.HeaderValue(key="x-denied-by", value="rules"),
                    append_action=overwrite,
                )
            ],
            body="not for you",
        ),
    )
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    for line in lines:
        assert line.pop("time").endswith("+00:00")
    assert lines == [
        {"request_id": "req-1", "principal": "td/ns/ops/sa/deployer", "method": "GET",
         "path": "/admin", "plugin": "rules", "decision": "allow", "status": 200,
         "reason": "rule admin-from-ops allows"},
        {"request_id": "req-1", "principal": "td/ns/web/sa/app", "method": "GET",
         "path": "/admin", "plugin": "rules", "decision": "deny", "status": 418,
         "reason": "rule admin denies"},
    ]  # fmt: skip


def test_http_front_end_allows_and_denies(running: tuple[Running, Path]) -> None:
    server, _ = running
    assert server.http_port is not None

    def ask(path: str, headers: dict[str, str]) -> tuple[int, str | None, str | None, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=5)
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            return (
                response.status,
                response.getheader("x-checked-by"),
                response.getheader("x-denied-by"),
                response.read(),
            )
        finally:
            connection.close()

    assert ask("/check/data", {"x-user": "a"}) == (200, None, None, b"")
    assert ask("/check/admin", {"x-user": "a"}) == (418, None, "rules", b"not for you")
    assert ask("/check/data", {}) == (403, None, None, b"denied by extauthz rules")


class Broken:
    name = "broken"

    def check(self, facts: Facts) -> Decision:
        raise RuntimeError("boom")


def test_a_plugin_that_raises_denies(tmp_path: Path) -> None:
    server = serve(Broken(), DecisionLog(None), ("127.0.0.1", 0))
    try:
        assert server.grpc_port is not None
        response = check(server.grpc_port, "GET", "/", "")
        assert (response.status.code, response.denied_response.status.code) == (
            code_pb2.PERMISSION_DENIED,
            500,
        )
    finally:
        server.stop()


def test_cli_refuses_a_bad_rule_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n- {name: a, allow: false, status: 99}\n")
    result = subprocess.run(
        [sys.executable, "-m", "meshward.cli.main", "extauthz", "--listen", "127.0.0.1:0",
         "--plugin", "rules", "--rules", str(rules)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "MW0197" in result.stderr and f"{rules}:2" in result.stderr


class Own:
    """A plugin of one's own, loaded by the CLI as MODULE:FACTORY."""

    name = "own"

    def check(self, facts: Facts) -> Decision:
        if facts.path == "/own":
            return Decision(True, 200, "own path")
        return Decision(False, 451, "not own")


def make_own() -> Own:
    return Own()


def not_a_plugin() -> object:
    return object()


def test_cli_serves_a_plugin_of_ones_own() -> None:
    root = Path(__file__).parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "meshward.cli.main", "extauthz", "--listen", "127.0.0.1:0",
         "--plugin", "tests.extauthz.test_extauthz_server:make_own"],
        cwd=root, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith("meshward extauthz: plugin own, gRPC on port "), banner
        port = int(banner.rsplit(" ", 1)[1])
        assert check(port, "GET", "/own", "").status.code == code_pb2.OK
        assert check(port, "GET", "/x", "").denied_response.status.code == 451
    finally:
        process.terminate()
        process.communicate(timeout=10)  # reaps it and closes its stdout pipe


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        ("tests.extauthz.nowhere:make", "cannot load plugin"),
        ("tests.extauthz.test_extauthz_server:RULES", "is not a factory"),
        ("tests.extauthz.test_extauthz_server:not_a_plugin", "has no `name` and `check"),
        ("opa", "unknown plugin 'opa'"),
    ],
)
def test_cli_refuses_a_plugin_it_cannot_use(plugin: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "meshward.cli.main", "extauthz", "--listen", "127.0.0.1:0",
         "--plugin", plugin],
        cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
