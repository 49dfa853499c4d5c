"""The public face of config/ is pinned: callers use only these names."""

from __future__ import annotations

import meshward.config


def test_facade_names() -> None:
    assert sorted(meshward.config.__all__) == ["ConfigSet", "load", "load_text"]


def test_load_text_names_its_source() -> None:
    result = meshward.config.load_text("- 1\n")
    assert [(d.code, d.location.file) for d in result.diagnostics] == [("MW0102", "<string>")]
