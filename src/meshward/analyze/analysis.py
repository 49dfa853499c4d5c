"""The analyzer: the table of checks and `analyze`, which runs them over one config set.

Called by `meshward analyze` (cli/analyze.py) for files or the running mesh. Each check is a
small pure function of `Facts` in a module named for what it checks, with its reference
(Kiali/Istio code) in its docstring. Adding a check for a kind that config/ does not support
yet (IST0128/0129 TLS origination) is one function and one line here, plus its MW05xx code.

Findings the earlier stages already report are reused, never re-coded: config warnings
(MW01xx), model findings (MW02xx: selectors matching nothing — IST0127 — are MW0204, MW0205
and MW0220; a DENY rule with HTTP-only fields on a TCP port is MW0222).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from meshward.analyze import (
    authz_coverage,
    authz_identity,
    authz_references,
    certificates,
    destination_rules,
    egress_gateway,
    extauthz,
    mtls,
    network,
    request_authn,
)
from meshward.analyze.facts import DEFAULT_MAX_CERT_TTL, Facts, LiveFacts
from meshward.config.resources import ConfigSet
from meshward.diagnostics import Diagnostic
from meshward.model.ir import MeshModel

Check = Callable[[Facts], Iterable[Diagnostic]]

CHECKS: tuple[Check, ...] = (
    mtls.plaintext_accepted,
    authz_coverage.uncovered_workloads,
    authz_coverage.namespaces_without_default_deny,
    authz_references.unknown_references,
    authz_identity.identity_on_plaintext,
    destination_rules.tls_contradictions,
    egress_gateway.unusable_gateway_ports,
    egress_gateway.credential_bypass,
    egress_gateway.direct_exits,
    extauthz.fail_open_providers,
    request_authn.tokens_optional,
    network.outbound_unrestricted,
    network.loopback_mode,
    certificates.ca_expiry,
    certificates.workload_cert_ttl,
)


def analyze(
    config: ConfigSet,
    model: MeshModel,
    *,
    live: LiveFacts | None = None,
    model_findings: Sequence[Diagnostic] = (),
    max_cert_ttl_seconds: int = DEFAULT_MAX_CERT_TTL,
    ca_health: Sequence[Diagnostic] = (),
) -> tuple[Diagnostic, ...]:
    """All findings for a config set without errors and its model: the config set's own
    warnings, `model_findings` (from `meshward.model.build`) and every check's, each once,
    sorted by file, line and code."""
    facts = Facts(
        config=config,
        model=model,
        live=live,
        max_cert_ttl_seconds=max_cert_ttl_seconds,
        ca_health=tuple(ca_health),
    )
    found = [*config.diagnostics, *model_findings]
    for check in CHECKS:
        found.extend(check(facts))
    unique = dict.fromkeys(found)
    return tuple(
        sorted(
            unique,
            key=lambda d: (d.location.file, d.location.line, d.code, d.resource, d.message),
        )
    )
