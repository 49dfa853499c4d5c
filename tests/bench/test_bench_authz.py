"""bench/authz.py on a tiny scale: the variants are the policies the benchmark claims (checked
with meshward's own Python evaluator), their Envoy configs pass `envoy --mode validate`, and
a real pair carries one allowed request, decided by the intended rule, and refuses another."""

from __future__ import annotations

import http.client
import importlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from meshward.model import authorization, authz_eval
from meshward.process import pid_alive
from meshward.xds import envoy_binary

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
certs: Any = importlib.import_module("certs")
dataplane: Any = importlib.import_module("dataplane")
authz: Any = importlib.import_module("authz")

# The request wrk sends, as the server sidecar sees it.
REQUEST = authz_eval.Request(
    source_principal="cluster.local/ns/bench/sa/client",
    source_ip="127.0.0.1",
    destination_ip="127.0.0.1",
    destination_port=8000,
    host="127.0.0.1:8000",
    method="GET",
    path="/robots.txt",
)


@pytest.mark.parametrize(
    ("size", "deciding"),
    [
        (1, "ns[bench]-policy[allow-1]-rule[0]"),
        (3, "ns[bench]-policy[allow-3]-rule[2]"),
        (10, "ns[bench]-policy[allow-10]-rule[9]"),
        # Envoy walks the rules by name: `rule[9]` sorts after `rule[99]` and `rule[999]`.
        (100, "ns[bench]-policy[allow-100]-rule[9]"),
        (1000, "ns[bench]-policy[allow-1000]-rule[9]"),
    ],
)
def test_allow_variant_is_decided_by_the_rule_envoy_evaluates_last(
    size: int, deciding: str
) -> None:
    variant = authz.allow_variant(size)
    (policy,) = variant.authz.policies
    ids = sorted(policy.rule_id(rule.index) for rule in policy.rules)
    decision = authz_eval.evaluate(variant.authz, REQUEST)
    # Without the deciding rule no other rule allows the request: every one is walked.
    others = authorization.PortAuthz(
        (
            authorization.AuthzPolicy(
                policy.namespace,
                policy.name,
                "ALLOW",
                tuple(r for r in policy.rules if policy.rule_id(r.index) != deciding),
            ),
        )
    )
    assert (variant.deciding_rule, ids[-1], len(ids), variant.engine) == (
        deciding,
        deciding,
        size,
        "meshward_allow_",
    )
    assert (decision.allowed, decision.action, decision.rule_id) == (True, "ALLOW", deciding)
    # (With size 1 nothing is left: an ALLOW policy without rules allows nothing, too.)
    assert (authz_eval.evaluate(others, REQUEST).allowed, len(others.policies[0].rules)) == (
        False,
        size - 1,
    )


@pytest.mark.parametrize("size", [1, 10, 1000])
def test_deny_variant_matches_no_deny_rule_and_allows_by_allow_all(size: int) -> None:
    variant = authz.deny_variant(size)
    deny, allow_all = variant.authz.policies
    decision = authz_eval.evaluate(variant.authz, REQUEST)
    only_deny = authz_eval.evaluate(authorization.PortAuthz((deny,)), REQUEST)
    assert (
        (deny.action, len(deny.rules), allow_all.action, allow_all.rules),
        (decision.allowed, decision.action, decision.rule_id),
        (only_deny.allowed, only_deny.action),
        variant.deciding_rule,
    ) == (
        ("DENY", size, "ALLOW", (authorization.AuthzRule(0),)),
        (True, "ALLOW", "ns[bench]-policy[allow-all]-rule[0]"),
        (True, "DEFAULT"),
        "ns[bench]-policy[allow-all]-rule[0]",
    )


def test_variants_and_their_filters() -> None:
    chosen = authz.variants([3, 7])
    assert [(v.key, v.rules, len(authz.rbac_http_filters(v))) for v in chosen] == [
        ("none", 0, 0),
        ("allow-3", 3, 1),
        ("allow-7", 7, 1),
        ("deny-3", 3, 2),
        ("deny-7", 7, 2),
    ]
    assert [v.key for v in authz.variants([5], deny=False)] == ["none", "allow-5"]


def test_server_config_puts_rbac_before_the_router() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pki = certs.write_pki(Path(tmp))
        _, server = authz.pair_configs(pki, authz.deny_variant(2), (1001, 1002, 1003), 1004)
    manager = server["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    assert [f["name"] for f in manager["typed_config"]["http_filters"]] == [
        "meshward.authz.deny",
        "meshward.authz.allow",
        "envoy.filters.http.router",
    ]
    assert (manager["typed_config"]["normalize_path"], server["admin"]) == (
        True,
        {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 1004}}},
    )


def test_ratios_and_cost_per_rule_are_over_the_baseline() -> None:
    def result(key: str, rules: int, rps: float, cpu: float) -> Any:
        return authz.VariantResult(
            key, rules, 0, 0, rps=rps, p50_ms=1.0, p99_ms=2.0, server_cpu_us_per_request=cpu
        )

    results = [result("none", 0, 1000.0, 40.0), result("allow-10", 10, 800.0, 50.0)]
    rates = authz.ratios(results)
    authz.per_rule(results)
    assert [r.server_cpu_us_per_rule for r in results] == [0.0, 1.0]
    assert rates == {
        "none": {"rps": 1.0, "p50_ms": 1.0, "p99_ms": 1.0, "server_cpu_us_per_request": 1.0},
        "allow-10": {"rps": 0.8, "p50_ms": 1.0, "p99_ms": 1.0, "server_cpu_us_per_request": 1.25},
    }


def _get(port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@pytest.mark.e2e
@pytest.mark.parametrize("variant_of", ["allow", "deny"])
def test_generated_configs_validate(variant_of: str, tmp_path: Path) -> None:
    variant = {"allow": authz.allow_variant, "deny": authz.deny_variant}[variant_of](3)
    pki = certs.write_pki(tmp_path)
    ports = (dataplane.free_port(), dataplane.free_port(), dataplane.free_port())
    outcomes = []
    for role, config in zip(
        ("client", "server"), authz.pair_configs(pki, variant, ports, 0), strict=True
    ):
        path = tmp_path / f"{role}.json"
        path.write_text(json.dumps(config))
        argv = [str(envoy_binary.envoy_path()), "--mode", "validate", "-c", str(path)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        outcomes.append((role, done.returncode, done.stderr[-2000:] if done.returncode else ""))
    assert outcomes == [("client", 0, ""), ("server", 0, "")]


@pytest.mark.e2e
def test_allow_pair_passes_the_request_by_the_deciding_rule_and_refuses_others() -> None:
    variant = authz.allow_variant(3)
    with tempfile.TemporaryDirectory(prefix="meshward-bench-authz-test-") as tmp:
        workdir = Path(tmp)
        processes = dataplane.Processes(workdir)
        try:
            pki = certs.write_pki(workdir)
            backend_port = dataplane.free_port()
            backend = processes.start(
                "backend",
                [sys.executable, "-m", "meshward.samples.httpbin", "--quiet", "--host",
                 "127.0.0.1", "--port", str(backend_port)],
            )  # fmt: skip
            dataplane.wait_http_ok(backend_port, "/robots.txt", backend)
            running = authz.start_variant(processes, variant, workdir, backend_port, pki)
            allowed, _ = _get(running.pair.port, "/robots.txt")
            refused, body = _get(running.pair.port, "/headers")
            counters = authz.rbac_counters(running.admin_port)
            pids = [proxy.pid for proxy in running.pair.proxies]
        finally:
            processes.stop_all()
        left = [pid for pid in pids if pid_alive(pid)]
    prefix = "http.bench.rbac.meshward_allow_."
    # start_envoy_pair's readiness GET and ours were allowed by rule[2]; /headers by none.
    assert (allowed, refused, body, left) == (200, 403, "RBAC: access denied", [])
    assert counters == {
        f"{prefix}allowed": 2,
        f"{prefix}denied": 1,
        f"{prefix}policy.ns[bench]-policy[allow-3]-rule[2].allowed": 2,
        "http.bench.rbac.shadow_allowed": 0,
        "http.bench.rbac.shadow_denied": 0,
    }
    assert (
        authz.rule_counter(variant) == f"{prefix}policy.ns[bench]-policy[allow-3]-rule[2].allowed"
    )
