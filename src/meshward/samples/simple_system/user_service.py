"""user-service: GET /users/{id} → the user (from Redis) and their location (from
location-service); GET /healthz → 200.

Two hops leave this app, both through its sidecar: the database (`core/database:6379`, a TCP
port, so a local sidecar listener named by `MESHWARD_SVC_CORE_DATABASE_6379`) and
location-service (`geo/location-service:8081`, HTTP, through the sidecar's HTTP proxy which
urllib picks up from `http_proxy`). A failed hop answers 502 with `{"error", "hop"}` naming it,
so a policy that breaks a hop is visible to whoever calls user-service.
Called by `__main__`, which also starts `seed_forever` in a background thread.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from meshward.samples import http1
from meshward.samples.simple_system import discovery

SEED_USERS: dict[str, dict[str, str]] = {
    "1": {"id": "1", "name": "Ada Lovelace", "email": "ada@example.com"},
    "2": {"id": "2", "name": "Srinivasa Ramanujan", "email": "ramanujan@example.com"},
    "3": {"id": "3", "name": "Grace Hopper", "email": "grace@example.com"},
}

HOP_DATABASE = "database"
HOP_LOCATION = "location-service"

_HEALTHY = http1.Response(200, b'{"status": "ok"}\n')
_NOT_FOUND = http1.Response(404, b'{"error": "not found"}\n')
_NOT_ALLOWED = http1.Response(405, b'{"error": "method not allowed"}\n')


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where user-service's dependencies are, from the runner's environment contract."""

    database: tuple[str, int]
    location_base_url: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Endpoints:
        database = discovery.split(discovery.address(environ, "core", "database", 6379))
        location = discovery.address(environ, "geo", "location-service", 8081)
        return cls(database, f"http://{location}")


def _key(user_id: str) -> str:
    return f"user:{user_id}"


def _json(status: int, value: object) -> http1.Response:
    return http1.Response(status, (json.dumps(value, sort_keys=True) + "\n").encode())


def _hop_failed(hop: str, error: str) -> http1.Response:
    return _json(502, {"error": error, "hop": hop})


def seed(client: redis.Redis) -> int:
    """Store each seed user that is missing (SET NX, so edits survive restarts); returns how
    many were written."""
    written = 0
    for user_id, user in SEED_USERS.items():
        if client.set(_key(user_id), json.dumps(user, sort_keys=True), nx=True):
            written += 1
    return written


def seed_forever(client: redis.Redis, log: Callable[[str], None], *, interval: float = 0.5) -> None:
    """Retry `seed` until the database answers: at start-up the sidecar or Redis may not be
    ready yet. Logs the first failure and the success, not every retry."""
    reported = False
    while True:
        try:
            written = seed(client)
        except redis.RedisError as error:
            if not reported:
                log(f"database not reachable yet ({error}); retrying")
                reported = True
            time.sleep(interval)
            continue
        log(f"database seeded: {written} user(s) added")
        return


class UserService:
    """The app; `respond` is a `meshward.samples.server.Respond` (blocking: run offloaded)."""

    def __init__(self, endpoints: Endpoints, client: redis.Redis, timeout: float = 5.0) -> None:
        self._endpoints = endpoints
        self._client = client
        self._timeout = timeout

    def respond(self, request: http1.Request, peer: str) -> http1.Response:
        if request.method not in ("GET", "HEAD"):
            return _NOT_ALLOWED
        path = request.path
        if path == "/healthz":
            return _HEALTHY
        user_id = path.removeprefix("/users/")
        if user_id == path or not user_id or "/" in user_id:
            return _NOT_FOUND
        try:
            stored = self._client.get(_key(user_id))
        except redis.RedisError as error:
            return _hop_failed(HOP_DATABASE, f"{type(error).__name__}: {error}")
        if stored is None:
            return _NOT_FOUND
        user = json.loads(stored)
        location = self._location(user_id, request.header("authorization"))
        if isinstance(location, http1.Response):
            return location
        caller = location.pop("caller", None)
        return _json(200, {"user": user, "location": location, "location_saw_caller": caller})

    def _location(self, user_id: str, authorization: str | None) -> dict[str, Any] | http1.Response:
        url = f"{self._endpoints.location_base_url}/locations/{user_id}"
        # The end user's token travels on (the seed's pattern: a JWT checked at each service;
        # the sidecar passes it to the app when the rule says forwardOriginalToken).
        headers = {"Authorization": authorization} if authorization else {}
        try:
            # urlopen's default opener honours http_proxy: the sidecar's HTTP proxy.
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=self._timeout) as reply:
                value: dict[str, Any] = json.loads(reply.read())
                return value
        except urllib.error.HTTPError as error:
            return _hop_failed(HOP_LOCATION, f"HTTP {error.code}")
        except (OSError, ValueError) as error:
            return _hop_failed(HOP_LOCATION, f"{type(error).__name__}: {error}")
