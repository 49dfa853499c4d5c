"""MW0470 (`up`/`apply` refuse a DestinationRule whose credentialName the secret store cannot
serve) and which credentials a sidecar is given (only those its rules originate with)."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshward.config import load_text
from meshward.model import allocate, build, replicas
from meshward.runner.runner import missing_origination_credentials, origination_credentials
from meshward.state import secrets
from meshward.state.layout import StateDir

RULE = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: partner, namespace: shop}}
spec:
  host: partner
  trafficPolicy:
    tls: {{mode: {mode}, credentialName: {name}{extra}}}
    portLevelSettings:
    - port: {{number: 9443}}
      tls: {{mode: MUTUAL, credentialName: port-cred}}
"""
MESH = """\
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: partner, namespace: shop, labels: {app: partner}}
spec: {serviceAccount: partner, sidecar: false, ports: [{name: h, port: 8443}], command: [p]}
---
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: web, namespace: shop, labels: {app: web}}
spec: {serviceAccount: web, command: [web]}
---
apiVersion: v1
kind: Service
metadata: {name: partner, namespace: shop}
spec:
  selector: {app: partner}
  ports: [{name: http, port: 8443}, {name: http-m, port: 9443, targetPort: 8443}]
"""
PORT_PATH = "spec.trafficPolicy.portLevelSettings[port 9443].tls.credentialName"
TLS_PATH = "spec.trafficPolicy.tls.credentialName"


def _state(tmp_path: Path, stored: dict[str, bytes]) -> StateDir:
    state = StateDir(tmp_path / "state")
    for name, ca in stored.items():
        secrets.store(state, secrets.TlsSecret(name, b"CERT", b"KEY", ca))
    return state


@pytest.mark.parametrize(
    ("mode", "extra", "stored", "expected"),
    [
        ("SIMPLE", "", {"cred": b"CA", "port-cred": b"CA"}, []),
        (
            "MUTUAL",
            "",
            {"cred": b"CA", "port-cred": b""},
            [(PORT_PATH, "secret port-cred has no CA (--cacert) to verify the server with")],
        ),
        (
            "SIMPLE",
            "",
            {"port-cred": b"CA"},
            [(TLS_PATH, "no secret cred in {root}/secrets")],
        ),
        (
            "SIMPLE",
            "",
            {"cred": b""},
            [
                (TLS_PATH, "secret cred has no CA (--cacert) to verify the server with"),
                (PORT_PATH, "no secret port-cred in {root}/secrets"),
            ],
        ),
        # insecureSkipVerify needs no CA (the server is not verified; MW0129 said so).
        ("SIMPLE", ", insecureSkipVerify: true", {"cred": b"", "port-cred": b"CA"}, []),
    ],
    ids=["simple-ok", "port-no-ca", "missing", "no-ca-and-missing", "insecure-no-ca"],
)
def test_mw0470(
    tmp_path: Path,
    mode: str,
    extra: str,
    stored: dict[str, bytes],
    expected: list[tuple[str, str]],
) -> None:
    state = _state(tmp_path, stored)
    config = load_text(RULE.format(mode=mode, name="cred", extra=extra), "dr.yaml")
    found = missing_origination_credentials(state, config)
    root = state.root
    assert [(d.code, d.location.field, d.message) for d in found] == [
        ("MW0470", path, message.format(root=root)) for path, message in expected
    ]


def test_a_sidecar_gets_only_the_credentials_its_rules_use() -> None:
    config = load_text(RULE.format(mode="SIMPLE", name="cred", extra="") + MESH, "m.yaml")
    assert config.diagnostics == ()
    model, _ = build(config, allocate(replicas(config.workloads), {}))
    given = {str(p.pod.key): origination_credentials(p.outbound) for p in model.proxies}
    assert given == {"shop/web-0": ("cred", "port-cred")}
