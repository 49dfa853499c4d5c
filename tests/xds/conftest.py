"""Fixtures for the xds/ tests: the test PKI and `envoy --mode validate`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from xds_pki import Pki

from meshward.xds.envoy_binary import envoy_path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


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
