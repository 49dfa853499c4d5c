"""Paths → the YAML files to read, in a stable order.

Called by `meshward.config.loader.load`. A path is a file or a directory; a directory is
searched recursively for `*.yaml` and `*.yml` files, sorted by path so a load is
reproducible (document order decides Istio's "oldest wins" when no creationTimestamp is set).
A file named twice is read once, so it cannot collide with itself as a duplicate.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from meshward.config.report import Report

SUFFIXES = (".yaml", ".yml")


def files(paths: Sequence[str | Path], report: Report) -> tuple[Path, ...]:
    """The files to read; MW0115 (into `report`) for a path that is missing or holds none."""
    found: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
            if not inside:
                report.file = str(path)
                report.add("MW0115", 0, "", f"directory {path} holds no *.yaml or *.yml files")
        elif path.is_file():
            inside = [path]
        else:
            report.file = str(path)
            report.add("MW0115", 0, "", f"{path} does not exist")
            inside = []
        for file in inside:
            key = file.resolve()
            if key not in seen:
                seen.add(key)
                found.append(file)
    return tuple(found)
