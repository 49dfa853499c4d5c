"""`meshward authz explain` and `preview` on a planned mesh (no processes needed: both read
the config store and the runner's mesh record, and evaluate in Python)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshward.cli.main import main
from meshward.runner.network import Loopback
from meshward.runner.runner import Runner
from meshward.state.layout import StateDir

EXAMPLE = Path("examples/simple-system")


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    state = StateDir(tmp_path / "state")
    assert Runner.seed(state, [EXAMPLE]) == ()
    Runner(state, Loopback("127.210.0.0/16"))._plan()  # publishes mesh.json, starts nothing
    return state


def explain(state: StateDir, *args: str) -> int:
    return main(["--state-dir", str(state.root), "authz", "explain", "--exit-code", *args])


def test_only_user_service_reaches_the_database(
    state: StateDir, capsys: pytest.CaptureFixture[str]
) -> None:
    assert explain(state, "--from", "user-service", "-n", "core", "--to", "database.core") == 0
    out = capsys.readouterr().out
    assert "decision: ALLOW" in out
    assert "ALLOW policy core/database-from-user-service rule[0]" in out
    assert "mTLS:     STRICT (PeerAuthentication core/default)" in out

    assert explain(state, "--from", "location-service", "-n", "geo", "--to", "database.core") == 1
    out = capsys.readouterr().out
    assert "decision: DENY (connection closed)" in out  # TCP: no HTTP status
    assert "core/database-from-user-service" in out  # the policy that could have allowed it


def test_plaintext_caller_is_refused_by_strict_before_authorization(
    state: StateDir, capsys: pytest.CaptureFixture[str]
) -> None:
    assert explain(state, "--plaintext", "--to", "user-service.core:8080") == 1
    assert "REFUSED at the TLS handshake" in capsys.readouterr().out


def test_explicit_deny_names_its_rule_and_dry_run_is_shown(
    state: StateDir, capsys: pytest.CaptureFixture[str]
) -> None:
    code = explain(state, "--from", "reports", "-n", "legacy", "--to", "location-service.geo")
    out = capsys.readouterr().out
    assert code == 0  # not enforced: the plaintext deny is a dry run
    assert "dry-run:  DENY geo/deny-plaintext rule[0] would DENY" in out
    code = explain(
        state,
        "--from",
        "reports",
        "-n",
        "legacy",
        "--to",
        "location-service.geo",
        "--path",
        "/admin/keys",
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "by:       DENY policy geo/deny-plaintext-admin rule[0]" in out


def test_preview_lists_recorded_requests_a_candidate_policy_would_deny(
    state: StateDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two requests location-service-0's sidecar recorded: one from user-service (mTLS), one
    # from the legacy reports workload (plaintext). Lines as the access log writes them.
    log = state.sidecar_log("geo", "location-service-0")
    log.parent.mkdir(parents=True, exist_ok=True)
    mesh = json.loads(state.mesh.read_text())
    pod_ip = next(p["pod_ip"] for p in mesh["pods"] if p["pod"] == "location-service-0")
    base = {
        "log": "meshward-access",
        "direction": "inbound",
        "local": f"{pod_ip}:8081",
        "method": "GET",
        # Not /locations/*: that needs an end-user token (end-user.yaml), which the log
        # lines below do not carry, so it is denied today already.
        "path": "/healthz",
        "authority": "location-service.geo:8081",
    }
    log.write_text(
        json.dumps(
            base
            | {
                "peer": "spiffe://cluster.local/ns/core/sa/user-service",
                "remote": "127.210.0.3:40000",
            }
        )
        + "\n"
        + "[warning] envoy noise\n"
        + json.dumps(base | {"peer": None, "remote": "127.210.0.6:40001"})
        + "\n"
    )
    candidate = tmp_path / "strict-geo.yaml"
    candidate.write_text(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        "metadata: {name: deny-plaintext, namespace: geo}\n"
        "spec:\n  selector: {matchLabels: {app: location-service}}\n  action: DENY\n"
        "  rules:\n  - from: [{source: {notPrincipals: ['*']}}]\n"
    )
    code = main(["--state-dir", str(state.root), "authz", "preview", "--exit-code", str(candidate)])
    out = capsys.readouterr().out
    assert code == 1
    assert "replayed 2 recorded requests" in out
    assert "1 request(s) would be DENIED (allowed today)" in out
    assert "GET /healthz  from plaintext  → DENY geo/deny-plaintext rule[0]" in out
    assert "user-service" not in out.split("would be DENIED")[1]
