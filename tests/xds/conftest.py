"""Fixtures for the xds/ tests: the test PKI (`envoy --mode validate` is in tests/conftest.py)."""

from __future__ import annotations

import pytest
from xds_pki import Pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))
