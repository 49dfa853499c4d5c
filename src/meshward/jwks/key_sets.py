"""The control plane's JWKS cache: one entry per key source, last good key set kept.

Called by the control plane: `track` after every model build (the sources its JwtRules
use), `due` + `fetch` from its refresh loop (fetches run in a worker thread), `unknown_kid`
when a sidecar refused a token for a key it does not know, `keys` by `resolve`, and
`status` for `control-plane.json` (shown by `meshward status` and `meshward verify`).

The rules (Istio's pain points, DESIGN.md):
- a failed fetch never replaces a key set that worked: the last good set stays in force and
  the failure (message, count, time) is shown, so a flaky IdP does not fail every token;
- before the first success a source has no keys: its rule's tokens are refused (401) and
  the status says why — fail closed, no made-up key;
- refresh every `refresh_seconds` (Istio's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL, 20 min by
  default); after a failure retry with exponential backoff 1 s, 2 s, 4 s ... capped at 60 s
  (and at the refresh interval);
- a token signed with an unknown `kid` (the IdP rotated) makes every source that has keys
  due at once, at most every `UNKNOWN_KID_MIN_GAP` seconds per source, so a new key is in
  force within seconds without waiting for the interval.
Pure apart from the injected `fetcher`; time is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshward.errors import JwksFetchError
from meshward.jwks import fetch

MAX_BACKOFF_SECONDS = 60.0
UNKNOWN_KID_MIN_GAP = 2.0

Fetcher = Callable[..., str]


@dataclass(frozen=True, slots=True)
class Source:
    """Where one rule's keys come from. `discovery`: `url` is an OIDC discovery document."""

    url: str
    discovery: bool
    timeout: float


@dataclass
class _Entry:
    source: Source
    jwks: str = ""
    kids: frozenset[str] = frozenset()
    fetched_at: float | None = None
    attempted_at: float | None = None
    error: str = ""
    failures: int = 0
    next_at: float = 0.0
    fetches: int = 0
    changes: int = 0


@dataclass
class KeySets:
    refresh_seconds: float
    blocked: Sequence[str]
    fetcher: Fetcher = fetch.key_set
    resolver: fetch.Resolver = fetch.system_resolver
    _entries: dict[str, _Entry] = field(default_factory=dict)

    def track(self, sources: Iterable[Source]) -> None:
        """Keep entries for exactly these sources (a new one is due now; a known one keeps
        its keys, even if its timeout changed)."""
        wanted = {s.url: s for s in sources}
        for url in list(self._entries):
            if url not in wanted:
                del self._entries[url]
        for url, source in wanted.items():
            entry = self._entries.get(url)
            if entry is None:
                self._entries[url] = _Entry(source)
            else:
                entry.source = source

    def due(self, now: float) -> list[Source]:
        return [e.source for e in self._entries.values() if e.next_at <= now]

    def fetch(self, source: Source, now: float) -> bool:
        """Fetch one source now (blocking); True if its key set changed."""
        try:
            jwks = self.fetcher(
                source.url,
                discovery=source.discovery,
                timeout=source.timeout,
                blocked=tuple(self.blocked),
                resolver=self.resolver,
            )
        except JwksFetchError as error:
            self.record_failure(source.url, now, str(error))
            return False
        return self.record_success(source.url, now, jwks)

    def record_success(self, url: str, now: float, jwks: str) -> bool:
        entry = self._entries.get(url)
        if entry is None:
            return False
        changed = jwks != entry.jwks
        entry.jwks, entry.kids = jwks, fetch.kids(jwks)
        entry.fetched_at = entry.attempted_at = now
        entry.error, entry.failures = "", 0
        entry.next_at = now + self.refresh_seconds
        entry.fetches += 1
        entry.changes += int(changed)
        return changed

    def record_failure(self, url: str, now: float, error: str) -> None:
        entry = self._entries.get(url)
        if entry is None:
            return
        entry.attempted_at = now
        entry.error = error
        entry.failures += 1
        delay = min(2.0 ** (entry.failures - 1), MAX_BACKOFF_SECONDS, self.refresh_seconds)
        entry.next_at = now + delay

    def unknown_kid(self, now: float) -> int:
        """A sidecar refused a token whose key it lacks: make sources with keys due soon.
        Returns how many were brought forward."""
        moved = 0
        for entry in self._entries.values():
            if entry.failures or entry.fetched_at is None:
                continue  # backoff or first fetch already governs when it runs
            last = entry.attempted_at if entry.attempted_at is not None else now
            soonest = max(now, last + UNKNOWN_KID_MIN_GAP)
            if soonest < entry.next_at:
                entry.next_at = soonest
                moved += 1
        return moved

    def keys(self, url: str) -> str:
        """The last good key set of a source, "" if none was ever fetched."""
        entry = self._entries.get(url)
        return entry.jwks if entry is not None else ""

    def status(self) -> list[dict[str, Any]]:
        """One JSON-ready record per source, for control-plane.json."""
        return [
            {
                "source": e.source.url,
                "discovery": e.source.discovery,
                "state": _state(e),
                "code": _CODES.get(_state(e), ""),
                "kids": sorted(e.kids),
                "jwks": e.jwks,  # public keys: `authz explain --jwt` checks tokens with them
                "fetched_at": e.fetched_at,
                "attempted_at": e.attempted_at,
                "error": e.error,
                "failures": e.failures,
                "fetches": e.fetches,
                "changes": e.changes,
                "next_at": e.next_at,
            }
            for e in sorted(self._entries.values(), key=lambda e: e.source.url)
        ]


_CODES = {"stale": "MW0440", "no-keys": "MW0441"}  # diagnostics catalog, runtime range


def _state(entry: _Entry) -> str:
    """`ok`; `stale` (last fetch failed, last good keys in force); `no-keys` (never fetched:
    tokens for it are refused); `pending` (first fetch not tried yet)."""
    if entry.fetched_at is None:
        return "no-keys" if entry.attempted_at is not None else "pending"
    return "stale" if entry.failures else "ok"
