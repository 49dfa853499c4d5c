"""`meshward analyze` output and exit codes: table, JSON, SARIF 2.1.0 (structure), --fail-on,
--live against a state directory, CA expiry, and docs/diagnostics.md kept in sync."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from meshward.analyze import ca_health
from meshward.analyze.report import as_json, failing, sarif, table
from meshward.ca import plugin
from meshward.ca.template import ROOT_LIFETIME
from meshward.cli.main import main
from meshward.config import load
from meshward.config.store import read_paths, write_store
from meshward.diagnostics import CATALOG, Diagnostic, Level, Location
from meshward.diagnostics.docs import render
from meshward.model import allocate, replicas
from meshward.state.layout import StateDir
from meshward.state.mesh import MeshRecord, PodRecord, write_mesh
from meshward.state.records import write_json

ROOT = Path(__file__).parents[2]
CASES = Path(__file__).parent / "cases"
NOW = datetime(2026, 1, 1, tzinfo=UTC)

PERMISSIVE = Diagnostic(
    "MW0501",
    Level.WARNING,
    "Workload geo/maps",
    Location("geo.yaml", 7, "spec.mtls.mode"),
    "port 8000 is PERMISSIVE",
)
EGRESS = Diagnostic("MW0530", Level.INFO, "MeshConfig (defaults)", Location(), "ALLOW_ANY")


def test_every_analyzer_code_has_a_fix() -> None:
    codes = [c for c in CATALOG.values() if c.code.startswith("MW05")]
    assert codes and [c.code for c in codes if not c.fix] == []


def test_docs_are_generated_from_the_catalog() -> None:
    # Regenerate with: python -m meshward.diagnostics.docs > docs/diagnostics.md
    assert (ROOT / "docs" / "diagnostics.md").read_text() == render()


@pytest.mark.parametrize(
    ("threshold", "found", "expected"),
    [
        (Level.ERROR, [PERMISSIVE, EGRESS], False),
        (Level.WARNING, [PERMISSIVE, EGRESS], True),
        (Level.WARNING, [EGRESS], False),
        (Level.INFO, [EGRESS], True),
        (Level.INFO, [], False),
    ],
)
def test_failing(threshold: Level, found: list[Diagnostic], expected: bool) -> None:
    assert failing(found, threshold) is expected


def test_table() -> None:
    assert table([PERMISSIVE, EGRESS]).splitlines() == [
        "LEVEL    CODE    RESOURCE               LOCATION                   MESSAGE",
        "warning  MW0501  Workload geo/maps      geo.yaml:7 spec.mtls.mode  port 8000 is "
        "PERMISSIVE",
        f"  fix: {CATALOG['MW0501'].fix}",
        "info     MW0530  MeshConfig (defaults)  <input>                    ALLOW_ANY",
        f"  fix: {CATALOG['MW0530'].fix}",
    ]
    assert table([]) == "no findings"


def test_json() -> None:
    assert as_json([PERMISSIVE]) == [
        {
            "code": "MW0501",
            "level": "warning",
            "resource": "Workload geo/maps",
            "file": "geo.yaml",
            "line": 7,
            "field": "spec.mtls.mode",
            "message": "port 8000 is PERMISSIVE",
            "fix": CATALOG["MW0501"].fix,
        }
    ]


def test_sarif_structure() -> None:
    log = sarif([PERMISSIVE, EGRESS], "0.1.0")
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("meshward", "0.1.0")
    rules = driver["rules"]
    assert [r["id"] for r in rules] == sorted(CATALOG)
    for rule in rules:
        assert set(rule) <= {"id", "shortDescription", "defaultConfiguration", "help"}
        assert rule["shortDescription"]["text"] == CATALOG[rule["id"]].summary
    assert rules[sorted(CATALOG).index("MW0501")]["help"] == {"text": CATALOG["MW0501"].fix}
    first, second = run["results"]
    assert rules[first["ruleIndex"]]["id"] == first["ruleId"] == "MW0501"
    assert first == {
        "ruleId": "MW0501",
        "ruleIndex": first["ruleIndex"],
        "level": "warning",
        "message": {"text": "Workload geo/maps: port 8000 is PERMISSIVE"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": "geo.yaml"},
                    "region": {"startLine": 7},
                }
            }
        ],
        "properties": {"resource": "Workload geo/maps", "field": "spec.mtls.mode"},
    }
    # No file: no location (SARIF allows a result without one); info maps to "note".
    assert (second["level"], "locations" in second) == ("note", False)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "exit_code"),
    [
        ([], 0),
        (["--fail-on", "error"], 0),
        (["--fail-on", "warning"], 1),
        (["--fail-on", "info"], 1),
    ],
)
def test_cli_fail_on(args: list[str], exit_code: int, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run_cli(["analyze", str(ROOT / "examples" / "simple-system"), *args], capsys)
    assert code == exit_code


def test_cli_error_finding_fails_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(["analyze", "--json", str(CASES / "dr-contradiction")], capsys)
    assert code == 1
    assert [d["code"] for d in json.loads(out)] == ["MW0530", "MW0520", "MW0521"]


def test_cli_sarif(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(["analyze", "--sarif", str(CASES / "permissive-default")], capsys)
    results = json.loads(out)["runs"][0]["results"]
    assert (code, [r["ruleId"] for r in results]) == (0, ["MW0530", "MW0501", "MW0510", "MW0511"])


def test_cli_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text("kind: Nope\n")
    code, out = run_cli(["analyze", "--json", str(tmp_path)], capsys)
    assert (code, [d["code"] for d in json.loads(out)]) == (1, ["MW0103"])


def test_cli_max_cert_ttl(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(CASES / "cert-ttl")
    assert run_cli(["analyze", "--fail-on", "warning", path], capsys)[0] == 1
    assert (
        run_cli(["analyze", "--fail-on", "warning", "--max-cert-ttl", "72h", path], capsys)[0] == 0
    )
    with pytest.raises(SystemExit):
        main(["analyze", "--max-cert-ttl", "1d", path])
    capsys.readouterr()


def _state(tmp_path: Path, source: Path, network: str) -> StateDir:
    """A state directory as the runner leaves it: config store, mesh.json, runner.json."""
    state = StateDir(tmp_path / "state")
    write_store(state.config, read_paths([source]))
    config = load([state.config])
    pods = tuple(
        PodRecord(
            namespace=key.namespace,
            workload=key.workload,
            replica=key.replica,
            pod=key.pod_name,
            sidecar=True,
            node_id="",
            identity="",
            pod_ip=address.pod_ip,
            app_ip=address.app_ip,
            ports=(),
            argv=(),
            env=(),
        )
        for key, address in allocate(replicas(config.workloads), {}).items()
    )
    write_mesh(state, MeshRecord(1, "cluster.local", 86400, pods))
    write_json(state.runner, {"pid": None, "network": network, "pool": "127.1.0.0/16"})
    return state


@pytest.mark.parametrize(
    ("network", "expected"),
    [
        ("loopback", ["MW0530", "MW0501", "MW0510", "MW0511", "MW0531"]),
        ("netns", ["MW0530", "MW0501", "MW0510", "MW0511"]),
    ],
)
def test_cli_live(
    tmp_path: Path, network: str, expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    state = _state(tmp_path, CASES / "permissive-default", network)
    code, out = run_cli(["analyze", "--live", "--json", "--state-dir", str(state.root)], capsys)
    assert (code, [d["code"] for d in json.loads(out)]) == (0, expected)


@pytest.mark.parametrize(
    "args", [["analyze", "--live"], ["analyze"], ["analyze", "--live", str(CASES / "cert-ttl")]]
)
def test_cli_usage_errors(
    tmp_path: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*args, "--state-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().out == ""


def _codes(found: tuple[Diagnostic, ...]) -> list[tuple[str, str]]:
    return [(d.code, d.level.value) for d in found]


def test_ca_health(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    plugin.create(tmp_path, trust_domain="cluster.local", now=NOW, key=key)
    expiry = NOW + ROOT_LIFETIME

    def health(at: datetime) -> list[tuple[str, str]]:
        return _codes(ca_health(tmp_path, trust_domain="cluster.local", now=at))

    assert health(NOW) == []
    assert health(expiry - timedelta(days=31)) == []
    assert health(expiry - timedelta(days=29)) == [("MW0420", "warning")]
    assert health(expiry + timedelta(days=1)) == [("MW0533", "error")]
    # Nothing was written into the user's CA directory (no token key).
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(plugin.FILES)
    assert ca_health(tmp_path / "empty", trust_domain="cluster.local", now=NOW) == ()


def test_cli_ca_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / plugin.CA_CERT).write_text("not a certificate")
    code, out = run_cli(
        ["analyze", "--json", "--ca-dir", str(tmp_path / "ca"), str(CASES / "root-deny-all")],
        capsys,
    )
    found: list[dict[str, Any]] = json.loads(out)
    assert (code, [d["code"] for d in found]) == (1, ["MW0530", "MW0533"])
