"""Golden cases: tests/golden/config/<case>/input.yaml → diagnostics.json and resources.json.

Add a case by adding a folder with an input.yaml, then run `pytest --update-golden` and
review the two outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from config_render import diagnostics, resources

from meshward.config import load

CASES = Path(__file__).parent.parent / "golden" / "config"
NAMES = sorted(p.name for p in CASES.iterdir() if (p / "input.yaml").is_file())


@pytest.mark.parametrize("case", NAMES)
def test_golden(case: str, golden: Callable[[str, Any], None]) -> None:
    result = load([CASES / case / "input.yaml"])
    golden(f"config/{case}/diagnostics.json", diagnostics(result))
    golden(f"config/{case}/resources.json", resources(result))


def test_every_case_folder_has_only_known_files() -> None:
    """Stale outputs would pass silently, so a case folder holds exactly these three files."""
    for name in NAMES:
        files = sorted(p.name for p in (CASES / name).iterdir())
        assert files == ["diagnostics.json", "input.yaml", "resources.json"], name
