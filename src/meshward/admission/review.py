"""Admission review: run every AdmissionPolicy in force against a candidate config set.

Called through the facade (`meshward.admission.admit`, `audit`) by `meshward up` (through
`Runner.seed`), `meshward apply`, the control plane's reload (defense in depth) and
`meshward admission audit`. Pure: config sets in, diagnostics out.

Which policies judge a change: those of the running set *and* those of the candidate. A change
that deletes or weakens an AdmissionPolicy is therefore still judged by the old version (it
cannot switch off the rule that refuses it in the same step), and a newly added policy
applies at once. Exemptions: a resource carrying `meshward.io/exception: <reason>` and
`meshward.io/exception-approved-by: <name>`, where name is an approver of an
AuthorizedExceptions policy in force, is exempt from every other template. Without such a
policy exception annotations exempt nothing (and are no violation).
"""

from __future__ import annotations

from meshward.admission import templates
from meshward.config.resources import AdmissionPolicy, ConfigSet
from meshward.diagnostics import Diagnostic, Level, Location


def admit(candidate: ConfigSet, previous: ConfigSet | None) -> tuple[Diagnostic, ...]:
    """Every violation of the policies in force; errors (deny policies) refuse the change."""
    return _review(candidate, previous, audit_all=False)


def audit(config: ConfigSet) -> tuple[Diagnostic, ...]:
    """Audit mode: the violations `config` has now, every policy reported as a warning."""
    return _review(config, None, audit_all=True)


def in_force(candidate: ConfigSet, previous: ConfigSet | None) -> tuple[AdmissionPolicy, ...]:
    """The running set's policies, then the candidate's that differ from all of them."""
    before = previous.admission_policies if previous is not None else ()
    return (*before, *(p for p in candidate.admission_policies if p not in before))


def _review(
    candidate: ConfigSet, previous: ConfigSet | None, *, audit_all: bool
) -> tuple[Diagnostic, ...]:
    policies = in_force(candidate, previous)
    exempt = _exempt(candidate, policies)
    found: dict[tuple[str, str, str, str], Diagnostic] = {}
    for policy in policies:
        code, check = templates.TEMPLATES[policy.template]
        for violation in check(policy, candidate, previous):
            ref = violation.meta.ref
            if policy.template != "AuthorizedExceptions" and ref in exempt:
                continue
            key = (code, ref, violation.field, policy.meta.name)
            if key in found:  # the same policy name in both sets found the same thing
                continue
            found[key] = _diagnostic(policy, code, violation, audit_all)
    return tuple(found.values())


def _exempt(candidate: ConfigSet, policies: tuple[AdmissionPolicy, ...]) -> frozenset[str]:
    approvers = {
        name for p in policies if p.template == "AuthorizedExceptions" for name in p.approvers
    }
    return frozenset(
        c.resource for c in candidate.exceptions if c.reason and c.approved_by in approvers
    )


def _diagnostic(
    policy: AdmissionPolicy, code: str, violation: templates.Violation, audit_all: bool
) -> Diagnostic:
    deny = policy.enforcement == "deny" and not audit_all
    verb = "refused by" if deny else "violates"
    audit = "" if policy.enforcement == "deny" else ", audit"
    message = (
        f"{verb} AdmissionPolicy {policy.meta.name} ({policy.template}{audit}): "
        f"{violation.problem}; fix: {violation.fix}"
    )
    meta = violation.meta
    return Diagnostic(
        code,
        Level.ERROR if deny else Level.WARNING,
        meta.ref,
        Location(meta.file, meta.line, violation.field),
        message,
    )
