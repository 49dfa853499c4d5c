"""admission.admit / audit: one table row per template outcome, plus exceptions, dry-run
first, the policies-in-force rule and audit mode. Each row is a whole config set (YAML) and
the exact (code, level, resource, field) list it must produce."""

from __future__ import annotations

import pytest

from meshward import admission
from meshward.config import ConfigSet, load_text
from meshward.diagnostics import Diagnostic

Found = list[tuple[str, str, str, str]]


def policy(name: str, template: str, extra: str = "", enforcement: str = "deny") -> str:
    return (
        f"apiVersion: meshward.io/v1alpha1\nkind: AdmissionPolicy\nmetadata: {{name: {name}}}\n"
        f"spec:\n  template: {template}\n  enforcement: {enforcement}\n{extra}---\n"
    )


def peer(name: str, ns: str, mode: str, annotations: str = "{}", extra: str = "") -> str:
    return (
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
        f"metadata: {{name: {name}, namespace: {ns}, annotations: {annotations}}}\n"
        f"spec:\n  mtls: {{mode: {mode}}}\n{extra}---\n"
    )


def workload(name: str, ns: str, command: str) -> str:
    return (
        "apiVersion: meshward.io/v1alpha1\nkind: Workload\n"
        f"metadata: {{name: {name}, namespace: {ns}, labels: {{app: {name}}}}}\n"
        f"spec:\n  command: [{command}]\n---\n"
    )


def authz(name: str, ns: str, action: str, rules: str, dry_run: bool = False) -> str:
    note = '{istio.io/dry-run: "true"}' if dry_run else "{}"
    return (
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        f"metadata: {{name: {name}, namespace: {ns}, annotations: {note}}}\n"
        f"spec:\n  action: {action}\n  rules: {rules}\n---\n"
    )


DR_DISABLE = (
    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
    "metadata: {name: web, namespace: shop}\n"
    "spec:\n  host: web.shop.svc.cluster.local\n  trafficPolicy: {tls: {mode: DISABLE}}\n---\n"
)
STRICT = policy("strict-mtls", "RequireStrictMtls")
APPROVERS = policy("exceptions", "AuthorizedExceptions", "  parameters: {approvers: [alice]}\n")
APPROVED = "{meshward.io/exception: legacy client, meshward.io/exception-approved-by: alice}"
ALLOW_FROM_NS = "[{from: [{source: {namespaces: [shop]}}]}]"


def config(text: str) -> ConfigSet:
    loaded = load_text(text, "c.yaml")
    assert loaded.diagnostics == ()
    return loaded


def found(diagnostics: tuple[Diagnostic, ...]) -> Found:
    return [(d.code, d.level.value, d.resource, d.location.field) for d in diagnostics]


ADMIT: list[tuple[str, str, Found]] = [
    ("no policies: anything goes", peer("p", "shop", "DISABLE"), []),
    ("strict: STRICT admitted", STRICT + peer("p", "shop", "STRICT"), []),
    (
        "strict: PERMISSIVE refused",
        STRICT + peer("p", "shop", "PERMISSIVE"),
        [("MW0601", "error", "PeerAuthentication shop/p", "spec.mtls.mode")],
    ),
    (
        "strict: port-level DISABLE refused",
        STRICT
        + peer(
            "p",
            "shop",
            "STRICT",
            extra="  selector: {matchLabels: {app: web}}\n"
            "  portLevelMtls: {8080: {mode: DISABLE}}\n",
        ),
        [("MW0601", "error", "PeerAuthentication shop/p", "spec.portLevelMtls.8080.mode")],
    ),
    (
        "strict: DestinationRule DISABLE refused",
        STRICT + DR_DISABLE,
        [("MW0601", "error", "DestinationRule shop/web", "spec.trafficPolicy.tls.mode")],
    ),
    (
        "strict: excluded namespace admitted",
        policy("strict-mtls", "RequireStrictMtls", "  match: {excludedNamespaces: [legacy]}\n")
        + peer("p", "legacy", "PERMISSIVE"),
        [],
    ),
    (
        "strict: other namespace than matched admitted",
        policy("strict-mtls", "RequireStrictMtls", "  match: {namespaces: [shop]}\n")
        + peer("p", "legacy", "PERMISSIVE"),
        [],
    ),
    (
        "strict: audit enforcement is a warning",
        policy("strict-mtls", "RequireStrictMtls", enforcement="audit")
        + peer("p", "shop", "PERMISSIVE"),
        [("MW0601", "warning", "PeerAuthentication shop/p", "spec.mtls.mode")],
    ),
    (
        "strict: mesh-wide STRICT required and missing",
        policy("strict-mtls", "RequireStrictMtls", "  parameters: {requireMeshWideStrict: true}\n"),
        [
            (
                "MW0601",
                "error",
                "AdmissionPolicy default/strict-mtls",
                "spec.parameters.requireMeshWideStrict",
            )
        ],
    ),
    (
        "strict: mesh-wide STRICT required and present",
        policy("strict-mtls", "RequireStrictMtls", "  parameters: {requireMeshWideStrict: true}\n")
        + peer("default", "meshward-system", "STRICT"),
        [],
    ),
    (
        "commands: exact and prefix admitted",
        policy("images", "AuthorizedCommands", "  parameters: {commands: [python, /opt/app/*]}\n")
        + workload("a", "shop", "python")
        + workload("b", "shop", "/opt/app/server"),
        [],
    ),
    (
        "commands: other command refused",
        policy("images", "AuthorizedCommands", "  parameters: {commands: [python, /opt/app/*]}\n")
        + workload("a", "shop", "/usr/bin/nc"),
        [("MW0602", "error", "Workload shop/a", "spec.command")],
    ),
    (
        "allow-all: rules [{}] refused",
        policy("no-allow-all", "RefuseAllowAll") + authz("all", "shop", "ALLOW", "[{}]"),
        [("MW0604", "error", "AuthorizationPolicy shop/all", "spec.rules[0]")],
    ),
    (
        "allow-all: only * presence refused",
        policy("no-allow-all", "RefuseAllowAll")
        + authz(
            "all",
            "shop",
            "ALLOW",
            "[{from: [{source: {principals: ['*']}}]}, {to: [{operation: {paths: ['*']}}]}]",
        ),
        [
            ("MW0604", "error", "AuthorizationPolicy shop/all", "spec.rules[0]"),
            ("MW0604", "error", "AuthorizationPolicy shop/all", "spec.rules[1]"),
        ],
    ),
    (
        "allow-all: a named namespace admitted",
        policy("no-allow-all", "RefuseAllowAll") + authz("a", "shop", "ALLOW", ALLOW_FROM_NS),
        [],
    ),
    (
        "allow-all: DENY [{}]-like rule and dry-run ALLOW admitted",
        policy("no-allow-all", "RefuseAllowAll")
        + authz("d", "shop", "DENY", "[{to: [{operation: {paths: ['*']}}]}]")
        + authz("a", "shop", "ALLOW", "[{}]", dry_run=True),
        [],
    ),
    (
        "exception approved by an approver: exempt",
        STRICT + APPROVERS + peer("p", "shop", "PERMISSIVE", APPROVED),
        [],
    ),
    (
        "exception approved by a stranger: both refused",
        STRICT
        + APPROVERS
        + peer(
            "p",
            "shop",
            "PERMISSIVE",
            "{meshward.io/exception: x, meshward.io/exception-approved-by: mallory}",
        ),
        [
            ("MW0601", "error", "PeerAuthentication shop/p", "spec.mtls.mode"),
            (
                "MW0603",
                "error",
                "PeerAuthentication shop/p",
                "metadata.annotations.meshward.io/exception-approved-by",
            ),
        ],
    ),
    (
        "exception approval without reason refused",
        APPROVERS + peer("p", "shop", "STRICT", "{meshward.io/exception-approved-by: alice}"),
        [
            (
                "MW0603",
                "error",
                "PeerAuthentication shop/p",
                "metadata.annotations.meshward.io/exception",
            )
        ],
    ),
    (
        "exception without an AuthorizedExceptions policy exempts nothing",
        STRICT + peer("p", "shop", "PERMISSIVE", APPROVED),
        [("MW0601", "error", "PeerAuthentication shop/p", "spec.mtls.mode")],
    ),
    (
        "dry-run first: first up exempt by default",
        policy("dry-run-first", "RequireDryRunFirst") + authz("a", "shop", "ALLOW", ALLOW_FROM_NS),
        [],
    ),
    (
        "dry-run first: first up not exempt when asked",
        policy("dry-run-first", "RequireDryRunFirst", "  parameters: {exemptOnFirstUp: false}\n")
        + authz("a", "shop", "ALLOW", ALLOW_FROM_NS),
        [("MW0605", "error", "AuthorizationPolicy shop/a", "metadata.annotations")],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [r[1:] for r in ADMIT], ids=[r[0] for r in ADMIT])
def test_admit_fresh(text: str, expected: Found) -> None:
    assert found(admission.admit(config(text), None)) == expected


DRY_RUN_FIRST = policy("dry-run-first", "RequireDryRunFirst")
DENY_RULES = "[{to: [{operation: {paths: [/admin]}}]}]"

CHANGES: list[tuple[str, str, str, Found]] = [
    (
        "dry-run first: promoted from dry-run admitted",
        DRY_RUN_FIRST + authz("a", "shop", "ALLOW", ALLOW_FROM_NS, dry_run=True),
        DRY_RUN_FIRST + authz("a", "shop", "ALLOW", ALLOW_FROM_NS),
        [],
    ),
    (
        "dry-run first: never dry-run refused",
        DRY_RUN_FIRST,
        DRY_RUN_FIRST + authz("d", "shop", "DENY", DENY_RULES),
        [("MW0605", "error", "AuthorizationPolicy shop/d", "metadata.annotations")],
    ),
    (
        "dry-run first: dry-run of other rules refused",
        DRY_RUN_FIRST + authz("d", "shop", "DENY", "[{to: [{operation: {paths: [/x]}}]}]", True),
        DRY_RUN_FIRST + authz("d", "shop", "DENY", DENY_RULES),
        [("MW0605", "error", "AuthorizationPolicy shop/d", "metadata.annotations")],
    ),
    (
        "dry-run first: unchanged enforced policy admitted",
        DRY_RUN_FIRST + authz("d", "shop", "DENY", DENY_RULES),
        DRY_RUN_FIRST + authz("d", "shop", "DENY", DENY_RULES),
        [],
    ),
    (
        "dry-run first: new dry-run policy admitted",
        DRY_RUN_FIRST,
        DRY_RUN_FIRST + authz("d", "shop", "DENY", DENY_RULES, dry_run=True),
        [],
    ),
    (
        "removing a policy: the running one still judges the change",
        STRICT + peer("p", "shop", "STRICT"),
        peer("p", "shop", "PERMISSIVE"),
        [("MW0601", "error", "PeerAuthentication shop/p", "spec.mtls.mode")],
    ),
    (
        "weakening a policy to audit: the running deny version still refuses",
        STRICT + peer("p", "shop", "STRICT"),
        policy("strict-mtls", "RequireStrictMtls", enforcement="audit")
        + peer("p", "shop", "PERMISSIVE"),
        [("MW0601", "error", "PeerAuthentication shop/p", "spec.mtls.mode")],
    ),
    (
        "removing a policy with a compliant change is admitted",
        STRICT + peer("p", "shop", "STRICT"),
        peer("p", "shop", "STRICT"),
        [],
    ),
    (
        "adding a policy applies at once",
        peer("p", "shop", "PERMISSIVE"),
        STRICT + peer("p", "shop", "PERMISSIVE"),
        [("MW0601", "error", "PeerAuthentication shop/p", "spec.mtls.mode")],
    ),
]


@pytest.mark.parametrize(
    ("previous", "candidate", "expected"), [r[1:] for r in CHANGES], ids=[r[0] for r in CHANGES]
)
def test_admit_change(previous: str, candidate: str, expected: Found) -> None:
    assert found(admission.admit(config(candidate), config(previous))) == expected


def test_audit_reports_deny_policies_as_warnings() -> None:
    text = STRICT + policy("no-allow-all", "RefuseAllowAll") + peer("p", "shop", "DISABLE")
    text += authz("all", "shop", "ALLOW", "[{}]")
    assert found(admission.audit(config(text))) == [
        ("MW0601", "warning", "PeerAuthentication shop/p", "spec.mtls.mode"),
        ("MW0604", "warning", "AuthorizationPolicy shop/all", "spec.rules[0]"),
    ]


def test_message_names_the_policy_and_location() -> None:
    (diagnostic,) = admission.admit(config(STRICT + peer("p", "shop", "PERMISSIVE")), None)
    assert diagnostic.message.startswith(
        "refused by AdmissionPolicy strict-mtls (RequireStrictMtls): mtls mode PERMISSIVE; fix: "
    )
    assert (diagnostic.location.file, diagnostic.location.line) == ("c.yaml", 8)
