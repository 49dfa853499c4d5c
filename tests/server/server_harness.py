"""Helpers for the server and agent tests: an event loop on a thread (so ADS/SDS servers run
while the test blocks on sockets), Envoy processes, loopback helpers, bootstrap pieces."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An asyncio loop on a daemon thread; `run(coro)` runs a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


def free_port() -> int:
    """A loopback port that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(probe: Callable[[], T | None], timeout: float = 10.0, what: str = "") -> T:
    """Poll `probe` until it returns something other than None (or fail after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or probe}")
        time.sleep(0.05)


@dataclass
class EnvoyProcess:
    process: subprocess.Popen[bytes]
    log: Path
    admin_file: Path

    def admin(self, path: str) -> str:
        import urllib.request

        address = self.admin_file.read_text().strip()
        with urllib.request.urlopen(f"http://{address}{path}", timeout=2) as reply:
            return str(reply.read().decode())


_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def grpc_cluster(name: str, address: dict[str, Any]) -> dict[str, Any]:
    """A static HTTP/2 cluster (xDS over gRPC needs HTTP/2) to one address."""
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            _HTTP_OPTIONS: {
                "@type": f"type.googleapis.com/{_HTTP_OPTIONS}",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
    }


ADMIN = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}}
