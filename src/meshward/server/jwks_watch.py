"""The control plane's trigger for refreshing JWKS early: sidecars refusing unknown keys.

Called by the control plane's JWKS loop (`ControlPlane._jwks_loop`). When an IdP rotates its
signing key, the first tokens signed with the new key reach sidecars that only know the old
key set, and Envoy refuses them with response-code details
`jwt_authn_access_denied{Jwks_doesn't_have_key_to_match_kid_or_alg_from_Jwt}`. The inbound
access log keeps every denial (xds/access_log.py), and the agent writes each Envoy's stdout
to the pod's sidecar log with a short flush interval; this watch tails those files and
counts such denials, so the control plane refetches at once (jwks/key_sets.unknown_kid)
instead of at the next interval. A refused token is retried by its client: the next request
after the refetch and push succeeds, within seconds and without any apply.
"""

from __future__ import annotations

from pathlib import Path

from meshward.xds.jwt_authn import UNKNOWN_KID_DETAIL

_MAX_READ = 1 << 20  # per file per poll: a log burst is skimmed, never loaded whole


class UnknownKidWatch:
    """New unknown-kid denials in `<logs>/*.envoy.log` since the last poll."""

    def __init__(self, logs: Path) -> None:
        self._logs = logs
        self._offsets: dict[Path, int] = {}

    def poll(self) -> int:
        found = 0
        for path in sorted(self._logs.glob("*.envoy.log")):
            try:
                size = path.stat().st_size
                start = self._offsets.get(path, 0)
                if size < start:  # the file was replaced: read it from the start
                    start = 0
                start = max(start, size - _MAX_READ)
                with path.open("rb") as log:
                    log.seek(start)
                    chunk = log.read(size - start)
            except OSError:
                continue
            # Only whole lines count; a partial last line is read again next time.
            complete = chunk.rfind(b"\n") + 1
            self._offsets[path] = start + complete
            found += chunk[:complete].count(UNKNOWN_KID_DETAIL.encode())
        return found
