"""The simple system's services as real processes, a real redis-server, real sockets, no
sidecars: MESHWARD_SVC_* point straight at the processes (or, for the proxy case, the
location-service port stands in for the sidecar's HTTP proxy)."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from meshward.samples.simple_system import discovery

SpawnModule = Callable[..., Any]
SIMPLE = "meshward.samples.simple_system"
ADA = {"id": "1", "name": "Ada Lovelace", "email": "ada@example.com"}


def _get(port: int, target: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", target, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _eventually(port: int, target: str, status: int, timeout: float = 10.0) -> Any:
    """Poll until `target` answers `status` (user-service seeds the database in the
    background, so the first requests may come before the seed)."""
    deadline = time.monotonic() + timeout
    while True:
        got_status, body = _get(port, target)
        if got_status == status or time.monotonic() > deadline:
            assert (got_status, body) == (status, body)
            return body
        time.sleep(0.05)


def _user_service(spawn_module: SpawnModule, database: str, location: str, **extra: str) -> int:
    env = {
        "MESHWARD_SVC_CORE_DATABASE_6379": database,
        "MESHWARD_SVC_GEO_LOCATION_SERVICE_8081": location,
        **extra,
    }
    port, _ = spawn_module(SIMPLE, "user-service", env=env)
    return int(port)


@pytest.fixture
def location_port(spawn_module: SpawnModule) -> int:
    port, _ = spawn_module(SIMPLE, "location-service")
    return int(port)


def test_user_service_returns_user_and_location(
    spawn_module: SpawnModule, redis_port: int, location_port: int
) -> None:
    port = _user_service(spawn_module, f"127.0.0.1:{redis_port}", f"127.0.0.1:{location_port}")
    assert _eventually(port, "/users/1", 200) == {
        "user": ADA,
        "location": {"id": "1", "city": "London"},
        "location_saw_caller": None,
    }
    assert _get(port, "/users/42") == (404, {"error": "not found"})
    assert _get(port, "/healthz") == (200, {"status": "ok"})


def test_user_service_reaches_location_through_http_proxy(
    spawn_module: SpawnModule, redis_port: int, location_port: int
) -> None:
    # The runner gives HTTP services as name.ns.svc.cluster.local:port plus http_proxy; here
    # location-service itself plays the proxy (it accepts absolute-form request targets).
    port = _user_service(
        spawn_module,
        f"127.0.0.1:{redis_port}",
        "location-service.geo.svc.cluster.local:8081",
        http_proxy=f"http://127.0.0.1:{location_port}",
    )
    assert _eventually(port, "/users/2", 200)["location"] == {"id": "2", "city": "Bengaluru"}


@pytest.mark.parametrize(
    ("headers", "caller"),
    [
        ({}, None),
        (
            {
                "X-Forwarded-Client-Cert": "By=spiffe://cluster.local/ns/geo/sa/location-service;"
                "URI=spiffe://cluster.local/ns/core/sa/user-service"
            },
            "By=spiffe://cluster.local/ns/geo/sa/location-service;"
            "URI=spiffe://cluster.local/ns/core/sa/user-service",
        ),
    ],
)
def test_location_service_reports_caller(
    location_port: int, headers: dict[str, str], caller: str | None
) -> None:
    assert _get(location_port, "/locations/3", headers) == (
        200,
        {"id": "3", "city": "Palo Alto", "caller": caller},
    )


@pytest.mark.parametrize(
    ("target", "status", "body"),
    [
        ("/locations/99", 404, {"error": "not found"}),
        ("/elsewhere", 404, {"error": "not found"}),
        ("/healthz", 200, {"status": "ok"}),
    ],
)
def test_location_service_other_paths(
    location_port: int, target: str, status: int, body: dict[str, str]
) -> None:
    assert _get(location_port, target) == (status, body)


def test_failed_location_hop_is_502_naming_it(
    spawn_module: SpawnModule, redis_port: int, free_port: Callable[[], int]
) -> None:
    port = _user_service(spawn_module, f"127.0.0.1:{redis_port}", f"127.0.0.1:{free_port()}")
    body = _eventually(port, "/users/1", 502)
    assert body["hop"] == "location-service"


def test_failed_database_hop_is_502_naming_it(
    spawn_module: SpawnModule, location_port: int, free_port: Callable[[], int]
) -> None:
    port = _user_service(spawn_module, f"127.0.0.1:{free_port()}", f"127.0.0.1:{location_port}")
    status, body = _get(port, "/users/1")
    assert (status, body["hop"]) == (502, "database")


def test_seeding_waits_for_the_database(
    spawn_module: SpawnModule,
    spawn: Callable[..., Any],
    free_port: Callable[[], int],
    location_port: int,
) -> None:
    redis_port = free_port()
    port = _user_service(spawn_module, f"127.0.0.1:{redis_port}", f"127.0.0.1:{location_port}")
    assert _get(port, "/users/1")[0] == 502
    spawn(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", ""], redis_port
    )
    assert _eventually(port, "/users/1", 200)["user"] == ADA


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"MESHWARD_SVC_CORE_DATABASE_6379": "127.0.0.1:1"},
        {
            "MESHWARD_SVC_CORE_DATABASE_6379": "no-port",
            "MESHWARD_SVC_GEO_LOCATION_SERVICE_8081": "x:1",
        },
    ],
)
def test_user_service_without_its_environment_exits_2(env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", SIMPLE, "user-service", "--port", "1"],
        env=env,
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert (result.returncode, result.stderr.startswith(b"user-service: ")) == (2, True)


@pytest.mark.parametrize(
    ("namespace", "name", "port", "variable"),
    [
        ("geo", "location-service", 8081, "MESHWARD_SVC_GEO_LOCATION_SERVICE_8081"),
        ("core", "database", 6379, "MESHWARD_SVC_CORE_DATABASE_6379"),
    ],
)
def test_discovery_variable(namespace: str, name: str, port: int, variable: str) -> None:
    assert discovery.variable(namespace, name, port) == variable


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("127.0.0.5:6379", ("127.0.0.5", 6379)), ("[::1]:80", ("::1", 80))],
)
def test_discovery_split(text: str, parsed: tuple[str, int]) -> None:
    assert discovery.split(text) == parsed
