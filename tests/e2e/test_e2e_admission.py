"""Admission with real processes: `up` and `apply` refuse a change an AdmissionPolicy forbids,
print the constraint and code, and leave the running config (store and generation) as it was.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshward.state.layout import StateDir
from meshward.state.records import read_json
from tests.e2e.conftest import MESH_DIR, start_mesh, stop_mesh
from tests.e2e.meshctl import Mesh

pytestmark = pytest.mark.e2e

# The e2e mesh has a PERMISSIVE PeerAuthentication in namespace `open`: scoped to `strict`.
STRICT_IN_STRICT = """\
apiVersion: meshward.io/v1alpha1
kind: AdmissionPolicy
metadata: {name: strict-mtls}
spec:
  template: RequireStrictMtls
  match: {namespaces: [strict]}
"""
PERMISSIVE_CHANGE = """\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: strict}
spec: {mtls: {mode: PERMISSIVE}}
"""


def _store(state: StateDir) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(state.config.iterdir())}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("admission")
    source = root / "mesh"
    shutil.copytree(MESH_DIR, source)
    (source / "admission.yaml").write_text(STRICT_IN_STRICT)
    running = start_mesh(root, source)
    try:
        yield running
    finally:
        stop_mesh(running)


def test_apply_refused_keeps_running_config(guarded: Mesh, tmp_path: Path) -> None:
    before_store = _store(guarded.state)
    before = (read_json(guarded.state.control_plane) or {})["generation"]
    change = tmp_path / "permissive.yaml"
    change.write_text(PERMISSIVE_CHANGE)
    result = guarded.cli("apply", "-f", str(change))
    assert result.returncode == 1
    assert "MW0601" in result.stderr
    assert "AdmissionPolicy strict-mtls" in result.stderr
    assert _store(guarded.state) == before_store
    assert (read_json(guarded.state.control_plane) or {})["generation"] == before


def test_audit_of_running_mesh(guarded: Mesh) -> None:
    result = guarded.cli("admission", "audit", "--json")
    assert (result.returncode, result.stdout.strip()) == (0, "[]")


def test_up_refused_starts_nothing(tmp_path: Path) -> None:
    source = tmp_path / "mesh"
    shutil.copytree(MESH_DIR, source)
    everywhere = STRICT_IN_STRICT.replace("  match: {namespaces: [strict]}\n", "")
    (source / "admission.yaml").write_text(everywhere)
    mesh = Mesh(StateDir(tmp_path / "state"), "127.190.0.0/16")
    result = mesh.cli("up", str(source), "--detach", "--address-pool", mesh.pool)
    assert result.returncode == 1
    assert "MW0601 [PeerAuthentication open/default]" in result.stderr
    assert mesh.pids() == []
    assert not mesh.state.config.exists() or not any(mesh.state.config.iterdir())
