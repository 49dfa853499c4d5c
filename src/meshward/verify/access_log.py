"""Reading the sidecars' access logs: the server side's own word on who called it.

Every sidecar inbound listener writes one JSON line per request (HTTP) or connection (TCP)
to its Envoy's stdout, which the agent keeps in the pod's sidecar log. The keys are fixed in
`meshward.xds.access_log` (`peer` = the client's SPIFFE URI from its certificate, `probe` =
the X-Meshward-Probe request header, `local` = the listener address). The verifier finds its
probe there to prove that the server saw mTLS from the expected identity.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

Entry = dict[str, Any]
Match = Callable[[Entry], bool]


def entries(path: Path) -> Iterable[Entry]:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and value.get("log") == "meshward-access":
            yield value


def wait_for(
    paths: Iterable[Path], match: Callable[[Entry], bool], timeout: float = 3.0
) -> Entry | None:
    """The first entry in any of `paths` that `match`es, polling until `timeout`."""
    files = list(paths)
    deadline = time.monotonic() + timeout
    while True:
        for path in files:
            for entry in entries(path):
                if match(entry):
                    return entry
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)
