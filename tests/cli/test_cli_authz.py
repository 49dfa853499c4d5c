"""`meshward authz explain` and `preview` on a planned mesh (no processes needed: both read
the config store and the runner's mesh record, and evaluate in Python)."""

from __future__ import annotations

import json
import shutil
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


MAPS_VIA = (
    "  via:      gateway istio-system/egressgateway-0:8080 (egressgateway.istio-system.svc."
    "cluster.local), mesh mTLS, SNI api.maps.example (DestinationRule istio-system/egressgateway"
    " (port 80))\n"
    "  server:   TERMINATE ISTIO_MUTUAL (api.maps.example); the gateway's policies decide\n"
)
# The maps API's HTTPS port is the gateway's way out; exported to sidecars, a sidecar may
# dial it too (no route) — the example exports it to the gateway's namespace only (MW0528).
MAPS_443 = (
    "TCP connection → api.maps.example:443 (ServiceEntry istio-system/maps-exit, TCP)\n"
    "  caller:   {caller}\n"
    "  path:     the caller's sidecar sends it out itself (no gateway route)\n"
    "  decision: ALLOW: no AuthorizationPolicy applies to outbound calls (Istio's are inbound); "
    "route it through an egress gateway to decide\n\n"
)


@pytest.mark.parametrize(
    ("caller", "code", "decision"),
    [
        (
            "geo/location-service",
            0,
            "  identity: cluster.local/ns/geo/sa/location-service\n"
            "  decision: ALLOW\n"
            "  by:       ALLOW policy istio-system/egress-callers rule[0]\n"
            "  why:      matched ALLOW policy istio-system/egress-callers rule[0]\n\n",
        ),
        (
            "core/user-service",
            1,
            "  identity: cluster.local/ns/core/sa/user-service\n"
            "  decision: DENY (403)\n"
            "  why:      no ALLOW rule matched; ALLOW policies in force: "
            "istio-system/egress-callers\n\n",
        ),
    ],
)
def test_an_external_host_is_decided_at_the_egress_gateway(
    state: StateDir, capsys: pytest.CaptureFixture[str], caller: str, code: int, decision: str
) -> None:
    # The example routes api.maps.example through the egress gateway over mesh mTLS: the
    # gateway's policy, not the caller's sidecar, decides, on the caller's identity.
    namespace, workload = caller.split("/")
    assert explain(state, "--from", workload, "-n", namespace, "--to", "api.maps.example") == code
    assert capsys.readouterr().out == (
        "GET / → api.maps.example:80 (ServiceEntry istio-system/maps, HTTP)\n"
        f"  caller:   {caller}-0\n" + MAPS_VIA + decision
    )


def test_the_gateways_way_out_is_no_sidecars_destination(
    state: StateDir, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--from", "location-service", "-n", "geo", "--to", "api.maps.example:443")
    assert explain(state, *args) == 1
    assert capsys.readouterr().err == "error: no service port matches 'api.maps.example:443'\n"


def test_a_direct_exit_is_decided_by_no_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The example with the exit port exported to every namespace (what MW0528 warns about).
    example = tmp_path / "simple-system"
    shutil.copytree(EXAMPLE, example)
    egress = example / "egress.yaml"
    egress.write_text(egress.read_text().replace('  exportTo: ["."]\n', ""))
    state = StateDir(tmp_path / "state")
    assert Runner.seed(state, [example]) == ()
    Runner(state, Loopback("127.210.0.0/16"))._plan()
    args = ("--from", "location-service", "-n", "geo", "--to", "api.maps.example:443")
    assert explain(state, *args) == 0
    assert capsys.readouterr().out == MAPS_443.format(caller="geo/location-service-0")


def test_passthrough_at_the_egress_gateway_carries_no_identity(
    state: StateDir, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--from", "user-service", "-n", "core", "--to", "payments.example:443")
    assert explain(state, *args) == 0
    assert capsys.readouterr().out == (
        "TCP connection → payments.example:443 (ServiceEntry istio-system/payments, TCP)\n"
        "  caller:   core/user-service-0\n"
        "  via:      gateway istio-system/egressgateway-0:8443 (egressgateway.istio-system.svc."
        "cluster.local), the app's own TLS, SNI payments.example: no caller identity behind it\n"
        "  server:   PASSTHROUGH (payments.example); the gateway's policies decide\n"
        "  identity: no identity\n"
        "  decision: ALLOW\n"
        "  by:       ALLOW policy istio-system/egress-callers rule[1]\n"
        "  why:      matched ALLOW policy istio-system/egress-callers rule[1]\n\n"
    )


def test_the_gateways_own_service_points_at_the_host(
    state: StateDir, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        explain(state, "--from", "user-service", "-n", "core", "--to", "egressgateway.istio-system")
        == 1
    )
    assert capsys.readouterr().err == (
        "error: egressgateway.istio-system.svc.cluster.local:80 is a gateway's Service: name the "
        "host the call is for (--to <ServiceEntry host>) to see the gateway's decision\n"
    )
