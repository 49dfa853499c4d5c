"""Differential test: the Python evaluator (model/authz_eval.py) against a real Envoy.

Issue 4, item 4. hypothesis generates batches of ports, each with 1-3 AuthorizationPolicies
(DENY, ALLOW, AUDIT, CUSTOM, dry-run ALLOW and DENY; 0-3 rules over every source, operation
and `when` field the sidecar can evaluate) and a few requests sent by real clients (mTLS with
one of four SPIFFE identities, or plaintext; three source addresses; methods, paths, Host,
SNI, headers, X-Forwarded-For). One port in five is TCP (network RBAC; only the fields model/
keeps there). Each batch runs through one server Envoy whose RBAC filters come from
xds/rbac.py (rbac_differential_harness.py). For every request the test asserts that Envoy
and `evaluate()` agree on everything a user is told: allowed or denied, the deciding policy
and rule (`access_log.denial`), the ALLOW rule that let it through, every dry-run policy's
would-allow/would-deny and rule (`access_log.shadow_decisions`), and the audit mark with its
AUDIT rule. On TCP Envoy records no metadata for enforced rules, so there the allowing and
auditing rule are not compared (the decision, denying rule, shadow results and mark are).

Reproducible: `derandomize=True` and no example database, so CI runs the same cases every
time. Shrinking is off (each step would restart Envoy); instead a disagreement is minimised
against the real Envoy (`harness.minimise`) and reported as one PortAuthz and one request.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import pytest
import rbac_differential_harness as harness
from hypothesis import HealthCheck, Phase, given, settings
from xds_pki import Pki

from meshward.model.authz_eval import Decision, evaluate
from meshward.xds import access_log, rbac

pytestmark = pytest.mark.e2e

BATCHES = 12
PORTS_PER_BATCH = 30
PROBES_PER_PORT = 4
_ALLOW_MATCHED = rbac.engine_stat_prefix("ALLOW") + "enforced_effective_policy_id"
_AUDIT_MATCHED = rbac.engine_stat_prefix("AUDIT") + "enforced_effective_policy_id"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Everything both sides must agree on for one request. `denial` as
    `access_log.denial` reads it; `allowed_by`/`audited_by`: the ALLOW / AUDIT rule that
    matched as "ns/name rule[i]" ("" for none); `audited`: the access-log hint that marks a
    request for the audit store."""

    allowed: bool
    denial: tuple[str, str, int | None] | None
    allowed_by: str
    shadow: tuple[access_log.ShadowDecision, ...]
    audited: bool
    audited_by: str


def _label(rule_id: object) -> str:
    parsed = access_log.parse_rule_id(str(rule_id or ""))
    return f"{parsed[0]} rule[{parsed[1]}]" if parsed else ""


def observed(observation: harness.Observed) -> Verdict:
    entry = observation.entry
    assert observation.status in (200, 403, harness.DENIED_TCP), entry
    metadata: dict[str, Any] = entry.get("rbac") or {}
    allowed = observation.status == 200
    return Verdict(
        allowed=allowed,
        denial=access_log.denial(entry),
        allowed_by=_label(metadata.get(_ALLOW_MATCHED)) if allowed else "",
        shadow=access_log.shadow_decisions(entry),
        audited=entry.get("audit") is True,
        audited_by=_label(metadata.get(_AUDIT_MATCHED)),
    )


def expected(decision: Decision, *, http: bool) -> Verdict:
    denial: tuple[str, str, int | None] | None = None
    if not decision.allowed:
        # On TCP Envoy records only the rule: a fail-closed CUSTOM denial reads as DENY.
        action = "DENY" if decision.action == "CUSTOM" and not http else decision.action
        denial = (decision.policy, action, decision.rule)
    return Verdict(
        allowed=decision.allowed,
        denial=denial,
        allowed_by=(
            f"{decision.policy} rule[{decision.rule}]"
            if decision.allowed and decision.action == "ALLOW"
            else ""
        ),
        shadow=tuple(
            sorted(
                (
                    access_log.ShadowDecision(s.policy, s.rule, would_allow=s.would_allow)
                    for s in decision.shadow
                ),
                key=lambda d: d.policy,
            )
        ),
        audited=bool(decision.audited),
        audited_by=decision.audited[0] if decision.audited else "",
    )


def _want(case: harness.Case, probe: harness.Probe, port: int) -> Verdict:
    want = expected(evaluate(case.authz, probe.request(port, http=case.http)), http=case.http)
    if case.http:
        return want
    # Envoy's network RBAC filter writes dynamic metadata for shadow rules only: which ALLOW
    # or AUDIT rule matched a TCP connection is not recorded, so it cannot be compared.
    return replace(want, allowed_by="", audited_by="")


def _disagrees(
    case: harness.Case, probe: harness.Probe, port: int, observation: harness.Observed
) -> bool:
    return _want(case, probe, port) != observed(observation)


def _explain(server: harness.ServerEnvoy, case: harness.Case, probe: harness.Probe) -> str:
    """The disagreement, minimised against the real Envoy, with both sides' verdicts."""
    small = harness.Case(harness.minimise(server, case, probe, _disagrees), (probe,), case.http)
    (observation,) = server.run([small])[0]
    return (
        f"\n{'HTTP' if case.http else 'TCP'} port, PortAuthz: {small.authz!r}\n"
        f"probe: {probe!r}\nevaluator: {_want(small, probe, server.ports[0])!r}\n"
        f"envoy:     {observed(observation)!r}\nlog: {observation.entry!r}"
    )


@pytest.fixture(scope="module")
def server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Any:
    ports = harness.free_ports(PORTS_PER_BATCH)
    with harness.apps(ports):
        yield harness.ServerEnvoy(pki, ports, tmp_path_factory.mktemp("differential"))


def _reproduces(server: harness.ServerEnvoy, case: harness.Case, probe: harness.Probe) -> bool:
    alone = harness.Case(case.authz, (probe,), case.http)
    for _ in range(2):
        ((observation,),) = server.run([alone])
        if _disagrees(alone, probe, server.ports[0], observation):
            return True
    return False


def test_evaluator_agrees_with_envoy(server: harness.ServerEnvoy) -> None:
    tally: Counter[str] = Counter()
    glitches: list[harness.Probe] = []

    # too_slow / data_too_large: one example is a whole batch (30 ports, 120 requests, one
    # Envoy), by design; the generated data stays far below hypothesis' buffer in practice.
    @settings(
        max_examples=BATCHES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=(HealthCheck.too_slow, HealthCheck.data_too_large),
    )
    @given(harness.batches(PORTS_PER_BATCH, PROBES_PER_PORT))
    def batch_agrees(batch: harness.Batch) -> None:
        results = server.run(batch.cases)
        mismatches = []
        for case, port, observations in zip(batch.cases, server.ports, results, strict=False):
            for probe, observation in zip(case.probes, observations, strict=True):
                got = observed(observation)
                tally["cases"] += 1
                tally["allowed" if got.allowed else "denied"] += 1
                tally["shadow"] += bool(got.shadow)
                tally["audited"] += got.audited
                tally["tcp"] += not case.http
                if _disagrees(case, probe, port, observation):
                    mismatches.append((case, probe))
        # A semantic disagreement is deterministic: both sides are. So each one is run again
        # alone on a fresh Envoy; one that does not come back was a measurement glitch of the
        # harness (a lost log line, a connection reset under load), counted below.
        confirmed = [(c, p) for c, p in mismatches if _reproduces(server, c, p)]
        glitches.extend(p for c, p in mismatches if (c, p) not in confirmed)
        if confirmed:
            case, probe = confirmed[0]
            explained = _explain(server, case, probe)
            pytest.fail(f"{len(confirmed)} disagreements; first, minimised:{explained}")

    batch_agrees()
    # Glitches that do not reproduce are tolerated only while rare: more means the harness
    # cannot measure, and the run proves nothing.
    assert len(glitches) <= 3, f"{len(glitches)} non-reproducible mismatches: {glitches[:3]}"
    # The run is only a test if both outcomes (and the recorded extras) really occurred.
    assert tally["cases"] == BATCHES * PORTS_PER_BATCH * PROBES_PER_PORT
    assert min(tally["allowed"], tally["denied"]) > tally["cases"] // 10, tally
    assert min(tally["shadow"], tally["audited"], tally["tcp"]) > 0, tally
