"""Atomic JSON records: write to a temporary file in the same directory, then rename."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json(path: Path, value: Any, *, mode: int = 0o644) -> None:
    """Replace `path` with `value` as JSON, atomically, created with `mode` from the start."""
    write_bytes(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode(), mode=mode)


def write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace `path` with `data` atomically; the temporary file never has looser permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    """The JSON value at `path`, or None when the file does not exist (not yet written)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
