"""`meshward validate`: coded diagnostics with file:line and field path, non-zero on errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshward.cli.main import main

GOOD = """\
apiVersion: meshward.io/v1alpha1
kind: Workload
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  ports: [{name: http, port: 8080}]
  command: ["python", "-m", "meshward.samples.httpbin"]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 8080}]}
"""


@pytest.mark.parametrize(
    ("text", "code", "where"),
    [
        ("kind: [unclosed\n", "MW0101", ":2"),  # the parser reports where the stream ended
        ("apiVersion: v1\nkind: Servic\nmetadata: {name: a}\n", "MW0104", ":2"),
        (
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
            "metadata: {name: a, namespace: b}\nspec:\n  mtls: {mode: STRICT}\n  mtlz: {}\n",
            "MW0106",
            ":6 spec.mtlz",
        ),
        (
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
            "metadata: {name: a, namespace: b}\nspec:\n  mtls: {mode: SOMETIMES}\n",
            "MW0109",
            ":5 spec.mtls.mode",
        ),
        (
            "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\n"
            "metadata: {name: a, namespace: b}\nspec:\n  jwtRules:\n"
            "  - {issuer: i, jwksUri: 'file:///etc/passwd'}\n",
            "MW0160",
            ":6",
        ),
    ],
)
def test_errors_exit_non_zero_with_code_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, code: str, where: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert code in err
    assert f"{path}{where}" in err


def test_valid_set_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    assert main(["validate", str(path)]) == 0
    assert "ok: 2 resources valid" in capsys.readouterr().out


def test_dangling_reference_is_reported_with_its_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dangling.yaml"
    path.write_text(
        GOOD + "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        "metadata: {name: nowhere, namespace: shop}\n"
        "spec: {host: missing, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}\n"
    )
    assert main(["validate", str(path)]) == 0  # a warning, as in Istio: nothing breaks
    out = capsys.readouterr().out
    assert "MW0203" in out
    assert f"{path}:" in out


def test_the_example_system_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "examples/simple-system"]) == 0
    captured = capsys.readouterr()
    assert "error" not in captured.err
