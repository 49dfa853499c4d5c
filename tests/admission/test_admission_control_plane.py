"""Defense in depth: the control plane's reload refuses a store the admission policies refuse
(a store edited by hand, bypassing `apply`), and keeps its last good set."""

from __future__ import annotations

from pathlib import Path

from meshward.config import load_text
from meshward.server.control_plane import ControlPlane
from meshward.state.layout import StateDir

POLICY = """\
apiVersion: meshward.io/v1alpha1
kind: AdmissionPolicy
metadata: {name: strict-mtls}
spec: {template: RequireStrictMtls}
"""
PEER = """\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: MODE}}
"""


def test_reload_refuses_what_admission_refuses(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    state.config.mkdir(parents=True)
    good = load_text(POLICY + "---\n" + PEER.replace("MODE", "STRICT"))
    (state.config / "0001.yaml").write_text(PEER.replace("MODE", "PERMISSIVE"))
    plane = ControlPlane(state, last_good=good)
    plane.reload()
    assert [line.split(": ")[1].split(" ")[:2] for line in plane.refused] == [["error", "MW0601"]]
    assert plane.last_good is good
    assert plane.generation == 0


def test_reload_admits_a_compliant_store(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    state.config.mkdir(parents=True)
    (state.config / "0001.yaml").write_text(POLICY + "---\n" + PEER.replace("MODE", "STRICT"))
    plane = ControlPlane(state)
    plane.reload()  # no mesh record yet: admitted, nothing to build
    assert plane.refused == []
