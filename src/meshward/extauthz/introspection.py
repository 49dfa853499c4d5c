"""The OAuth 2.0 token introspection plugin (RFC 7662): ask the identity provider whether the
request's bearer token is active.

Created by the CLI (`--plugin introspection --introspection-url URL`). Per request: the token
comes from `Authorization: Bearer <token>` (RFC 6750 §2.1); none → 401 with
`WWW-Authenticate: Bearer`. It is POSTed form-encoded as `token=<token>` with
`token_type_hint=access_token` (RFC 7662 §2.1), with HTTP Basic client authentication when a
client id is given (§2.1: the endpoint MUST require some authorization). The answer allows
when `active` is true (§2.2), every required scope is in `scope` (space-separated) and every
required claim has its value; otherwise 401 `invalid_token` (inactive) or 403
`insufficient_scope` (RFC 6750 §3.1). An endpoint that cannot be reached or answers
something else denies with 503 (fail closed). Answers are cached per token for at most the
configured TTL and never past the token's `exp` (§4: a cached "active" must not outlive it);
"inactive" answers are cached too, for the same TTL. Allowed requests carry the subject and
scope upstream (`x-auth-subject`, `x-auth-scope`, `x-auth-client-id`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from meshward.extauthz.plugin import Decision, Facts, Pairs

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class IntrospectionSettings:
    url: str
    client_id: str = ""
    client_secret: str = ""
    required_scopes: tuple[str, ...] = ()
    required_claims: tuple[tuple[str, str], ...] = ()
    cache_ttl_seconds: float = 30.0
    timeout_seconds: float = 2.0


@dataclass(frozen=True, slots=True)
class _Cached:
    answer: Mapping[str, object]
    until: float


class IntrospectionPlugin:
    def __init__(self, settings: IntrospectionSettings, clock: Clock = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()
        self.endpoint_calls = 0

    @property
    def name(self) -> str:
        return "introspection"

    def check(self, facts: Facts) -> Decision:
        scheme, _, token = (facts.header("authorization") or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _deny(401, "no bearer token", (("www-authenticate", "Bearer"),))
        answer = self._introspect(token)
        if answer is None:
            return _deny(503, "introspection endpoint unavailable", ())
        return self._judge(answer)

    def _judge(self, answer: Mapping[str, object]) -> Decision:
        if answer.get("active") is not True:
            challenge = 'Bearer error="invalid_token"'
            return _deny(401, "token is not active", (("www-authenticate", challenge),))
        scope = answer.get("scope")
        granted = set(scope.split()) if isinstance(scope, str) else set()
        missing = [s for s in self._settings.required_scopes if s not in granted]
        if missing:
            challenge = f'Bearer error="insufficient_scope", scope="{" ".join(missing)}"'
            return _deny(
                403, f"missing scope {' '.join(missing)}", (("www-authenticate", challenge),)
            )
        for claim, wanted in self._settings.required_claims:
            if str(answer.get(claim, "")) != wanted:
                return _deny(403, f"claim {claim} is not {wanted!r}", ())
        upstream = [
            (header, str(answer[key]))
            for key, header in (
                ("sub", "x-auth-subject"),
                ("scope", "x-auth-scope"),
                ("client_id", "x-auth-client-id"),
            )
            if isinstance(answer.get(key), str)
        ]
        subject = answer.get("sub", "")
        return Decision(True, 200, f"active token of {subject}", tuple(upstream))

    def _introspect(self, token: str) -> Mapping[str, object] | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached.until > now:
                return cached.answer
        answer = self._call(token)
        if answer is None:
            return None  # failures are not cached: the next request asks again
        until = now + self._settings.cache_ttl_seconds
        expires = answer.get("exp")
        if isinstance(expires, int | float) and not isinstance(expires, bool):
            until = min(until, float(expires))
        with self._lock:
            if len(self._cache) > 10_000:  # bound memory: drop what has expired
                self._cache = {k: v for k, v in self._cache.items() if v.until > now}
            self._cache[key] = _Cached(answer, until)
        return answer

    def _call(self, token: str) -> Mapping[str, object] | None:
        settings = self._settings
        body = urllib.parse.urlencode({"token": token, "token_type_hint": "access_token"})
        request = urllib.request.Request(settings.url, data=body.encode(), method="POST")
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        request.add_header("Accept", "application/json")
        if settings.client_id:
            # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
            pair = (
                f"{urllib.parse.quote(settings.client_id, safe='')}:"
                f"{urllib.parse.quote(settings.client_secret, safe='')}"
            )
            request.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
        with self._lock:
            self.endpoint_calls += 1
        try:
            with urllib.request.urlopen(request, timeout=settings.timeout_seconds) as response:
                value = json.loads(response.read())
        except (OSError, ValueError, urllib.error.URLError):
            return None
        return value if isinstance(value, dict) else None


def _deny(status: int, reason: str, downstream: Pairs) -> Decision:
    return Decision(False, status, reason, headers_to_downstream=downstream, body=reason + "\n")
