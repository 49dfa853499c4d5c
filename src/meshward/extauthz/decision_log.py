"""The decision log of `meshward extauthz`: one JSON object per line, per decision.

Written by both front ends after every check. Fields: time (RFC 3339, UTC), request_id,
principal, method, path, plugin, decision (allow|deny), status, reason. Appends are
serialised by a lock, so lines from concurrent checks never interleave.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from meshward.extauthz.plugin import Decision, Facts


class DecisionLog:
    """Appends to `path`, or writes nowhere when `path` is None."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._file: TextIO | None = path.open("a", encoding="utf-8") if path else None

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
            if self._file is not None:
                self._file.close()
                self._file = None
