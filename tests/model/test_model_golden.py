"""Golden: tests/golden/model/<case>/input.yaml → model.json and findings.json.

The input goes through `meshward.config.load_text` (it must load without errors); the model
is rendered with `dataclasses.asdict`. Regenerate with `pytest --update-golden`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from meshward.config import load_text
from meshward.diagnostics import has_errors
from meshward.model import allocate, build, replicas

CASES = Path(__file__).parents[1] / "golden" / "model"
OUTPUTS = {"input.yaml", "model.json", "findings.json"}


def _render(value: Any) -> Any:
    return dataclasses.asdict(value)


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_golden(case: str, golden: Any) -> None:
    directory = CASES / case
    assert {p.name for p in directory.iterdir()} <= OUTPUTS, "stale files in the case folder"
    config = load_text((directory / "input.yaml").read_text(), f"{case}/input.yaml")
    assert not has_errors(config.diagnostics), [str(d) for d in config.diagnostics]
    model, findings = build(config, allocate(replicas(config.workloads), {}))
    golden(f"model/{case}/model.json", _render(model))
    golden(
        f"model/{case}/findings.json",
        [
            {
                "code": d.code,
                "resource": d.resource,
                "field": d.location.field,
                "line": d.location.line,
            }
            for d in findings
        ],
    )
