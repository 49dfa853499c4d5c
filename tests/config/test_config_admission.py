"""AdmissionPolicy kind (config/admission_policy.py) and the exception annotations.

Valid documents become whole `AdmissionPolicy` values; each invalid row changes one thing and
asserts the exact (code, field) list.
"""

from __future__ import annotations

import pytest

from meshward.config import load_text
from meshward.config.resources import AdmissionPolicy, ExceptionClaim, Meta

HEAD = "apiVersion: meshward.io/v1alpha1\nkind: AdmissionPolicy\nmetadata: {name: p}\nspec:\n"


def _meta(line: int = 1) -> Meta:
    return Meta("meshward.io/v1alpha1", "AdmissionPolicy", "p", "default", "t.yaml", line, ("", 0))


VALID: list[tuple[str, str, AdmissionPolicy]] = [
    (
        "strict, defaults",
        "  template: RequireStrictMtls\n",
        AdmissionPolicy(_meta(), "RequireStrictMtls", "deny"),
    ),
    (
        "strict, audit, match, mesh-wide",
        "  template: RequireStrictMtls\n  enforcement: audit\n"
        "  match: {namespaces: [a, b], excludedNamespaces: [c]}\n"
        "  parameters: {requireMeshWideStrict: true}\n",
        AdmissionPolicy(
            _meta(), "RequireStrictMtls", "audit", ("a", "b"), ("c",), require_mesh_wide_strict=True
        ),
    ),
    (
        "commands",
        "  template: AuthorizedCommands\n  parameters: {commands: [python, /opt/*]}\n",
        AdmissionPolicy(_meta(), "AuthorizedCommands", "deny", commands=("python", "/opt/*")),
    ),
    (
        "approvers",
        "  template: AuthorizedExceptions\n  parameters: {approvers: [alice]}\n",
        AdmissionPolicy(_meta(), "AuthorizedExceptions", "deny", approvers=("alice",)),
    ),
    (
        "allow-all",
        "  template: RefuseAllowAll\n",
        AdmissionPolicy(_meta(), "RefuseAllowAll", "deny"),
    ),
    (
        "dry-run first, strict on first up",
        "  template: RequireDryRunFirst\n  parameters: {exemptOnFirstUp: false}\n",
        AdmissionPolicy(_meta(), "RequireDryRunFirst", "deny", exempt_on_first_up=False),
    ),
]


@pytest.mark.parametrize(("spec", "expected"), [r[1:] for r in VALID], ids=[r[0] for r in VALID])
def test_valid(spec: str, expected: AdmissionPolicy) -> None:
    result = load_text(HEAD + spec, "t.yaml")
    assert result.diagnostics == ()
    assert result.admission_policies == (expected,)


INVALID: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("no template", "  enforcement: deny\n", [("MW0107", "spec.template")]),
    ("unknown template", "  template: Nope\n", [("MW0109", "spec.template")]),
    (
        "bad enforcement",
        "  template: RefuseAllowAll\n  enforcement: warn\n",
        [("MW0109", "spec.enforcement")],
    ),
    (
        "parameter of another template",
        "  template: RefuseAllowAll\n  parameters: {commands: [x]}\n",
        [("MW0106", "spec.parameters.commands")],
    ),
    (
        "commands missing",
        "  template: AuthorizedCommands\n",
        [("MW0107", "spec.parameters.commands")],
    ),
    (
        "commands empty",
        "  template: AuthorizedCommands\n  parameters: {commands: []}\n",
        [("MW0107", "spec.parameters.commands")],
    ),
    (
        "approver empty string",
        "  template: AuthorizedExceptions\n  parameters: {approvers: ['']}\n",
        [("MW0145", "spec.parameters.approvers")],
    ),
    (
        "bad namespace",
        "  template: RefuseAllowAll\n  match: {namespaces: [Bad_NS]}\n",
        [("MW0111", "spec.match.namespaces")],
    ),
    (
        "unknown match key",
        "  template: RefuseAllowAll\n  match: {labels: {}}\n",
        [("MW0106", "spec.match.labels")],
    ),
    (
        "flag not a bool",
        "  template: RequireDryRunFirst\n  parameters: {exemptOnFirstUp: 'no'}\n",
        [("MW0108", "spec.parameters.exemptOnFirstUp")],
    ),
]


@pytest.mark.parametrize(
    ("spec", "expected"), [r[1:] for r in INVALID], ids=[r[0] for r in INVALID]
)
def test_invalid(spec: str, expected: list[tuple[str, str]]) -> None:
    result = load_text(HEAD + spec, "t.yaml")
    assert [(d.code, d.location.field) for d in result.diagnostics] == expected
    assert result.admission_policies == ()


EXCEPTION = """\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: legacy
  namespace: shop
  annotations: {ANNOTATIONS}
spec: {mtls: {mode: PERMISSIVE}}
"""


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ("{}", ()),
        ("{other: x}", ()),
        (
            "{meshward.io/exception: migrating, meshward.io/exception-approved-by: alice}",
            (ExceptionClaim("PeerAuthentication shop/legacy", "migrating", "alice", "t.yaml", 1),),
        ),
        (
            "{meshward.io/exception-approved-by: alice}",
            (ExceptionClaim("PeerAuthentication shop/legacy", "", "alice", "t.yaml", 1),),
        ),
    ],
)
def test_exception_claims(annotations: str, expected: tuple[ExceptionClaim, ...]) -> None:
    result = load_text(EXCEPTION.replace("{ANNOTATIONS}", annotations), "t.yaml")
    assert result.diagnostics == ()
    assert result.exceptions == expected
