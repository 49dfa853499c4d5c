"""The decision log of `meshward extauthz`: one JSON object per line, per decision.

Written by both front ends after every check. Fields: time (RFC 3339, UTC), request_id,
principal, method, path, plugin, decision (allow|deny), status, reason. Appends are
serialised by a lock, so lines from concurrent checks never interleave.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from meshward.extauthz.plugin import Decision, Facts


class DecisionLog:
    """Appends to `path` (or writes to `stream`, which it does not close); nowhere when
    neither is given."""

    def __init__(self, path: Path | None, stream: TextIO | None = None) -> None:
        self._lock = threading.Lock()
        self._file: TextIO | None = path.open("a", encoding="utf-8") if path else stream
        self._owned = path is not None

    @classmethod
    def stdout(cls) -> DecisionLog:
        """Lines on stdout: an app's stdout is its log in a mesh (`meshward logs`)."""
        return cls(None, sys.stdout)

    def record(self, plugin: str, facts: Facts, decision: Decision) -> None:
        if self._file is None:
            return
        line = json.dumps(
            {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "request_id": facts.request_id,
                "principal": facts.principal,
                "method": facts.method,
                "path": facts.path,
                "plugin": plugin,
                "decision": "allow" if decision.allow else "deny",
                "status": decision.status,
                "reason": decision.reason,
            },
            sort_keys=True,
        )
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None and self._owned:
                self._file.close()
            self._file = None
