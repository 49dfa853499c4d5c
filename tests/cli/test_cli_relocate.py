"""`apply` reports problems at the user's file and line, not in the merged candidate store."""

from __future__ import annotations

from meshward.cli.lifecycle import relocate
from meshward.config import load_text
from meshward.diagnostics import Diagnostic, Level, Location

POLICY = """\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: core}
spec:
  mtls: {mode: PERMISSIVE}
"""


def test_a_problem_with_an_applied_resource_moves_to_the_users_file() -> None:
    candidate = load_text("# PeerAuthentication core/default\n" + POLICY, "store/0007.yaml")
    incoming = load_text("# my change\n\n" + POLICY, "change.yaml")
    found = Diagnostic(
        "MW0601",
        Level.ERROR,
        "PeerAuthentication core/default",
        Location("store/0007.yaml", 6, "spec.mtls.mode"),
        "refused",
    )
    other = Diagnostic(
        "MW0601",
        Level.ERROR,
        "PeerAuthentication geo/default",
        Location("store/0003.yaml", 2, "spec.mtls.mode"),
        "refused",
    )
    moved = relocate([found, other], candidate, incoming)
    assert [d.location for d in moved] == [
        Location("change.yaml", 7, "spec.mtls.mode"),
        Location("store/0003.yaml", 2, "spec.mtls.mode"),  # not in the change: left alone
    ]
