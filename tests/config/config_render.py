"""Test-side JSON rendering of a ConfigSet for golden files (file paths cut to basenames)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from meshward.config import ConfigSet


def _basenames(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: Path(v).name if k == "file" else _basenames(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_basenames(v) for v in value]
    return value


def diagnostics(result: ConfigSet) -> list[dict[str, Any]]:
    return [
        {
            "code": d.code,
            "level": d.level.value,
            "resource": d.resource,
            "file": Path(d.location.file).name,
            "line": d.location.line,
            "field": d.location.field,
        }
        for d in result.diagnostics
    ]


def resources(result: ConfigSet) -> dict[str, Any]:
    rendered = dataclasses.asdict(result)
    del rendered["diagnostics"]
    return dict(_basenames(rendered))
