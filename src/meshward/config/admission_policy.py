"""`meshward.io/v1alpha1` AdmissionPolicy → `resources.AdmissionPolicy`.

Called by `meshward.config.kind`. meshward's own kind (no Istio equivalent; modelled on the
Gatekeeper ConstraintTemplate/Constraint pair and Kyverno's validationFailureAction): one
built-in template, how a violation is enforced, which namespaces it covers, and the template's
parameters. admission/ evaluates it; the semantics are in docs/admission.md.

```yaml
apiVersion: meshward.io/v1alpha1
kind: AdmissionPolicy
metadata: {name: strict-mtls}          # cluster-scoped: metadata.namespace means nothing
spec:
  template: RequireStrictMtls          # | AuthorizedCommands | AuthorizedExceptions
                                       # | RefuseAllowAll | RequireDryRunFirst
  enforcement: deny                    # deny (refuse the change, default) | audit (report)
  match: {namespaces: [a], excludedNamespaces: [b]}      # optional; empty = all
  parameters: {...}                    # per template, see below
```

Parameters (any other key is an unknown field, MW0106):
- RequireStrictMtls: `requireMeshWideStrict` (bool, default false): also require a
  mesh-wide STRICT PeerAuthentication (Istio's default without one is PERMISSIVE).
- AuthorizedCommands: `commands` (required, non-empty): allowed Workload argv[0] values; an
  entry ending in `*` is a prefix.
- AuthorizedExceptions: `approvers` (required, non-empty): who may approve an exception.
- RefuseAllowAll: none.
- RequireDryRunFirst: `exemptOnFirstUp` (bool, default true): on `meshward up` of a fresh
  mesh there is no running config to have dry-run in, and no traffic to break.
"""

from __future__ import annotations

from dataclasses import replace
from typing import cast, get_args

from meshward.config import names
from meshward.config.fields import Fields
from meshward.config.resources import (
    AdmissionPolicy,
    AdmissionTemplate,
    Enforcement,
    Labels,
    Meta,
)

TEMPLATES: tuple[str, ...] = get_args(AdmissionTemplate)
ENFORCEMENTS: tuple[str, ...] = get_args(Enforcement)


def parse(spec: Fields, meta: Meta, labels: Labels) -> AdmissionPolicy | None:
    """The AdmissionPolicy, or None if any field was reported as an error."""
    del labels
    template = spec.choice("template", TEMPLATES, required=True)
    enforcement = spec.choice("enforcement", ENFORCEMENTS) or "deny"
    namespaces, excluded = _match(spec)
    parameters = spec.mapping("parameters") or Fields.empty(
        spec.line_of("parameters"), spec.field("parameters"), spec.report
    )
    policy = AdmissionPolicy(
        meta,
        cast(AdmissionTemplate, template or "RefuseAllowAll"),
        cast(Enforcement, enforcement),
        namespaces,
        excluded,
    )
    if template == "RequireStrictMtls":
        strict = _flag(parameters, "requireMeshWideStrict", False)
        policy = replace(policy, require_mesh_wide_strict=strict)
    elif template == "AuthorizedCommands":
        policy = replace(policy, commands=_non_empty(parameters, "commands"))
    elif template == "AuthorizedExceptions":
        policy = replace(policy, approvers=_non_empty(parameters, "approvers"))
    elif template == "RequireDryRunFirst":
        policy = replace(policy, exempt_on_first_up=_flag(parameters, "exemptOnFirstUp", True))
    if template is not None:
        parameters.finish()  # an unknown template's parameters cannot be judged
    spec.finish()
    return None if spec.report.failed or template is None else policy


def _match(spec: Fields) -> tuple[tuple[str, ...], tuple[str, ...]]:
    match = spec.mapping("match")
    if match is None:
        return (), ()
    found = []
    for key in ("namespaces", "excludedNamespaces"):
        values = match.strings(key) or ()
        for value in values:
            if not names.is_dns_label(value):
                match.disallow(key, f"{value!r} is not a DNS-1123 label", code="MW0111")
        found.append(tuple(values))
    match.finish()
    return found[0], found[1]


def _flag(parameters: Fields, key: str, default: bool) -> bool:
    value = parameters.boolean(key)
    return default if value is None else value


def _non_empty(parameters: Fields, key: str) -> tuple[str, ...]:
    values = parameters.strings(key, required=True)
    if values is not None and not values:
        parameters.disallow(key, f"{key} needs at least one entry", code="MW0107")
    if values is not None and "" in values:
        parameters.disallow(key, f"{key} must not contain an empty string", code="MW0145")
    return values or ()
