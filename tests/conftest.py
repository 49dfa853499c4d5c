"""Shared test fixtures: golden files (regenerated with `pytest --update-golden`) and
`envoy --mode validate` on a bootstrap."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meshward.xds.envoy_binary import envoy_path

GOLDEN_ROOT = Path(__file__).parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite golden files from the current output instead of comparing",
    )


GoldenCheck = Callable[[str, Any], None]


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> GoldenCheck:
    """`golden("xds/strict/listeners.json", value)`: compare `value` (JSON-able or text) with
    tests/golden/<path>; with --update-golden, write it instead."""
    update = bool(request.config.getoption("--update-golden"))

    def check(relative: str, value: Any) -> None:
        path = GOLDEN_ROOT / relative
        text = value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True)
        text = text.rstrip("\n") + "\n"
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        assert path.exists(), f"golden file {path} missing: run pytest --update-golden"
        assert path.read_text() == text, f"output differs from {path} (pytest --update-golden)"

    return check


EnvoyValidate = Callable[[dict[str, Any]], "subprocess.CompletedProcess[str]"]


@pytest.fixture
def envoy_validate(tmp_path: Path) -> EnvoyValidate:
    """Run `envoy --mode validate` on a bootstrap dict; returns the finished process."""

    def validate(bootstrap: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        config = tmp_path / "bootstrap.json"
        config.write_text(json.dumps(bootstrap))
        return subprocess.run(
            [str(envoy_path()), "--mode", "validate", "-c", str(config), "--log-level", "warn"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return validate
